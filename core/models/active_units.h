// Active latent units of a VAE (Burda et al. 2016): unit j is active when Cov_x(E_q[z_j | x]) > 0.01,
// measured over an evaluation. Shared by every Gaussian-posterior model's metrics.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ll {

struct ActiveUnits {
  std::vector<double> sum, sum_sq;  // per latent: sums of E[z_j | x] and of its square
  int64_t count = 0;

  void reset(int Z) {
    sum.assign(static_cast<size_t>(Z), 0.0);
    sum_sq.assign(static_cast<size_t>(Z), 0.0);
    count = 0;
  }
  // mu [B, Z]: posterior means of one batch.
  void accumulate(const float* mu, int B, int Z) {
    if (sum.size() != static_cast<size_t>(Z)) reset(Z);
    for (int b = 0; b < B; b++)
      for (int j = 0; j < Z; j++) {
        const double m = mu[static_cast<size_t>(b) * Z + j];
        sum[j] += m;
        sum_sq[j] += m * m;
      }
    count += B;
  }
  // -1 when fewer than two examples were seen.
  int active() const {
    if (count < 2) return -1;
    int n = 0;
    for (size_t j = 0; j < sum.size(); j++) {
      const double mean = sum[j] / count;
      n += sum_sq[j] / count - mean * mean > 0.01;
    }
    return n;
  }
};

}  // namespace ll
