// The own x86 GEMM kernels (gemm_f32__avx2, gemm_f32__avx512) against the scalar oracle, and the choice
// of backend by measurement (GemmBackend::kAuto). A kernel's tests run wherever the build has it and
// the CPU can run it (skipped, and saying so, elsewhere), so a baseline x86-64 build still tests AVX2 on
// an AVX2 machine.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "core/kernels/kernels.h"
#include "tests/test_util.h"

namespace ll {
namespace {

using GemmFn = void (*)(bool, bool, int, int, int, float, const float*, int, const float*, int, float, float*, int);

// Restores the backend and thread count a test changes.
struct GemmStateGuard {
  GemmBackend backend = gemm_backend();
  int threads = num_threads();
  ~GemmStateGuard() {
    set_gemm_backend(backend);
    set_num_threads(threads);
  }
};

// `fn` against gemm_f32__scalar on random operands with leading dimensions `pad` beyond the minimum.
// The bound is the classical one for a float32 dot product of length K, from the operands' own
// magnitudes: |alpha| * (K + 2) * eps * sum_k |a_ik b_kj| + 2 eps |beta c_ij| (+ one rounding of the
// result), so it holds for any summation order, FMA or not, on any instruction set. With beta == 0 C
// starts as NaN (it must not be read); C's padding columns must stay untouched.
void expect_matches_scalar(GemmFn fn, bool ta, bool tb, int M, int N, int K, float alpha, float beta, Rng& rng,
                           int pad = 3) {
  const int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad + 1, ldc = N + pad;
  std::vector<float> A = test::random_vector(rng, static_cast<size_t>(ta ? K : M) * lda + 1);
  std::vector<float> B = test::random_vector(rng, static_cast<size_t>(tb ? N : K) * ldb + 1);
  std::vector<float> C0 = test::random_vector(rng, static_cast<size_t>(M) * ldc + 1);
  std::vector<float> ref = C0, fast = C0;
  if (beta == 0.0f)
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) fast[static_cast<size_t>(i) * ldc + j] = std::numeric_limits<float>::quiet_NaN();
  gemm_f32__scalar(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, ref.data(), ldc);
  fn(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, fast.data(), ldc);
  const double eps = std::numeric_limits<float>::epsilon();
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double abs_dot = 0.0;
      for (int k = 0; k < K; k++) {
        const float a = ta ? A[static_cast<size_t>(k) * lda + i] : A[static_cast<size_t>(i) * lda + k];
        const float b = tb ? B[static_cast<size_t>(j) * ldb + k] : B[static_cast<size_t>(k) * ldb + j];
        abs_dot += std::fabs(static_cast<double>(a) * b);
      }
      const double r = ref[static_cast<size_t>(i) * ldc + j], f = fast[static_cast<size_t>(i) * ldc + j];
      const double bound = std::fabs(alpha) * (K + 2) * eps * abs_dot +
                           2 * eps * std::fabs(beta * C0[static_cast<size_t>(i) * ldc + j]) + eps * std::fabs(r) +
                           1e-30;
      ASSERT_LE(std::fabs(f - r), bound) << "ta=" << ta << " tb=" << tb << " M=" << M << " N=" << N << " K=" << K
                                         << " alpha=" << alpha << " beta=" << beta << " at (" << i << "," << j
                                         << "): " << f << " vs " << r;
    }
  for (int i = 0; i < M; i++)
    for (int j = N; j < ldc; j++)
      ASSERT_EQ(fast[static_cast<size_t>(i) * ldc + j], C0[static_cast<size_t>(i) * ldc + j]) << "padding of C";
}

