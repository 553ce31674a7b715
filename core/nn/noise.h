// Input corruption for denoising autoencoders (Vincent et al. 2008/2010) and for evaluating any model on
// corrupted inputs: masking noise (each pixel set to 0 with probability `level`) and additive Gaussian
// noise (standard deviation `level`). The clean image stays the target.
#pragma once
#include <cstddef>
#include <string>

#include "core/base/rng.h"
#include "core/base/status.h"

namespace ll {

enum class NoiseType { kNone, kMask, kGaussian };

struct NoiseSpec {
  NoiseType type = NoiseType::kNone;
  float level = 0.0f;
  // "mask:0.25", "gaussian:0.3" or "none"; the level must be in [0, 1] for mask, [0, 10] for gaussian.
  static Status parse(const std::string& text, NoiseSpec* out);
  std::string to_string() const;
};

// Corrupts n values in place.
void apply_noise(const NoiseSpec& spec, float* x, size_t n, Rng& rng);

}  // namespace ll
