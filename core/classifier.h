// A small MLP digit classifier, Linear(input, hidden) ReLU Linear(hidden, classes), softmax
// cross-entropy. LatentLab uses it as an impartial judge of generated digits (how many samples are
// recognisable), not as a product model. Tensor names fc1, fc2 (PyTorch layout).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/idx.h"
#include "core/layers.h"
#include "core/rng.h"
#include "core/status.h"

namespace ll {

class MlpClassifier {
 public:
  MlpClassifier(int input, int hidden, int classes);
  int input() const { return fc1.C; }
  int classes() const { return fc2.OC; }
  ParamArena& params() { return params_; }
  const ParamArena& params() const { return params_; }
  void reserve(int max_batch);
  void init(Rng& rng);
  // x [B, input] in [0, 1]; labels [B] (may be null: no loss). Fills probabilities [B, classes] and,
  // with labels, loss() [B] (nats).
  void forward(const float* x, const int32_t* labels, int B);
  void backward(float scale);  // needs labels in the last forward
  const float* probs() const { return probs_.data(); }
  const float* loss() const { return loss_.data(); }

  Linear fc1, fc2;

 private:
  ParamArena params_;
  int max_batch_ = 0, B_ = 0;
  const float* x_ = nullptr;
  const int32_t* labels_ = nullptr;
  std::vector<float> h_pre_, h_, logits_, probs_, loss_, dh_pre_, dh_, dlogits_;
};

// Trains a classifier on a labelled data set (Adam 1e-3, batch 128) for `epochs`; returns its test
// accuracy on `test` in *accuracy.
Status train_classifier(MlpClassifier* c, const Dataset& train, const Dataset& test, int epochs, uint64_t seed,
                        double* accuracy);
double classifier_accuracy(MlpClassifier& c, const Dataset& data);

std::vector<uint8_t> save_classifier(const MlpClassifier& c, const std::map<std::string, std::string>& extra);
Status load_classifier(const uint8_t* bytes, size_t size, std::unique_ptr<MlpClassifier>* out,
                       std::map<std::string, std::string>* metadata = nullptr);

}  // namespace ll
