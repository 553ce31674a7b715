// GEMM: every variant against the scalar reference over all transposes and odd sizes. The wasm SIMD
// kernel's tests exist only in the wasm build (they run under node with the rest of the suite).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/kernels/kernels.h"
#include "tests/test_util.h"

namespace ll {
namespace {

using GemmFn = void (*)(bool, bool, int, int, int, float, const float*, int, const float*, int, float,
                       float*, int);

// The rounding bound of one entry of C = alpha op(A) op(B) + beta C0 in float32 (Higham, Accuracy and
// Stability, 3.1): any summation order, with or without FMA, errs by at most
// gamma_{K+2} (|alpha| sum_k |a_ik b_kj| + |beta c0_ij|), gamma_n = n u / (1 - n u), u = 2^-24. Two
// correct implementations differ by at most twice that: a bound derived, not tuned (a lost or
// repeated term of a K <= 67 product exceeds it by orders of magnitude; a stride bug by far more).
double gemm_rounding_bound(bool ta, bool tb, int K, float alpha, const float* A, int lda, const float* B,
                           int ldb, float beta, float c0, int i, int j) {
  double s = 0.0;
  for (int k = 0; k < K; k++) {
    const double a = ta ? A[k * lda + i] : A[i * lda + k], b = tb ? B[j * ldb + k] : B[k * ldb + j];
    s += std::fabs(a * b);
  }
  const double u = std::ldexp(1.0, -24), n = K + 2.0;
  const double c = beta == 0.0f ? 0.0 : std::fabs(double(beta) * c0);
  return 2.0 * (n * u / (1.0 - n * u)) * (std::fabs(double(alpha)) * s + c) + 1e-37;
}

// `fast` against the scalar reference on random A, B, C with padded leading dimensions (`pad` extra
// floats per row of each: catches stride bugs). With beta == 0, C starts as NaN: it must not be read.
// Returns the worst |fast - ref| / gemm_rounding_bound over C.
double check_gemm_fn(GemmFn fn, bool ta, bool tb, int M, int N, int K, float alpha, float beta, Rng& rng,
                     int pad = 1) {
  const int lda = (ta ? M : K) + pad + 2, ldb = (tb ? K : N) + pad + 1, ldc = N + pad;
  std::vector<float> A = test::random_vector(rng, static_cast<size_t>(ta ? K : M) * lda);
  std::vector<float> B = test::random_vector(rng, static_cast<size_t>(tb ? N : K) * ldb);
  std::vector<float> C0 = test::random_vector(rng, static_cast<size_t>(M) * ldc);
  std::vector<float> ref = C0, fast = C0;
  if (beta == 0.0f)
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) fast[i * ldc + j] = std::numeric_limits<float>::quiet_NaN();
  gemm_f32__scalar(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, ref.data(), ldc);
  fn(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, fast.data(), ldc);
  double worst = 0.0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      const float r = ref[i * ldc + j], f = fast[i * ldc + j];
      const double bound = gemm_rounding_bound(ta, tb, K, alpha, A.data(), lda, B.data(), ldb, beta,
                                               C0[i * ldc + j], i, j);
      const double ratio = std::fabs(double(f) - r) / bound;
      if (!(ratio <= 1.0)) {
        ADD_FAILURE() << "ta=" << ta << " tb=" << tb << " M=" << M << " N=" << N << " K=" << K << " at (" << i
                      << "," << j << "): " << f << " vs " << r << ", bound " << bound;
        return INFINITY;
      }
      worst = std::max(worst, ratio);
    }
  // Padding columns of C are never touched.
  for (int i = 0; i < M; i++)
    for (int j = N; j < ldc; j++) {
      EXPECT_EQ(fast[i * ldc + j], C0[i * ldc + j]) << "padding of C";
      if (fast[i * ldc + j] != C0[i * ldc + j]) return INFINITY;
    }
  return worst;
}

double check_gemm(bool ta, bool tb, int M, int N, int K, float alpha, float beta, Rng& rng) {
  return check_gemm_fn(gemm_f32__eigen, ta, tb, M, N, K, alpha, beta, rng);
}

