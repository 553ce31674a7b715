// Shared test helpers: finite-difference gradient checks with a margin, tolerance reporting, random
// data.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "core/io/idx.h"
#include "core/io/safetensors.h"
#include "core/models/model.h"
#include "core/base/rng.h"

namespace ll::test {

// Finite-difference gradient checks with a margin that holds on every target (x86-64 with or without
// AVX-512, wasm). Three things make the float32 differences trustworthy:
//  - the estimator: central differences D(h) and D(h/2); where their difference is larger than
//    float32 noise explains (curvature: a sigmoid, an exp), Richardson extrapolation
//    R = (4 D(h/2) - D(h)) / 3, whose truncation error is O(h^4) instead of O(h^2); where it is not,
//    D(h) itself, which carries 2.7x less noise than R. The steps stay the caller's kink-free h;
//  - the noise estimate: the forward runs in float32, so L(x) carries a rounding error (standard
//    deviation sigma_L) that differs between the perturbed points. The fourth difference
//    nu = L(-h) - 4 L(-h/2) + 6 L(0) - 4 L(h/2) + L(h) cancels every polynomial up to degree 3 (its
//    smooth part is ~h^4 times the fourth derivative), so it is rounding noise of variance about
//    70 sigma_L^2; the lower quartile of nu^2 over the checked entries gives sigma_L (robust to
//    the large nu of a few kinks), and the estimate's own noise is sigma_R = sqrt(65/18) sigma_L / h ~ 1.9 sigma_L / h for
//    R, sigma_L / (sqrt(2) h) for D(h);
//  - the criterion (expect_gradients_match): the norm-wise relative error ||a - n|| / (||a|| + ||n||)
//    is the main one (per-entry noise averages out), against norm_tol plus five times what the
//    estimated noise alone gives (sigma_R / (2 rms)), that allowance capped at norm_tol; the per-entry
//    one uses a floor of at least 40 sigma_R / entry_tol (so float32 noise, even at an 8-sigma
//    extreme, uses at most 1/5 of an entry's bound; rounding noise has heavier tails than a Gaussian) but never more than the mean |a| + |n| of the tensor (so
//    the noise floor cannot hide an error of the size of a typical entry).
// A bug (a dropped derivative factor, a missing term, a wrong sign) gives relative errors of 0.1 to 1,
// far above the bounds used (<= 2e-2 norm-wise with the allowance); a correct gradient must sit at
// <= 1/5 of them on every target (the printed ratio).
struct GradCheckResult {
  // Per-entry figures with the plain floor (no noise term): max over checked entries of
  // |a - n| / max(|a| + |n|, floor), where it is, and the two values there.
  double max_rel_error = 0.0;
  size_t worst_index = 0;
  double analytic = 0.0, numeric = 0.0;
  size_t checked = 0, skipped = 0;
  // ||a - n|| / (||a|| + ||n||) over the checked entries: robust to per-entry float32 noise.
  double norm_rel_error = 0.0;
  // Estimated standard deviation of one numeric entry's float32 noise (sigma_R), and the RMS of the
  // numeric gradient over the checked entries.
  double noise = 0.0, rms = 0.0;
  double floor = 0.0;
  bool richardson = false;  // the estimator chosen (else the central difference at h)
  double max_skipped_fraction = 0.1;
  // Per checked entry: its index, the analytic value, the numeric value (Richardson), its noise.
  std::vector<size_t> index;
  std::vector<double> a, n, entry_noise;
};

struct GradCheckOptions {
  float h = 1e-2f;      // the larger step; h/2 is the other one. Keep kinks farther than h.
  double floor = 1e-3;  // per-entry floor on |a| + |n| (besides the noise floor)
  size_t max_checks = 200;
  uint64_t seed = 1;
  // Skip entries whose differences show a kink within +-h (a ReLU input crossing 0): D(h) and D(h/2),
  // or the fourth difference over h, then disagree by more than 0.5% of the entry's size plus 50
  // sigma_L / h (a smooth function's disagreement is O(h^2); noise alone gives ~8.5 sigma_L / h). They are counted in `skipped`.
  bool skip_kinks = false;
  // expect_gradients_match fails when more than this fraction of the entries were skipped (kinks,
  // changed discrete choices): they must stay rare for the check to mean something.
  double max_skipped_fraction = 0.1;
  // When > 0: an entry whose loss reports a changed discrete choice at step h is retried at this
  // smaller step, then at a tenth of it (its noise then scales up by h / step), before being skipped.
  float retry_h = 0.0f;
  // When non-empty, exactly these entries are checked (e.g. only the live connections of a masked conv).
  std::vector<size_t> indices;
};

// Numeric gradient of `loss` (a scalar computed from *x, e.g. sum(out * r) in double) with respect to
// x[i], compared with analytic[i]. Checks every entry when n <= max_checks, otherwise max_checks
// entries chosen by a generator seeded with `seed`. `x` is restored. `loss` may set *changed when a
// discrete choice inside it moved with the step (an argmin, a ReLU pattern): that entry is skipped. The
// loss must give the same value at the same x (fix its random draws). LATENTLAB_GRADCHECK_DEBUG=1 in
// the environment prints every entry's D(h), D(h/2) and fourth difference.
GradCheckResult grad_check(const std::function<double(bool* changed)>& loss, float* x,
                           const float* analytic, size_t n, const GradCheckOptions& options);
GradCheckResult grad_check(const std::function<double()>& loss, float* x, const float* analytic,
                           size_t n, float h = 1e-2f, double floor = 1e-3, size_t max_checks = 200,
                           uint64_t seed = 1);

// The verdict of one check: ratio = max(norm_rel_error / norm_tol, max over entries of
// |a - n| / (entry_tol * max(|a| + |n|, floor'))), the entry part only when entry_tol > 0 (floor' as
// described above). Prints one line "[gradcheck] Suite.Test what: worst R of bound (...)" to stdout,
// records the process's worst ratio, and fails the current test (EXPECT) when the ratio exceeds 1 or
// more than options.max_skipped_fraction of the entries were skipped. Returns the ratio. scripts/gradcheck_ratios.sh collects
// these lines from a ctest run.
double expect_gradients_match(const std::string& what, const GradCheckResult& r, double norm_tol,
                              double entry_tol = 0.0);

// The worst ratio of every check run so far in this process.
double worst_gradcheck_ratio();

// The same reporting for the other tolerance-based comparisons (parity with XNNPACK, golden files,
// fast against scalar kernels): ratio = err / bound, one line "[tolerance] Suite.Test what: worst R of
// bound (err E, bound B)", and an EXPECT that the ratio is <= 1. Returns the ratio.
// tag "gradcheck" for a hand-rolled finite-difference comparison (e.g. a Jacobian), so that it is
// collected with the gradient checks.
double expect_within(const std::string& what, double err, double bound, const char* tag = "tolerance");

std::vector<float> random_vector(Rng& rng, size_t n, float lo = -1.0f, float hi = 1.0f);

// Sum of a[i] * r[i] in double: the usual way to turn a tensor into a scalar loss for a grad check.
double weighted_sum(const float* a, const float* r, size_t n);

// Sum over the batch of every loss term of one forward (what the Trainer differentiates), with a fresh
// generator Rng(99) each call so a sampled z reuses the same eps.
double batch_loss(Model& m, const float* input, const float* target, int B, ZMode mode);

// n random images of rows x cols bytes, labels i % 10: a data set for training-loop tests.
Dataset synthetic_dataset(int n, int rows, int cols, uint64_t seed);

// A golden reference file (safetensors, tests/golden/make_*_golden.py) read whole: tensors by name as
// float (F64 references are rounded to float here: add 2^-24 |reference| to a bound), metadata by key.
struct GoldenFile {
  std::vector<uint8_t> bytes;
  SafetensorsFile file;
  // Reads LATENTLAB_SOURCE_DIR/tests/golden/<name>; false (and a gtest failure) when it cannot.
  bool load(const std::string& name);
  std::vector<float> tensor(const std::string& name) const;  // empty (and a gtest failure) if absent
  std::string meta(const std::string& key) const;            // "" if absent
};

// The rounding bound of the golden tests: gamma_n = n u / (1 - n u), u = 2^-24 (Higham's gamma: a sum
// of n float32 products, in any order, is within gamma_n sum |terms| of the exact sum).
double gamma_n(double n);

// ||v - r|| / (tol ||r||) over r.size() entries (0 when both are zero): the norm-wise comparison of a
// golden tensor, as the conv VAE's golden test makes it.
double golden_norm_ratio(const float* v, const std::vector<float>& r, double tol);

// Max |a - b| over n entries.
double max_abs_diff(const float* a, const float* b, size_t n);

}  // namespace ll::test
