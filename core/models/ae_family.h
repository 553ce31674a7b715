// The regularised MLP autoencoders: denoising (Vincent et al. 2008), sparse (Ng, "Sparse autoencoder",
// CS294A notes), k-sparse (Makhzani & Frey 2013) and contractive (Rifai et al. 2011). Each is a kind in
// the registry (dae, sparse_ae, ksparse_ae, contractive_ae) whose forward and backward are written out
// in ae_family.cpp; like every model here they never allocate in forward or backward.
//
// Architectures (PyTorch names and layouts; Linear weights [out, in]):
// - dae: exactly the MLP autoencoder of mlp_ae.h (encoder.0, encoder.2, decoder.0, decoder.2; sizes
//   input-hidden-latent-hidden-input), trained on corrupted inputs: Model::corrupt() masks pixels and/or
//   adds Gaussian noise (core/nn/noise.h); the loss compares the reconstruction with the CLEAN image.
// - sparse_ae, ksparse_ae, contractive_ae: the classic single-hidden-layer design of the papers, where
//   the hidden layer IS the code: encoder.0 = Linear(input, hidden) followed by the kind's code
//   nonlinearity (sigmoid; top-k of a linear code; sigmoid), decoder.0 = Linear(hidden, input) giving
//   Bernoulli logits. In PyTorch: encoder = nn.Sequential(nn.Linear(784, H), nn.Sigmoid()) (or no
//   activation for k-sparse), decoder = nn.Sequential(nn.Linear(H, 784)). The code size is
//   config.hidden; config.latent is not used and is set equal to hidden, so a file states its code
//   size. One layer keeps the rows of encoder.0 readable as the units' filters (what these models are
//   known for) and gives the contractive penalty its exact closed form (the Jacobian of one sigmoid
//   layer).
//   Tied weights ("tied" = 1, as in the k-sparse and contractive papers): the decoder's weight is the
//   encoder's transposed, W_dec = W^T with W = encoder.0.weight [H, I]; the file then holds
//   encoder.0.weight [H, I], encoder.0.bias [H] and decoder.0.bias [I] only (no decoder.0.weight), half
//   the parameters. In PyTorch: logits = F.linear(h, encoder[0].weight.t(), decoder_bias).
// Loss per image: BCE summed over pixels (Bernoulli decoder), plus the kind's penalty as its own term.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/nn/layers.h"
#include "core/models/mlp_ae.h"
#include "core/models/model.h"

namespace ll {

// ---------------------------------------------------------------------------------------------------
// Denoising autoencoder. Hyperparameters: "mask" (probability that a pixel is set to 0, default 0.25)
// and "gaussian" (standard deviation of additive noise, default 0); both may be used together (mask
// first, then noise). Forward, loss and backward are the MLP autoencoder's: the Trainer passes the
// corrupted batch as input and the clean batch as target.
class DenoisingAutoencoder : public MlpAutoencoder {
 public:
  explicit DenoisingAutoencoder(const ModelConfig& config);
  void corrupt(float* x, int B, Rng& rng) const override;
};

// ---------------------------------------------------------------------------------------------------
// The shared skeleton of the single-hidden-layer kinds: the two layers, the activation buffers, the
// decoder half of forward and backward, decode(). Each kind writes its own forward (encoder, code
// nonlinearity, penalty) and backward (penalty gradient, code nonlinearity, encoder) explicitly.
// Letters: B batch, I input pixels, H code units (config.hidden).
// The hyperparameter "tied" (0 or 1, default 0) of every single-layer kind selects tied weights: then
// dec0.weight is -1 (no tensor) and the decoder uses enc0.weight transposed; dec0.bias is still its own.
class ShallowAutoencoder : public Model {
 public:
  // What reserve allocates here and in the subclasses: 4 code-width and 3 image-width vectors per
  // example, k-sparse's mask, a few per-example scalars, and two code-width vectors in all.
  uint64_t activation_floats(int B) const override {
    const uint64_t H = static_cast<uint64_t>(config_.hidden), I = static_cast<uint64_t>(config_.input);
    return static_cast<uint64_t>(B) * (5 * H + 3 * I + 3) + 2 * H;
  }
  void reserve(int max_batch) override;
  void init(Rng& rng) override;
  const float* reconstruction() const override { return probs_.data(); }
  const float* code() const override { return h_.data(); }
  int code_size() const override { return config_.hidden; }
  void decode(const float* z, int B, float* out) override;
  bool tied() const { return tied_; }

