// Losses: per-example forward values and accumulating backward, side by side.
// Each forward writes one value per example (summed over that example's elements); backward ADDS
// scale * d(sum_b loss_b)/d(input) into the gradient (scale = 1 for a loss summed over the batch,
// 1/B for a batch mean). Letters: B batch, N elements per example, Z latent size.
#pragma once
#include <cstddef>

namespace ll {

// Bernoulli negative log-likelihood from logits l, targets x in [0,1] (numerically stable BCE):
//   loss_b = sum_i softplus(l) - x*l = sum_i max(l,0) - x*l + log1p(exp(-|l|))
// Optionally writes probs = sigmoid(l) (may be null), sharing the exp.
void bce_logits_forward(float* loss /*[B]*/, float* probs /*[B,N] or null*/, const float* logits,
                        const float* target, int B, int N);
// The reference: the same with libm's exp and log1p and a sequential double sum (the test oracle).
void bce_logits_forward__scalar(float* loss, float* probs, const float* logits, const float* target,
                                int B, int N);
// dlogits += scale * (sigmoid(l) - x); takes probs = sigmoid(l) from the forward.
void bce_logits_backward(float* dlogits, const float* probs, const float* target, float scale, int B,
                         int N);

// Squared error summed over elements: loss_b = sum_i (p - t)^2
void mse_forward(float* loss /*[B]*/, const float* pred, const float* target, int B, int N);
// dpred += scale * 2 (p - t)
void mse_backward(float* dpred, const float* pred, const float* target, float scale, int B, int N);

// KL( N(mu, exp(logvar)) || N(0, I) ) in closed form (Kingma & Welling 2014, appendix B):
//   kl_b = -1/2 sum_j (1 + logvar - mu^2 - exp(logvar))
void gaussian_kl_forward(float* kl /*[B]*/, const float* mu, const float* logvar, int B, int Z);
// dmu += scale * mu;  dlogvar += scale * 1/2 (exp(logvar) - 1)
void gaussian_kl_backward(float* dmu, float* dlogvar, const float* mu, const float* logvar, float scale,
                          int B, int Z);

}  // namespace ll
