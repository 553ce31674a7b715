// The "classifier" kind (the judge of generated digits); see classifier.h.
#include "core/models/classifier.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace ll {

namespace {

// The judge's threshold: a "confident" (recognisable) prediction has max p >= 0.9.
constexpr float kConfident = 0.9f;
// The generator of the jigsaws of an evaluation (ZMode::kMean), reset at every forward.
constexpr uint64_t kEvalJigsawSeed = 0x6a16;

int side_of(int input) {
  int side = 0;
  while ((side + 1) * (side + 1) <= input) side++;
  return side;
}

}  // namespace

std::vector<HyperSpec> classifier_hyper() {
  return {
      {"arch", 0, 0, 1, true, "Classifier: 0 = conv (Conv 1->C k5 s2, ReLU, Conv C->2C k5 s2, ReLU, Linear), 1 = mlp (Linear(input, hidden), ReLU, Linear)"},
      {"channels", 16, 1, 256, true, "Classifier (conv): channels C of the first convolution"},
      {"classes", 10, 10, 1024, true, "Classifier: output classes (at least the 10 digit labels)"},
      {"negatives", 128, 0, 1024, true, "Classifier: outlier exposure, jigsaw non-digits (shuffled patches of the batch's digits) per step, trained towards the uniform distribution so the judge is not confident on non-digits (0: none)"},
      {"negative_weight", 0.5, 0.0, 100.0, false, "Classifier: outlier exposure, weight of the jigsaws' mean loss against the digits' mean loss"},
  };
}

bool classifier_infer(const std::map<std::string, std::vector<int64_t>>& shapes, ModelConfig* out) {
  auto find = [&](const char* name) -> const std::vector<int64_t>* {
    auto it = shapes.find(name);
    return it == shapes.end() ? nullptr : &it->second;
  };
  ModelConfig c;
  c.kind = "classifier";
  if (const auto* w1 = find("conv1.weight")) {
    // conv1 [C, 1, 5, 5]; fc [classes, 2C * (S/4)^2]: the image side follows.
    const auto* fc = find("fc.weight");
    if (w1->size() != 4 || (*w1)[0] < 1 || (*w1)[0] > 256 || !fc || fc->size() != 2 || (*fc)[0] < 1 ||
        (*fc)[0] > 1024)
      return false;
    const int64_t C = (*w1)[0];
    if ((*fc)[1] % (2 * C) != 0) return false;
    const int64_t cells = (*fc)[1] / (2 * C);
    int64_t q = 0;
    while ((q + 1) * (q + 1) <= cells && q < 4096) q++;
    if (q < 1 || q * q != cells) return false;
    c.input = static_cast<int>(16 * q * q);
    c.hyper["arch"] = 0;
    c.hyper["channels"] = static_cast<double>(C);
    c.hyper["classes"] = static_cast<double>((*fc)[0]);
  } else {
    const auto* f1 = find("fc1.weight");
    const auto* f2 = find("fc2.weight");
    if (!f1 || !f2 || f1->size() != 2 || f2->size() != 2 || (*f2)[1] != (*f1)[0] || (*f1)[1] < 1 ||
        (*f1)[1] > (1 << 16) || (*f1)[0] < 1 || (*f1)[0] > (1 << 14) || (*f2)[0] < 1 || (*f2)[0] > 1024)
      return false;
    c.input = static_cast<int>((*f1)[1]);
    c.hidden = static_cast<int>((*f1)[0]);
    c.hyper["arch"] = 1;
    c.hyper["classes"] = static_cast<double>((*f2)[0]);
  }
  *out = c;
  return true;
}

Status classifier_check(const ModelConfig& c) {
  const int side = side_of(c.input);
  const bool conv = c.get("arch") == 0;
  if (conv && (side * side != c.input || side % 4 != 0))
    return Status::error("the conv classifier needs a square image whose side is a multiple of 4, not " +
                         std::to_string(c.input) + " pixels");
  if (c.get("negatives") > 0 && (side * side != c.input || side % 4 != 0 || side % 7 != 0))
    return Status::error("jigsaw negatives need a square image whose side is a multiple of 4 and 7 (28 for "
                         "MNIST), not " + std::to_string(c.input) + " pixels (--negatives 0: none)");
  return Status();
}

