// MLP autoencoder: encoder = [Linear(input, hidden), ReLU, Linear(hidden, latent)] (names encoder.0,
// encoder.2, as nn.Sequential numbers them), decoder = [Linear(latent, hidden), ReLU,
// Linear(hidden, input)] (decoder.0, decoder.2) giving Bernoulli logits. Linear code.
// Loss per image: BCE summed over pixels.
#pragma once
#include <vector>

#include "core/nn/layers.h"
#include "core/models/model.h"

namespace ll {

class MlpAutoencoder : public Model {
 public:
  explicit MlpAutoencoder(const ModelConfig& config);
  void reserve(int max_batch) override;
  void init(Rng& rng) override;
  void forward(const float* input, const float* target, int B, Rng& rng, ZMode mode) override;
  void backward(float scale) override;
  std::vector<std::string> loss_terms() const override { return {"bce"}; }
  const float* term(int index) const override { return bce_.data(); }
  const float* reconstruction() const override { return probs_.data(); }
  const float* code() const override { return code_.data(); }
  void decode(const float* z, int B, float* out) override;
  // Forward-only reconstruction for inference backends: encoder.0 + ReLU -> encoder.2 -> decoder.0 + ReLU -> decoder.2 -> sigmoid.
  bool inference_graph(InferenceGraph* out) const override;

  Linear enc0, enc2, dec0, dec2;

 private:
  int B_ = 0;
  const float* x_ = nullptr;
  const float* target_ = nullptr;
  std::vector<float> h1_pre_, h1_, code_, h2_pre_, h2_, logits_, probs_, bce_;
  std::vector<float> dh1_pre_, dh1_, dcode_, dh2_pre_, dh2_, dlogits_;
};

}  // namespace ll
