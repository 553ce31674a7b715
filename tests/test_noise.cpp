// Input corruption: parsing, masking rate, Gaussian spread, and evaluation on corrupted inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/nn/noise.h"

namespace ll {
namespace {

TEST(Noise, ParsesAndRejects) {
  NoiseSpec n;
  ASSERT_TRUE(NoiseSpec::parse("mask:0.25", &n).ok());
  EXPECT_EQ(n.type, NoiseType::kMask);
  EXPECT_FLOAT_EQ(n.level, 0.25f);
  EXPECT_EQ(n.to_string(), "mask:0.25");
  ASSERT_TRUE(NoiseSpec::parse("gaussian:0.3", &n).ok());
  EXPECT_EQ(n.type, NoiseType::kGaussian);
  ASSERT_TRUE(NoiseSpec::parse("none", &n).ok());
  EXPECT_EQ(n.type, NoiseType::kNone);
  for (const char* bad : {"mask", "mask:", "mask:1.5", "mask:-0.1", "blur:0.2", "gaussian:abc", "mask:0.2x"}) {
    Status s = NoiseSpec::parse(bad, &n);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.message().find(bad), std::string::npos) << s.message();
  }
}

TEST(Noise, MaskingZeroesTheRequestedFraction) {
  std::vector<float> x(100000, 0.7f);
  Rng rng(1);
  NoiseSpec n;
  ASSERT_TRUE(NoiseSpec::parse("mask:0.25", &n).ok());
  apply_noise(n, x.data(), x.size(), rng);
  size_t zeros = 0;
  for (float v : x) {
    zeros += v == 0.0f;
    EXPECT_TRUE(v == 0.0f || v == 0.7f);
  }
  EXPECT_NEAR(zeros / 100000.0, 0.25, 0.005);
}

TEST(Noise, GaussianHasTheRequestedSpread) {
  std::vector<float> x(100000, 0.5f);
  Rng rng(2);
  NoiseSpec n;
  ASSERT_TRUE(NoiseSpec::parse("gaussian:0.3", &n).ok());
  apply_noise(n, x.data(), x.size(), rng);
  double s = 0, s2 = 0;
  for (float v : x) s += v - 0.5, s2 += (v - 0.5) * (v - 0.5);
  EXPECT_NEAR(s / x.size(), 0.0, 0.005);
  EXPECT_NEAR(std::sqrt(s2 / x.size()), 0.3, 0.005);
}

}  // namespace
}  // namespace ll