DigitClassifier::DigitClassifier(const ModelConfig& config) {
  config_ = config;
  conv_ = config.get("arch") == 0;
  K_ = static_cast<int>(config.get("classes"));
  N_ = static_cast<int>(config.get("negatives"));
  negative_weight_ = static_cast<float>(config.get("negative_weight"));
  S_ = side_of(config.input);
  if (conv_) {
    assert(S_ * S_ == config.input && S_ % 4 == 0);
    const int C = static_cast<int>(config.get("channels"));
    conv1.add_to(params_, "conv1", 1, C, 5, 2, 2);      // [B,1,S,S] -> [B,C,S/2,S/2]
    conv2.add_to(params_, "conv2", C, 2 * C, 5, 2, 2);  // -> [B,2C,S/4,S/4]
    n1_ = static_cast<size_t>(C) * (S_ / 2) * (S_ / 2);
    n2_ = static_cast<size_t>(2 * C) * (S_ / 4) * (S_ / 4);
    fc.add_to(params_, "fc", static_cast<int>(n2_), K_);
  } else {
    fc1.add_to(params_, "fc1", config.input, config.hidden);
    fc2.add_to(params_, "fc2", config.hidden, K_);
    n1_ = static_cast<size_t>(config.hidden);
    n2_ = 0;
  }
  params_.finalize();
}

// What reserve's arena holds: per row the input, four buffers of n1 and of n2, three of classes; two
// terms per image; the one-image workspace; each of 16 slices' alignment padding.
uint64_t DigitClassifier::activation_floats(int B) const {
  const uint64_t rows = static_cast<uint64_t>(B) + static_cast<uint64_t>(N_);
  const uint64_t ws = conv_ ? std::max(conv1.workspace_floats(S_, S_), conv2.workspace_floats(S_ / 2, S_ / 2)) : 0;
  return rows * (static_cast<uint64_t>(config_.input) + 4 * n1_ + 4 * n2_ + 3 * static_cast<uint64_t>(K_)) +
         2 * static_cast<uint64_t>(B) + ws + 16 * 18;
}

void DigitClassifier::reserve(int max_batch) {
  if (max_batch <= max_batch_) return;
  max_batch_ = max_batch;
  const size_t R = static_cast<size_t>(max_batch) + static_cast<size_t>(N_);
  arena_.begin();
  arena_.add(&x_, R * config_.input);
  for (Slice<float>* v : {&a1_, &h1_, &da1_, &dh1_}) arena_.add(v, R * n1_);
  for (Slice<float>* v : {&a2_, &h2_, &da2_, &dh2_}) arena_.add(v, R * n2_);
  for (Slice<float>* v : {&logits_, &probs_, &dlogits_}) arena_.add(v, R * K_);
  for (Slice<float>* v : {&ce_, &outlier_}) arena_.add(v, static_cast<size_t>(max_batch));
  // The workspace holds one image at a time, so it does not grow with the batch.
  arena_.add(&workspace_, conv_ ? std::max(conv1.workspace_floats(S_, S_), conv2.workspace_floats(S_ / 2, S_ / 2)) : 0);
  arena_.allocate();
  conv1.workspace = conv2.workspace = workspace_.data();
}

void DigitClassifier::init(Rng& rng) {
  if (conv_) {
    conv1.init(params_, rng);
    conv2.init(params_, rng);
    fc.init(params_, rng);
  } else {
    fc1.init(params_, rng);
    fc2.init(params_, rng);
  }
}