// Every transpose over odd sizes around the tiles (6x16, 14x32), the row blocks (112, 120 rows) and the
// K slice (256): edge tiles, several K slices with beta, alpha and beta, padded strides; K == 0; the
// MLP VAE's and conv layers' shapes; and all of it again on two threads (the split over M or N).
void check_kernel(GemmFn fn) {
  Rng rng(23);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      for (int M : {1, 2, 5, 6, 7, 13, 14, 15, 29, 33, 121})
        for (int N : {1, 3, 15, 16, 17, 31, 33, 65})
          for (int K : {1, 2, 7, 31}) expect_matches_scalar(fn, ta, tb, M, N, K, 1.0f, 0.0f, rng);
      for (int K : {255, 256, 257, 600}) expect_matches_scalar(fn, ta, tb, 37, 41, K, 1.0f, 0.0f, rng);
      for (float alpha : {1.0f, -2.0f, 0.5f})
        for (float beta : {0.0f, 1.0f, -0.5f}) expect_matches_scalar(fn, ta, tb, 19, 35, 300, alpha, beta, rng);
    }
  // K == 0: C = beta * C, never 0 * NaN.
  std::vector<float> A = {1}, B = {1}, C = {NAN, 2.0f};
  fn(false, false, 1, 1, 0, 1.0f, A.data(), 1, B.data(), 1, 0.0f, C.data(), 1);
  EXPECT_EQ(C[0], 0.0f);
  fn(false, false, 1, 1, 0, 1.0f, A.data(), 1, B.data(), 1, 0.5f, C.data() + 1, 1);
  EXPECT_EQ(C[1], 1.0f);
  // The MLP VAE's step at batch 128 and the conv VQ-VAE's per-image products (conv.cpp's calls).
  expect_matches_scalar(fn, false, true, 128, 400, 784, 1.0f, 0.0f, rng, 0);
  expect_matches_scalar(fn, false, false, 128, 784, 400, 1.0f, 1.0f, rng, 0);
  expect_matches_scalar(fn, true, false, 400, 784, 128, 1.0f, 1.0f, rng, 0);
  expect_matches_scalar(fn, false, true, 64, 196, 512, 1.0f, 0.0f, rng, 0);
  expect_matches_scalar(fn, true, false, 49, 1024, 16, 1.0f, 0.0f, rng, 0);
  GemmStateGuard guard;
  if (set_num_threads(2) == 2) {
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        expect_matches_scalar(fn, ta, tb, 300, 37, 401, 1.0f, 0.5f, rng);  // split over M (>= 8 MFLOP)
        expect_matches_scalar(fn, ta, tb, 37, 300, 401, -1.0f, 0.0f, rng);  // split over N
      }
  }
}

#if defined(LATENTLAB_HAVE_X86_KERNELS)
TEST(GemmX86, Avx2MatchesScalarOverOddSizesTransposesAlphaBetaStridesAndModelShapes) {
  if (!cpu_has_avx2_fma()) GTEST_SKIP() << "this CPU has no AVX2 + FMA";
  check_kernel(gemm_f32__avx2);
}

TEST(GemmX86, Avx512MatchesScalarOverOddSizesTransposesAlphaBetaStridesAndModelShapes) {
  if (!cpu_has_avx512f()) GTEST_SKIP() << "this CPU has no AVX-512F";
  check_kernel(gemm_f32__avx512);
}

TEST(GemmX86, AvailabilityFollowsCpuid) {
  EXPECT_EQ(gemm_backend_available(GemmBackend::kAvx2), cpu_has_avx2_fma());
  EXPECT_EQ(gemm_backend_available(GemmBackend::kAvx512), cpu_has_avx512f());
  EXPECT_STREQ(cpu_isa_name(), cpu_has_avx512f() ? "avx512f" : cpu_has_avx2_fma() ? "avx2+fma" : "x86-64 baseline");
}
#endif

TEST(GemmAuto, NamesRoundTripAndUnknownNamesAreRefused) {
  for (GemmBackend b : {GemmBackend::kScalar, GemmBackend::kEigen, GemmBackend::kWasmSimd, GemmBackend::kOpenBlas,
                        GemmBackend::kAvx2, GemmBackend::kAvx512, GemmBackend::kAuto}) {
    GemmBackend parsed = GemmBackend::kScalar;
    ASSERT_TRUE(gemm_backend_from_name(gemm_backend_name(b), &parsed)) << gemm_backend_name(b);
    EXPECT_EQ(parsed, b);
  }
  GemmBackend parsed = GemmBackend::kEigen;
  EXPECT_FALSE(gemm_backend_from_name("fast", &parsed));
  EXPECT_FALSE(gemm_backend_from_name("", &parsed));
  EXPECT_FALSE(gemm_backend_from_name("AVX2", &parsed));
  EXPECT_EQ(parsed, GemmBackend::kEigen);  // untouched
}

