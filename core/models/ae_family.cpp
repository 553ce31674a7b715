// The regularised MLP autoencoders' forward and backward; see ae_family.h.
#include "core/models/ae_family.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "core/kernels/kernels.h"
#include "core/nn/losses.h"
#include "core/nn/noise.h"

namespace ll {

// ===================================================================================================
// Denoising autoencoder

DenoisingAutoencoder::DenoisingAutoencoder(const ModelConfig& config) : MlpAutoencoder(config) {}

void DenoisingAutoencoder::corrupt(float* x, int B, Rng& rng) const {
  const size_t n = static_cast<size_t>(B) * config_.input;
  NoiseSpec mask, gaussian;
  mask.type = NoiseType::kMask;
  mask.level = static_cast<float>(config_.get("mask"));
  gaussian.type = NoiseType::kGaussian;
  gaussian.level = static_cast<float>(config_.get("gaussian"));
  if (mask.level > 0.0f) apply_noise(mask, x, n, rng);
  if (gaussian.level > 0.0f) apply_noise(gaussian, x, n, rng);
}

// ===================================================================================================
// Shared single-hidden-layer skeleton

namespace {
// The code of the single-layer kinds is the hidden layer: latent is recorded as its size.
ModelConfig with_code_size(ModelConfig c) {
  c.latent = c.hidden;
  return c;
}
}  // namespace

ShallowAutoencoder::ShallowAutoencoder(const ModelConfig& config) : tied_(config.get("tied") != 0.0) {
  config_ = with_code_size(config);
  enc0.add_to(params_, "encoder.0", config_.input, config_.hidden);
  if (tied_) {
    // Only the bias is the decoder's own: its weight is encoder.0.weight transposed.
    dec0.C = config_.hidden;
    dec0.OC = config_.input;
    dec0.bias = params_.add("decoder.0.bias", {config_.input});
  } else {
    dec0.add_to(params_, "decoder.0", config_.hidden, config_.input);
  }
  params_.finalize();
}

void ShallowAutoencoder::reserve(int max_batch) {
  if (max_batch <= max_batch_) return;
  max_batch_ = max_batch;
  const size_t B = static_cast<size_t>(max_batch), I = config_.input, H = config_.hidden;
  for (auto* v : {&a_, &h_, &da_, &dh_}) v->assign(B * H, 0.0f);
  for (auto* v : {&logits_, &probs_, &dlogits_}) v->assign(B * I, 0.0f);
  bce_.assign(B, 0.0f);
}

void ShallowAutoencoder::init(Rng& rng) {
  enc0.init(params_, rng);
  if (!tied_) {
    dec0.init(params_, rng);
    return;
  }
  // nn.Linear(H, I)'s bias init: U(-1/sqrt(H), 1/sqrt(H)).
  const float bound = 1.0f / std::sqrt(static_cast<float>(config_.hidden));
  rng.fill_uniform(params_.param(dec0.bias), static_cast<size_t>(config_.input), -bound, bound);
}

void ShallowAutoencoder::decoder_logits(float* logits, const float* h, int B) {
  if (!tied_) {
    dec0.forward(params_, logits, h, B);
    return;
  }
  const int H = config_.hidden, I = config_.input;
  // logits[B,I] = h[B,H] W[H,I] + b_dec[I]: W^T is the decoder's [out, in] weight, so no transpose here.
  gemm_f32(false, false, B, I, H, 1.0f, h, H, params_.param(enc0.weight), I, 0.0f, logits, I);
  const float* bias = params_.param(dec0.bias);
  for (int b = 0; b < B; b++)
    for (int i = 0; i < I; i++) logits[static_cast<size_t>(b) * I + i] += bias[i];
}

void ShallowAutoencoder::begin_forward(const float* x, const float* target, int B) {
  assert(B <= max_batch_);
  B_ = B;
  x_ = x;
  target_ = target;
}

void ShallowAutoencoder::decoder_forward() {
  decoder_logits(logits_.data(), h_.data(), B_);
  bce_logits_forward(bce_.data(), probs_.data(), logits_.data(), target_, B_, config_.input);
}

void ShallowAutoencoder::decoder_backward(float scale) {
  const size_t BH = static_cast<size_t>(B_) * config_.hidden;
  const size_t BI = static_cast<size_t>(B_) * config_.input;
  std::fill(da_.begin(), da_.begin() + BH, 0.0f);
  std::fill(dh_.begin(), dh_.begin() + BH, 0.0f);
  std::fill(dlogits_.begin(), dlogits_.begin() + BI, 0.0f);
  // d bce / d logits = sigmoid(logits) - target
  bce_logits_backward(dlogits_.data(), probs_.data(), target_, scale, B_, config_.input);
  if (!tied_) {
    // dh += dlogits W_dec; dW_dec += dlogits^T h; db_dec += sum_b dlogits
    dec0.backward(params_, dh_.data(), dlogits_.data(), h_.data(), B_);
    return;
  }
  // Tied: logits = h W + b_dec with W = encoder.0.weight [H, I].
  //   dh[B,H] += dlogits[B,I] W^T;  dW[H,I] += h^T dlogits (the decoder's share of W's gradient; the
  //   encoder's share is added by the kind's backward);  db_dec += sum_b dlogits.
  const int B = B_, H = config_.hidden, I = config_.input;
  gemm_f32(false, true, B, H, I, 1.0f, dlogits_.data(), I, params_.param(enc0.weight), I, 1.0f, dh_.data(), H);
  gemm_f32(true, false, H, I, B, 1.0f, h_.data(), H, dlogits_.data(), I, 1.0f, params_.grad(enc0.weight), I);
  float* dbias = params_.grad(dec0.bias);
  for (int b = 0; b < B; b++)
    for (int i = 0; i < I; i++) dbias[i] += dlogits_[static_cast<size_t>(b) * I + i];
}

void ShallowAutoencoder::decode(const float* z, int B, float* out) {
  assert(B <= max_batch_);
  // Uses logits_ as scratch (the last forward's logits are overwritten).
  decoder_logits(logits_.data(), z, B);
  const size_t n = static_cast<size_t>(B) * config_.input;
  for (size_t i = 0; i < n; i++) out[i] = stable_sigmoid(logits_[i]);
}

// ===================================================================================================
// Sparse autoencoder

SparseAutoencoder::SparseAutoencoder(const ModelConfig& config)
    : ShallowAutoencoder(config), rho_(config.get("rho")), beta_(config.get("sparsity_beta")) {}

void SparseAutoencoder::reserve(int max_batch) {
  ShallowAutoencoder::reserve(max_batch);
  rho_hat_.resize(static_cast<size_t>(config_.hidden));
  sparsity_.resize(static_cast<size_t>(max_batch_));
}

void SparseAutoencoder::init(Rng& rng) {
  ShallowAutoencoder::init(rng);
  // sigmoid(logit(rho)) = rho: the code starts at the target mean activation (see ae_family.h).
  float* bias = params_.param(enc0.bias);
  for (int j = 0; j < config_.hidden; j++) bias[j] = static_cast<float>(std::log(rho_ / (1.0 - rho_)));
}

void SparseAutoencoder::forward(const float* x, const float* target, int B, Rng& rng, ZMode mode) {
  begin_forward(x, target, B);
  const int H = config_.hidden;
  const size_t BH = static_cast<size_t>(B) * H;
  enc0.forward(params_, a_.data(), x, B);           // a = W x + b
  sigmoid_forward(h_.data(), a_.data(), BH);        // h = sigmoid(a): the code
  decoder_forward();                                // logits, probs, bce against the target
  // rho_hat_j = mean over the batch of h_bj; P = beta * sum_j KL(rho || rho_hat_j)
  std::fill(rho_hat_.begin(), rho_hat_.end(), 0.0);
  for (int b = 0; b < B; b++) {
    const float* h = h_.data() + static_cast<size_t>(b) * H;
    for (int j = 0; j < H; j++) rho_hat_[j] += h[j];
  }
  double kl = 0.0;
  for (int j = 0; j < H; j++) {
    const double q = std::clamp(rho_hat_[j] / B, kRhoHatFloor, 1.0 - kRhoHatFloor);
    rho_hat_[j] = q;
    kl += rho_ * std::log(rho_ / q) + (1.0 - rho_) * std::log((1.0 - rho_) / (1.0 - q));
  }
  std::fill(sparsity_.begin(), sparsity_.begin() + B, static_cast<float>(beta_ * kl));
}

void SparseAutoencoder::backward(float scale) {
  const int B = B_, H = config_.hidden;
  const size_t BH = static_cast<size_t>(B) * H;
  decoder_backward(scale);  // zeroes da, dh; dh = reconstruction gradient
  // The batch loss holds B copies of P: d(B*P)/dh_bj = B * beta * dKL/drho_hat_j * (1/B)
  //   = beta * (-rho/rho_hat_j + (1-rho)/(1-rho_hat_j)), the same for every example b.
  for (int j = 0; j < H; j++) {
    const double g = beta_ * (-rho_ / rho_hat_[j] + (1.0 - rho_) / (1.0 - rho_hat_[j]));
    const float gs = static_cast<float>(scale * g);
    for (int b = 0; b < B; b++) dh_[static_cast<size_t>(b) * H + j] += gs;
  }
  sigmoid_backward(da_.data(), dh_.data(), h_.data(), BH);  // da += dh * h(1-h)
  enc0.backward(params_, nullptr, da_.data(), x_, B);       // dW += da^T x; db += sum_b da
}

void SparseAutoencoder::metrics_reset() {
  act_sum_ = 0.0;
  act_count_ = 0;
}

void SparseAutoencoder::metrics_accumulate(int B) {
  const size_t BH = static_cast<size_t>(B) * config_.hidden;
  double s = 0.0;
  for (size_t i = 0; i < BH; i++) s += h_[i];
  act_sum_ += s;
  act_count_ += static_cast<int64_t>(BH);
}

void SparseAutoencoder::metrics_report(std::vector<std::pair<std::string, double>>* out) const {
  if (act_count_ == 0) return;
  out->push_back({"mean_activation", act_sum_ / act_count_});
  out->push_back({"rho", rho_});
}

// ===================================================================================================
// k-sparse autoencoder

KSparseAutoencoder::KSparseAutoencoder(const ModelConfig& config)
    : ShallowAutoencoder(config),
      k_(std::min(static_cast<int>(config.get("k")), config.hidden)),
      k_start_(config.get("k_start") == 0 ? config.hidden
                                          : std::min(static_cast<int>(config.get("k_start")), config.hidden)),
      anneal_fraction_(config.get("anneal_fraction")) {
  order_.resize(static_cast<size_t>(config.hidden));
}

void KSparseAutoencoder::reserve(int max_batch) {
  ShallowAutoencoder::reserve(max_batch);
  mask_.resize(static_cast<size_t>(max_batch_) * config_.hidden);
}

int KSparseAutoencoder::scheduled_k(int64_t step, int64_t total_steps) const {
  const double anneal_steps = anneal_fraction_ * static_cast<double>(total_steps);
  if (total_steps <= 0 || anneal_steps < 1.0 || static_cast<double>(step) >= anneal_steps) return k_;
  // Linear from k_start at step 0 to k at step anneal_steps.
  const double t = static_cast<double>(step) / anneal_steps;
  return static_cast<int>(std::lround(k_start_ + (k_ - k_start_) * t));
}

void KSparseAutoencoder::begin_step(int64_t step, int64_t total_steps) {
  k_next_ = scheduled_k(step, total_steps);
}

void KSparseAutoencoder::forward(const float* x, const float* target, int B, Rng& rng, ZMode mode) {
  begin_forward(x, target, B);
  const int H = config_.hidden;
  const int k = k_next_ > 0 ? k_next_ : k_;  // the schedule's k for this training step, else k
  k_next_ = 0;
  k_used_ = k;
  enc0.forward(params_, a_.data(), x, B);  // a = W x + b: the linear code
  for (int b = 0; b < B; b++) {
    const float* a = a_.data() + static_cast<size_t>(b) * H;
    float* h = h_.data() + static_cast<size_t>(b) * H;
    float* m = mask_.data() + static_cast<size_t>(b) * H;
    // The k largest entries of a (ties to the lower index): a strict total order, so exactly k.
    for (int j = 0; j < H; j++) order_[j] = j;
    std::nth_element(order_.begin(), order_.begin() + (k - 1), order_.end(),
                     [a](int i, int j) { return a[i] > a[j] || (a[i] == a[j] && i < j); });
    std::fill(m, m + H, 0.0f);
    for (int r = 0; r < k; r++) m[order_[r]] = 1.0f;
    for (int j = 0; j < H; j++) h[j] = a[j] * m[j];  // h = a on the kept units, 0 elsewhere
  }
  decoder_forward();
}

void KSparseAutoencoder::backward(float scale) {
  const int B = B_;
  const size_t BH = static_cast<size_t>(B) * config_.hidden;
  decoder_backward(scale);  // zeroes da, dh; dh = reconstruction gradient
  // h = a * mask with the selection held fixed: da = dh * mask (no gradient to dropped units)
  for (size_t i = 0; i < BH; i++) da_[i] += dh_[i] * mask_[i];
  enc0.backward(params_, nullptr, da_.data(), x_, B);  // dW += da^T x; db += sum_b da
}

void KSparseAutoencoder::metrics_reset() {
  active_sum_ = 0.0;
  active_count_ = 0;
  active_min_ = config_.hidden + 1;
  active_max_ = -1;
  unit_count_.assign(static_cast<size_t>(config_.hidden), 0);
}

void KSparseAutoencoder::metrics_accumulate(int B) {
  const int H = config_.hidden;
  if (unit_count_.size() != static_cast<size_t>(H)) metrics_reset();
  for (int b = 0; b < B; b++) {
    // Counted from the code itself, not from the mask: what a user of code() sees.
    const float* h = h_.data() + static_cast<size_t>(b) * H;
    int n = 0;
    for (int j = 0; j < H; j++) {
      n += h[j] != 0.0f;
      unit_count_[j] += h[j] != 0.0f;
    }
    active_sum_ += n;
    active_min_ = std::min(active_min_, n);
    active_max_ = std::max(active_max_, n);
  }
  active_count_ += B;
}

void KSparseAutoencoder::metrics_report(std::vector<std::pair<std::string, double>>* out) const {
  if (active_count_ == 0) return;
  out->push_back({"active_per_example", active_sum_ / active_count_});
  out->push_back({"active_min", active_min_});
  out->push_back({"active_max", active_max_});
  out->push_back({"k", k_});
  out->push_back({"dead_units", std::count(unit_count_.begin(), unit_count_.end(), int64_t{0})});
}

// ===================================================================================================
// Contractive autoencoder

ContractiveAutoencoder::ContractiveAutoencoder(const ModelConfig& config)
    : ShallowAutoencoder(config), lambda_(config.get("contractive_lambda")) {}

void ContractiveAutoencoder::reserve(int max_batch) {
  ShallowAutoencoder::reserve(max_batch);
  w_sq_.resize(static_cast<size_t>(config_.hidden));
  jac_sq_.resize(static_cast<size_t>(max_batch_));
  contractive_.resize(static_cast<size_t>(max_batch_));
}

void ContractiveAutoencoder::forward(const float* x, const float* target, int B, Rng& rng, ZMode mode) {
  begin_forward(x, target, B);
  const int H = config_.hidden, I = config_.input;
  const size_t BH = static_cast<size_t>(B) * H;
  enc0.forward(params_, a_.data(), x, B);      // a = W x + b
  sigmoid_forward(h_.data(), a_.data(), BH);   // h = sigmoid(a): the code
  decoder_forward();                           // logits, probs, bce against the target
  // ||J_b||_F^2 = sum_j s_bj^2 * w_sq_j with s = h(1-h) and w_sq_j = sum_i W_ji^2
  const float* W = params_.param(enc0.weight);  // [H, I]
  for (int j = 0; j < H; j++) {
    double q = 0.0;
    for (int i = 0; i < I; i++) q += static_cast<double>(W[static_cast<size_t>(j) * I + i]) * W[static_cast<size_t>(j) * I + i];
    w_sq_[j] = static_cast<float>(q);
  }
  for (int b = 0; b < B; b++) {
    const float* h = h_.data() + static_cast<size_t>(b) * H;
    double f = 0.0;
    for (int j = 0; j < H; j++) {
      const double s = static_cast<double>(h[j]) * (1.0 - h[j]);
      f += s * s * w_sq_[j];
    }
    jac_sq_[b] = static_cast<float>(f);
    contractive_[b] = static_cast<float>(lambda_ * f);
  }
}

void ContractiveAutoencoder::backward(float scale) {
  const int B = B_, H = config_.hidden, I = config_.input;
  const size_t BH = static_cast<size_t>(B) * H;
  decoder_backward(scale);  // zeroes da, dh; dh = reconstruction gradient
  sigmoid_backward(da_.data(), dh_.data(), h_.data(), BH);  // reconstruction path: da += dh * h(1-h)
  // Penalty P_b = lambda * sum_j s_bj^2 w_sq_j, s = h(1-h), h = sigmoid(a), w_sq_j = sum_i W_ji^2.
  //  Through h: ds/da = (1-2h) h(1-h) = (1-2h) s, so dP_b/da_bj = 2 lambda w_sq_j s_bj^2 (1-2h_bj);
  //    it then reaches W and b as any gradient of a does (dW_ji += da_bj x_bi, db_j += da_bj).
  //  Directly through w_sq: dP_b/dW_ji = lambda s_bj^2 * 2 W_ji.
  float* dW = params_.grad(enc0.weight);      // [H, I]
  const float* W = params_.param(enc0.weight);  // [H, I]
  for (int j = 0; j < H; j++) {
    double sum_s2 = 0.0;  // sum_b s_bj^2
    for (int b = 0; b < B; b++) {
      const size_t bj = static_cast<size_t>(b) * H + j;
      const double h = h_[bj], s = h * (1.0 - h);
      da_[bj] += static_cast<float>(scale * 2.0 * lambda_ * w_sq_[j] * s * s * (1.0 - 2.0 * h));
      sum_s2 += s * s;
    }
    const float c = static_cast<float>(scale * 2.0 * lambda_ * sum_s2);
    for (int i = 0; i < I; i++) dW[static_cast<size_t>(j) * I + i] += c * W[static_cast<size_t>(j) * I + i];
  }
  enc0.backward(params_, nullptr, da_.data(), x_, B);  // dW += da^T x; db += sum_b da
}

void ContractiveAutoencoder::metrics_reset() {
  jac_norm_sum_ = 0.0;
  jac_count_ = 0;
}

void ContractiveAutoencoder::metrics_accumulate(int B) {
  for (int b = 0; b < B; b++) jac_norm_sum_ += std::sqrt(static_cast<double>(jac_sq_[b]));
  jac_count_ += B;
}

void ContractiveAutoencoder::metrics_report(std::vector<std::pair<std::string, double>>* out) const {
  if (jac_count_ == 0) return;
  out->push_back({"jacobian_norm", jac_norm_sum_ / jac_count_});
}

}  // namespace ll