void DigitClassifier::softmax_rows(int first, int n) {
  const int K = K_;
  for (int r = first; r < first + n; r++) {
    const float* l = logits_.data() + static_cast<size_t>(r) * K;
    float* p = probs_.data() + static_cast<size_t>(r) * K;
    // p_k = exp(l_k - mx) / sum_j exp(l_j - mx)
    const float mx = *std::max_element(l, l + K);
    double sum = 0.0;
    for (int k = 0; k < K; k++) sum += p[k] = std::exp(l[k] - mx);
    for (int k = 0; k < K; k++) p[k] = static_cast<float>(p[k] / sum);
  }
}

void DigitClassifier::forward_rows(int first, int n) {
  const float* x = x_.data() + static_cast<size_t>(first) * config_.input;
  float* a1 = a1_.data() + first * n1_;
  float* h1 = h1_.data() + first * n1_;
  float* logits = logits_.data() + static_cast<size_t>(first) * K_;
  if (conv_) {
    float* a2 = a2_.data() + first * n2_;
    float* h2 = h2_.data() + first * n2_;
    conv1.forward(params_, a1, x, n, S_, S_);  // [n, C, S/2, S/2]
    relu_forward(h1, a1, static_cast<size_t>(n) * n1_);
    conv2.forward(params_, a2, h1, n, S_ / 2, S_ / 2);  // [n, 2C, S/4, S/4]
    relu_forward(h2, a2, static_cast<size_t>(n) * n2_);
    fc.forward(params_, logits, h2, n);  // h2 [n, 2C, S/4, S/4] read as [n, 2C*(S/4)^2]
  } else {
    fc1.forward(params_, a1, x, n);
    relu_forward(h1, a1, static_cast<size_t>(n) * n1_);
    fc2.forward(params_, logits, h1, n);
  }
  softmax_rows(first, n);
}

const float* DigitClassifier::classify(const float* x, int B) {
  assert(B <= max_batch_);
  std::copy(x, x + static_cast<size_t>(B) * config_.input, x_.begin());
  B_ = rows_ = B;
  labels_ = nullptr;
  forward_rows(0, B);
  std::fill(ce_.begin(), ce_.begin() + B, 0.0f);
  std::fill(outlier_.begin(), outlier_.begin() + B, 0.0f);
  return probs_.data();
}

void DigitClassifier::forward(const float* input, const float* /*target*/, int B, Rng& rng, ZMode mode) {
  classify(input, B);  // the digits, as the judge sees them
  // The labels hold for this forward only: a later forward without set_batch_labels has none.
  labels_ = batch_labels_;
  batch_labels_ = nullptr;
  if (!labels_) return;  // no labels: no loss (the terms stay 0)
  const int K = K_;
  for (int b = 0; b < B; b++) {
    const float* l = logits_.data() + static_cast<size_t>(b) * K;
    const int32_t y = labels_[b];
    assert(y >= 0 && y < K);
    // -log p_y = lse - l_y, lse = mx + log sum_j exp(l_j - mx)
    const float mx = *std::max_element(l, l + K);
    double sum = 0.0;
    for (int k = 0; k < K; k++) sum += std::exp(l[k] - mx);
    ce_[b] = static_cast<float>(mx + std::log(sum) - l[y]);
  }
  // Outlier exposure: N jigsaws of the batch's digits (jigsaw i from digit i mod B, patches of 4 and 7
  // pixels alternating) in rows [B, B + N), towards the uniform distribution.
  oe_mean_ = 0.0;
  if (N_ == 0) return;
  const size_t P = static_cast<size_t>(config_.input);
  Rng eval_rng(kEvalJigsawSeed, 7);
  Rng& jr = mode == ZMode::kSample ? rng : eval_rng;
  for (int i = 0; i < N_; i++)
    make_jigsaw(x_.data() + (static_cast<size_t>(B) + i) * P, x_.data() + static_cast<size_t>(i % B) * P, S_,
                i % 2 ? 7 : 4, jr);
  rows_ = B + N_;
  forward_rows(B, N_);
  double oe = 0.0;
  for (int r = B; r < rows_; r++) {
    const float* l = logits_.data() + static_cast<size_t>(r) * K;
    // -(1/K) sum_k log p_k = lse - mean_k l_k
    const float mx = *std::max_element(l, l + K);
    double sum = 0.0, mean_l = 0.0;
    for (int k = 0; k < K; k++) {
      sum += std::exp(l[k] - mx);
      mean_l += l[k];
    }
    oe += mx + std::log(sum) - mean_l / K;
  }
  oe_mean_ = oe / N_;
  std::fill(outlier_.begin(), outlier_.begin() + B, static_cast<float>(negative_weight_ * oe_mean_));
}