TEST(Gemm, EigenMatchesScalarOverOddSizesAndAllTransposes) {
  double worst = 0.0;  // of |fast - scalar| / gemm_rounding_bound
  Rng rng(7);
  const int sizes[] = {1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 33, 64, 67};
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int M : sizes)
        for (int N : {1, 4, 9, 20, 67})
          for (int K : {1, 3, 17, 40, 67}) worst = std::max(worst, check_gemm(ta, tb, M, N, K, 1.0f, 0.0f, rng));
  test::expect_within("C", worst, 1.0);
}

#if defined(LATENTLAB_HAVE_OPENBLAS)
TEST(Gemm, OpenBlasMatchesScalarOverOddSizesAllTransposesAlphaBetaAndModelShapes) {
  double worst = 0.0;  // of |fast - scalar| / gemm_rounding_bound
  Rng rng(17);
  const int sizes[] = {1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 33, 64, 67};
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int M : sizes)
        for (int N : {1, 4, 9, 20, 67})
          for (int K : {1, 3, 17, 40, 67}) worst = std::max(worst, check_gemm_fn(gemm_f32__openblas, ta, tb, M, N, K, 1.0f, 0.0f, rng));
  for (float beta : {0.0f, 1.0f, 0.5f})
    for (float alpha : {1.0f, -2.0f}) worst = std::max(worst, check_gemm_fn(gemm_f32__openblas, true, false, 19, 23, 29, alpha, beta, rng));
  worst = std::max(worst, check_gemm_fn(gemm_f32__openblas, false, true, 128, 400, 784, 1.0f, 0.0f, rng));
  worst = std::max(worst, check_gemm_fn(gemm_f32__openblas, false, false, 128, 400, 784, 1.0f, 1.0f, rng));
  worst = std::max(worst, check_gemm_fn(gemm_f32__openblas, true, false, 400, 784, 128, 1.0f, 1.0f, rng));
  // beta == 0 never reads C, also for K == 0 (BLAS would compute 0 * NaN).
  std::vector<float> A = {1}, B = {1}, C = {NAN};
  gemm_f32__openblas(false, false, 1, 1, 0, 1.0f, A.data(), 1, B.data(), 1, 0.0f, C.data(), 1);
  EXPECT_EQ(C[0], 0.0f);
  C[0] = NAN;
  std::vector<float> A2 = {1, 2}, B2 = {3, 4};
  gemm_f32__openblas(false, false, 1, 1, 2, 1.0f, A2.data(), 2, B2.data(), 1, 0.0f, C.data(), 1);
  EXPECT_EQ(C[0], 11.0f);
  test::expect_within("C", worst, 1.0);
}
#endif

TEST(Gemm, AlphaBetaAccumulate) {
  double worst = 0.0;  // of |fast - scalar| / gemm_rounding_bound
  Rng rng(8);
  for (float beta : {0.0f, 1.0f, 0.5f})
    for (float alpha : {1.0f, -2.0f}) worst = std::max(worst, check_gemm(true, false, 19, 23, 29, alpha, beta, rng));
  test::expect_within("C", worst, 1.0);
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
  double worst = 0.0;  // of |fast - scalar| / gemm_rounding_bound
  // The shapes of one MLP VAE training step at batch 128 (forward, input grad, weight grad).
  Rng rng(9);
  worst = std::max(worst, check_gemm(false, true, 128, 400, 784, 1.0f, 0.0f, rng));
  worst = std::max(worst, check_gemm(false, false, 128, 400, 784, 1.0f, 1.0f, rng));
  worst = std::max(worst, check_gemm(true, false, 400, 784, 128, 1.0f, 1.0f, rng));
  test::expect_within("C", worst, 1.0);
}

