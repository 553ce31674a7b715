// GEMM: every variant against the scalar reference over all transposes and odd sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/kernels.h"
#include "tests/test_util.h"

namespace ll {
namespace {

void check_gemm(bool ta, bool tb, int M, int N, int K, float alpha, float beta, Rng& rng) {
  // Padded leading dimensions catch stride bugs.
  const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 1;
  std::vector<float> A = test::random_vector(rng, static_cast<size_t>(ta ? K : M) * lda);
  std::vector<float> B = test::random_vector(rng, static_cast<size_t>(tb ? N : K) * ldb);
  std::vector<float> C0 = test::random_vector(rng, static_cast<size_t>(M) * ldc);
  std::vector<float> ref = C0, fast = C0;
  gemm_f32__scalar(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, ref.data(), ldc);
  gemm_f32__eigen(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, fast.data(), ldc);
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float r = ref[i * ldc + j], f = fast[i * ldc + j];
      ASSERT_NEAR(f, r, 1e-5f * (K + 1)) << "ta=" << ta << " tb=" << tb << " M=" << M << " N=" << N
                                         << " K=" << K << " at (" << i << "," << j << ")";
    }
  // Padding columns of C are never touched.
  for (int i = 0; i < M; i++) ASSERT_EQ(fast[i * ldc + N], C0[i * ldc + N]);
}

TEST(Gemm, EigenMatchesScalarOverOddSizesAndAllTransposes) {
  Rng rng(7);
  const int sizes[] = {1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 33, 64, 67};
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int M : sizes)
        for (int N : {1, 4, 9, 20, 67})
          for (int K : {1, 3, 17, 40, 67}) check_gemm(ta, tb, M, N, K, 1.0f, 0.0f, rng);
}

TEST(Gemm, AlphaBetaAccumulate) {
  Rng rng(8);
  for (float beta : {0.0f, 1.0f, 0.5f})
    for (float alpha : {1.0f, -2.0f}) check_gemm(true, false, 19, 23, 29, alpha, beta, rng);
}

TEST(Gemm, BetaZeroIgnoresGarbageInC) {
  std::vector<float> A = {1, 2}, B = {3, 4}, C = {NAN};
  gemm_f32(false, false, 1, 1, 2, 1.0f, A.data(), 2, B.data(), 1, 0.0f, C.data(), 1);
  EXPECT_EQ(C[0], 11.0f);
  C[0] = NAN;
  gemm_f32__scalar(false, false, 1, 1, 2, 1.0f, A.data(), 2, B.data(), 1, 0.0f, C.data(), 1);
  EXPECT_EQ(C[0], 11.0f);
}

TEST(Gemm, ModelShapes) {
  // The shapes of one MLP VAE training step at batch 128 (forward, input grad, weight grad).
  Rng rng(9);
  check_gemm(false, true, 128, 400, 784, 1.0f, 0.0f, rng);
  check_gemm(false, false, 128, 400, 784, 1.0f, 1.0f, rng);
  check_gemm(true, false, 400, 784, 128, 1.0f, 1.0f, rng);
}

TEST(AllFinite, DetectsNanAndInfAnywhere) {
  std::vector<float> x(1000, 1.5f);
  EXPECT_TRUE(all_finite(x.data(), x.size()));
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    for (size_t pos : {size_t(0), size_t(517), size_t(999)}) {
      std::vector<float> y = x;
      y[pos] = bad;
      EXPECT_FALSE(all_finite(y.data(), y.size())) << pos;
    }
  }
  x[3] = 3.4e38f;
  x[4] = 1e-45f;  // subnormal
  EXPECT_TRUE(all_finite(x.data(), x.size()));
}

}  // namespace
}  // namespace ll