// Under kAuto every class gets an available backend other than scalar, measured once, with a figure
// for each candidate; the results match the scalar oracle whichever backend won.
TEST(GemmAuto, ChoosesAnAvailableMeasuredBackendPerClassAndMatchesScalar) {
  GemmStateGuard guard;
  set_gemm_backend(GemmBackend::kAuto);  // also forgets earlier choices
  EXPECT_TRUE(gemm_auto_choices().empty());
  Rng rng(31);
  auto via_dispatch = [](bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                         int ldb, float beta, float* C, int ldc) {
    gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  };
  expect_matches_scalar(via_dispatch, false, true, 128, 400, 784, 1.0f, 0.0f, rng);
  expect_matches_scalar(via_dispatch, true, false, 400, 784, 128, 1.0f, 1.0f, rng);
  expect_matches_scalar(via_dispatch, false, false, 7, 9, 11, -1.0f, 0.5f, rng);
  std::vector<GemmChoice> choices = gemm_auto_choices();
  ASSERT_EQ(choices.size(), 3u);
  std::set<GemmBackend> candidates;
  for (const GemmChoice& c : choices) {
    EXPECT_TRUE(gemm_backend_available(c.backend)) << gemm_backend_name(c.backend);
    EXPECT_NE(c.backend, GemmBackend::kScalar);
    EXPECT_NE(c.backend, GemmBackend::kAuto);
    ASSERT_FALSE(c.gflops.empty());
    double best = 0.0, chosen = -1.0;
    for (const auto& [b, g] : c.gflops) {
      EXPECT_TRUE(gemm_backend_available(b));
      EXPECT_GT(g, 0.0);
      best = std::max(best, g);
      if (b == c.backend) chosen = g;
      candidates.insert(b);
    }
    EXPECT_EQ(chosen, best) << "the choice is the fastest measured";
    EXPECT_FALSE(c.one_thread);
    EXPECT_TRUE(c.gflops_one_thread.empty());  // one thread already
    EXPECT_EQ(gemm_backend_for(c.trans_a, c.trans_b, c.M, c.N, c.K), c.backend);
    EXPECT_GE(c.m_max, c.M);
    EXPECT_LT(c.m_max, 2 * c.M + 1);
  }
  // Every available non-scalar backend was a candidate.
  for (GemmBackend b : {GemmBackend::kEigen, GemmBackend::kWasmSimd, GemmBackend::kOpenBlas, GemmBackend::kAvx2,
                        GemmBackend::kAvx512})
    EXPECT_EQ(candidates.count(b) == 1, gemm_backend_available(b)) << gemm_backend_name(b);
  // The same classes again (other sizes in the same power-of-two bounds): no new measurement.
  std::vector<float> A(400 * 784, 0.5f), B(784 * 400, 0.25f), C(128 * 400);
  gemm_f32(false, true, 120, 390, 700, 1.0f, A.data(), 700, B.data(), 700, 0.0f, C.data(), 390);
  EXPECT_EQ(gemm_auto_choices().size(), 3u);
  EXPECT_FLOAT_EQ(C[0], 700 * 0.125f);
}

// With two GEMM threads a class also times every candidate on one thread, keeps the fastest of all, and
// the call leaves the thread count as it was; results match the scalar oracle.
TEST(GemmAuto, TwoThreadClassesAlsoTimeOneThreadAndMatchScalar) {
  GemmStateGuard guard;
  if (set_num_threads(2) != 2) GTEST_SKIP() << "this build has no OpenMP threads";
  set_gemm_backend(GemmBackend::kAuto);
  Rng rng(37);
  auto via_dispatch = [](bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                         int ldb, float beta, float* C, int ldc) {
    gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  };
  expect_matches_scalar(via_dispatch, false, true, 128, 400, 784, 1.0f, 0.0f, rng);
  expect_matches_scalar(via_dispatch, false, true, 128, 400, 784, 1.0f, 0.5f, rng);  // the stored choice
  EXPECT_EQ(gemm_threads(), 2);
  const std::vector<GemmChoice> choices = gemm_auto_choices();
  ASSERT_EQ(choices.size(), 1u);
  const GemmChoice& c = choices[0];
  EXPECT_EQ(c.threads, 2);
  ASSERT_FALSE(c.gflops_one_thread.empty());
  double best = 0.0, chosen = -1.0;
  for (const auto& [b, g] : c.gflops) {
    best = std::max(best, g);
    if (b == c.backend && !c.one_thread) chosen = g;
  }
  for (const auto& [b, g] : c.gflops_one_thread) {
    EXPECT_NE(b, GemmBackend::kOpenBlas);  // already on one thread under auto
    best = std::max(best, g);
    if (b == c.backend && c.one_thread) chosen = g;
  }
  EXPECT_EQ(chosen, best);
}

