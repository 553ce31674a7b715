// GEMM: scalar reference, Eigen variant, and the dispatch point (the wasm SIMD kernel is in
// kernels_wasmsimd.cpp). See kernels.h.
#include "core/kernels.h"

#include <cassert>
#include <cstdint>
#include <cstring>
#include <mutex>

#include <Eigen/Core>
#if defined(LATENTLAB_HAVE_OPENBLAS)
#include <cblas.h>  // Debian's OpenBLAS: also declares openblas_set_num_threads
#endif

#if defined(LATENTLAB_HAVE_OPENMP)
#include <omp.h>
#endif

namespace ll {

void gemm_f32__scalar(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                      int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  for (int i = 0; i < M; i++) {
    for (int j = 0; j < N; j++) {
      double acc = 0.0;  // double accumulation: the oracle should be the most accurate of all
      for (int k = 0; k < K; k++) {
        float a = trans_a ? A[k * lda + i] : A[i * lda + k];
        float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += static_cast<double>(a) * static_cast<double>(b);
      }
      float prev = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
      C[i * ldc + j] = static_cast<float>(alpha * acc) + prev;
    }
  }
}

namespace {
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMat, Eigen::Unaligned, Eigen::OuterStride<>>;
using MutMap = Eigen::Map<RowMat, Eigen::Unaligned, Eigen::OuterStride<>>;

template <typename LhsT, typename RhsT>
void eigen_product(const LhsT& a, const RhsT& b, float alpha, float beta, MutMap& c) {
  if (beta == 0.0f) {
    c.noalias() = alpha * (a * b);
  } else {
    if (beta != 1.0f) c *= beta;
    c.noalias() += alpha * (a * b);
  }
}
}  // namespace

void gemm_f32__eigen(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                     int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  MutMap c(C, M, N, Eigen::OuterStride<>(ldc));
  if (K == 0) {
    if (beta == 0.0f) c.setZero(); else c *= beta;
    return;
  }
  ConstMap a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
  ConstMap b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
  if (!trans_a && !trans_b) eigen_product(a, b, alpha, beta, c);
  else if (!trans_a && trans_b) eigen_product(a, b.transpose(), alpha, beta, c);
  else if (trans_a && !trans_b) eigen_product(a.transpose(), b, alpha, beta, c);
  else eigen_product(a.transpose(), b.transpose(), alpha, beta, c);
}

bool all_finite(const float* x, size_t n) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t bits;
    std::memcpy(&bits, x + i, sizeof bits);
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

void gemm_f32_scale_c(int M, int N, float beta, float* C, int ldc) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float& c = C[static_cast<size_t>(i) * ldc + j];
      c = beta == 0.0f ? 0.0f : beta * c;
    }
}

#if defined(LATENTLAB_HAVE_OPENBLAS)
void gemm_f32__openblas(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                        int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return gemm_f32_scale_c(M, N, beta, C, ldc);  // BLAS would compute 0 * C
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha,
              A, lda, B, ldb, beta, C, ldc);
}
#endif

namespace {
#if defined(__wasm_simd128__)
GemmBackend g_backend = GemmBackend::kWasmSimd;
#elif defined(LATENTLAB_HAVE_OPENBLAS)
GemmBackend g_backend = GemmBackend::kOpenBlas;
#else
GemmBackend g_backend = GemmBackend::kEigen;
#endif
}  // namespace

bool gemm_backend_available(GemmBackend backend) {
  switch (backend) {
    case GemmBackend::kScalar:
    case GemmBackend::kEigen: return true;
#if defined(__wasm_simd128__)
    case GemmBackend::kWasmSimd: return true;
#endif
#if defined(LATENTLAB_HAVE_OPENBLAS)
    case GemmBackend::kOpenBlas: return true;
#endif
    default: return false;
  }
}

const char* gemm_backend_name(GemmBackend backend) {
  switch (backend) {
    case GemmBackend::kScalar: return "scalar";
    case GemmBackend::kEigen: return "eigen";
    case GemmBackend::kWasmSimd: return "wasmsimd";
    case GemmBackend::kOpenBlas: return "openblas";
  }
  return "?";
}

void set_gemm_backend(GemmBackend backend) {
  assert(gemm_backend_available(backend));
  g_backend = backend;
}
GemmBackend gemm_backend() { return g_backend; }

namespace {
GemmTraceFn g_trace = nullptr;
void* g_trace_ctx = nullptr;
std::mutex g_trace_mutex;
}  // namespace

void set_gemm_trace(GemmTraceFn fn, void* ctx) {
  g_trace = fn;
  g_trace_ctx = ctx;
}

void gemm_f32(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
              const float* B, int ldb, float beta, float* C, int ldc) {
  if (g_trace) {
    // The convolutions call gemm_f32 from several threads at once: one observer call at a time.
    std::lock_guard<std::mutex> lock(g_trace_mutex);
    g_trace(g_trace_ctx, trans_a, trans_b, M, N, K, beta);
  }
  switch (g_backend) {
    case GemmBackend::kScalar:
      gemm_f32__scalar(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
#if defined(__wasm_simd128__)
    case GemmBackend::kWasmSimd:
      gemm_f32__wasmsimd(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
#endif
#if defined(LATENTLAB_HAVE_OPENBLAS)
    case GemmBackend::kOpenBlas:
      gemm_f32__openblas(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
#endif
    default:
      gemm_f32__eigen(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
  }
}

namespace {
int g_threads = 1;

void set_gemm_threads(int n) {
#if defined(LATENTLAB_HAVE_OPENMP)
  Eigen::setNbThreads(n);
#endif
#if defined(LATENTLAB_HAVE_OPENBLAS)
  openblas_set_num_threads(n);
#endif
  (void)n;
}
}  // namespace

int set_num_threads(int n) {
  n = n < 1 ? 1 : n;
#if defined(LATENTLAB_HAVE_OPENMP)
  omp_set_num_threads(n);
#else
  n = 1;
#endif
  set_gemm_threads(n);
  g_threads = n;
  return n;
}

int num_threads() { return g_threads; }

SerialGemmScope::SerialGemmScope() : saved_(g_threads) {
  if (saved_ > 1) set_gemm_threads(1);
}

SerialGemmScope::~SerialGemmScope() {
  if (saved_ > 1) set_gemm_threads(saved_);
}

}  // namespace ll

namespace ll {
namespace {
// With OpenMP linked, Eigen would otherwise take every core by default; one thread unless asked.
const int kDefaultThreads = set_num_threads(1);
}  // namespace
}  // namespace ll
