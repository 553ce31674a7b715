// beta-VAE: the MLP VAE of mlp_vae.h (same layers, same tensor names fc1, fc21, fc22, fc3, fc4) with
// the KL term weighted. Two forms, per image:
//   gamma = 0 (Higgins et al. 2017):        loss = BCE + beta * KL
//   gamma > 0 (Burgess et al. 2018, "capacity"): loss = BCE + gamma * |KL - C|,
//     C = capacity_max * min(1, step / capacity_steps), raised linearly by begin_step (with
//     capacity_steps = 0: over the whole planned training). beta is unused in this form.
// The loss terms are "bce" and "weighted_kl" (beta * KL or gamma * |KL - C|): they sum to the loss
// being optimised. The raw KL is reported among the metrics ("kl"), with C ("capacity").
// A model that was never trained here (a loaded file) evaluates with C = capacity_max, the target at
// the end of training.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/models/mlp_vae.h"

namespace ll {

class BetaVae : public MlpVae {
 public:
  explicit BetaVae(const ModelConfig& config);
  void reserve(int max_batch) override;
  void forward(const float* input, const float* target, int B, Rng& rng, ZMode mode) override;
  std::vector<std::string> loss_terms() const override { return {"bce", "weighted_kl"}; }
  const float* term(int index) const override {
    return index == 0 ? MlpVae::term(0) : weighted_kl_.data();
  }
  // The raw KL(q(z|x) || N(0, I)) per example [B] of the last forward.
  const float* raw_kl() const { return MlpVae::term(1); }

  void begin_step(int64_t step, int64_t total_steps) override;
  double capacity() const { return capacity_; }

  void metrics_reset() override;
  void metrics_accumulate(int B) override;
  void metrics_report(std::vector<std::pair<std::string, double>>* out) const override;

 private:
  double beta_, gamma_, capacity_max_;
  int64_t capacity_steps_;
  double capacity_;  // C, in nats
  std::vector<float> weighted_kl_;  // [B] the loss term
  std::vector<float> weight_;       // [B] d(weighted_kl)/d(KL): beta, or gamma * sign(KL - C)
  double kl_sum_ = 0.0;             // metrics: raw KL summed over evaluated images
  int64_t kl_count_ = 0;
};

}  // namespace ll
