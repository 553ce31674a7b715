// Convolutional VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation
// Learning") for square one-channel images of side S (S divisible by 4; MNIST: S = 28, grid g = 7).
// Names as a PyTorch nn.Sequential numbers them; conv weights [OC, C, kh, kw], transposed-conv
// weights [C_in, C_out, kh, kw], as PyTorch stores them:
//   encoder.0  Conv2d(1, 32, k4 s2 p1)            x [B,1,S,S]  -> [B,32,S/2,S/2], ReLU
//   encoder.2  Conv2d(32, 64, k4 s2 p1)           -> [B,64,g,g] (g = S/4), ReLU
//   encoder.4  Conv2d(64, D, k1)                  -> z_e [B,D,g,g]; G = g*g cells
//   codebook.weight [K, D]                        per cell: idx = argmin_k ||z_e - e_k||^2 (ties: the
//                                                 lowest k), z_q = e_idx
//   decoder.0  Conv2d(D, 64, k3 p1)               z_q -> [B,64,g,g], ReLU
//   decoder.2  ConvTranspose2d(64, 32, k4 s2 p1)  -> [B,32,S/2,S/2], ReLU
//   decoder.4  ConvTranspose2d(32, 1, k4 s2 p1)   -> [B,1,S,S], then a sigmoid (hyperparameter
//                                                 "sigmoid_output", default 1; 0: the raw output, as
//                                                 files made before it): the reconstruction (MSE model)
// Straight-through estimator: the decoder reads z_e + sg(z_q - z_e) (= z_q), so the gradient at the
// decoder input is copied to z_e; the reconstruction loss does not reach the codebook.
// Loss per image (P = S*S pixels, s = P / (G*D)):
//   "mse"        = sum_pixels (xhat - x)^2
//   "codebook"   = s * sum_{cells,d} (sg[z_e] - e)^2          (absent with EMA: see below)
//   "commitment" = beta * s * sum_{cells,d} (z_e - sg[e])^2
// Summed over a batch this is P*B times PyTorch's F.mse_loss(xhat, x) + q_latent_loss + beta *
// e_latent_loss (each a mean over its elements), so the terms are balanced as there; Adam does not see
// the overall factor (up to its eps).
// Variants (hyperparameters): "ema" = 1 updates the codebook by exponential moving averages of the
// assignment counts and sums (paper, appendix A.1; debiased as Sonnet 2's VectorQuantizerEMA) with
// Laplace smoothing of the counts, in after_step(), instead of the codebook loss (the codebook then gets
// no gradient, so Adam leaves it alone). "dead_code_steps" = N > 0 re-initialises a code that no cell of
// the last N training batches chose to a random encoder output z_e of the latest batch.
// Code usage: per-code counts and perplexity exp(-sum_k p_k log p_k) over an evaluation
// (metrics_report: "perplexity", "codes_used", "dead_codes" = codes no evaluated cell chose).
// Model::code() is the code INDICES as floats [B, G] (raster order, row = h*g + w), code_size() = G;
// decode(z) reads the same: indices as floats, rounded and clamped to [0, K). config.hidden and
// config.latent are unused. No allocation in forward/backward/after_step.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/nn/arena.h"
#include "core/nn/conv.h"
#include "core/nn/vq.h"
#include "core/models/model.h"

namespace ll {

// The quantisation kernels and the layer pair (vq_nearest, vq_ema_update, code_perplexity, ...) are in
// core/nn/vq.h.

// Uniformly random codes, the contrast to a prior's samples: out[i] = rng.below(K) for i < n, in order
// (the CLI's `sample --uniform-codes` and the page both draw them with Rng(seed, 5)). K >= 1.
void vq_uniform_codes(int32_t* out, size_t n, int K, Rng& rng);

// The registry entry's pieces: the hyperparameters, and recognising a PyTorch-saved file by
// encoder.0.weight of rank 4 plus codebook.weight [K, D] (the image size cannot be read from conv
// weights: 784 is assumed).
std::vector<HyperSpec> vqvae_hyper();
bool vqvae_infer(const std::map<std::string, std::vector<int64_t>>& shapes, ModelConfig* out);

// The capabilities it has: CodeGrids (one level: g x g cells, K codes of size D) and an inference graph
// (the XNNPACK backend).
class VqVae : public Model, public CodeGrids {
 public:
  explicit VqVae(const ModelConfig& config);
  void reserve(int max_batch) override;
  uint64_t activation_floats(int B) const override;
  // PyTorch's default conv init; codebook ~ U(-1/K, 1/K). Resets the EMA and usage state.
  void init(Rng& rng) override;
  void forward(const float* input, const float* target, int B, Rng& rng, ZMode mode) override;
  void backward(float scale) override;
  std::vector<std::string> loss_terms() const override;
  const float* term(int index) const override;
  const float* reconstruction() const override { return out_.data(); }
  const float* code() const override { return code_f_.data(); }
  int code_size() const override { return G_; }
  void decode(const float* z, int B, float* out) override;
  // Non-gradient updates after each optimiser step, from the last (training) forward: the EMA codebook
  // update, the per-code "steps since used" counters, dead-code restarts (drawing cells with rng).
  void after_step(Rng& rng) override;
  void metrics_reset() override;
  void metrics_accumulate(int B) override;
  void metrics_report(std::vector<std::pair<std::string, double>>* out) const override;
  // For resume files: "ema_count" [K], "ema_sum" [K, D], "ema_updates" [1], "steps_since_used" [K],
  // "restarts" [1] (with or without EMA: the same tensors, the EMA ones then stay zero).
  std::vector<StateTensor> training_state() const override;
  Status set_training_state(const std::vector<StateTensor>& state) override;