// A forced backend is what runs, for every shape, and measures nothing.
TEST(GemmAuto, ForcedBackendIsUsedForEveryShape) {
  GemmStateGuard guard;
  for (GemmBackend b : {GemmBackend::kScalar, GemmBackend::kEigen, GemmBackend::kOpenBlas, GemmBackend::kAvx2,
                        GemmBackend::kAvx512}) {
    if (!gemm_backend_available(b)) continue;
    set_gemm_backend(b);
    EXPECT_EQ(gemm_backend_for(false, false, 128, 400, 784), b);
    EXPECT_EQ(gemm_backend_for(true, true, 3, 5, 7), b);
    EXPECT_TRUE(gemm_auto_choices().empty());
  }
}

// Calls from several threads at once (as the convolutions make them) measure each class once.
TEST(GemmAuto, ConcurrentFirstCallsMeasureEachClassOnce) {
  GemmStateGuard guard;
  set_gemm_backend(GemmBackend::kAuto);
  std::vector<float> A(64 * 64, 1.0f), B(64 * 64, 1.0f);
  std::vector<std::vector<float>> C(8, std::vector<float>(64 * 64));
#if defined(LATENTLAB_HAVE_OPENMP)
#pragma omp parallel for num_threads(4)
#endif
  for (int t = 0; t < 8; t++)
    gemm_f32(false, false, 60, 61, 62 + t % 2, 1.0f, A.data(), 64, B.data(), 64, 0.0f, C[t].data(), 64);
  EXPECT_EQ(gemm_auto_choices().size(), 1u);
  for (int t = 0; t < 8; t++) EXPECT_EQ(C[t][0], 62.0f + t % 2);
}

// ---- the choices kept across processes (gemm_choices_to_text / gemm_choices_from_text) ----

// A backend this build measures under kAuto (Eigen natively, the SIMD128 kernel in wasm).
GemmBackend some_measured_backend() {
  for (GemmBackend b : {GemmBackend::kEigen, GemmBackend::kWasmSimd, GemmBackend::kOpenBlas, GemmBackend::kAvx2,
                        GemmBackend::kAvx512})
    if (gemm_backend_available(b)) return b;
  return GemmBackend::kScalar;
}

std::string choices_head() { return "latentlab gemm choices 1\nsignature " + gemm_choices_signature() + "\n"; }

// A class read from text is used as it is (no measurement: 0 ms, marked cached), also for other sizes of
// the same class, and written back line for line.
TEST(GemmChoices, ReadClassesAreUsedWithoutMeasuringAndWrittenBack) {
  GemmStateGuard guard;
  set_gemm_backend(GemmBackend::kAuto);
  const std::string b = gemm_backend_name(some_measured_backend());
  const std::string lines = "0 1 128 400 784 1 " + b + " 0 1 " + b + " 12.50 0\n" +
                            "1 0 784 400 128 1 " + b + " 0 2 " + b + " 20.00 scalar 1.00 0\n";
  int added = -1;
  ASSERT_TRUE(gemm_choices_from_text(choices_head() + lines, &added).ok());
  EXPECT_EQ(added, 2);
  EXPECT_EQ(gemm_backend_for(false, true, 100, 300, 600), some_measured_backend());  // same class
  EXPECT_EQ(gemm_backend_for(true, false, 784, 400, 128), some_measured_backend());
  std::vector<GemmChoice> choices = gemm_auto_choices();
  ASSERT_EQ(choices.size(), 2u);
  for (const GemmChoice& c : choices) {
    EXPECT_TRUE(c.cached);
    EXPECT_EQ(c.measure_ms, 0.0);
  }
  EXPECT_EQ(choices[1].gflops.size(), 2u);
  EXPECT_EQ(gemm_choices_to_text(), choices_head() + lines);
  // Reading it again adds nothing; a measured class is added to the text once measured steadily.
  ASSERT_TRUE(gemm_choices_from_text(choices_head() + lines, &added).ok());
  EXPECT_EQ(added, 0);
  // Under a forced backend the text is checked but no choice is kept.
  set_gemm_backend(GemmBackend::kScalar);
  ASSERT_TRUE(gemm_choices_from_text(choices_head() + lines, &added).ok());
  EXPECT_EQ(added, 0);
  EXPECT_TRUE(gemm_auto_choices().empty());
}

