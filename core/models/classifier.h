// The "classifier" kind: a digit classifier, softmax cross-entropy over `classes` (10), which LatentLab
// uses as an impartial judge of generated digits (core/eval/classifier.h), not as a product model.
// Two architectures (hyperparameter "arch"):
// - 0, conv: Conv2d(1 -> C, k5 s2 p2) ReLU, Conv2d(C -> 2C, k5 s2 p2) ReLU, flatten (C, H, W order, as
//   torch.flatten), Linear(2C * S/4 * S/4, classes); tensors conv1, conv2, fc. For a square image of
//   side S, a multiple of 4 (28 -> 14 -> 7). C is the hyperparameter "channels". In PyTorch: a module
//   with attributes conv1, conv2, fc (weights [C, 1, 5, 5], [2C, C, 5, 5], [classes, 2C*(S/4)^2]).
// - 1, mlp: Linear(input, hidden) ReLU Linear(hidden, classes); tensors fc1, fc2.
// Files saved before it was a kind (models/classifier.safetensors: no "latentlab.config") are told by
// their tensor names (infer): conv1.weight for conv, fc1.weight + fc2.weight for mlp.
//
// Labels: the kind needs them (needs_labels); the Trainer and evaluate() pass each batch's through
// Model::set_batch_labels. Loss per image, two terms:
//   "ce"      = -log p_y, the cross-entropy with the image's label y;
//   "outlier" = negative_weight * (1/N) sum_n [-(1/K) sum_k log p_k(jigsaw_n)], the same value for every
//               image of the batch: outlier exposure (Hendrycks et al. 2019, "Deep anomaly detection with
//               outlier exposure"). A fair judge must not be confident on non-digits: trained on digits
//               alone, either architecture calls about half of the (visibly noise-like) decodes of
//               uniformly random VQ-VAE codes a digit with p >= 0.9. So each forward with labels also
//               shows the network N = "negatives" non-digits -- jigsaws, the batch's own digits cut into
//               square patches (4 and 7 pixels, alternating) and shuffled (make_jigsaw) -- whose target
//               is the uniform distribution over the classes.
// With the Trainer's mean reduction (backward(1/B)) the gradient is that of mean_b ce_b +
// negative_weight * mean_n oe_n: the judge's recipe (digits' mean loss plus 0.5 x the jigsaws' mean loss).
// ZMode::kSample (training) cuts the jigsaws with the rng given; kMean (evaluation) with a generator
// reset at every forward, so an evaluation is deterministic. Without labels (classify, or data without
// them) there is no loss: the terms are 0 and no jigsaws are made.
//
// The capability: ClassProbabilities (model.h), classify(x, B) -> probabilities [B, classes]. The judge's
// probabilities come from a forward over the images alone (no jigsaws), as they always did.
// Layers: the shared Conv2d / Linear pairs (core/nn/conv.h, layers.h). Activations: one
// ActivationArena sized by reserve() for max_batch images plus `negatives` jigsaws; no allocation in
// forward or backward.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/models/model.h"
#include "core/nn/arena.h"
#include "core/nn/conv.h"
#include "core/nn/layers.h"

namespace ll {

// The kind's hyperparameters (registry) and how a file without a config is recognised.
std::vector<HyperSpec> classifier_hyper();
bool classifier_infer(const std::map<std::string, std::vector<int64_t>>& shapes, ModelConfig* out);
// A square image (side a multiple of 4 for conv) and, with negatives, a side that 4 and 7 divide.
Status classifier_check(const ModelConfig& config);

class DigitClassifier : public Model, public ClassProbabilities {
 public:
  explicit DigitClassifier(const ModelConfig& config);
  void reserve(int max_batch) override;
  uint64_t activation_floats(int B) const override;
  void init(Rng& rng) override;
  bool needs_labels() const override { return true; }
  // input [B, input] in [0, 1]; target is not used (a classifier reconstructs nothing).
  void forward(const float* input, const float* target, int B, Rng& rng, ZMode mode) override;
  void backward(float scale) override;
  std::vector<std::string> loss_terms() const override { return {"ce", "outlier"}; }
  const float* term(int index) const override { return index == 0 ? ce_.data() : outlier_.data(); }
  // No reconstruction; the "code" is the class probabilities [B, classes]; nothing to decode (zeros).
  const float* reconstruction() const override { return nullptr; }
  const float* code() const override { return probs_.data(); }
  int code_size() const override { return K_; }
  void decode(const float* z, int B, float* out) override;

  ClassProbabilities* classifier() override { return this; }
  int classes() const override { return K_; }
  std::string arch() const override { return conv_ ? "conv" : "mlp"; }
  const float* classify(const float* x, int B) override;

  // Over an evaluation (with labels): "accuracy" (argmax = label), "confident" (max p >= 0.9, the
  // judge's threshold) on the digits, and "jigsaw_confident" on the jigsaws.
  void metrics_reset() override;
  void metrics_accumulate(int B) override;
  void metrics_report(std::vector<std::pair<std::string, double>>* out) const override;

  // conv arch
  Conv2d conv1, conv2;
  Linear fc;
  // mlp arch
  Linear fc1, fc2;

 private:
  // Rows [first, first + n) of x_ through the network to logits_ and probs_.
  void forward_rows(int first, int n);
  // The softmax of rows [first, first + n) of logits_ into probs_.
  void softmax_rows(int first, int n);

  bool conv_ = true;
  int S_ = 28, K_ = 10, N_ = 0;  // image side (conv), classes, jigsaws per forward with labels
  float negative_weight_ = 0.5f;
  int B_ = 0, rows_ = 0;  // images of the last forward; rows = images + jigsaws
  const int32_t* labels_ = nullptr;  // of the last forward (null: no loss)
  size_t n1_ = 0, n2_ = 0;  // per row: conv1 / conv2 outputs (conv), hidden units (mlp: n1_)
  ActivationArena arena_;
  Slice<float> workspace_;                 // the convolutions' shared scratch, one image at a time
  Slice<float> x_;                         // [rows, input]: the images, then the jigsaws
  Slice<float> a1_, h1_, da1_, dh1_;       // [rows, n1]: conv1 (mlp: fc1) output, after ReLU, gradients
  Slice<float> a2_, h2_, da2_, dh2_;       // [rows, n2]: conv2 output, after ReLU, gradients (conv)
  Slice<float> logits_, probs_, dlogits_;  // [rows, classes]
  Slice<float> ce_, outlier_;              // [B]
  double oe_mean_ = 0.0;                   // mean uniform-target loss of the last forward's jigsaws
  // Metrics over an evaluation.
  int64_t seen_ = 0, correct_ = 0, confident_ = 0, jig_seen_ = 0, jig_confident_ = 0;
};

// A "jigsaw" non-digit: the side x side image `digit` cut into patch x patch squares (patch divides
// side), put back in a random order. out [side*side]; every pixel value of digit appears exactly once.
void make_jigsaw(float* out, const float* digit, int side, int patch, Rng& rng);

}  // namespace ll
