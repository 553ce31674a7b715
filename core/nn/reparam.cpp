// The Gaussian reparameterisation pair; see reparam.h.
#include "core/nn/reparam.h"

#include <algorithm>
#include <cmath>

namespace ll {

void gaussian_reparam_forward(float* z, float* std, float* eps, const float* mu, const float* logvar,
                              size_t N, Rng* rng) {
  if (rng) rng->fill_normal(eps, N, 0.0f, 1.0f);
  else std::fill(eps, eps + N, 0.0f);
  for (size_t i = 0; i < N; i++) {
    std[i] = std::exp(0.5f * logvar[i]);
    z[i] = mu[i] + std[i] * eps[i];
  }
}

void gaussian_reparam_backward(float* dmu, float* dlogvar, const float* dz, const float* eps,
                               const float* std, size_t N) {
  for (size_t i = 0; i < N; i++) {
    dmu[i] += dz[i];
    dlogvar[i] += dz[i] * eps[i] * std[i] * 0.5f;
  }
}

}  // namespace ll