TEST(Gemm, BackendNamesAndAvailability) {
  EXPECT_TRUE(gemm_backend_available(GemmBackend::kScalar));
  EXPECT_TRUE(gemm_backend_available(GemmBackend::kEigen));
  EXPECT_STREQ(gemm_backend_name(GemmBackend::kWasmSimd), "wasmsimd");
#if defined(__wasm_simd128__)
  EXPECT_TRUE(gemm_backend_available(GemmBackend::kWasmSimd));
  EXPECT_EQ(gemm_backend(), GemmBackend::kWasmSimd);  // the wasm build's default
  EXPECT_FALSE(gemm_backend_available(GemmBackend::kOpenBlas));
#else
  EXPECT_FALSE(gemm_backend_available(GemmBackend::kWasmSimd));
#if defined(LATENTLAB_HAVE_OPENBLAS)
  EXPECT_TRUE(gemm_backend_available(GemmBackend::kOpenBlas));
#endif
  EXPECT_EQ(gemm_backend(), GemmBackend::kAuto);  // the native default: chosen by measurement
#endif
  EXPECT_STREQ(gemm_backend_name(GemmBackend::kOpenBlas), "openblas");
}

TEST(Gemm, TraceSeesEveryCallUntilReset) {
  struct Seen { int calls = 0, M = 0, N = 0, K = 0; bool ta = false, tb = false; float beta = -1; } seen;
  auto fn = [](void* ctx, bool ta, bool tb, int M, int N, int K, float beta) {
    Seen* s = static_cast<Seen*>(ctx);
    *s = {s->calls + 1, M, N, K, ta, tb, beta};
  };
  std::vector<float> A(6, 1.0f), B(6, 1.0f), C(4, 0.0f);
  set_gemm_trace(fn, &seen);
  gemm_f32(true, false, 2, 2, 3, 1.0f, A.data(), 2, B.data(), 2, 1.0f, C.data(), 2);
  set_gemm_trace(nullptr, nullptr);
  gemm_f32(false, false, 2, 2, 3, 1.0f, A.data(), 3, B.data(), 2, 0.0f, C.data(), 2);
  EXPECT_EQ(seen.calls, 1);
  EXPECT_TRUE(seen.ta && !seen.tb);
  EXPECT_EQ(seen.M * 100 + seen.N * 10 + seen.K, 223);
  EXPECT_EQ(seen.beta, 1.0f);
  EXPECT_EQ(C[0], 3.0f);
}

#if defined(__wasm_simd128__)
// The kernel tiles C in 4 x 8 blocks (partial ones at the edges) and K in blocks of 256: sizes cover
// every remainder of each, 1..67 on every dimension, and K across one and two block boundaries.
TEST(GemmWasmSimd, MatchesScalarOverSizes1To67AllTransposes) {
  double worst = 0.0;  // of |fast - scalar| / gemm_rounding_bound
  Rng rng(17);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      for (int M = 1; M <= 67; M++)
        for (int N : {1, 4, 5, 8, 9, 13, 16, 17, 20, 67}) worst = std::max(worst, check_gemm_fn(gemm_f32__wasmsimd, ta, tb, M, N, 7, 1.0f, 0.0f, rng));
      for (int N = 1; N <= 67; N++)
        for (int M : {1, 3, 4, 5, 9}) worst = std::max(worst, check_gemm_fn(gemm_f32__wasmsimd, ta, tb, M, N, 11, 1.0f, 0.0f, rng));
      for (int K = 1; K <= 67; K++) worst = std::max(worst, check_gemm_fn(gemm_f32__wasmsimd, ta, tb, 7, 13, K, 1.0f, 0.0f, rng));
      for (int K : {255, 256, 257, 511, 513, 784}) worst = std::max(worst, check_gemm_fn(gemm_f32__wasmsimd, ta, tb, 6, 11, K, 1.0f, 0.0f, rng));
    }
  test::expect_within("C", worst, 1.0);
}

TEST(GemmWasmSimd, AlphaBetaAndPaddedStridesAllTransposes) {
  double worst = 0.0;  // of |fast - scalar| / gemm_rounding_bound
  Rng rng(18);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (float beta : {0.0f, 1.0f, 0.5f, -1.5f})
        for (float alpha : {1.0f, -2.0f, 0.25f})
          for (int K : {29, 300})  // one K block, then two (beta applies once, on the first)
            for (int pad : {0, 1, 5})
              worst = std::max(worst, check_gemm_fn(gemm_f32__wasmsimd, ta, tb, 19, 23, K, alpha, beta, rng, pad));
  test::expect_within("C", worst, 1.0);
}