void DigitClassifier::backward(float scale) {
  assert(labels_ && "DigitClassifier::backward needs labels in the last forward");
  if (!labels_) return;
  const int B = B_, R = rows_, K = K_;
  // d(-log p_y)/dl_k = p_k - [k == y]. The outlier term of each of the B images is
  // w * (1/N) sum_n oe_n, so the batch's sum holds B * w / N * oe_n, and
  // d(-(1/K) sum_j log p_j)/dl_k = p_k - 1/K.
  const float oe_scale = R > B ? scale * static_cast<float>(B) * negative_weight_ / static_cast<float>(R - B) : 0.0f;
  for (int r = 0; r < R; r++) {
    const float* p = probs_.data() + static_cast<size_t>(r) * K;
    float* d = dlogits_.data() + static_cast<size_t>(r) * K;
    if (r < B) {
      for (int k = 0; k < K; k++) d[k] = scale * (p[k] - (k == labels_[r] ? 1.0f : 0.0f));
    } else {
      for (int k = 0; k < K; k++) d[k] = oe_scale * (p[k] - 1.0f / K);
    }
  }
  const size_t m1 = static_cast<size_t>(R) * n1_, m2 = static_cast<size_t>(R) * n2_;
  for (Slice<float>* v : {&da1_, &dh1_}) std::fill(v->begin(), v->begin() + m1, 0.0f);
  if (conv_) {
    for (Slice<float>* v : {&da2_, &dh2_}) std::fill(v->begin(), v->begin() + m2, 0.0f);
    fc.backward(params_, dh2_.data(), dlogits_.data(), h2_.data(), R);
    relu_backward(da2_.data(), dh2_.data(), a2_.data(), m2);
    conv2.backward(params_, dh1_.data(), da2_.data(), h1_.data(), R, S_ / 2, S_ / 2);
    relu_backward(da1_.data(), dh1_.data(), a1_.data(), m1);
    conv1.backward(params_, nullptr, da1_.data(), x_.data(), R, S_, S_);
  } else {
    fc2.backward(params_, dh1_.data(), dlogits_.data(), h1_.data(), R);
    relu_backward(da1_.data(), dh1_.data(), a1_.data(), m1);
    fc1.backward(params_, nullptr, da1_.data(), x_.data(), R);
  }
}

void DigitClassifier::decode(const float* /*z*/, int B, float* out) {
  std::fill(out, out + static_cast<size_t>(B) * config_.input, 0.0f);
}

void DigitClassifier::metrics_reset() { seen_ = correct_ = confident_ = jig_seen_ = jig_confident_ = 0; }

void DigitClassifier::metrics_accumulate(int B) {
  if (!labels_) return;
  const int K = K_;
  for (int r = 0; r < rows_; r++) {
    const float* p = probs_.data() + static_cast<size_t>(r) * K;
    const float* top = std::max_element(p, p + K);
    if (r < B) {
      seen_++;
      correct_ += top - p == labels_[r];
      confident_ += *top >= kConfident;
    } else {
      jig_seen_++;
      jig_confident_ += *top >= kConfident;
    }
  }
}

void DigitClassifier::metrics_report(std::vector<std::pair<std::string, double>>* out) const {
  if (!seen_) return;
  out->push_back({"accuracy", static_cast<double>(correct_) / seen_});
  out->push_back({"confident", static_cast<double>(confident_) / seen_});
  if (jig_seen_) out->push_back({"jigsaw_confident", static_cast<double>(jig_confident_) / jig_seen_});
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

}  // namespace ll
