// Importance-weighted log p(x); see iwae.h. Allocates its own batch buffers (an evaluation, not a
// training step).
#include "core/eval/iwae.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace ll {

namespace {

Status check_model(const Model& model, int K) {
  const std::vector<std::string> terms = model.loss_terms();
  const float *mu, *logvar, *z;
  if (!model.has_gaussian_prior() || !model.posterior(&mu, &logvar, &z) || terms.empty() ||
      terms[0] != "bce")
    return Status::error("the importance-weighted log-likelihood needs a VAE (Gaussian posterior, N(0, I) "
                         "prior, Bernoulli decoder); the " + model.config().kind + " model is not one");
  if (K < 1 || K > 1000000)
    return Status::error("the number of importance samples K = " + std::to_string(K) +
                         " is out of range [1, 1000000]");
  return Status();
}

}  // namespace

Status iw_log_px(Model& model, const float* x, int n, int K, Rng& rng, double* log_px,
                 double* sum_log_w, int rows) {
  Status s = check_model(model, K);
  if (!s.ok()) return s;
  if (n < 0 || rows < 1) return Status::error("iw_log_px: bad image count or batch rows");
  const size_t P = static_cast<size_t>(model.config().input);
  const int Z = model.code_size();
  model.reserve(rows);
  std::vector<float> batch(static_cast<size_t>(rows) * P);
  // Images are taken in groups whose K log-weights each are kept (bounded memory for any K).
  const int group = std::max(1, std::min(n, (1 << 18) / K));
  std::vector<double> log_w(static_cast<size_t>(group) * K);
  double total_log_w = 0.0;
  for (int g0 = 0; g0 < n; g0 += group) {
    const int G = std::min(group, n - g0);
    const int64_t flat = static_cast<int64_t>(G) * K;  // row f is sample f % K of image g0 + f / K
    for (int64_t f0 = 0; f0 < flat; f0 += rows) {
      const int R = static_cast<int>(std::min<int64_t>(rows, flat - f0));
      for (int r = 0; r < R; r++) {
        const float* img = x + static_cast<size_t>(g0 + (f0 + r) / K) * P;
        std::copy(img, img + P, batch.begin() + static_cast<size_t>(r) * P);
      }
      model.forward(batch.data(), batch.data(), R, rng, ZMode::kSample);
      const float *mu, *logvar, *z;
      model.posterior(&mu, &logvar, &z);
      const float* bce = model.term(0);
      for (int r = 0; r < R; r++) {
        // log p(z) - log q(z|x) = sum_j -z^2/2 + (z - mu)^2 / (2 var) + logvar/2
        double log_ratio = 0.0;
        for (int j = 0; j < Z; j++) {
          const size_t i = static_cast<size_t>(r) * Z + j;
          const double zj = z[i], d = zj - mu[i], lv = logvar[i];
          log_ratio += -0.5 * zj * zj + 0.5 * d * d * std::exp(-lv) + 0.5 * lv;
        }
        // log w = log p(x|z) + log p(z) - log q(z|x), with log p(x|z) = -BCE
        log_w[f0 + r] = -static_cast<double>(bce[r]) + log_ratio;
      }
    }
    // log p(x) ~= logsumexp_k log w_k - log K, shifted by the max so no exp overflows.
    for (int i = 0; i < G; i++) {
      const double* lw = log_w.data() + static_cast<size_t>(i) * K;
      const double m = *std::max_element(lw, lw + K);
      double acc = 0.0;
      for (int k = 0; k < K; k++) {
        acc += std::exp(lw[k] - m);
        total_log_w += lw[k];
      }
      log_px[g0 + i] = m + std::log(acc) - std::log(static_cast<double>(K));
    }
  }
  if (sum_log_w) *sum_log_w = total_log_w;
  return Status();
}

Status iw_log_likelihood(Model& model, const Dataset& data, int K, Rng& rng, int limit,
                         IwEstimate* out, int rows) {
  Status s = check_model(model, K);
  if (!s.ok()) return s;
  if (data.images.pixels_per_image() != model.config().input)
    return Status::error("the data set has " + std::to_string(data.images.pixels_per_image()) +
                         " pixels per image but the model expects " +
                         std::to_string(model.config().input));
  const int n = limit > 0 && limit < data.size() ? limit : data.size();
  if (n < 1) return Status::error("no images to evaluate");
  const int chunk = 1000;  // images converted to float at a time
  std::vector<float> x(static_cast<size_t>(chunk) * model.config().input);
  std::vector<double> log_px(static_cast<size_t>(n));
  double sum_log_w = 0.0;
  for (int first = 0; first < n; first += chunk) {
    const int m = std::min(chunk, n - first);
    data.to_float(nullptr, first, m, x.data());
    double part = 0.0;
    s = iw_log_px(model, x.data(), m, K, rng, log_px.data() + first, &part, rows);
    if (!s.ok()) return s;
    sum_log_w += part;
  }
  double sum = 0.0, sum_sq = 0.0;
  for (double v : log_px) sum += v;
  const double mean = sum / n;
  for (double v : log_px) sum_sq += (v - mean) * (v - mean);
  IwEstimate e;
  e.K = K;
  e.images = n;
  e.mean_log_px = mean;
  e.std_error = n > 1 ? std::sqrt(sum_sq / (n - 1) / n) : 0.0;
  e.mean_log_w = sum_log_w / (static_cast<double>(n) * K);
  *out = e;
  return Status();
}

}  // namespace ll
