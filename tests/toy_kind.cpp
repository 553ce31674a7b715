// A toy model kind that lives only in the test tree: it shows that a new kind is its own file plus one
// register_model_kind call, with no change anywhere else (issue 11). Linked into the unit tests
// (tests/test_toy_kind.cpp), into a copy of the command-line tool (latentlab_toy, for
// tests/toy_kind_cli.sh) and into a copy of the wasm module (tests/wasm/toy_kind.test.mjs); each then
// trains, saves, loads and evaluates "toy" through its ordinary code paths.
//
// "toy": a linear autoencoder with a sigmoid output,
//   enc  Linear(input, latent)   z = enc(x)           (the code)
//   dec  Linear(latent, input)   p = sigmoid(dec(z))  (pixel probabilities)
// Loss per image: "bce" = BCE(p, target) summed over pixels, "code_l2" = toy_l2 * ||z||^2.
// Backward: dlogits = p - t (bce_logits_backward); dz = dlogits W_dec + 2 toy_l2 z; then enc.
#include <algorithm>
#include <cassert>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/nn/layers.h"
#include "core/nn/losses.h"
#include "core/models/model.h"

namespace ll {
namespace {

class ToyAutoencoder : public Model {
 public:
  explicit ToyAutoencoder(const ModelConfig& config) {
    config_ = config;
    l2_ = static_cast<float>(config.get("toy_l2"));
    enc.add_to(params_, "enc", config.input, config.latent);
    dec.add_to(params_, "dec", config.latent, config.input);
    params_.finalize();
  }
  // Exactly what reserve allocates: z, dz [B, Z]; logits, probs, dlogits [B, I]; bce, l2 [B].
  uint64_t activation_floats(int B) const override {
    return static_cast<uint64_t>(B) * (2 * static_cast<uint64_t>(config_.latent) + 3 * static_cast<uint64_t>(config_.input) + 2);
  }
  void reserve(int max_batch) override {
    if (max_batch <= max_batch_) return;
    max_batch_ = max_batch;
    const size_t B = static_cast<size_t>(max_batch), I = config_.input, Z = config_.latent;
    for (auto* v : {&z_, &dz_}) v->assign(B * Z, 0.0f);
    for (auto* v : {&logits_, &probs_, &dlogits_}) v->assign(B * I, 0.0f);
    for (auto* v : {&bce_, &l2_term_}) v->assign(B, 0.0f);
  }
  void init(Rng& rng) override {
    enc.init(params_, rng);
    dec.init(params_, rng);
  }
  void forward(const float* x, const float* target, int B, Rng&, ZMode) override {
    assert(B <= max_batch_);
    B_ = B, x_ = x, target_ = target;
    const int Z = config_.latent;
    enc.forward(params_, z_.data(), x, B);
    dec.forward(params_, logits_.data(), z_.data(), B);
    bce_logits_forward(bce_.data(), probs_.data(), logits_.data(), target, B, config_.input);
    for (int b = 0; b < B; b++) {
      double s = 0.0;
      for (int j = 0; j < Z; j++) s += double(z_[b * Z + j]) * z_[b * Z + j];
      l2_term_[b] = static_cast<float>(l2_ * s);
    }
  }
  void backward(float scale) override {
    const int B = B_;
    const size_t BI = static_cast<size_t>(B) * config_.input, BZ = static_cast<size_t>(B) * config_.latent;
    std::fill(dlogits_.begin(), dlogits_.begin() + BI, 0.0f);
    std::fill(dz_.begin(), dz_.begin() + BZ, 0.0f);
    bce_logits_backward(dlogits_.data(), probs_.data(), target_, scale, B, config_.input);
    dec.backward(params_, dz_.data(), dlogits_.data(), z_.data(), B);
    for (size_t i = 0; i < BZ; i++) dz_[i] += scale * 2.0f * l2_ * z_[i];
    enc.backward(params_, nullptr, dz_.data(), x_, B);
  }
  std::vector<std::string> loss_terms() const override { return {"bce", "code_l2"}; }
  const float* term(int index) const override { return index == 0 ? bce_.data() : l2_term_.data(); }
  const float* reconstruction() const override { return probs_.data(); }
  const float* code() const override { return z_.data(); }
  void decode(const float* z, int B, float* out) override {
    assert(B <= max_batch_);
    dec.forward(params_, logits_.data(), z, B);
    const size_t n = static_cast<size_t>(B) * config_.input;
    for (size_t i = 0; i < n; i++) out[i] = stable_sigmoid(logits_[i]);
  }

  Linear enc, dec;

 private:
  float l2_ = 0.0f;
  int B_ = 0;
  const float* x_ = nullptr;
  const float* target_ = nullptr;
  std::vector<float> z_, dz_, logits_, probs_, dlogits_, bce_, l2_term_;
};

// Registered when this file's object is linked in (static initialisation, before main).
const bool kToyRegistered = [] {
  ModelKind kind;
  kind.name = "toy";
  kind.description = "Test-only toy kind (tests/toy_kind.cpp): linear autoencoder, BCE + toy_l2 * ||z||^2";
  kind.hyper = {{"toy_l2", 0.01, 0.0, 10.0, false, "Toy kind: weight of the squared norm of the code"}};
  kind.create = [](const ModelConfig& c) { return std::unique_ptr<Model>(new ToyAutoencoder(c)); };
  kind.infer = nullptr;
  return register_model_kind(kind).ok();
}();

}  // namespace

// For the tests: whether the registration above succeeded.
bool toy_kind_registered() { return kToyRegistered; }

}  // namespace ll