  Linear enc0, dec0;

 protected:
  explicit ShallowAutoencoder(const ModelConfig& config);
  // logits[B,I] = h[B,H] W_dec^T + b_dec: dec0 itself, or with tied weights h W + b_dec (W = enc0's).
  void decoder_logits(float* logits, const float* h, int B);
  // Remember the batch: input x[B,I] (what the encoder sees), target[B,I] (what the loss compares with).
  void begin_forward(const float* x, const float* target, int B);
  // logits = dec0(h); bce[b] = BCE(logits_b, target_b); probs = sigmoid(logits).
  void decoder_forward();
  // Zeroes this model's activation gradients, then dlogits = scale*(probs - target) and
  // dh = dlogits * W_dec (plus decoder.0's weight and bias gradients).
  void decoder_backward(float scale);

  bool tied_ = false;
  int B_ = 0;
  const float* x_ = nullptr;       // [B, I]
  const float* target_ = nullptr;  // [B, I]
  std::vector<float> a_;       // [B, H] encoder pre-activation W x + b
  std::vector<float> h_;       // [B, H] the code
  std::vector<float> logits_;  // [B, I]
  std::vector<float> probs_;   // [B, I] sigmoid(logits): the reconstruction
  std::vector<float> bce_;     // [B]
  std::vector<float> da_, dh_, dlogits_;  // gradients of a_, h_, logits_
};

// ---------------------------------------------------------------------------------------------------
// Sparse autoencoder: code h = sigmoid(W x + b) [B, H]. With rho_hat_j = (1/B) sum_b h_bj, the mean
// activation of unit j over the batch, the penalty is
//   P = beta * sum_j KL(rho || rho_hat_j),  KL(p || q) = p log(p/q) + (1-p) log((1-p)/(1-q)).
// As in Ng's notes the batch objective is the MEAN reconstruction error plus P; with the loss summed
// over the batch (the Trainer's convention) that is sum_b bce_b + B*P, so every example's "sparsity"
// term reports P (the penalty of the batch it was in) and beta means the same at any batch size.
// The term couples the examples of a batch: d(B*P)/d h_bj = beta * (-rho/rho_hat_j + (1-rho)/(1-rho_hat_j)).
// Hyperparameters: "rho" (target mean activation, default 0.05), "sparsity_beta" (default 20: Ng's 3
// was set against half the squared error, whose gradients are far smaller than the BCE's; on MNIST
// (784-256-784, 5 epochs) beta 3 leaves the mean activation at 0.077, 10 at 0.060, 20 at 0.055, 30 at
// 0.054 with the reconstruction worse each time).
// Initialisation: PyTorch's default, then encoder.0's bias = logit(rho), so every unit starts at the
// target activation instead of 1/2; otherwise the penalty first drives all units down hard, saturating
// them, and reconstruction learns far slower (MNIST, beta 30, 5 epochs: BCE 122 instead of 87).
// Metrics: "mean_activation" (mean of h over all test images and units) and "rho".
class SparseAutoencoder : public ShallowAutoencoder {
 public:
  explicit SparseAutoencoder(const ModelConfig& config);
  void reserve(int max_batch) override;
  void init(Rng& rng) override;
  void forward(const float* input, const float* target, int B, Rng& rng, ZMode mode) override;
  void backward(float scale) override;
  std::vector<std::string> loss_terms() const override { return {"bce", "sparsity"}; }
  const float* term(int index) const override { return index == 0 ? bce_.data() : sparsity_.data(); }
  void metrics_reset() override;
  void metrics_accumulate(int B) override;
  void metrics_report(std::vector<std::pair<std::string, double>>* out) const override;
  // rho_hat of the last forward, clamped away from 0 and 1 (see kRhoHatFloor) [H].
  const std::vector<double>& rho_hat() const { return rho_hat_; }

  // rho_hat is clamped to [kRhoHatFloor, 1 - kRhoHatFloor] so the log and the gradient stay finite when
  // a unit saturates (h == 0.0f or 1.0f in float for every example of the batch; never in practice).
  static constexpr double kRhoHatFloor = 1e-6;

