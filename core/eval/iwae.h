// The importance-weighted estimate of log p(x) (Burda, Grosse & Salakhutdinov 2016, eq. 8) for any
// model with a Gaussian posterior, a N(0, I) prior and a Bernoulli decoder (Model::posterior() true,
// first loss term "bce"):
//   log p(x) ~= log (1/K) sum_k w_k,   w_k = p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x)
//   log w_k  = -BCE(x, decoder(z_k)) + log N(z_k; 0, I) - log N(z_k; mu(x), diag exp(logvar(x)))
// It is a lower bound in expectation that rises with K towards log p(x); K = 1 is the one-sample
// ELBO. The K samples of an image are drawn by running the model's own forward on K copies of the
// image (rows of one batch), so -BCE is the model's numerically stable log p(x|z) from logits; the
// log-densities and the log-sum-exp are in double. (The 2 pi terms cancel and are left out.)
// With MNIST's grey levels as Bernoulli targets (not binarised), the figure is in the same units as the
// VAE's loss (log p(x) ~ -loss), not comparable with papers' binarised-MNIST likelihoods.
#pragma once
#include <cstdint>

#include "core/io/idx.h"
#include "core/models/model.h"
#include "core/base/rng.h"
#include "core/base/status.h"

namespace ll {

struct IwEstimate {
  int K = 0;
  int64_t images = 0;
  double mean_log_px = 0.0;  // mean over images of the K-sample estimate of log p(x), nats
  double std_error = 0.0;    // standard error of that mean (spread over images / sqrt(images))
  double mean_log_w = 0.0;   // mean over images and samples of log w_k: -(one-sample ELBO loss)
};

// log_px[n] = the K-sample estimate for each image x[n, input] (values in [0, 1]). Samples are drawn
// with rng in forwards of up to `rows` rows (the model's activations grow to that). Optionally
// *sum_log_w = sum over the n*K samples of log w.
Status iw_log_px(Model& model, const float* x, int n, int K, Rng& rng, double* log_px,
                 double* sum_log_w = nullptr, int rows = 500);

// The estimate over the first `limit` images of `data` (all when limit <= 0).
Status iw_log_likelihood(Model& model, const Dataset& data, int K, Rng& rng, int limit,
                         IwEstimate* out, int rows = 500);

}  // namespace ll
