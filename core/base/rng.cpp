// PCG32 (XSH RR variant) and the distributions built on it. See rng.h.
#include "core/base/rng.h"

#include <cmath>

namespace ll {

Rng::Rng(uint64_t seed, uint64_t stream) {
  inc_ = (stream << 1u) | 1u;
  state_ = 0;
  next_u32();
  state_ += seed;
  next_u32();
}

uint32_t Rng::next_u32() {
  uint64_t old = state_;
  state_ = old * 6364136223846793005ULL + inc_;
  uint32_t xorshifted = static_cast<uint32_t>(((old >> 18u) ^ old) >> 27u);
  uint32_t rot = static_cast<uint32_t>(old >> 59u);
  return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

float Rng::uniform() { return static_cast<float>(next_u32() >> 8) * (1.0f / 16777216.0f); }

uint32_t Rng::below(uint32_t n) {
  // Lemire-free simple rejection: discard the top partial range so every residue is equally likely.
  uint32_t threshold = static_cast<uint32_t>(-n) % n;
  for (;;) {
    uint32_t r = next_u32();
    if (r >= threshold) return r % n;
  }
}

float Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return static_cast<float>(spare_);
  }
  // Box-Muller on (0, 1]: u1 never 0, so log is finite.
  double u1 = (static_cast<double>(next_u32()) + 1.0) * (1.0 / 4294967296.0);
  double u2 = static_cast<double>(next_u32()) * (1.0 / 4294967296.0);
  double r = std::sqrt(-2.0 * std::log(u1));
  double theta = 6.283185307179586476925286766559 * u2;
  spare_ = r * std::sin(theta);
  has_spare_ = true;
  return static_cast<float>(r * std::cos(theta));
}

void Rng::fill_uniform(float* out, size_t n, float lo, float hi) {
  for (size_t i = 0; i < n; i++) out[i] = lo + (hi - lo) * uniform();
}

void Rng::fill_normal(float* out, size_t n, float mean, float stddev) {
  for (size_t i = 0; i < n; i++) out[i] = mean + stddev * normal();
}

void Rng::shuffle(uint32_t* idx, size_t n) {
  for (size_t i = n; i > 1; i--) {
    uint32_t j = below(static_cast<uint32_t>(i));
    uint32_t t = idx[i - 1];
    idx[i - 1] = idx[j];
    idx[j] = t;
  }
}

}  // namespace ll
