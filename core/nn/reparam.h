// The Gaussian reparameterisation z = mu + exp(logvar / 2) * eps (Kingma & Welling 2014) as a
// forward/backward pair, shared by every model with a Gaussian posterior (mlp_vae, conv_vae, beta_vae).
// Backward ACCUMULATES (+=) into dmu and dlogvar. No allocation. N = B * Z elements.
#pragma once
#include <cstddef>

#include "core/base/rng.h"

namespace ll {

// eps [N] is drawn N(0, 1) from rng when rng is non-null (a sample of q(z|x)), else set to 0 (z = mu,
// the posterior mean). Writes std [N] = exp(logvar / 2) (backward needs it) and z [N].
void gaussian_reparam_forward(float* z, float* std, float* eps, const float* mu, const float* logvar,
                              size_t N, Rng* rng);
// dz/dmu = 1:                       dmu += dz
// dz/dlogvar = eps exp(logvar/2) / 2: dlogvar += dz * eps * std / 2
void gaussian_reparam_backward(float* dmu, float* dlogvar, const float* dz, const float* eps,
                               const float* std, size_t N);

}  // namespace ll
