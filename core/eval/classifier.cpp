// The judge classifiers; see classifier.h.
#include "core/eval/classifier.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>

#include "core/nn/adam.h"
#include "core/io/safetensors.h"

namespace ll {

// ===================================================================================================
// The softmax head

void Classifier::reserve_head(int max_batch) {
  const size_t B = static_cast<size_t>(max_batch), K = static_cast<size_t>(classes());
  for (auto* v : {&logits_, &probs_, &dlogits_}) v->assign(B * K, 0.0f);
  loss_.assign(B, 0.0f);
}

void Classifier::head_forward(const int32_t* labels, int B) {
  const int K = classes();
  for (int b = 0; b < B; b++) {
    const float* l = logits_.data() + static_cast<size_t>(b) * K;
    float* p = probs_.data() + static_cast<size_t>(b) * K;
    // log p_k = l_k - mx - log sum_j exp(l_j - mx)
    const float mx = *std::max_element(l, l + K);
    double sum = 0.0;
    for (int k = 0; k < K; k++) sum += p[k] = std::exp(l[k] - mx);
    for (int k = 0; k < K; k++) p[k] = static_cast<float>(p[k] / sum);
    if (!labels) continue;
    const double lse = mx + std::log(sum);
    const int32_t y = labels[b];
    assert(y == kUniformTarget || (y >= 0 && y < K));
    if (y != kUniformTarget) {
      loss_[b] = static_cast<float>(lse - l[y]);  // -log p_y
    } else {
      double mean_l = 0.0;  // -(1/K) sum_k log p_k = lse - mean_k l_k
      for (int k = 0; k < K; k++) mean_l += l[k];
      loss_[b] = static_cast<float>(lse - mean_l / K);
    }
  }
}

void Classifier::head_backward(float scale) {
  assert(labels_);
  const int K = classes();
  // d(-log p_y)/dl_k = p_k - [k == y];  d(-(1/K) sum_j log p_j)/dl_k = p_k - 1/K.
  for (int b = 0; b < B_; b++) {
    const float* p = probs_.data() + static_cast<size_t>(b) * K;
    float* d = dlogits_.data() + static_cast<size_t>(b) * K;
    const int32_t y = labels_[b];
    for (int k = 0; k < K; k++) {
      const float target = y == kUniformTarget ? 1.0f / K : (k == y ? 1.0f : 0.0f);
      d[k] = scale * (p[k] - target);
    }
  }
}

// ===================================================================================================
// MLP

MlpClassifier::MlpClassifier(int input, int hidden, int classes) {
  fc1.add_to(params_, "fc1", input, hidden);
  fc2.add_to(params_, "fc2", hidden, classes);
  params_.finalize();
}

void MlpClassifier::reserve(int max_batch) {
  if (max_batch <= max_batch_) return;
  max_batch_ = max_batch;
  const size_t B = max_batch, H = fc1.OC;
  for (auto* v : {&h_pre_, &h_, &dh_pre_, &dh_}) v->assign(B * H, 0.0f);
  reserve_head(max_batch);
}

void MlpClassifier::init(Rng& rng) {
  fc1.init(params_, rng);
  fc2.init(params_, rng);
}

void MlpClassifier::forward(const float* x, const int32_t* labels, int B) {
  assert(B <= max_batch_);
  B_ = B;
  x_ = x;
  labels_ = labels;
  fc1.forward(params_, h_pre_.data(), x, B);
  relu_forward(h_.data(), h_pre_.data(), static_cast<size_t>(B) * fc1.OC);
  fc2.forward(params_, logits_.data(), h_.data(), B);
  head_forward(labels, B);
}

void MlpClassifier::backward(float scale) {
  const int B = B_;
  const size_t BH = static_cast<size_t>(B) * fc1.OC;
  std::fill(dh_.begin(), dh_.begin() + BH, 0.0f);
  std::fill(dh_pre_.begin(), dh_pre_.begin() + BH, 0.0f);
  head_backward(scale);
  fc2.backward(params_, dh_.data(), dlogits_.data(), h_.data(), B);
  relu_backward(dh_pre_.data(), dh_.data(), h_pre_.data(), BH);
  fc1.backward(params_, nullptr, dh_pre_.data(), x_, B);
}

// ===================================================================================================
// Convolutional

ConvClassifier::ConvClassifier(int side, int channels, int classes) : side_(side) {
  assert(side % 4 == 0 && channels > 0);
  conv1.add_to(params_, "conv1", 1, channels, 5, 2, 2);             // [B,1,S,S] -> [B,C,S/2,S/2]
  conv2.add_to(params_, "conv2", channels, 2 * channels, 5, 2, 2);  // -> [B,2C,S/4,S/4]
  fc.add_to(params_, "fc", 2 * channels * (side / 4) * (side / 4), classes);
  params_.finalize();
}

void ConvClassifier::reserve(int max_batch) {
  if (max_batch <= max_batch_) return;
  max_batch_ = max_batch;
  const size_t B = max_batch, S2 = static_cast<size_t>(side_ / 2), S4 = static_cast<size_t>(side_ / 4);
  for (auto* v : {&a1_, &h1_, &da1_, &dh1_}) v->assign(B * conv1.OC * S2 * S2, 0.0f);
  for (auto* v : {&a2_, &h2_, &da2_, &dh2_}) v->assign(B * conv2.OC * S4 * S4, 0.0f);
  workspace_.assign(std::max(conv2d_workspace_floats(conv1.shape(max_batch, side_, side_)),
                             conv2d_workspace_floats(conv2.shape(max_batch, side_ / 2, side_ / 2))),
                    0.0f);
  reserve_head(max_batch);
}

void ConvClassifier::init(Rng& rng) {
  conv1.init(params_, rng);
  conv2.init(params_, rng);
  fc.init(params_, rng);
}

void ConvClassifier::forward(const float* x, const int32_t* labels, int B) {
  assert(B <= max_batch_);
  B_ = B;
  x_ = x;
  labels_ = labels;
  const int S = side_;
  conv2d_forward(a1_.data(), x, params_.param(conv1.weight), params_.param(conv1.bias), conv1.shape(B, S, S),
                 workspace_.data());
  relu_forward(h1_.data(), a1_.data(), static_cast<size_t>(B) * conv1.OC * (S / 2) * (S / 2));
  conv2d_forward(a2_.data(), h1_.data(), params_.param(conv2.weight), params_.param(conv2.bias),
                 conv2.shape(B, S / 2, S / 2), workspace_.data());
  relu_forward(h2_.data(), a2_.data(), static_cast<size_t>(B) * conv2.OC * (S / 4) * (S / 4));
  fc.forward(params_, logits_.data(), h2_.data(), B);  // h2 [B, 2C, S/4, S/4] read as [B, 2C*(S/4)^2]
  head_forward(labels, B);
}

void ConvClassifier::backward(float scale) {
  const int B = B_, S = side_;
  const size_t n1 = static_cast<size_t>(B) * conv1.OC * (S / 2) * (S / 2);
  const size_t n2 = static_cast<size_t>(B) * conv2.OC * (S / 4) * (S / 4);
  for (auto* v : {&da1_, &dh1_}) std::fill(v->begin(), v->begin() + n1, 0.0f);
  for (auto* v : {&da2_, &dh2_}) std::fill(v->begin(), v->begin() + n2, 0.0f);
  head_backward(scale);
  fc.backward(params_, dh2_.data(), dlogits_.data(), h2_.data(), B);
  relu_backward(da2_.data(), dh2_.data(), a2_.data(), n2);
  conv2d_backward(dh1_.data(), params_.grad(conv2.weight), params_.grad(conv2.bias), da2_.data(), h1_.data(),
                  params_.param(conv2.weight), conv2.shape(B, S / 2, S / 2), workspace_.data());
  relu_backward(da1_.data(), dh1_.data(), a1_.data(), n1);
  conv2d_backward(nullptr, params_.grad(conv1.weight), params_.grad(conv1.bias), da1_.data(), x_,
                  params_.param(conv1.weight), conv1.shape(B, S, S), workspace_.data());
}

// ===================================================================================================
// Training, accuracy, files

double classifier_accuracy(Classifier& c, const Dataset& data) {
  const int batch = 500, P = data.images.pixels_per_image(), K = c.classes();
  std::vector<float> x(static_cast<size_t>(batch) * P);
  c.reserve(batch);
  int64_t correct = 0;
  for (int first = 0; first < data.size(); first += batch) {
    const int B = std::min(batch, data.size() - first);
    data.to_float(nullptr, first, B, x.data());
    c.forward(x.data(), nullptr, B);
    for (int b = 0; b < B; b++) {
      const float* p = c.probs() + static_cast<size_t>(b) * K;
      correct += (std::max_element(p, p + K) - p) == data.labels.labels[first + b];
    }
  }
  return data.size() ? static_cast<double>(correct) / data.size() : 0.0;
}

void make_jigsaw(float* out, const float* digit, int side, int patch, Rng& rng) {
  assert(patch > 0 && side % patch == 0);
  const int n = side / patch;  // n x n patches
  uint32_t perm[4096];
  assert(n * n <= 4096);
  for (int i = 0; i < n * n; i++) perm[i] = static_cast<uint32_t>(i);
  rng.shuffle(perm, static_cast<size_t>(n) * n);
  // Patch i of out is patch perm[i] of the digit.
  for (int i = 0; i < n * n; i++) {
    const int oy = (i / n) * patch, ox = (i % n) * patch;
    const int sy = (static_cast<int>(perm[i]) / n) * patch, sx = (static_cast<int>(perm[i]) % n) * patch;
    for (int r = 0; r < patch; r++)
      std::copy_n(digit + static_cast<size_t>(sy + r) * side + sx, patch, out + static_cast<size_t>(oy + r) * side + ox);
  }
}

Status train_classifier(Classifier* c, const Dataset& train, const Dataset& test, const ClassifierTrainSettings& st,
                        double* accuracy) {
  if (train.images.pixels_per_image() != c->input())
    return Status::error("the classifier expects " + std::to_string(c->input()) + " pixels per image");
  const int batch = st.batch, P = c->input(), N = st.negatives;
  const int side = static_cast<int>(std::lround(std::sqrt(static_cast<double>(P))));
  if (N > 0 && (side * side != P || side % 4 != 0 || side % 7 != 0))
    return Status::error("jigsaw negatives need a square image whose side is a multiple of 4 and 7 (28 for MNIST)");
  Rng rng(st.seed, 4), neg_rng(st.seed, 6);
  Adam adam;
  adam.config.lr = st.lr;
  std::vector<uint32_t> order(train.size());
  std::iota(order.begin(), order.end(), 0u);
  std::vector<float> x(static_cast<size_t>(batch) * P), digits(static_cast<size_t>(N) * P),
      neg(static_cast<size_t>(N) * P);
  std::vector<int32_t> y(batch), uniform(static_cast<size_t>(N), kUniformTarget);
  std::vector<uint32_t> pick(static_cast<size_t>(N));
  c->reserve(std::max(batch, N));
  for (int e = 0; e < st.epochs; e++) {
    rng.shuffle(order.data(), order.size());
    for (int first = 0; first < train.size(); first += batch) {
      const int B = std::min(batch, train.size() - first);
      train.to_float(order.data(), first, B, x.data());
      for (int b = 0; b < B; b++) y[b] = train.labels.labels[order[first + b]];
      c->params().zero_grad();
      c->forward(x.data(), y.data(), B);
      c->backward(1.0f / B);
      if (N > 0) {
        // Jigsaws of N random training digits, patches of 4 and 7 pixels alternating.
        for (int i = 0; i < N; i++) pick[i] = neg_rng.below(static_cast<uint32_t>(train.size()));
        train.to_float(pick.data(), 0, N, digits.data());
        for (int i = 0; i < N; i++)
          make_jigsaw(neg.data() + static_cast<size_t>(i) * P, digits.data() + static_cast<size_t>(i) * P, side,
                      i % 2 ? 7 : 4, neg_rng);
        c->forward(neg.data(), uniform.data(), N);
        c->backward(st.negative_weight / N);
      }
      adam.step(c->params());
    }
  }
  *accuracy = classifier_accuracy(*c, test);
  return Status();
}

std::vector<uint8_t> save_classifier(const Classifier& c, const std::map<std::string, std::string>& extra) {
  std::vector<TensorToWrite> tensors;
  for (const TensorSlot& slot : c.params().slots())
    tensors.push_back({slot.name, slot.shape, c.params().params.data() + slot.offset});
  std::map<std::string, std::string> metadata = extra;
  metadata["format"] = "pt";
  metadata["latentlab.model"] = "classifier";
  metadata["latentlab.arch"] = c.arch();
  return write_safetensors(tensors, metadata, DType::kF16);
}

Status load_classifier(const uint8_t* bytes, size_t size, std::unique_ptr<Classifier>* out,
                       std::map<std::string, std::string>* metadata) {
  SafetensorsFile file;
  Status s = parse_safetensors(bytes, size, &file);
  if (!s.ok()) return s;
  std::unique_ptr<Classifier> c;
  if (const SafetensorsTensor* w1 = file.find("conv1.weight")) {
    const SafetensorsTensor* fc = file.find("fc.weight");
    if (w1->shape.size() != 4 || w1->shape[1] != 1 || w1->shape[0] < 1 || w1->shape[0] > 1024 || !fc ||
        fc->shape.size() != 2 || fc->shape[0] < 1 || fc->shape[0] > 1024)
      return Status::error("not a conv classifier file: expected conv1.weight [C, 1, 5, 5] and fc.weight "
                           "[classes, 2C*(S/4)^2]");
    // fc's input is 2C * (S/4)^2: the image side follows.
    const int64_t C = w1->shape[0], cells = fc->shape[1] / (2 * C);
    int64_t q = 0;
    while ((q + 1) * (q + 1) <= cells) q++;
    if (fc->shape[1] % (2 * C) != 0 || q * q != cells || q < 1)
      return Status::error("conv classifier file: fc.weight's " + std::to_string(fc->shape[1]) +
                           " inputs are not 2C * (S/4)^2 for C = " + std::to_string(C));
    c.reset(new ConvClassifier(static_cast<int>(4 * q), static_cast<int>(C), static_cast<int>(fc->shape[0])));
  } else {
    const SafetensorsTensor* w1m = file.find("fc1.weight");
    const SafetensorsTensor* w2 = file.find("fc2.weight");
    if (!w1m || !w2 || w1m->shape.size() != 2 || w2->shape.size() != 2 || w2->shape[1] != w1m->shape[0])
      return Status::error("not a classifier file: expected conv1.weight (conv) or fc1.weight [hidden, input] "
                           "and fc2.weight [classes, hidden] (mlp)");
    c.reset(new MlpClassifier(static_cast<int>(w1m->shape[1]), static_cast<int>(w1m->shape[0]),
                              static_cast<int>(w2->shape[0])));
  }
  ParamArena& a = c->params();
  if (file.tensors.size() != a.slots().size())
    return Status::error("classifier file (" + c->arch() + "): " + std::to_string(file.tensors.size()) +
                         " tensors, expected " + std::to_string(a.slots().size()));
  for (const TensorSlot& slot : a.slots()) {
    const SafetensorsTensor* t = file.find(slot.name);
    if (!t || t->shape != slot.shape)
      return Status::error("classifier file (" + c->arch() + "): tensor '" + slot.name + "' missing or misshapen");
    s = file.read_f32(*t, a.params.data() + slot.offset, slot.size);
    if (!s.ok()) return s;
  }
  for (float v : a.params)
    if (!std::isfinite(v)) return Status::error("the classifier file holds a non-finite weight");
  if (metadata) *metadata = file.metadata;
  *out = std::move(c);
  return Status();
}

}  // namespace ll
