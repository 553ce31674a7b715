// Convolutional VAE for square images whose side S is a multiple of 4 (MNIST: S = 28). Tensor names
// are those of this PyTorch module (conv weights [OC, C, 4, 4]; transposed-conv weights [C, OC, 4, 4]):
//
//   class ConvVAE(nn.Module):
//     def __init__(self, Z=20):
//       super().__init__()
//       self.encoder = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(),     # encoder.0, .2
//                                    nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU())
//       self.fc_mu = nn.Linear(64 * 7 * 7, Z)
//       self.fc_logvar = nn.Linear(64 * 7 * 7, Z)
//       self.decoder_input = nn.Linear(Z, 64 * 7 * 7)
//       self.decoder = nn.Sequential(nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),  # decoder.0, .2
//                                    nn.ConvTranspose2d(32, 1, 4, 2, 1))
//     def forward(self, x):                      # x [B, 1, 28, 28]
//       h = self.encoder(x).flatten(1)           # [B, 64*7*7]
//       mu, logvar = self.fc_mu(h), self.fc_logvar(h)
//       z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
//       h = F.relu(self.decoder_input(z)).view(-1, 64, 7, 7)
//       return self.decoder(h), mu, logvar       # Bernoulli logits [B, 1, 28, 28]
//
// Loss per image = BCE (from logits, summed over pixels) + KL(q(z|x) || N(0, I)). config.latent is Z;
// config.hidden is not used (the channel counts are fixed). Shapes below for S = 28: 14 = S/2, 7 = S/4.
#pragma once
#include "core/models/active_units.h"
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/nn/conv.h"
#include "core/nn/layers.h"
#include "core/models/model.h"

namespace ll {

class ConvVae : public Model {
 public:
  explicit ConvVae(const ModelConfig& config);
  void reserve(int max_batch) override;
  uint64_t activation_floats(int B) const override;
  void init(Rng& rng) override;
  void forward(const float* input, const float* target, int B, Rng& rng, ZMode mode) override;
  void backward(float scale) override;
  std::vector<std::string> loss_terms() const override { return {"bce", "kl"}; }
  const float* term(int index) const override { return index == 0 ? bce_.data() : kl_.data(); }
  const float* reconstruction() const override { return probs_.data(); }
  const float* code() const override { return mu_.data(); }
  void decode(const float* z, int B, float* out) override;
  bool has_gaussian_prior() const override { return true; }
  bool posterior(const float** mu, const float** logvar, const float** z) const override {
    *mu = mu_.data(), *logvar = logvar_.data(), *z = z_.data();
    return true;
  }

  // Active units (Burda et al. 2016): latent j is active when Cov_x(E_q[z_j | x]) > 0.01.
  void metrics_reset() override;
  void metrics_accumulate(int B) override;
  void metrics_report(std::vector<std::pair<std::string, double>>* out) const override;

  // Recognises a file saved from PyTorch by the names above; reads S and Z from fc_mu's shape.
  static bool infer(const std::map<std::string, std::vector<int64_t>>& shapes, ModelConfig* out);

  static constexpr int kC1 = 32, kC2 = 64;  // channels after the first and second conv
  Conv2d enc0, enc2;
  Linear fc_mu, fc_logvar, decoder_input;
  ConvTranspose2d dec0, dec2;

 private:
  // Runs the decoder from z_ (already set) to logits_.
  void decode_logits(int B);

  int S_ = 28, S2_ = 14, S4_ = 7;  // image side, after one and after two stride-2 convs
  int F_ = 64 * 7 * 7;             // flattened features kC2 * S4 * S4
  int B_ = 0;
  const float* x_ = nullptr;       // input of the last forward (the caller keeps it alive)
  const float* target_ = nullptr;  // what the reconstruction is compared with
  ActiveUnits active_units_;  // metrics over an evaluation
  // Activations, all slices of one arena laid out by reserve(); d-prefixed ones are their gradients.
  ActivationArena arena_;
  Slice<float> workspace_;     // the convolutions' shared scratch, one image at a time
  Slice<float> a1_, r1_;   // [B, 32, 14, 14] conv enc0 output, after ReLU
  Slice<float> a2_, r2_;   // [B, 64, 7, 7] = [B, F] conv enc2 output, after ReLU
  Slice<float> mu_, logvar_, eps_, std_, z_;  // [B, Z]
  Slice<float> d0_, d0r_;  // [B, F] = [B, 64, 7, 7] decoder_input output, after ReLU
  Slice<float> d1_, d1r_;  // [B, 32, 14, 14] dec0 output, after ReLU
  Slice<float> logits_, probs_;  // [B, 1, 28, 28]
  Slice<float> bce_, kl_;        // [B]
  Slice<float> da1_, dr1_, da2_, dr2_, dmu_, dlogvar_, dz_, dd0_, dd0r_, dd1_, dd1r_, dlogits_;
};

}  // namespace ll
