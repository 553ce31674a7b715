// beta-VAE and its capacity-controlled form; see beta_vae.h. The network, the reparameterisation and
// the backward pass are MlpVae's; this file only weights the KL term per example.
#include "core/models/beta_vae.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace ll {

BetaVae::BetaVae(const ModelConfig& config) : MlpVae(config) {
  beta_ = config.get("beta");
  gamma_ = config.get("gamma");
  capacity_max_ = config.get("capacity_max");
  capacity_steps_ = static_cast<int64_t>(config.get("capacity_steps"));
  capacity_ = capacity_max_;
}

void BetaVae::reserve(int max_batch) {
  MlpVae::reserve(max_batch);
  if (weight_.size() < static_cast<size_t>(max_batch_)) {
    weighted_kl_.assign(max_batch_, 0.0f);
    weight_.assign(max_batch_, 0.0f);
  }
}

void BetaVae::begin_step(int64_t step, int64_t total_steps) {
  const int64_t ramp = capacity_steps_ > 0 ? capacity_steps_ : total_steps;
  capacity_ = ramp > 0 ? capacity_max_ * std::min(1.0, static_cast<double>(step) / ramp) : capacity_max_;
}

void BetaVae::forward(const float* input, const float* target, int B, Rng& rng, ZMode mode) {
  MlpVae::forward(input, target, B, rng, mode);
  const float* kl = raw_kl();
  for (int b = 0; b < B; b++) {
    if (gamma_ == 0.0) {
      // beta * KL;  d/dKL = beta
      weighted_kl_[b] = static_cast<float>(beta_ * kl[b]);
      weight_[b] = static_cast<float>(beta_);
    } else {
      // gamma * |KL - C|;  d/dKL = gamma * sign(KL - C)  (0 at KL = C, a kink)
      const double d = static_cast<double>(kl[b]) - capacity_;
      weighted_kl_[b] = static_cast<float>(gamma_ * std::fabs(d));
      weight_[b] = static_cast<float>(d > 0.0 ? gamma_ : d < 0.0 ? -gamma_ : 0.0);
    }
  }
  kl_weight_ = weight_.data();  // MlpVae::backward scales each example's KL gradient by it
}

void BetaVae::metrics_reset() {
  MlpVae::metrics_reset();
  kl_sum_ = 0.0;
  kl_count_ = 0;
}

void BetaVae::metrics_accumulate(int B) {
  MlpVae::metrics_accumulate(B);
  const float* kl = raw_kl();
  for (int b = 0; b < B; b++) kl_sum_ += kl[b];
  kl_count_ += B;
}

void BetaVae::metrics_report(std::vector<std::pair<std::string, double>>* out) const {
  MlpVae::metrics_report(out);
  if (kl_count_ > 0) out->push_back({"kl", kl_sum_ / kl_count_});
  if (gamma_ != 0.0) out->push_back({"capacity", capacity_});
}

}  // namespace ll