 private:
  double rho_, beta_;
  std::vector<double> rho_hat_;  // [H]
  std::vector<float> sparsity_;  // [B], every entry the batch penalty P
  double act_sum_ = 0.0;
  int64_t act_count_ = 0;
};

// ---------------------------------------------------------------------------------------------------
// k-sparse autoencoder: linear code a = W x + b [B, H]; per example only the k largest entries of a are
// kept (the rest set to 0): h = a * mask. The gradient flows only through the kept units
// (da = dh * mask). Ties are broken by the lower index, so the selection is the same on every platform.
// Schedule (the paper's): training starts with k_start active units and anneals linearly to k over the
// first anneal_fraction of the planned steps (Model::begin_step); every forward not preceded by
// begin_step (evaluation, reconstruction, decode) uses exactly k. With unknown total steps, k at once.
// Hyperparameters: "k" (default 25), "k_start" (default 0 = all H units), "anneal_fraction" (default
// 0.5); k and k_start are capped at H (k >= H keeps every unit: a plain linear-code autoencoder).
// Why start from all units: a unit that is never among the k largest gets no gradient and stays dead.
// On MNIST (784-256-784, k 25, 5 epochs, seed 1) the units never used on the test set were: 167 with no
// schedule, 114 starting from the paper's 100, 46 starting from all 256 (test BCE 74.8, 76.3, 75.2).
// Metrics: "active_per_example" (mean number of non-zero code units), "active_min", "active_max", "k",
// and "dead_units" (code units non-zero for no image of the evaluation: what the schedule prevents).
class KSparseAutoencoder : public ShallowAutoencoder {
 public:
  explicit KSparseAutoencoder(const ModelConfig& config);
  void reserve(int max_batch) override;
  void forward(const float* input, const float* target, int B, Rng& rng, ZMode mode) override;
  void backward(float scale) override;
  std::vector<std::string> loss_terms() const override { return {"bce"}; }
  const float* term(int index) const override { return bce_.data(); }
  void begin_step(int64_t step, int64_t total_steps) override;
  void metrics_reset() override;
  void metrics_accumulate(int B) override;
  void metrics_report(std::vector<std::pair<std::string, double>>* out) const override;

  // The number of active units the schedule gives at training step `step` of `total_steps`.
  int scheduled_k(int64_t step, int64_t total_steps) const;
  int k() const { return k_; }
  int last_k() const { return k_used_; }  // k of the last forward

 private:
  int k_, k_start_;
  double anneal_fraction_;
  int k_next_ = 0;  // set by begin_step for the next forward only; 0 = use k
  int k_used_ = 0;
  std::vector<float> mask_;  // [B, H] 1 for kept units, 0 otherwise
  std::vector<int> order_;   // [H] scratch for the selection
  double active_sum_ = 0.0;
  int64_t active_count_ = 0;
  int active_min_ = 0, active_max_ = 0;
  std::vector<int64_t> unit_count_;  // [H] images for which each unit was non-zero
};

// ---------------------------------------------------------------------------------------------------
// Contractive autoencoder: code h = sigmoid(W x + b) [B, H]. The encoder's Jacobian is
// J_ji = dh_j/dx_i = h_j(1-h_j) W_ji, so per example
//   ||J||_F^2 = sum_j (h_j(1-h_j))^2 * sum_i W_ji^2      (Rifai et al. 2011, eq. 5)
// and the "contractive" term is lambda * ||J||_F^2. Hyperparameter "contractive_lambda" (default 0.1).
// Metric: "jacobian_norm", the mean over test images of ||J||_F (not squared).
class ContractiveAutoencoder : public ShallowAutoencoder {
 public:
  explicit ContractiveAutoencoder(const ModelConfig& config);
  void reserve(int max_batch) override;
  void forward(const float* input, const float* target, int B, Rng& rng, ZMode mode) override;
  void backward(float scale) override;
  std::vector<std::string> loss_terms() const override { return {"bce", "contractive"}; }
  const float* term(int index) const override { return index == 0 ? bce_.data() : contractive_.data(); }
  void metrics_reset() override;
  void metrics_accumulate(int B) override;
  void metrics_report(std::vector<std::pair<std::string, double>>* out) const override;
  // ||J||_F^2 per example of the last forward [B].
  const float* jacobian_sq() const { return jac_sq_.data(); }

 private:
  double lambda_;
  std::vector<float> w_sq_;         // [H] sum_i W_ji^2 of the last forward
  std::vector<float> jac_sq_;       // [B] ||J_b||_F^2
  std::vector<float> contractive_;  // [B] lambda * ||J_b||_F^2
  double jac_norm_sum_ = 0.0;
  int64_t jac_count_ = 0;
};

}  // namespace ll
