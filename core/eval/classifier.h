// Digit classifiers, softmax cross-entropy over 10 classes. LatentLab uses one as an impartial judge of
// generated digits (how many samples are recognisable), not as a product model. Two architectures:
// - "mlp":  Linear(input, hidden) ReLU Linear(hidden, classes); tensors fc1, fc2.
// - "conv": Conv2d(1 -> C, k5 s2 p2) ReLU, Conv2d(C -> 2C, k5 s2 p2) ReLU, flatten (C, H, W order, as
//           torch.flatten), Linear(2C * S/4 * S/4, classes); tensors conv1, conv2, fc. For a square
//           image of side S, a multiple of 4 (28 -> 14 -> 7). In PyTorch: nn.Sequential-free module with
//           attributes conv1, conv2, fc (weights [OC, C, 5, 5] and [classes, 2C*(S/4)^2]).
// No allocation in forward or backward (activations sized by reserve).
//
// A fair judge must not be confident on non-digits. Trained on digits alone, either architecture calls
// about half of the (visibly noise-like) decodes of uniformly random VQ-VAE codes a digit with p >= 0.9.
// So training may add outlier exposure (Hendrycks et al. 2019, "Deep anomaly detection with outlier
// exposure"): besides each batch of digits, a batch of non-digits -- training digits cut into square
// patches that are then shuffled (make_jigsaw) -- whose target is the uniform distribution over the
// classes (label kUniformTarget). The negatives come from MNIST alone, never from a generative model.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/nn/arena.h"
#include "core/nn/conv.h"
#include "core/io/idx.h"
#include "core/nn/layers.h"
#include "core/base/rng.h"
#include "core/base/status.h"

namespace ll {

// A label meaning "no class": the target is the uniform distribution, loss = -(1/K) sum_k log p_k.
constexpr int32_t kUniformTarget = -1;

// What the trainer, the judge and the model files see of a classifier.
class Classifier {
 public:
  virtual ~Classifier() = default;
  virtual std::string arch() const = 0;  // "mlp" or "conv"
  virtual int input() const = 0;
  virtual int classes() const = 0;
  ParamArena& params() { return params_; }
  const ParamArena& params() const { return params_; }
  virtual void reserve(int max_batch) = 0;
  virtual void init(Rng& rng) = 0;
  // x [B, input] in [0, 1]; labels [B] in [0, classes) or kUniformTarget (may be null: no loss).
  // Fills probabilities [B, classes] and, with labels, loss() [B] (nats).
  virtual void forward(const float* x, const int32_t* labels, int B) = 0;
  // Accumulates scale * d(sum_b loss_b)/d(params); needs labels in the last forward.
  virtual void backward(float scale) = 0;
  const float* probs() const { return probs_.data(); }
  const float* loss() const { return loss_.data(); }

 protected:
  // The softmax head shared by both architectures: sizes its buffers, then from logits_ [B, classes]
  // computes probs_ and (with labels) loss_; backward fills dlogits_ = scale * (probs - onehot).
  void reserve_head(int max_batch);
  void head_forward(const int32_t* labels, int B);
  void head_backward(float scale);

  ParamArena params_;
  int max_batch_ = 0, B_ = 0;
  const float* x_ = nullptr;
  const int32_t* labels_ = nullptr;
  std::vector<float> logits_, probs_, loss_, dlogits_;  // [B, classes], [B, classes], [B], [B, classes]
};

class MlpClassifier : public Classifier {
 public:
  MlpClassifier(int input, int hidden, int classes);
  std::string arch() const override { return "mlp"; }
  int input() const override { return fc1.C; }
  int classes() const override { return fc2.OC; }
  void reserve(int max_batch) override;
  void init(Rng& rng) override;
  void forward(const float* x, const int32_t* labels, int B) override;
  void backward(float scale) override;

  Linear fc1, fc2;

 private:
  std::vector<float> h_pre_, h_, dh_pre_, dh_;
};

class ConvClassifier : public Classifier {
 public:
  // side: image side S (input S*S, S a multiple of 4); channels: C of the first convolution.
  ConvClassifier(int side, int channels, int classes);
  std::string arch() const override { return "conv"; }
  int input() const override { return side_ * side_; }
  int classes() const override { return fc.OC; }
  void reserve(int max_batch) override;
  void init(Rng& rng) override;
  void forward(const float* x, const int32_t* labels, int B) override;
  void backward(float scale) override;

  Conv2d conv1, conv2;
  Linear fc;

 private:
  int side_;
  std::vector<float> a1_, h1_, a2_, h2_;      // [B, C, S/2, S/2] twice, [B, 2C, S/4, S/4] twice
  std::vector<float> da1_, dh1_, da2_, dh2_;  // their gradients
  std::vector<float> workspace_;
};

// A "jigsaw" non-digit: the side x side image `digit` cut into patch x patch squares (patch divides
// side), put back in a random order. out [side*side]; every pixel value of digit appears exactly once.
void make_jigsaw(float* out, const float* digit, int side, int patch, Rng& rng);

struct ClassifierTrainSettings {
  int epochs = 5, batch = 128;
  float lr = 1e-3f;
  uint64_t seed = 1;
  // Outlier exposure: `negatives` jigsaw images per step (0: none), patch sizes 4 and 7 alternating,
  // trained towards the uniform distribution; their mean loss is weighted by negative_weight against the
  // digits' mean loss (Hendrycks et al. use 0.5).
  int negatives = 0;
  float negative_weight = 0.5f;
};

// Trains a classifier on a labelled data set with Adam; returns its test accuracy on `test` in
// *accuracy.
Status train_classifier(Classifier* c, const Dataset& train, const Dataset& test, const ClassifierTrainSettings& s,
                        double* accuracy);
double classifier_accuracy(Classifier& c, const Dataset& data);

// F16 safetensors with metadata "latentlab.model" = "classifier"; the architecture is told by the tensor
// names on load (conv1.weight: conv; fc1.weight: mlp), and every tensor must be present with the shape
// the architecture needs, nothing else.
std::vector<uint8_t> save_classifier(const Classifier& c, const std::map<std::string, std::string>& extra);
Status load_classifier(const uint8_t* bytes, size_t size, std::unique_ptr<Classifier>* out,
                       std::map<std::string, std::string>* metadata = nullptr);

}  // namespace ll
