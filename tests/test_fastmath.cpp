// The vectorisable exp/log1p against libm, and the fast BCE loss against its scalar reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/kernels/fastmath.h"
#include "core/nn/losses.h"
#include "tests/test_util.h"

namespace ll {
namespace {

// Distance in units in the last place between two positive finite floats.
int64_t ulp_distance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return std::llabs(static_cast<int64_t>(ia) - ib);
}

TEST(FastMath, ExpWithinTwoUlpOfLibm) {
  int64_t worst = 0;
  float worst_x = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.00137f) {
    int64_t d = ulp_distance(exp_f32(x), std::exp(x));
    if (d > worst) worst = d, worst_x = x;
  }
  EXPECT_LE(worst, 2) << "at x = " << worst_x;
  EXPECT_EQ(exp_f32(0.0f), 1.0f);
  // Clamped, never inf/NaN.
  EXPECT_TRUE(std::isfinite(exp_f32(1000.0f)));
  EXPECT_GE(exp_f32(-1000.0f), 0.0f);
  EXPECT_LT(exp_f32(-1000.0f), 1e-37f);
}

// NaN in, NaN out, without undefined behaviour on the way (the native-debug build's UBSan aborts on a
// NaN converted to an integer: found by the model-file fuzz target, a file with NaN weights).
TEST(FastMath, ExpOfNanIsNanWithoutUndefinedBehaviour) {
  EXPECT_TRUE(std::isnan(exp_f32(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(exp_f32(-std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(exp_f32(std::numeric_limits<float>::infinity()), exp_f32(88.7f));
  EXPECT_EQ(exp_f32(-std::numeric_limits<float>::infinity()), exp_f32(-87.3f));
}

TEST(FastMath, Log1pWithinTwoUlpOfLibmOnUnitInterval) {
  int64_t worst = 0;
  float worst_e = 0;
  std::vector<float> es;
  for (float e = 1.0f; e > 1e-30f; e *= 0.9993f) es.push_back(e);
  for (float e : es) {
    int64_t d = ulp_distance(log1p_unit_f32(e), std::log1p(e));
    if (d > worst) worst = d, worst_e = e;
  }
  EXPECT_LE(worst, 2) << "at e = " << worst_e;
  EXPECT_EQ(log1p_unit_f32(0.0f), 0.0f);
}

TEST(FastMath, BceMatchesScalarReference) {
  Rng rng(3);
  double worst_loss = 0.0, worst_prob = 0.0;  // |fast - scalar| / derived bound
  for (int N : {1, 7, 255, 256, 257, 784, 1000}) {
    const int B = 3;
    auto l = test::random_vector(rng, B * N, -30.0f, 30.0f);
    auto x = test::random_vector(rng, B * N, 0.0f, 1.0f);
    std::vector<float> fast(B), ref(B), pf(B * N), pr(B * N);
    bce_logits_forward(fast.data(), pf.data(), l.data(), x.data(), B, N);
    bce_logits_forward__scalar(ref.data(), pr.data(), l.data(), x.data(), B, N);
    // Derived bounds (u = 2^-24). Per element, t = max(l, 0) - l x + log1p(exp(-|l|)): exp and log1p
    // within 2 ulp plus the roundings of the three terms move t by <= 8 u (|t| + 1); the two sums of N
    // terms in different orders differ by <= 2 gamma_N sum |t|. Probabilities 1 / (1 + e): 2 ulp of e,
    // one rounding of 1 + e and one of the division: <= 4 u p on each side, 8 u p apart.
    const double u = std::ldexp(1.0, -24);
    for (int b = 0; b < B; b++) {
      double sum_abs = 0.0;
      for (int i = b * N; i < (b + 1) * N; i++) {
        const double li = l[i], xi = x[i];
        sum_abs += std::fabs(std::max(li, 0.0) - li * xi + std::log1p(std::exp(-std::fabs(li)))) + 1.0;
      }
      const double bound = (2.0 * N * u / (1.0 - N * u) + 8.0 * u) * sum_abs;
      worst_loss = std::max(worst_loss, std::fabs(double(fast[b]) - ref[b]) / bound);
    }
    for (int i = 0; i < B * N; i++)
      worst_prob = std::max(worst_prob, std::fabs(double(pf[i]) - pr[i]) / (8.0 * u * pr[i] + 1e-45));
  }
  test::expect_within("loss", worst_loss, 1.0);
  test::expect_within("probs", worst_prob, 1.0);
  // Null probs is allowed.
  float l = 2.0f, x = 1.0f, out;
  bce_logits_forward(&out, nullptr, &l, &x, 1, 1);
  EXPECT_NEAR(out, std::log1p(std::exp(-2.0)), 1e-7);
}

}  // namespace
}  // namespace ll