// M == 1 (single-image inference) takes the GEMV path: every transpose, odd N and K, alpha/beta, padded
// B; and op(A) = A^T with lda == 1 (the contiguous column the path also takes).
TEST(GemmWasmSimd, SingleRowMatchesScalar) {
  double worst = 0.0;  // of |fast - scalar| / gemm_rounding_bound
  Rng rng(19);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int N : {1, 3, 4, 5, 8, 9, 20, 400, 787})
        for (int K : {1, 3, 4, 7, 20, 400, 784})
          for (float beta : {0.0f, 0.5f}) worst = std::max(worst, check_gemm_fn(gemm_f32__wasmsimd, ta, tb, 1, N, K, 1.5f, beta, rng, 2));
  for (int tb = 0; tb < 2; tb++)
    for (int N : {5, 20, 400})
      for (int K : {7, 400, 784}) {
        std::vector<float> A = test::random_vector(rng, K), B = test::random_vector(rng, static_cast<size_t>(N) * K);
        std::vector<float> C(N, NAN), ref(N, NAN);
        const int ldb = tb ? K : N;
        gemm_f32__wasmsimd(true, tb, 1, N, K, 1.0f, A.data(), 1, B.data(), ldb, 0.0f, C.data(), N);
        gemm_f32__scalar(true, tb, 1, N, K, 1.0f, A.data(), 1, B.data(), ldb, 0.0f, ref.data(), N);
        for (int n = 0; n < N; n++) {
          const double bound = gemm_rounding_bound(true, tb, K, 1.0f, A.data(), 1, B.data(), ldb, 0.0f, 0.0f, 0, n);
          EXPECT_LE(std::fabs(double(C[n]) - ref[n]), bound) << tb << " " << N << " " << K;
          worst = std::max(worst, std::fabs(double(C[n]) - ref[n]) / bound);
        }
      }
  test::expect_within("C", worst, 1.0);
}

TEST(GemmWasmSimd, ZeroSizes) {
  std::vector<float> A(4, 1.0f), B(4, 1.0f), C = {5.0f, NAN};
  gemm_f32__wasmsimd(false, false, 1, 1, 0, 1.0f, A.data(), 1, B.data(), 1, 2.0f, C.data(), 1);
  EXPECT_EQ(C[0], 10.0f);  // K = 0: C = beta * C
  gemm_f32__wasmsimd(false, false, 1, 1, 0, 1.0f, A.data(), 1, B.data(), 1, 0.0f, C.data() + 1, 1);
  EXPECT_EQ(C[1], 0.0f);   // ... and beta = 0 does not read the NaN
  gemm_f32__wasmsimd(false, false, 0, 1, 2, 1.0f, A.data(), 2, B.data(), 1, 0.0f, nullptr, 1);
  gemm_f32__wasmsimd(false, false, 1, 0, 2, 1.0f, A.data(), 2, B.data(), 1, 0.0f, nullptr, 1);
}

TEST(GemmWasmSimd, ModelShapes) {
  double worst = 0.0;  // of |fast - scalar| / gemm_rounding_bound
  // One MLP VAE step at batch 128, then the conv VQ-VAE's per-image im2col products.
  Rng rng(19);
  const struct { bool ta, tb; int M, N, K; float beta; } shapes[] = {
      {false, true, 128, 400, 784, 0.0f}, {false, false, 128, 784, 400, 1.0f},
      {true, false, 400, 784, 128, 1.0f}, {false, true, 128, 20, 400, 0.0f},
      {false, false, 64, 49, 512, 0.0f},  {false, true, 64, 512, 49, 1.0f},
      {true, false, 512, 49, 64, 0.0f},   {false, false, 32, 196, 16, 0.0f},
      {true, false, 16, 196, 32, 0.0f},   {false, true, 32, 16, 196, 1.0f},
      {false, false, 64, 49, 144, 0.0f},  {true, false, 144, 49, 64, 0.0f}};
  for (const auto& s : shapes) worst = std::max(worst, check_gemm_fn(gemm_f32__wasmsimd, s.ta, s.tb, s.M, s.N, s.K, 1.0f, s.beta, rng));
  test::expect_within("C", worst, 1.0);
}
#endif

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
