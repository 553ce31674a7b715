// Shared test helpers: finite-difference gradient checks and random data.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "core/idx.h"
#include "core/model.h"
#include "core/rng.h"

namespace ll::test {

struct GradCheckResult {
  double max_rel_error = 0.0;  // max over checked entries of |a - n| / max(|a| + |n|, floor)
  size_t worst_index = 0;
  double analytic = 0.0, numeric = 0.0;  // at the worst index
  size_t checked = 0;
  // ||a - n|| / (||a|| + ||n||) over the checked entries: robust to per-entry float32 noise.
  double norm_rel_error = 0.0;
};

// Central differences of `loss` (a scalar computed from *x, e.g. sum(out * r) in double) with respect
// to x[i], compared with analytic[i]. Checks every entry when n <= max_checks, otherwise max_checks
// entries chosen by `rng`. `x` is restored. floor keeps tiny gradients from dominating the ratio.
GradCheckResult grad_check(const std::function<double()>& loss, float* x, const float* analytic,
                           size_t n, float h = 1e-2f, double floor = 1e-3, size_t max_checks = 200,
                           uint64_t seed = 1);

std::vector<float> random_vector(Rng& rng, size_t n, float lo = -1.0f, float hi = 1.0f);

// Sum of a[i] * r[i] in double: the usual way to turn a tensor into a scalar loss for a grad check.
double weighted_sum(const float* a, const float* r, size_t n);

// Sum over the batch of every loss term of one forward (what the Trainer differentiates), with a fresh
// generator Rng(99) each call so a sampled z reuses the same eps.
double batch_loss(Model& m, const float* input, const float* target, int B, ZMode mode);

// n random images of rows x cols bytes, labels i % 10: a data set for training-loop tests.
Dataset synthetic_dataset(int n, int rows, int cols, uint64_t seed);

// Max |a - b| over n entries.
double max_abs_diff(const float* a, const float* b, size_t n);

}  // namespace ll::test
