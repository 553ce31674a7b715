// Convolutional VAE forward and backward; see conv_vae.h. The backward pass calls the layers
// explicitly in reverse, the reparameterisation pair (core/nn/reparam.h) among them.
#include "core/models/conv_vae.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "core/nn/losses.h"
#include "core/nn/reparam.h"

namespace ll {

namespace {
void add_all(ActivationArena& arena, std::initializer_list<Slice<float>*> vs, size_t n) {
  for (auto* v : vs) arena.add(v, n);
}
void zero_prefix(std::initializer_list<Slice<float>*> vs, size_t n) {
  for (auto* v : vs) std::fill(v->begin(), v->begin() + n, 0.0f);
}
}  // namespace

ConvVae::ConvVae(const ModelConfig& config) {
  config_ = config;
  S_ = static_cast<int>(std::lround(std::sqrt(static_cast<double>(config.input))));
  assert(S_ * S_ == config.input && S_ % 4 == 0 && "conv_vae needs a square image whose side is a multiple of 4");
  S2_ = S_ / 2;
  S4_ = S_ / 4;
  F_ = kC2 * S4_ * S4_;
  const int Z = config.latent;
  enc0.add_to(params_, "encoder.0", 1, kC1, 4, 2, 1);
  enc2.add_to(params_, "encoder.2", kC1, kC2, 4, 2, 1);
  fc_mu.add_to(params_, "fc_mu", F_, Z);
  fc_logvar.add_to(params_, "fc_logvar", F_, Z);
  decoder_input.add_to(params_, "decoder_input", Z, F_);
  dec0.add_to(params_, "decoder.0", kC2, kC1, 4, 2, 1);
  dec2.add_to(params_, "decoder.2", kC1, 1, 4, 2, 1);
  params_.finalize();
}

bool ConvVae::infer(const std::map<std::string, std::vector<int64_t>>& shapes, ModelConfig* out) {
  auto e0 = shapes.find("encoder.0.weight"), mu = shapes.find("fc_mu.weight"),
       di = shapes.find("decoder_input.weight");
  if (e0 == shapes.end() || mu == shapes.end() || di == shapes.end()) return false;
  if (e0->second.size() != 4 || mu->second.size() != 2 || mu->second[1] % kC2 != 0) return false;
  // fc_mu.weight is [Z, 64 * (S/4)^2].
  const int64_t cells = mu->second[1] / kC2;
  const int64_t s4 = std::llround(std::sqrt(static_cast<double>(cells)));
  if (s4 < 1 || s4 * s4 != cells || s4 > 1024) return false;
  out->kind = "conv_vae";
  out->input = static_cast<int>(16 * s4 * s4);
  out->latent = static_cast<int>(mu->second[0]);
  return true;
}

// What reserve's arena holds: the activations, the one-image workspace and each of its 33 slices'
// alignment padding (at most 16 floats, plus 16 for the block).
uint64_t ConvVae::activation_floats(int B) const {
  const uint64_t b = static_cast<uint64_t>(B), Z = static_cast<uint64_t>(config_.latent);
  const uint64_t n1 = uint64_t(kC1) * S2_ * S2_, n2 = static_cast<uint64_t>(F_), nx = uint64_t(S_) * S_;
  const uint64_t ws = std::max({enc0.workspace_floats(S_, S_), enc2.workspace_floats(S2_, S2_),
                                dec0.workspace_floats(S4_, S4_), dec2.workspace_floats(S2_, S2_)});
  return b * (8 * n1 + 8 * n2 + 8 * Z + 3 * nx + 2) + ws + 16 * 34;
}

void ConvVae::reserve(int max_batch) {
  if (max_batch <= max_batch_) return;
  max_batch_ = max_batch;
  const size_t B = static_cast<size_t>(max_batch), Z = config_.latent;
  const size_t n1 = B * kC1 * S2_ * S2_, n2 = B * F_, nx = B * S_ * S_;
  arena_.begin();
  add_all(arena_, {&a1_, &r1_, &d1_, &d1r_, &da1_, &dr1_, &dd1_, &dd1r_}, n1);
  add_all(arena_, {&a2_, &r2_, &d0_, &d0r_, &da2_, &dr2_, &dd0_, &dd0r_}, n2);
  add_all(arena_, {&mu_, &logvar_, &eps_, &std_, &z_, &dmu_, &dlogvar_, &dz_}, B * Z);
  add_all(arena_, {&logits_, &probs_, &dlogits_}, nx);
  add_all(arena_, {&bce_, &kl_}, B);
  // The workspace holds one image at a time, so it does not grow with B.
  arena_.add(&workspace_, std::max({enc0.workspace_floats(S_, S_), enc2.workspace_floats(S2_, S2_),
                                    dec0.workspace_floats(S4_, S4_), dec2.workspace_floats(S2_, S2_)}));
  arena_.allocate();
  for (Conv2d* c : {&enc0, &enc2}) c->workspace = workspace_.data();
  for (ConvTranspose2d* c : {&dec0, &dec2}) c->workspace = workspace_.data();
}

void ConvVae::init(Rng& rng) {
  enc0.init(params_, rng);
  enc2.init(params_, rng);
  for (const Linear* l : {&fc_mu, &fc_logvar, &decoder_input}) l->init(params_, rng);
  dec0.init(params_, rng);
  dec2.init(params_, rng);
}

void ConvVae::decode_logits(int B) {
  const size_t n2 = static_cast<size_t>(B) * F_, n1 = static_cast<size_t>(B) * kC1 * S2_ * S2_;
  // d0 = decoder_input(z), seen as [B, 64, 7, 7] after the ReLU
  decoder_input.forward(params_, d0_.data(), z_.data(), B);
  relu_forward(d0r_.data(), d0_.data(), n2);
  // d1 = relu(dec0(d0r)) [B, 32, 14, 14]; logits = dec2(d1r) [B, 1, 28, 28]
  dec0.forward(params_, d1_.data(), d0r_.data(), B, S4_, S4_);
  relu_forward(d1r_.data(), d1_.data(), n1);
  dec2.forward(params_, logits_.data(), d1r_.data(), B, S2_, S2_);
}

void ConvVae::forward(const float* x, const float* target, int B, Rng& rng, ZMode mode) {
  assert(B <= max_batch_);
  B_ = B;
  x_ = x;
  target_ = target;
  const int Z = config_.latent;
  const size_t n1 = static_cast<size_t>(B) * kC1 * S2_ * S2_, n2 = static_cast<size_t>(B) * F_;
  const size_t BZ = static_cast<size_t>(B) * Z;
  // Encoder: a1 = enc0(x) [B, 32, 14, 14]; a2 = enc2(relu(a1)) [B, 64, 7, 7]; r2 = relu(a2) = h [B, F]
  enc0.forward(params_, a1_.data(), x, B, S_, S_);
  relu_forward(r1_.data(), a1_.data(), n1);
  enc2.forward(params_, a2_.data(), r1_.data(), B, S2_, S2_);
  relu_forward(r2_.data(), a2_.data(), n2);
  fc_mu.forward(params_, mu_.data(), r2_.data(), B);
  fc_logvar.forward(params_, logvar_.data(), r2_.data(), B);
  // Reparameterisation: z = mu + std * eps, std = exp(logvar / 2); eps = 0 for the posterior mean.
  gaussian_reparam_forward(z_.data(), std_.data(), eps_.data(), mu_.data(), logvar_.data(), BZ,
                           mode == ZMode::kSample ? &rng : nullptr);
  decode_logits(B);
  // Loss terms per image.
  bce_logits_forward(bce_.data(), probs_.data(), logits_.data(), target, B, S_ * S_);
  gaussian_kl_forward(kl_.data(), mu_.data(), logvar_.data(), B, Z);
}

void ConvVae::backward(float scale) {
  const int B = B_, Z = config_.latent;
  const size_t n1 = static_cast<size_t>(B) * kC1 * S2_ * S2_, n2 = static_cast<size_t>(B) * F_;
  const size_t BZ = static_cast<size_t>(B) * Z, nx = static_cast<size_t>(B) * S_ * S_;
  zero_prefix({&da1_, &dr1_, &dd1_, &dd1r_}, n1);
  zero_prefix({&da2_, &dr2_, &dd0_, &dd0r_}, n2);
  zero_prefix({&dmu_, &dlogvar_, &dz_}, BZ);
  zero_prefix({&dlogits_}, nx);
  ParamArena& P = params_;

  // dBCE/dlogits = sigmoid(logits) - x
  bce_logits_backward(dlogits_.data(), probs_.data(), target_, scale, B, S_ * S_);
  // Decoder, in reverse.
  dec2.backward(P, dd1r_.data(), dlogits_.data(), d1r_.data(), B, S2_, S2_);
  relu_backward(dd1_.data(), dd1r_.data(), d1_.data(), n1);
  dec0.backward(P, dd0r_.data(), dd1_.data(), d0r_.data(), B, S4_, S4_);
  relu_backward(dd0_.data(), dd0r_.data(), d0_.data(), n2);
  decoder_input.backward(P, dz_.data(), dd0_.data(), z_.data(), B);
  // Through z = mu + exp(logvar/2) * eps:  dmu += dz;  dlogvar += dz * eps * std / 2
  gaussian_reparam_backward(dmu_.data(), dlogvar_.data(), dz_.data(), eps_.data(), std_.data(), BZ);
  // The KL term acts on mu and logvar directly.
  gaussian_kl_backward(dmu_.data(), dlogvar_.data(), mu_.data(), logvar_.data(), scale, B, Z);
  // Encoder, in reverse: both heads feed dr2 (= d h).
  fc_mu.backward(P, dr2_.data(), dmu_.data(), r2_.data(), B);
  fc_logvar.backward(P, dr2_.data(), dlogvar_.data(), r2_.data(), B);
  relu_backward(da2_.data(), dr2_.data(), a2_.data(), n2);
  enc2.backward(P, dr1_.data(), da2_.data(), r1_.data(), B, S2_, S2_);
  relu_backward(da1_.data(), dr1_.data(), a1_.data(), n1);
  enc0.backward(P, nullptr, da1_.data(), x_, B, S_, S_);  // no gradient with respect to the image
}

void ConvVae::decode(const float* z, int B, float* out) {
  assert(B <= max_batch_);
  // Uses z_ and the decoder's activation buffers as scratch (the last forward's are overwritten).
  std::copy(z, z + static_cast<size_t>(B) * config_.latent, z_.begin());
  decode_logits(B);
  const size_t n = static_cast<size_t>(B) * S_ * S_;
  for (size_t i = 0; i < n; i++) out[i] = stable_sigmoid(logits_[i]);
}

void ConvVae::metrics_reset() { active_units_.reset(config_.latent); }

void ConvVae::metrics_accumulate(int B) { active_units_.accumulate(mu_.data(), B, config_.latent); }

void ConvVae::metrics_report(std::vector<std::pair<std::string, double>>* out) const {
  const int active = active_units_.active();
  if (active >= 0) out->push_back({"active_units", active});
}

}  // namespace ll
