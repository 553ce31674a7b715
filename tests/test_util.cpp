// Shared test helpers; see test_util.h.
#include "tests/test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace ll::test {

GradCheckResult grad_check(const std::function<double()>& loss, float* x, const float* analytic,
                           size_t n, float h, double floor, size_t max_checks, uint64_t seed) {
  GradCheckResult r;
  std::vector<size_t> idx;
  if (n <= max_checks) {
    for (size_t i = 0; i < n; i++) idx.push_back(i);
  } else {
    Rng rng(seed);
    for (size_t k = 0; k < max_checks; k++) idx.push_back(rng.below(static_cast<uint32_t>(n)));
  }
  double diff_sq = 0.0, a_sq = 0.0, n_sq = 0.0;
  for (size_t i : idx) {
    float saved = x[i];
    x[i] = saved + h;
    double lp = loss();
    x[i] = saved - h;
    double lm = loss();
    x[i] = saved;
    // Use the actually representable step, not h, for the denominator.
    double step = static_cast<double>(saved + h) - static_cast<double>(saved - h);
    double numeric = (lp - lm) / step;
    double a = analytic[i];
    diff_sq += (a - numeric) * (a - numeric);
    a_sq += a * a;
    n_sq += numeric * numeric;
    double rel = std::fabs(a - numeric) / std::max(std::fabs(a) + std::fabs(numeric), floor);
    if (rel > r.max_rel_error || r.checked == 0) {
      if (rel >= r.max_rel_error) {
        r.max_rel_error = rel;
        r.worst_index = i;
        r.analytic = a;
        r.numeric = numeric;
      }
    }
    r.checked++;
  }
  double denom = std::sqrt(a_sq) + std::sqrt(n_sq);
  r.norm_rel_error = denom > 0 ? std::sqrt(diff_sq) / denom : 0.0;
  return r;
}

std::vector<float> random_vector(Rng& rng, size_t n, float lo, float hi) {
  std::vector<float> v(n);
  rng.fill_uniform(v.data(), n, lo, hi);
  return v;
}

double weighted_sum(const float* a, const float* r, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += static_cast<double>(a[i]) * r[i];
  return s;
}

double batch_loss(Model& m, const float* input, const float* target, int B, ZMode mode) {
  Rng rng(99);
  m.forward(input, target, B, rng, mode);
  double s = 0.0;
  for (size_t t = 0; t < m.loss_terms().size(); t++)
    for (int b = 0; b < B; b++) s += m.term(static_cast<int>(t))[b];
  return s;
}

Dataset synthetic_dataset(int n, int rows, int cols, uint64_t seed) {
  Rng rng(seed);
  ImageSet im;
  im.count = n;
  im.rows = rows;
  im.cols = cols;
  for (int i = 0; i < n * rows * cols; i++) im.pixels.push_back(static_cast<uint8_t>(rng.below(256)));
  LabelSet lab;
  lab.count = n;
  for (int i = 0; i < n; i++) lab.labels.push_back(static_cast<uint8_t>(i % 10));
  Dataset d;
  EXPECT_TRUE(make_dataset(im, lab, &d).ok());
  return d;
}

double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

}  // namespace ll::test
