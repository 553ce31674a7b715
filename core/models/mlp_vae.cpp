// MLP VAE forward and backward; see mlp_vae.h. The backward pass is written out layer by layer in
// reverse so the reparameterisation trick stays visible.
#include "core/models/mlp_vae.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "core/nn/losses.h"
#include "core/nn/reparam.h"

namespace ll {

namespace {
void resize_all(std::initializer_list<std::vector<float>*> vs, size_t n) {
  for (auto* v : vs) v->assign(n, 0.0f);
}
}  // namespace

MlpVae::MlpVae(const ModelConfig& config) {
  config_ = config;
  fc1.add_to(params_, "fc1", config.input, config.hidden);
  fc21.add_to(params_, "fc21", config.hidden, config.latent);
  fc22.add_to(params_, "fc22", config.hidden, config.latent);
  fc3.add_to(params_, "fc3", config.latent, config.hidden);
  fc4.add_to(params_, "fc4", config.hidden, config.input);
  params_.finalize();
}

void MlpVae::reserve(int max_batch) {
  if (max_batch <= max_batch_) return;
  max_batch_ = max_batch;
  const size_t B = static_cast<size_t>(max_batch);
  const size_t I = config_.input, H = config_.hidden, Z = config_.latent;
  resize_all({&h1_pre_, &h1_, &h3_pre_, &h3_, &dh1_pre_, &dh1_, &dh3_pre_, &dh3_}, B * H);
  resize_all({&mu_, &logvar_, &eps_, &std_, &z_, &dmu_, &dlogvar_, &dz_}, B * Z);
  resize_all({&logits_, &probs_, &dlogits_}, B * I);
  resize_all({&bce_, &kl_}, B);
}

void MlpVae::init(Rng& rng) {
  for (const Linear* l : {&fc1, &fc21, &fc22, &fc3, &fc4}) l->init(params_, rng);
}

void MlpVae::forward(const float* x, const float* target, int B, Rng& rng, ZMode mode) {
  assert(B <= max_batch_);
  B_ = B;
  x_ = x;
  target_ = target;
  const int I = config_.input, H = config_.hidden, Z = config_.latent;
  const size_t BH = static_cast<size_t>(B) * H, BZ = static_cast<size_t>(B) * Z;
  // Encoder: h1 = relu(fc1(x)); mu = fc21(h1); logvar = fc22(h1)
  fc1.forward(params_, h1_pre_.data(), x, B);
  relu_forward(h1_.data(), h1_pre_.data(), BH);
  fc21.forward(params_, mu_.data(), h1_.data(), B);
  fc22.forward(params_, logvar_.data(), h1_.data(), B);
  // Reparameterisation: z = mu + std * eps, std = exp(logvar / 2); eps = 0 for the posterior mean.
  gaussian_reparam_forward(z_.data(), std_.data(), eps_.data(), mu_.data(), logvar_.data(), BZ,
                           mode == ZMode::kSample ? &rng : nullptr);
  // Decoder: h3 = relu(fc3(z)); logits = fc4(h3)
  fc3.forward(params_, h3_pre_.data(), z_.data(), B);
  relu_forward(h3_.data(), h3_pre_.data(), BH);
  fc4.forward(params_, logits_.data(), h3_.data(), B);
  // Loss terms per image.
  bce_logits_forward(bce_.data(), probs_.data(), logits_.data(), target, B, I);
  gaussian_kl_forward(kl_.data(), mu_.data(), logvar_.data(), B, Z);
}

void MlpVae::backward(float scale) {
  const int B = B_, I = config_.input, H = config_.hidden, Z = config_.latent;
  const size_t BH = static_cast<size_t>(B) * H, BZ = static_cast<size_t>(B) * Z;
  const size_t BI = static_cast<size_t>(B) * I;
  for (auto* v : {&dh1_pre_, &dh1_, &dh3_pre_, &dh3_}) std::fill(v->begin(), v->begin() + BH, 0.0f);
  for (auto* v : {&dmu_, &dlogvar_, &dz_}) std::fill(v->begin(), v->begin() + BZ, 0.0f);
  std::fill(dlogits_.begin(), dlogits_.begin() + BI, 0.0f);

  // dBCE/dlogits = sigmoid(logits) - x
  bce_logits_backward(dlogits_.data(), probs_.data(), target_, scale, B, I);
  // Decoder, in reverse.
  fc4.backward(params_, dh3_.data(), dlogits_.data(), h3_.data(), B);
  relu_backward(dh3_pre_.data(), dh3_.data(), h3_pre_.data(), BH);
  fc3.backward(params_, dz_.data(), dh3_pre_.data(), z_.data(), B);
  // Through z = mu + exp(logvar/2) * eps:  dmu += dz;  dlogvar += dz * eps * std / 2
  gaussian_reparam_backward(dmu_.data(), dlogvar_.data(), dz_.data(), eps_.data(), std_.data(), BZ);
  // The KL term acts on mu and logvar directly (weighted per example when kl_weight_ is set).
  if (!kl_weight_) {
    gaussian_kl_backward(dmu_.data(), dlogvar_.data(), mu_.data(), logvar_.data(), scale, B, Z);
  } else {
    for (int b = 0; b < B; b++) {
      const size_t o = static_cast<size_t>(b) * Z;
      gaussian_kl_backward(dmu_.data() + o, dlogvar_.data() + o, mu_.data() + o, logvar_.data() + o,
                           scale * kl_weight_[b], 1, Z);
    }
  }
  // Encoder, in reverse: both heads feed dh1.
  fc21.backward(params_, dh1_.data(), dmu_.data(), h1_.data(), B);
  fc22.backward(params_, dh1_.data(), dlogvar_.data(), h1_.data(), B);
  relu_backward(dh1_pre_.data(), dh1_.data(), h1_pre_.data(), BH);
  fc1.backward(params_, nullptr, dh1_pre_.data(), x_, B);  // no gradient w.r.t. the image
}

void MlpVae::decode(const float* z, int B, float* out) {
  assert(B <= max_batch_);
  const size_t BH = static_cast<size_t>(B) * config_.hidden;
  // Uses the decoder's activation buffers as scratch (the last forward's are overwritten).
  fc3.forward(params_, h3_pre_.data(), z, B);
  relu_forward(h3_.data(), h3_pre_.data(), BH);
  fc4.forward(params_, logits_.data(), h3_.data(), B);
  const size_t n = static_cast<size_t>(B) * config_.input;
  for (size_t i = 0; i < n; i++) out[i] = stable_sigmoid(logits_[i]);
}

void MlpVae::metrics_reset() { active_units_.reset(config_.latent); }

void MlpVae::metrics_accumulate(int B) { active_units_.accumulate(mu_.data(), B, config_.latent); }

void MlpVae::metrics_report(std::vector<std::pair<std::string, double>>* out) const {
  const int active = active_units_.active();
  if (active >= 0) out->push_back({"active_units", active});
}

bool MlpVae::inference_graph(InferenceGraph* out) const {
  if (!out) return true;
  out->layers.clear();
  out->layers.push_back(linear_inference_layer("fc1", params_.param(fc1.weight), params_.param(fc1.bias), fc1.C, fc1.OC, true));
  out->layers.push_back(linear_inference_layer("fc21", params_.param(fc21.weight), params_.param(fc21.bias), fc21.C, fc21.OC, false));
  out->layers.push_back(linear_inference_layer("fc3", params_.param(fc3.weight), params_.param(fc3.bias), fc3.C, fc3.OC, true));
  out->layers.push_back(linear_inference_layer("fc4", params_.param(fc4.weight), params_.param(fc4.bias), fc4.C, fc4.OC, false));
  out->sigmoid_output = true;
  return true;
}

}  // namespace ll