// Every malformed or foreign text is refused with a message naming what is wrong, and changes nothing:
// not even its good lines are kept.
TEST(GemmChoices, MalformedOrForeignTextIsRefusedAndChangesNothing) {
  GemmStateGuard guard;
  set_gemm_backend(GemmBackend::kAuto);
  const std::string b = gemm_backend_name(some_measured_backend());
  const std::string good = "0 0 64 64 64 1 " + b + " 0 1 " + b + " 9.00 0\n";
  ASSERT_TRUE(gemm_choices_from_text(choices_head() + "0 0 8 8 8 1 " + b + " 0 0 0\n").ok());
  ASSERT_EQ(gemm_auto_choices().size(), 1u);
  std::string many;
  for (int i = 0; i < 300; i++) many += "0 0 " + std::to_string(1 << (i % 20)) + " " + std::to_string(1 << (i / 20)) + " 3 1 " + b + " 0 0 0\n";
  const std::pair<std::string, std::string> cases[] = {
      {"", "not a GEMM choices file"},
      {"latentlab gemm choices 2\nsignature " + gemm_choices_signature() + "\n" + good, "not a GEMM choices file"},
      {"latentlab gemm choices 1\nsignature cpu 'Other' isa avx2+fma\n" + good, "made on another CPU or build"},
      {"latentlab gemm choices 1\n" + good, "made on another CPU or build"},
      {choices_head() + good + "0 0 32 32 32 1 scalar 0 0 0\n", "line 4: 'scalar' is not a backend"},
      {choices_head() + good + "0 0 32 32 32 1 fast 0 0 0\n", "line 4: 'fast' is not a backend"},
#if !defined(__EMSCRIPTEN__)
      {choices_head() + good + "0 0 32 32 32 1 wasmsimd 0 0 0\n", "line 4: 'wasmsimd' is not a backend"},
#endif
      {choices_head() + good + "0 0 0 32 32 1 " + b + " 0 0 0\n", "line 4: M, N and K must be in"},
      {choices_head() + good + "0 0 32 32 99999999 1 " + b + " 0 0 0\n", "line 4: M, N and K must be in"},
      {choices_head() + good + "2 0 32 32 32 1 " + b + " 0 0 0\n", "line 4: transposes and one_thread"},
      {choices_head() + good + "0 0 32 32 32 0 " + b + " 0 0 0\n", "line 4: threads must be in"},
      {choices_head() + good + "0 0 32 32 32 1 " + b + " 1 0 0\n", "line 4: one_thread is set on a one-thread"},
      {choices_head() + good + "0 0 32 32 32 1 " + b + " 0 2 " + b + " 1.0 0\n", "line 4: the GFLOP/s lists"},
      {choices_head() + good + "0 0 32 32 32 1 " + b + " 0 1 " + b + " nan 0\n", "line 4: the GFLOP/s lists"},
      {choices_head() + good + "0 0 32 32 32 1 " + b + " 0 0 0 extra\n", "line 4: unexpected 'extra'"},
      {choices_head() + good + "0 0 32 32\n", "line 4: expected 'ta tb M N K"},
      {choices_head() + good + "0 0 60 60 60 1 " + b + " 0 0 0\n", "line 4: a second line for the same shape class"},
      {choices_head() + many, "more classes than a process keeps"},
  };
  for (const auto& [text, message] : cases) {
    int added = -1;
    Status s = gemm_choices_from_text(text, &added);
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_NE(s.message().find(message), std::string::npos) << s.message() << "\n  expected: " << message;
    EXPECT_EQ(added, 0);
    ASSERT_EQ(gemm_auto_choices().size(), 1u) << "changed by: " << text;
  }
}

}  // namespace
}  // namespace ll
