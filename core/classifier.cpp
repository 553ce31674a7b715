// The judge classifier; see classifier.h.
#include "core/classifier.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/adam.h"
#include "core/categorical.h"
#include "core/safetensors.h"

namespace ll {

MlpClassifier::MlpClassifier(int input, int hidden, int classes) {
  fc1.add_to(params_, "fc1", input, hidden);
  fc2.add_to(params_, "fc2", hidden, classes);
  params_.finalize();
}

void MlpClassifier::reserve(int max_batch) {
  if (max_batch <= max_batch_) return;
  max_batch_ = max_batch;
  const size_t B = max_batch, H = fc1.OC, K = fc2.OC;
  for (auto* v : {&h_pre_, &h_, &dh_pre_, &dh_}) v->assign(B * H, 0.0f);
  for (auto* v : {&logits_, &probs_, &dlogits_}) v->assign(B * K, 0.0f);
  loss_.assign(B, 0.0f);
}

void MlpClassifier::init(Rng& rng) {
  fc1.init(params_, rng);
  fc2.init(params_, rng);
}

void MlpClassifier::forward(const float* x, const int32_t* labels, int B) {
  B_ = B;
  x_ = x;
  labels_ = labels;
  fc1.forward(params_, h_pre_.data(), x, B);
  relu_forward(h_.data(), h_pre_.data(), static_cast<size_t>(B) * fc1.OC);
  fc2.forward(params_, logits_.data(), h_.data(), B);
  const int K = fc2.OC;
  if (labels) {
    // One cell per example: logits [B, K, 1].
    softmax_cross_entropy_forward(loss_.data(), probs_.data(), logits_.data(), labels, B, K, 1);
  } else {
    for (int b = 0; b < B; b++) {
      const float* l = logits_.data() + static_cast<size_t>(b) * K;
      float* p = probs_.data() + static_cast<size_t>(b) * K;
      const float mx = *std::max_element(l, l + K);
      double sum = 0.0;
      for (int k = 0; k < K; k++) sum += p[k] = std::exp(l[k] - mx);
      for (int k = 0; k < K; k++) p[k] = static_cast<float>(p[k] / sum);
    }
  }
}

void MlpClassifier::backward(float scale) {
  const int B = B_;
  const size_t BH = static_cast<size_t>(B) * fc1.OC;
  std::fill(dlogits_.begin(), dlogits_.begin() + static_cast<size_t>(B) * fc2.OC, 0.0f);
  std::fill(dh_.begin(), dh_.begin() + BH, 0.0f);
  std::fill(dh_pre_.begin(), dh_pre_.begin() + BH, 0.0f);
  softmax_cross_entropy_backward(dlogits_.data(), probs_.data(), labels_, scale, B, fc2.OC, 1);
  fc2.backward(params_, dh_.data(), dlogits_.data(), h_.data(), B);
  relu_backward(dh_pre_.data(), dh_.data(), h_pre_.data(), BH);
  fc1.backward(params_, nullptr, dh_pre_.data(), x_, B);
}

double classifier_accuracy(MlpClassifier& c, const Dataset& data) {
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

Status train_classifier(MlpClassifier* c, const Dataset& train, const Dataset& test, int epochs, uint64_t seed,
                        double* accuracy) {
  if (train.images.pixels_per_image() != c->input())
    return Status::error("the classifier expects " + std::to_string(c->input()) + " pixels per image");
  const int batch = 128, P = c->input();
  Rng rng(seed, 4);
  Adam adam;
  std::vector<uint32_t> order(train.size());
  std::iota(order.begin(), order.end(), 0u);
  std::vector<float> x(static_cast<size_t>(batch) * P);
  std::vector<int32_t> y(batch);
  c->reserve(batch);
  for (int e = 0; e < epochs; e++) {
    rng.shuffle(order.data(), order.size());
    for (int first = 0; first < train.size(); first += batch) {
      const int B = std::min(batch, train.size() - first);
      train.to_float(order.data(), first, B, x.data());
      for (int b = 0; b < B; b++) y[b] = train.labels.labels[order[first + b]];
      c->forward(x.data(), y.data(), B);
      c->params().zero_grad();
      c->backward(1.0f / B);
      adam.step(c->params());
    }
  }
  *accuracy = classifier_accuracy(*c, test);
  return Status();
}

std::vector<uint8_t> save_classifier(const MlpClassifier& c, const std::map<std::string, std::string>& extra) {
  std::vector<TensorToWrite> tensors;
  for (const TensorSlot& slot : c.params().slots())
    tensors.push_back({slot.name, slot.shape, c.params().params.data() + slot.offset});
  std::map<std::string, std::string> metadata = extra;
  metadata["format"] = "pt";
  metadata["latentlab.model"] = "classifier";
  return write_safetensors(tensors, metadata, DType::kF16);
}

Status load_classifier(const uint8_t* bytes, size_t size, std::unique_ptr<MlpClassifier>* out,
                       std::map<std::string, std::string>* metadata) {
  SafetensorsFile file;
  Status s = parse_safetensors(bytes, size, &file);
  if (!s.ok()) return s;
  const SafetensorsTensor* w1 = file.find("fc1.weight");
  const SafetensorsTensor* w2 = file.find("fc2.weight");
  if (!w1 || !w2 || w1->shape.size() != 2 || w2->shape.size() != 2 || w2->shape[1] != w1->shape[0])
    return Status::error("not a classifier file: expected fc1.weight [hidden, input] and fc2.weight [classes, hidden]");
  std::unique_ptr<MlpClassifier> c(new MlpClassifier(static_cast<int>(w1->shape[1]), static_cast<int>(w1->shape[0]),
                                                     static_cast<int>(w2->shape[0])));
  ParamArena& a = c->params();
  if (file.tensors.size() != a.slots().size()) return Status::error("classifier file: unexpected tensors");
  for (const TensorSlot& slot : a.slots()) {
    const SafetensorsTensor* t = file.find(slot.name);
    if (!t || t->shape != slot.shape) return Status::error("classifier file: tensor '" + slot.name + "' missing or misshapen");
    s = file.read_f32(*t, a.params.data() + slot.offset, slot.size);
    if (!s.ok()) return s;
  }
  if (metadata) *metadata = file.metadata;
  *out = std::move(c);
  return Status();
}

}  // namespace ll
