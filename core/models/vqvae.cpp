// Convolutional VQ-VAE: forward, backward with the straight-through estimator, the EMA codebook and
// dead-code restarts; see vqvae.h.
#include "core/models/vqvae.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "core/kernels/kernels.h"
#include "core/nn/layers.h"
#include "core/nn/losses.h"

namespace ll {

namespace {

// ReLU in place: y = max(x, 0) (NaN stays NaN, as relu_forward).
void relu_inplace(float* y, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = y[i] < 0.0f ? 0.0f : y[i];
}

// ReLU backward from the output: d *= [y > 0], which equals [x > 0] for y = relu(x).
void relu_mask(float* d, const float* y, size_t n) {
  for (size_t i = 0; i < n; i++) d[i] = y[i] > 0.0f ? d[i] : 0.0f;
}

void zero(Slice<float>& v, size_t n) { std::fill(v.begin(), v.begin() + n, 0.0f); }

}  // namespace

void vq_uniform_codes(int32_t* out, size_t n, int K, Rng& rng) {
  for (size_t i = 0; i < n; i++) out[i] = static_cast<int32_t>(rng.below(static_cast<uint32_t>(K)));
}

// ---------------------------------------------------------------------------------------------
// The model.

VqVae::VqVae(const ModelConfig& config) {
  config_ = config;
  S_ = static_cast<int>(std::lround(std::sqrt(static_cast<double>(config.input))));
  assert(S_ * S_ == config.input && S_ % 4 == 0 && "vqvae needs a square image with side divisible by 4");
  g_ = S_ / 4;
  G_ = g_ * g_;
  P_ = S_ * S_;
  K_ = static_cast<int>(config.get("codebook_size"));
  D_ = static_cast<int>(config.get("code_dim"));
  beta_ = static_cast<float>(config.get("commitment"));
  ema_ = config.get("ema") != 0.0;
  decay_ = config.get("ema_decay");
  dead_steps_ = static_cast<int>(config.get("dead_code_steps"));
  sigmoid_output_ = config.get("sigmoid_output") != 0.0;
  scale_vq_ = static_cast<float>(P_) / static_cast<float>(G_ * D_);
  enc0.add_to(params_, "encoder.0", 1, 32, 4, 2, 1);
  enc2.add_to(params_, "encoder.2", 32, 64, 4, 2, 1);
  enc4.add_to(params_, "encoder.4", 64, D_, 1, 1, 0);
  vq.add_to(params_, "codebook", K_, D_);
  dec0.add_to(params_, "decoder.0", D_, 64, 3, 1, 1);
  dec2.add_to(params_, "decoder.2", 64, 32, 4, 2, 1);
  dec4.add_to(params_, "decoder.4", 32, 1, 4, 2, 1);
  params_.finalize();
  if (!params_.allocated()) return;  // a shapes-only model (arena.h): layout only
  ema_count_.assign(K_, 0.0f);
  ema_sum_.assign(static_cast<size_t>(K_) * D_, 0.0f);
  batch_count_.assign(K_, 0.0f);
  batch_sum_.assign(static_cast<size_t>(K_) * D_, 0.0f);
  since_used_.assign(K_, 0);
  eval_counts_.assign(K_, 0);
}

// The convolutions' shared workspace (one image at a time: it does not grow with the batch).
static size_t vq_workspace_floats(const VqVae& m, int S, int g) {
  return std::max({m.enc0.workspace_floats(S, S), m.enc2.workspace_floats(S / 2, S / 2),
                   m.enc4.workspace_floats(g, g), m.dec0.workspace_floats(g, g),
                   m.dec2.workspace_floats(g, g), m.dec4.workspace_floats(S / 2, S / 2)});
}

// What reserve's arena holds: the activations, the workspace, the distance rows, and each of its 24
// slices' alignment padding (at most 16 floats, plus 16 for the block).
uint64_t VqVae::activation_floats(int B) const {
  const uint64_t half = uint64_t(S_ / 2) * (S_ / 2), G = static_cast<uint64_t>(G_);
  const uint64_t D = static_cast<uint64_t>(D_), P = static_cast<uint64_t>(P_);
  return static_cast<uint64_t>(B) * (3 * 32 * half + 3 * 64 * G + 5 * D * G + 2 * G + 2 * P + 3) +
         vq_workspace_floats(*this, S_, g_) + static_cast<uint64_t>(kVqDistRows) * K_ + 16 * 25;
}

void VqVae::reserve(int max_batch) {
  if (max_batch <= max_batch_) return;
  max_batch_ = max_batch;
  const size_t B = static_cast<size_t>(max_batch);
  const size_t half = static_cast<size_t>(S_ / 2) * (S_ / 2);
  arena_.begin();
  for (auto* v : {&h1_, &d2_, &g32_}) arena_.add(v, B * 32 * half);
  for (auto* v : {&h2_, &d0_, &g64_}) arena_.add(v, B * 64 * G_);
  for (auto* v : {&ze_, &zq_, &rows_, &dzq_, &dze_}) arena_.add(v, B * D_ * G_);
  arena_.add(&idx_, B * G_);
  arena_.add(&code_f_, B * G_);
  for (auto* v : {&out_, &dout_}) arena_.add(v, B * P_);
  for (auto* v : {&mse_, &codebook_term_, &commit_}) arena_.add(v, B);
  arena_.add(&workspace_, vq_workspace_floats(*this, S_, g_));
  arena_.add(&dist_, static_cast<size_t>(kVqDistRows) * K_);
  arena_.allocate();
  for (Conv2d* c : {&enc0, &enc2, &enc4, &dec0}) c->workspace = workspace_.data();
  for (ConvTranspose2d* c : {&dec2, &dec4}) c->workspace = workspace_.data();
}

void VqVae::reset_state() {
  std::fill(ema_count_.begin(), ema_count_.end(), 0.0f);
  std::fill(ema_sum_.begin(), ema_sum_.end(), 0.0f);
  ema_updates_ = 0;
  std::fill(since_used_.begin(), since_used_.end(), 0);
  restarts_ = 0;
  std::fill(eval_counts_.begin(), eval_counts_.end(), 0);
}

void VqVae::init(Rng& rng) {
  enc0.init(params_, rng);
  enc2.init(params_, rng);
  enc4.init(params_, rng);
  vq.init(params_, rng);
  dec0.init(params_, rng);
  dec2.init(params_, rng);
  dec4.init(params_, rng);
  reset_state();
}

void VqVae::encode(const float* x, int B) {
  assert(B <= max_batch_);
  const int half = S_ / 2;
  enc0.forward(params_, h1_.data(), x, B, S_, S_);
  relu_inplace(h1_.data(), static_cast<size_t>(B) * 32 * half * half);
  enc2.forward(params_, h2_.data(), h1_.data(), B, half, half);
  relu_inplace(h2_.data(), static_cast<size_t>(B) * 64 * G_);
  enc4.forward(params_, ze_.data(), h2_.data(), B, g_, g_);
}

// The quantisation without its loss terms (the UI's stage): the layer's forward writes them too.
void VqVae::quantise(int B) {
  assert(B <= max_batch_);
  vq.forward(params_, zq_.data(), idx_.data(), rows_.data(), codebook_term_.data(), commit_.data(),
             ze_.data(), B, G_, scale_vq_, beta_, dist_.data());
  for (size_t i = 0; i < static_cast<size_t>(B) * G_; i++) code_f_[i] = static_cast<float>(idx_[i]);
}

void VqVae::decoder_forward(const float* zq, int B) {
  assert(B <= max_batch_);
  const int half = S_ / 2;
  dec0.forward(params_, d0_.data(), zq, B, g_, g_);
  relu_inplace(d0_.data(), static_cast<size_t>(B) * 64 * G_);
  dec2.forward(params_, d2_.data(), d0_.data(), B, g_, g_);
  relu_inplace(d2_.data(), static_cast<size_t>(B) * 32 * half * half);
  dec4.forward(params_, out_.data(), d2_.data(), B, half, half);
  if (sigmoid_output_) sigmoid_forward(out_.data(), out_.data(), static_cast<size_t>(B) * P_);
}

void VqVae::forward(const float* x, const float* target, int B, Rng& rng, ZMode mode) {
  assert(B <= max_batch_);
  B_ = B;
  x_ = x;
  target_ = target;
  encode(x, B);
  quantise(B);
  decoder_forward(zq_.data(), B);
  mse_forward(mse_.data(), out_.data(), target, B, P_);
}

std::vector<std::string> VqVae::loss_terms() const {
  if (ema_) return {"mse", "commitment"};
  return {"mse", "codebook", "commitment"};
}

const float* VqVae::term(int index) const {
  if (index == 0) return mse_.data();
  if (!ema_ && index == 1) return codebook_term_.data();
  return commit_.data();
}

void VqVae::backward(float scale) {
  const int B = B_;
  const int half = S_ / 2;
  const size_t n32 = static_cast<size_t>(B) * 32 * half * half, n64 = static_cast<size_t>(B) * 64 * G_;
  const size_t nz = static_cast<size_t>(B) * D_ * G_, nx = static_cast<size_t>(B) * P_;
  zero(dout_, nx);
  zero(g32_, n32);
  zero(g64_, n64);
  zero(dzq_, nz);
  zero(dze_, nz);

  // d mse / d xhat = 2 (xhat - x); through the sigmoid, times xhat (1 - xhat)
  mse_backward(dout_.data(), out_.data(), target_, scale, B, P_);
  if (sigmoid_output_) {
    for (size_t i = 0; i < nx; i++) dout_[i] *= out_[i] * (1.0f - out_[i]);
  }
  // Decoder, in reverse. g32_ = d(decoder.2 output), g64_ = d(decoder.0 output).
  dec4.backward(params_, g32_.data(), dout_.data(), d2_.data(), B, half, half);
  relu_mask(g32_.data(), d2_.data(), n32);
  dec2.backward(params_, g64_.data(), g32_.data(), d0_.data(), B, g_, g_);
  relu_mask(g64_.data(), d0_.data(), n64);
  dec0.backward(params_, dzq_.data(), g64_.data(), zq_.data(), B, g_, g_);

  // The quantiser: straight-through (dz_e gets dz_q), commitment, and the codebook loss unless the
  // codebook moves by EMA (after_step).
  vq.backward(params_, dze_.data(), dzq_.data(), ze_.data(), zq_.data(), idx_.data(), B, G_, scale_vq_, beta_,
              scale, !ema_);

  // Encoder, in reverse. g64_ now = d(encoder.2 output), g32_ = d(encoder.0 output).
  zero(g64_, n64);
  enc4.backward(params_, g64_.data(), dze_.data(), h2_.data(), B, g_, g_);
  relu_mask(g64_.data(), h2_.data(), n64);
  zero(g32_, n32);
  enc2.backward(params_, g32_.data(), g64_.data(), h1_.data(), B, half, half);
  relu_mask(g32_.data(), h1_.data(), n32);
  enc0.backward(params_, nullptr, g32_.data(), x_, B, S_, S_);
}

void VqVae::decode(const float* z, int B, float* out) {
  assert(B <= max_batch_);
  for (size_t i = 0; i < static_cast<size_t>(B) * G_; i++) {
    const float v = z[i];
    // Round to the nearest index and clamp to [0, K); NaN -> 0.
    const int k = v >= 0.0f ? static_cast<int>(std::min(v + 0.5f, static_cast<float>(K_ - 1))) : 0;
    idx_[i] = k;
    code_f_[i] = static_cast<float>(k);
  }
  vq_lookup(zq_.data(), idx_.data(), params_.param(vq.codebook), B, D_, G_);
  decoder_forward(zq_.data(), B);
  std::copy(out_.begin(), out_.begin() + static_cast<size_t>(B) * P_, out);
}

void VqVae::decode_codes(const int32_t* const* codes, int B, float* out) {
  assert(B <= max_batch_);
  const float* E = params_.param(vq.codebook);
  for (int b = 0; b < B; b++)
    for (int c = 0; c < G_; c++) {
      const size_t i = static_cast<size_t>(b) * G_ + c;
      const int k = codes[0][i];
      assert(k >= 0 && k < K_);
      idx_[i] = k;
      code_f_[i] = static_cast<float>(k);
      for (int d = 0; d < D_; d++)
        zq_[(static_cast<size_t>(b) * D_ + d) * G_ + c] = E[static_cast<size_t>(k) * D_ + d];
    }
  decoder_forward(zq_.data(), B);
  std::copy(out_.begin(), out_.begin() + static_cast<size_t>(B) * P_, out);
}

// x [S,S,1] -> encoder.0 + ReLU -> encoder.2 + ReLU -> encoder.4 = z_e [g,g,D] -> nearest codes ->
// decoder.0 + ReLU -> decoder.2 + ReLU -> decoder.4 (-> sigmoid with sigmoid_output).
bool VqVae::inference_graph(InferenceGraph* out) const {
  if (!out) return true;
  const ParamArena& a = params_;
  const int h = S_ / 2;
  auto conv = [&](InferenceLayer::Type type, const char* name, int C, int OC, int K, int stride, int pad,
                  int weight, int bias, int H, bool relu) {
    InferenceLayer l;
    l.type = type;
    l.name = name;
    l.weight = a.param(weight), l.bias = a.param(bias);
    l.C = C, l.OC = OC, l.kernel = K, l.stride = stride, l.pad = pad, l.H = l.W = H, l.relu = relu;
    return l;
  };
  using T = InferenceLayer::Type;
  out->layers.clear();
  out->layers.push_back(conv(T::kConv2d, "encoder.0", enc0.C, enc0.OC, enc0.K, enc0.stride, enc0.pad, enc0.weight, enc0.bias, S_, true));
  out->layers.push_back(conv(T::kConv2d, "encoder.2", enc2.C, enc2.OC, enc2.K, enc2.stride, enc2.pad, enc2.weight, enc2.bias, h, true));
  out->layers.push_back(conv(T::kConv2d, "encoder.4", enc4.C, enc4.OC, enc4.K, enc4.stride, enc4.pad, enc4.weight, enc4.bias, g_, false));
  InferenceLayer q;
  q.type = T::kQuantise;
  q.name = "codebook";
  q.weight = codebook();
  q.C = q.OC = D_, q.H = q.W = g_, q.codes = K_;
  q.nearest = vq_nearest;
  out->layers.push_back(q);
  out->layers.push_back(conv(T::kConv2d, "decoder.0", dec0.C, dec0.OC, dec0.K, dec0.stride, dec0.pad, dec0.weight, dec0.bias, g_, true));
  out->layers.push_back(conv(T::kConvTranspose2d, "decoder.2", dec2.C, dec2.OC, dec2.K, dec2.stride, dec2.pad, dec2.weight, dec2.bias, g_, true));
  out->layers.push_back(conv(T::kConvTranspose2d, "decoder.4", dec4.C, dec4.OC, dec4.K, dec4.stride, dec4.pad, dec4.weight, dec4.bias, h, false));
  out->sigmoid_output = sigmoid_output_;
  return true;
}

void VqVae::restart_code(int k, const float* v) {
  float* e = params_.param(vq.codebook) + static_cast<size_t>(k) * D_;
  std::copy(v, v + D_, e);
  if (ema_) {
    // One pseudo-assignment at v: the code follows the cells it captures quickly.
    ema_count_[k] = 1.0f;
    std::copy(v, v + D_, ema_sum_.begin() + static_cast<size_t>(k) * D_);
  } else {
    // Forget Adam's moments of the old vector.
    const size_t off = params_.slots()[vq.codebook].offset + static_cast<size_t>(k) * D_;
    std::fill(params_.adam_m.begin() + off, params_.adam_m.begin() + off + D_, 0.0f);
    std::fill(params_.adam_v.begin() + off, params_.adam_v.begin() + off + D_, 0.0f);
  }
  since_used_[k] = 0;
  restarts_++;
}

void VqVae::after_step(Rng& rng) {
  if (B_ == 0) return;
  const int N = B_ * G_;
  vq_batch_stats(batch_count_.data(), batch_sum_.data(), rows_.data(), idx_.data(), N, K_, D_);
  if (ema_) {
    ema_updates_++;
    vq_ema_update(params_.param(vq.codebook), ema_count_.data(), ema_sum_.data(), batch_count_.data(),
                  batch_sum_.data(), K_, D_, decay_, 1e-5, ema_updates_);
  }
  for (int k = 0; k < K_; k++) since_used_[k] = batch_count_[k] > 0.0f ? 0 : since_used_[k] + 1;
  if (dead_steps_ <= 0) return;
  for (int k = 0; k < K_; k++)
    if (since_used_[k] >= dead_steps_)
      restart_code(k, rows_.data() + static_cast<size_t>(rng.below(static_cast<uint32_t>(N))) * D_);
}

void VqVae::metrics_reset() { std::fill(eval_counts_.begin(), eval_counts_.end(), 0); }

void VqVae::metrics_accumulate(int B) {
  const size_t n = static_cast<size_t>(B) * G_;
  for (size_t i = 0; i < n; i++) eval_counts_[idx_[i]]++;
}

void VqVae::metrics_report(std::vector<std::pair<std::string, double>>* out) const {
  int used = 0;
  for (int k = 0; k < K_; k++) used += eval_counts_[k] > 0;
  out->push_back({"perplexity", code_perplexity(eval_counts_.data(), K_)});
  out->push_back({"codes_used", static_cast<double>(used)});
  out->push_back({"dead_codes", static_cast<double>(K_ - used)});
}

std::vector<StateTensor> VqVae::training_state() const {
  auto tensor = [](const char* name, std::vector<int64_t> shape, auto first, auto last) {
    return StateTensor{name, std::move(shape), std::vector<double>(first, last)};
  };
  return {
      tensor("ema_count", {K_}, ema_count_.begin(), ema_count_.end()),
      tensor("ema_sum", {K_, D_}, ema_sum_.begin(), ema_sum_.end()),
      StateTensor{"ema_updates", {1}, {static_cast<double>(ema_updates_)}},
      tensor("steps_since_used", {K_}, since_used_.begin(), since_used_.end()),
      StateTensor{"restarts", {1}, {static_cast<double>(restarts_)}},
  };
}

Status VqVae::set_training_state(const std::vector<StateTensor>& state) {
  // Checked whole before anything changes. Counts are integers >= 0; EMA counts and sums finite (counts
  // >= 0); each value must be what a float (or an int32 / int64 counter) holds exactly.
  for (const StateTensor& t : state) {
    const bool integer = t.name == "ema_updates" || t.name == "steps_since_used" || t.name == "restarts";
    const double hi = t.name == "steps_since_used" ? 2147483647.0 : 9007199254740992.0;
    for (size_t i = 0; i < t.values.size(); i++) {
      const double v = t.values[i];
      const bool ok = integer ? v >= 0.0 && v <= hi && v == std::floor(v)
                              : std::isfinite(v) && static_cast<double>(static_cast<float>(v)) == v &&
                                    (t.name != "ema_count" || v >= 0.0);
      if (!ok)
        return Status::error("training state '" + t.name + "' element " + std::to_string(i) + " = " +
                             std::to_string(v) + " is not a valid " +
                             (integer ? "count (an integer >= 0)" : t.name == "ema_count" ? "EMA count" : "EMA sum"));
    }
  }
  for (const StateTensor& t : state) {
    if (t.name == "ema_count") std::copy(t.values.begin(), t.values.end(), ema_count_.begin());
    if (t.name == "ema_sum") std::copy(t.values.begin(), t.values.end(), ema_sum_.begin());
    if (t.name == "ema_updates") ema_updates_ = static_cast<int64_t>(t.values[0]);
    if (t.name == "steps_since_used")
      for (size_t k = 0; k < t.values.size(); k++) since_used_[k] = static_cast<int32_t>(t.values[k]);
    if (t.name == "restarts") restarts_ = static_cast<int64_t>(t.values[0]);
  }
  return Status();
}

// ---------------------------------------------------------------------------------------------
// Registry pieces.

std::vector<HyperSpec> vqvae_hyper() {
  return {
      {"codebook_size", 64, 2, 4096, true, "VQ-VAE: number of codes K"},
      {"code_dim", 16, 1, 512, true, "VQ-VAE: size D of each code vector"},
      {"commitment", 0.25, 0, 100, false, "VQ-VAE: commitment cost beta"},
      {"ema", 1, 0, 1, true, "VQ-VAE: 1 = codebook by EMA updates, 0 = by the codebook loss"},
      // 0.9 and 20 rather than the paper's 0.99 and a slow restart: measured on MNIST in 5 epochs, test MSE
      // 0.00390 per pixel against 0.00434 (models/README.md).
      {"ema_decay", 0.9, 0, 0.99999, false, "VQ-VAE: EMA decay gamma"},
      {"dead_code_steps", 20, 0, 1000000, true,
       "VQ-VAE: restart a code unused for this many training steps (0 = never)"},
      // A sigmoid after decoder.4 keeps the reconstruction in the pixels' [0, 1]: measured on MNIST in
      // 5 epochs (seed 1), test MSE 0.00340 per pixel against 0.00390 for the raw output.
      {"sigmoid_output", 1, 0, 1, true,
       "VQ-VAE: 1 = sigmoid on the decoder's output (pixels in [0, 1]), 0 = the raw output"},
  };
}

bool vqvae_infer(const std::map<std::string, std::vector<int64_t>>& shapes, ModelConfig* out) {
  auto e0 = shapes.find("encoder.0.weight"), cb = shapes.find("codebook.weight");
  if (e0 == shapes.end() || cb == shapes.end() || e0->second.size() != 4 || cb->second.size() != 2)
    return false;
  out->kind = "vqvae";
  out->input = 784;  // conv weights do not tell the image size: assume MNIST's 28 x 28
  out->hyper["codebook_size"] = static_cast<double>(cb->second[0]);
  out->hyper["code_dim"] = static_cast<double>(cb->second[1]);
  return true;
}

}  // namespace ll
