// Kernels: the numeric hot spots behind one dispatch point.
// Every kernel has a plain scalar reference (`__scalar`), which is its specification and test oracle;
// faster variants share the signature under suffixed names (`__eigen`, `__openblas`, `__wasmsimd`).
// gemm_f32() is the one place that chooses: the wasm build (with -msimd128) uses the hand-written
// WebAssembly SIMD kernel; native builds OpenBLAS's sgemm when the build found it (Debian's
// libopenblas-dev; faster than Eigen on every shape the models use, see README "Speed"), else Eigen
// (with -march=native: AVX2/FMA). All matrices are row-major.
#pragma once
#include <cstddef>

namespace ll {

// C[M,N] = alpha * op(A) * op(B) + beta * C
//   op(A) is [M,K]: A itself (trans_a = false, A is [M,K], lda >= K) or A^T (A is [K,M], lda >= M)
//   op(B) is [K,N]: B itself (trans_b = false, B is [K,N], ldb >= N) or B^T (B is [N,K], ldb >= K)
// beta == 0 overwrites C without reading it (so C may hold NaN garbage).
void gemm_f32(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
              const float* B, int ldb, float beta, float* C, int ldc);

// C[M,N] = beta * C, beta == 0 writing zeros without reading C: what every GEMM does when K == 0, which
// BLAS-style kernels would otherwise compute as 0 * C (NaN for garbage in C).
void gemm_f32_scale_c(int M, int N, float beta, float* C, int ldc);

void gemm_f32__scalar(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                      int lda, const float* B, int ldb, float beta, float* C, int ldc);
void gemm_f32__eigen(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                     int lda, const float* B, int ldb, float beta, float* C, int ldc);
#if defined(LATENTLAB_HAVE_OPENBLAS)
// cblas_sgemm (row-major) of the OpenBLAS this build links; exists only where CMake found it.
void gemm_f32__openblas(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                        int lda, const float* B, int ldb, float beta, float* C, int ldc);
#endif
#if defined(__wasm_simd128__)
// Register-blocked WebAssembly SIMD128 kernel (kernels_wasmsimd.cpp); exists only in the wasm build.
void gemm_f32__wasmsimd(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                        int lda, const float* B, int ldb, float beta, float* C, int ldc);
#endif

// True when no element is NaN or infinite (an integer test on the exponent bits, so it vectorises
// without fast-math).
bool all_finite(const float* x, size_t n);

// Which GEMM gemm_f32() uses. Tests switch to the scalar one to check whole models against it.
// The default is the fastest available one (kWasmSimd in the wasm build, kOpenBlas natively when
// linked, else kEigen); selecting one that this build lacks (kWasmSimd natively, kOpenBlas in wasm) is a
// programmer error (asserts).
enum class GemmBackend { kScalar, kEigen, kWasmSimd, kOpenBlas };
void set_gemm_backend(GemmBackend backend);
GemmBackend gemm_backend();
bool gemm_backend_available(GemmBackend backend);
const char* gemm_backend_name(GemmBackend backend);  // "scalar", "eigen", "wasmsimd", "openblas"

// Observes every gemm_f32() call (its shape, not its data) until reset with nullptr: the benchmark
// records one training step's products to time them bare (the step's GEMM floor). One test of a
// pointer per call when unset; calls from several threads (the convolutions' threads) are serialised.
using GemmTraceFn = void (*)(void* ctx, bool trans_a, bool trans_b, int M, int N, int K, float beta);
void set_gemm_trace(GemmTraceFn fn, void* ctx);

// Threads the GEMM may use (native builds with OpenMP: Eigen's and OpenBLAS's; elsewhere always 1),
// and the convolutions' OpenMP threads over the images of a batch. Returns the number set.
int set_num_threads(int n);
int num_threads();  // the number set_num_threads() set (1 until called)

// While alive, every gemm_f32 runs on its calling thread alone (OpenBLAS's and Eigen's threads set to
// one), so that a caller may run GEMMs on several threads at once; the count is restored after. Create
// and destroy it outside any parallel region.
class SerialGemmScope {
 public:
  SerialGemmScope();
  ~SerialGemmScope();
  SerialGemmScope(const SerialGemmScope&) = delete;
  SerialGemmScope& operator=(const SerialGemmScope&) = delete;

 private:
  int saved_;
};

}  // namespace ll