  // ---- capabilities ----
  using Model::code_grids;  // the const query too
  CodeGrids* code_grids() override { return this; }
  bool inference_graph(InferenceGraph* out) const override;
  int levels() const override { return 1; }
  CodeLevel level(int l) const override { return {g_, g_, K_, D_}; }
  void encode_codes(const float* x, int B) override {
    encode(x, B);
    quantise(B);
  }
  const int32_t* indices(int l) const override { return idx_.data(); }
  const float* z_e_rows(int l) const override { return rows_.data(); }
  const float* codebook(int l) const override { return codebook(); }
  void decode_codes(const int32_t* const* codes, int B, float* out) override;
  bool ema(int l) const override { return ema_; }
  const int32_t* steps_since_used(int l) const override { return since_used_.data(); }
  int64_t restarts(int l) const override { return restarts_; }
  int dead_code_steps(int l) const override { return dead_steps_; }

  // ---- the stages of forward, public for the UI and the tests ----
  void encode(const float* x, int B);                // x [B,P] -> z_e [B,D,g,g]
  void quantise(int B);                              // z_e -> indices, code(), z_q
  void decoder_forward(const float* zq, int B);      // zq [B,D,g,g] -> reconstruction() [B,P]

  // ---- state, for the UI and the tests ----
  int side() const { return S_; }
  int grid() const { return g_; }          // g: the code grid is g x g
  int K() const { return K_; }
  int D() const { return D_; }
  bool ema() const { return ema_; }
  const float* z_e() const { return ze_.data(); }      // [B,D,g,g] of the last encode
  const float* z_q() const { return zq_.data(); }      // [B,D,g,g] of the last quantise
  const int32_t* indices() const { return idx_.data(); }  // [B,G] of the last quantise
  const float* codebook() const { return params_.param(vq.codebook); }  // [K,D]
  // Post-ReLU activations of the last encode / decoder_forward, named by their nn.Sequential index:
  // encoder.1 [B,32,S/2,S/2], encoder.3 [B,64,g,g], decoder.1 [B,64,g,g], decoder.3 [B,32,S/2,S/2].
  const float* encoder_1() const { return h1_.data(); }
  const float* encoder_3() const { return h2_.data(); }
  const float* decoder_1() const { return d0_.data(); }
  const float* decoder_3() const { return d2_.data(); }
  const float* dz_q() const { return dzq_.data(); }    // [B,D,g,g] decoder-input gradient, last backward
  const float* dz_e() const { return dze_.data(); }    // [B,D,g,g] encoder-output gradient, last backward
  // Per-code counts over the cells seen since metrics_reset() [K].
  const int64_t* usage_counts() const { return eval_counts_.data(); }
  // Training: per code, training steps since a cell last chose it [K]; EMA counts N_k [K]; restarts.
  const int32_t* steps_since_used() const { return since_used_.data(); }
  const float* ema_counts() const { return ema_count_.data(); }
  int64_t restarts() const { return restarts_; }

  Conv2d enc0, enc2, enc4, dec0;
  VectorQuantizer vq;
  ConvTranspose2d dec2, dec4;

 private:
  void reset_state();
  void restart_code(int k, const float* v);

  int S_ = 0, g_ = 0, G_ = 0, P_ = 0, K_ = 0, D_ = 0;
  bool ema_ = true;
  float beta_ = 0.25f, scale_vq_ = 1.0f;
  double decay_ = 0.9;
  int dead_steps_ = 0;
  bool sigmoid_output_ = true;

  int B_ = 0;
  const float* x_ = nullptr;
  const float* target_ = nullptr;
  // Activations (post-ReLU only: y > 0 exactly where the pre-activation is > 0, so the ReLU masks come
  // from the outputs), all slices of one arena laid out by reserve(). Shapes for max_batch B.
  ActivationArena arena_;
  Slice<float> h1_;       // [B,32,S/2,S/2]
  Slice<float> h2_;       // [B,64,g,g]
  Slice<float> ze_, zq_;  // [B,D,g,g]
  Slice<float> rows_;     // [B*G, D]: z_e cell by cell
  Slice<int32_t> idx_;    // [B*G]
  Slice<float> code_f_;   // [B*G]
  Slice<float> d0_;       // [B,64,g,g]
  Slice<float> d2_;       // [B,32,S/2,S/2]
  Slice<float> out_;      // [B,P]
  Slice<float> mse_, codebook_term_, commit_;  // [B]
  // Gradients. g32_ holds d(decoder.2 output) and later d(encoder.0 output); g64_ d(decoder.0 output)
  // and later d(encoder.2 output): each pair has one shape and is used one after the other.
  Slice<float> dout_, g32_, g64_, dzq_, dze_;
  Slice<float> workspace_, dist_;  // the convolutions' shared scratch; vq_nearest's distance rows
  // Training state (not in model files; in resume files through training_state()).
  std::vector<float> ema_count_, ema_sum_, batch_count_, batch_sum_;
  int64_t ema_updates_ = 0;
  std::vector<int32_t> since_used_;
  int64_t restarts_ = 0;
  std::vector<int64_t> eval_counts_;
};

}  // namespace ll
