// MLP VAE (Kingma & Welling 2014), names and layout of the PyTorch example (pytorch/examples vae):
//   encoder  fc1: input->hidden, ReLU;  fc21: hidden->latent (mean mu);  fc22: hidden->latent (log var)
//   z = mu + exp(logvar / 2) * eps, eps ~ N(0, I)   (the reparameterisation trick)
//   decoder  fc3: latent->hidden, ReLU;  fc4: hidden->input (Bernoulli logits)
// Loss per image = BCE summed over pixels + KL(q(z|x) || N(0, I)).
#pragma once
#include "core/models/active_units.h"
#include <vector>

#include "core/nn/layers.h"
#include "core/models/model.h"

namespace ll {

class MlpVae : public Model {
 public:
  explicit MlpVae(const ModelConfig& config);
  void reserve(int max_batch) override;
  void init(Rng& rng) override;
  void forward(const float* input, const float* target, int B, Rng& rng, ZMode mode) override;
  void backward(float scale) override;
  std::vector<std::string> loss_terms() const override { return {"bce", "kl"}; }
  const float* term(int index) const override { return index == 0 ? bce_.data() : kl_.data(); }
  const float* reconstruction() const override { return probs_.data(); }
  const float* code() const override { return mu_.data(); }
  void decode(const float* z, int B, float* out) override;
  // Forward-only reconstruction for inference backends: fc1 + ReLU -> fc21 (the posterior mean) -> fc3 + ReLU -> fc4 -> sigmoid.
  bool inference_graph(InferenceGraph* out) const override;
  bool has_gaussian_prior() const override { return true; }
  bool posterior(const float** mu, const float** logvar, const float** z) const override {
    *mu = mu_.data(), *logvar = logvar_.data(), *z = z_.data();
    return true;
  }
  const float* logvar() const { return logvar_.data(); }

  // Active units (Burda et al. 2016): latent j is active when Cov_x(E_q[z_j | x]) > 0.01.
  void metrics_reset() override;
  void metrics_accumulate(int B) override;
  void metrics_report(std::vector<std::pair<std::string, double>>* out) const override;

  Linear fc1, fc21, fc22, fc3, fc4;

 protected:
  // Per-example weight [B] of the KL term's gradient in backward (beta_vae.h sets it after forward);
  // null means 1, the plain VAE.
  const float* kl_weight_ = nullptr;

 private:
  int B_ = 0;
  const float* x_ = nullptr;       // the input of the last forward (caller keeps it alive for backward)
  const float* target_ = nullptr;  // what the reconstruction is compared with
  ActiveUnits active_units_;  // metrics over an evaluation
  // Activations [B, size]; d-prefixed ones are their gradients.
  std::vector<float> h1_pre_, h1_, mu_, logvar_, eps_, std_, z_, h3_pre_, h3_, logits_, probs_;
  std::vector<float> bce_, kl_;
  std::vector<float> dh1_pre_, dh1_, dmu_, dlogvar_, dz_, dh3_pre_, dh3_, dlogits_;
};

}  // namespace ll
