// MLP autoencoder forward and backward; see mlp_ae.h.
#include "core/models/mlp_ae.h"

#include <algorithm>
#include <cassert>

#include "core/nn/losses.h"

namespace ll {

MlpAutoencoder::MlpAutoencoder(const ModelConfig& config) {
  config_ = config;
  enc0.add_to(params_, "encoder.0", config.input, config.hidden);
  enc2.add_to(params_, "encoder.2", config.hidden, config.latent);
  dec0.add_to(params_, "decoder.0", config.latent, config.hidden);
  dec2.add_to(params_, "decoder.2", config.hidden, config.input);
  params_.finalize();
}

void MlpAutoencoder::reserve(int max_batch) {
  if (max_batch <= max_batch_) return;
  max_batch_ = max_batch;
  const size_t B = static_cast<size_t>(max_batch);
  const size_t I = config_.input, H = config_.hidden, Z = config_.latent;
  for (auto* v : {&h1_pre_, &h1_, &h2_pre_, &h2_, &dh1_pre_, &dh1_, &dh2_pre_, &dh2_}) v->assign(B * H, 0.0f);
  for (auto* v : {&code_, &dcode_}) v->assign(B * Z, 0.0f);
  for (auto* v : {&logits_, &probs_, &dlogits_}) v->assign(B * I, 0.0f);
  bce_.assign(B, 0.0f);
}

void MlpAutoencoder::init(Rng& rng) {
  for (const Linear* l : {&enc0, &enc2, &dec0, &dec2}) l->init(params_, rng);
}

void MlpAutoencoder::forward(const float* x, const float* target, int B, Rng& rng, ZMode mode) {
  assert(B <= max_batch_);
  B_ = B;
  x_ = x;
  target_ = target;
  const size_t BH = static_cast<size_t>(B) * config_.hidden;
  enc0.forward(params_, h1_pre_.data(), x, B);
  relu_forward(h1_.data(), h1_pre_.data(), BH);
  enc2.forward(params_, code_.data(), h1_.data(), B);
  dec0.forward(params_, h2_pre_.data(), code_.data(), B);
  relu_forward(h2_.data(), h2_pre_.data(), BH);
  dec2.forward(params_, logits_.data(), h2_.data(), B);
  bce_logits_forward(bce_.data(), probs_.data(), logits_.data(), target, B, config_.input);
}

void MlpAutoencoder::backward(float scale) {
  const int B = B_;
  const size_t BH = static_cast<size_t>(B) * config_.hidden;
  const size_t BZ = static_cast<size_t>(B) * config_.latent;
  const size_t BI = static_cast<size_t>(B) * config_.input;
  for (auto* v : {&dh1_pre_, &dh1_, &dh2_pre_, &dh2_}) std::fill(v->begin(), v->begin() + BH, 0.0f);
  std::fill(dcode_.begin(), dcode_.begin() + BZ, 0.0f);
  std::fill(dlogits_.begin(), dlogits_.begin() + BI, 0.0f);

  bce_logits_backward(dlogits_.data(), probs_.data(), target_, scale, B, config_.input);
  dec2.backward(params_, dh2_.data(), dlogits_.data(), h2_.data(), B);
  relu_backward(dh2_pre_.data(), dh2_.data(), h2_pre_.data(), BH);
  dec0.backward(params_, dcode_.data(), dh2_pre_.data(), code_.data(), B);
  enc2.backward(params_, dh1_.data(), dcode_.data(), h1_.data(), B);
  relu_backward(dh1_pre_.data(), dh1_.data(), h1_pre_.data(), BH);
  enc0.backward(params_, nullptr, dh1_pre_.data(), x_, B);
}

void MlpAutoencoder::decode(const float* z, int B, float* out) {
  assert(B <= max_batch_);
  const size_t BH = static_cast<size_t>(B) * config_.hidden;
  dec0.forward(params_, h2_pre_.data(), z, B);
  relu_forward(h2_.data(), h2_pre_.data(), BH);
  dec2.forward(params_, logits_.data(), h2_.data(), B);
  const size_t n = static_cast<size_t>(B) * config_.input;
  for (size_t i = 0; i < n; i++) out[i] = stable_sigmoid(logits_[i]);
}

bool MlpAutoencoder::inference_graph(InferenceGraph* out) const {
  if (!out) return true;
  out->layers.clear();
  out->layers.push_back(linear_inference_layer("encoder.0", params_.param(enc0.weight), params_.param(enc0.bias), enc0.C, enc0.OC, true));
  out->layers.push_back(linear_inference_layer("encoder.2", params_.param(enc2.weight), params_.param(enc2.bias), enc2.C, enc2.OC, false));
  out->layers.push_back(linear_inference_layer("decoder.0", params_.param(dec0.weight), params_.param(dec0.bias), dec0.C, dec0.OC, true));
  out->layers.push_back(linear_inference_layer("decoder.2", params_.param(dec2.weight), params_.param(dec2.bias), dec2.C, dec2.OC, false));
  out->sigmoid_output = true;
  return true;
}

}  // namespace ll
