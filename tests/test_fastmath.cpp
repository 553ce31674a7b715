// The vectorisable exp/log1p against libm, and the fast BCE loss against its scalar reference.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/fastmath.h"
#include "core/losses.h"
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
  for (int N : {1, 7, 255, 256, 257, 784, 1000}) {
    const int B = 3;
    auto l = test::random_vector(rng, B * N, -30.0f, 30.0f);
    auto x = test::random_vector(rng, B * N, 0.0f, 1.0f);
    std::vector<float> fast(B), ref(B), pf(B * N), pr(B * N);
    bce_logits_forward(fast.data(), pf.data(), l.data(), x.data(), B, N);
    bce_logits_forward__scalar(ref.data(), pr.data(), l.data(), x.data(), B, N);
    for (int b = 0; b < B; b++) EXPECT_NEAR(fast[b], ref[b], 2e-6 * std::fabs(ref[b]) + 1e-5) << N;
    for (int i = 0; i < B * N; i++) ASSERT_NEAR(pf[i], pr[i], 2e-7) << N << " " << i;
  }
  // Null probs is allowed.
  float l = 2.0f, x = 1.0f, out;
  bce_logits_forward(&out, nullptr, &l, &x, 1, 1);
  EXPECT_NEAR(out, std::log1p(std::exp(-2.0)), 1e-7);
}

}  // namespace
}  // namespace ll
