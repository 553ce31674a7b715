// Kernels: the numeric hot spots behind one dispatch point.
// Every kernel has a plain scalar reference (`__scalar`), which is its specification and test oracle;
// faster variants share the signature under suffixed names (`__eigen`, `__openblas`, `__wasmsimd`,
// `__avx2`, `__avx512`). gemm_f32() is the one place that chooses: the wasm build (with -msimd128) uses
// the hand-written WebAssembly SIMD kernel; native builds choose by measurement (GemmBackend::kAuto):
// at the first call of each shape class they time every backend this build and CPU have (own AVX2 /
// AVX-512 kernels, Eigen, OpenBLAS) on that shape and keep the fastest for the class, so no library's
// CPU detection (Debian's OpenBLAS 0.3.21 falls back to generic kernels on CPUs it does not know) decides
// the speed. All matrices are row-major.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "core/base/status.h"

// The own x86 kernels (gemm_x86.cpp) exist wherever the compiler targets x86-64 (GCC or clang), with or
// without -march=native: they carry per-function target attributes and run only where cpuid says so.
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__) && !defined(__EMSCRIPTEN__)
#define LATENTLAB_HAVE_X86_KERNELS 1
#endif

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

#if defined(LATENTLAB_HAVE_X86_KERNELS)
// Own packed, register-blocked kernels (gemm_x86.cpp): AVX2 + FMA with a 6x16 tile, AVX-512F with a
// 14x32 tile. Call one only where cpu_has_avx2_fma() / cpu_has_avx512f() is true. They use the GEMM
// threads (gemm_threads()) when called outside an OpenMP parallel region.
void gemm_f32__avx2(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                    const float* B, int ldb, float beta, float* C, int ldc);
void gemm_f32__avx512(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                      const float* B, int ldb, float beta, float* C, int ldc);
bool cpu_has_avx2_fma();
bool cpu_has_avx512f();
#endif

// True when no element is NaN or infinite (an integer test on the exponent bits, so it vectorises
// without fast-math).
bool all_finite(const float* x, size_t n);

// Which GEMM gemm_f32() uses. Tests switch to the scalar one to check whole models against it.
// The default is kWasmSimd in the wasm build and kAuto natively; selecting one that this build or CPU
// lacks (kWasmSimd natively, kOpenBlas in wasm, kAvx512 on a CPU without AVX-512F) is a programmer error
// (asserts; check gemm_backend_available first, as the command-line tool does for LATENTLAB_GEMM).
//
// kAuto: gemm_f32 sorts each call into a shape class (transposes, M, N and K rounded up to a power of
// two, the GEMM thread count); the first call of a class times every available backend but the scalar
// one on that call's shape (scratch operands, one warm-up and two or three timed calls each, the fastest
// call deciding; with several GEMM threads three calls each and their mean deciding, since waiting for
// the threads is part of the cost: a few ms for a large class, reported as measure_ms) and the class
// keeps the fastest from then on. Thread-safe (one class is measured at a time; lookups take no lock);
// results are deterministic given the choices, which set_gemm_backend forgets (the next kAuto call
// measures again). LATENTLAB_GEMM in the command-line tool forces one backend for runs that must be
// reproducible bit for bit across processes.
enum class GemmBackend { kScalar, kEigen, kWasmSimd, kOpenBlas, kAvx2, kAvx512, kAuto };
void set_gemm_backend(GemmBackend backend);
GemmBackend gemm_backend();
bool gemm_backend_available(GemmBackend backend);
// "scalar", "eigen", "wasmsimd", "openblas", "avx2", "avx512", "auto"
const char* gemm_backend_name(GemmBackend backend);
// The backend of that name (one of the above); false for any other name.
bool gemm_backend_from_name(const std::string& name, GemmBackend* out);
// The backend gemm_f32 runs for this shape: the set one, or under kAuto the class's choice (measuring
// the class first if it is new).
GemmBackend gemm_backend_for(bool trans_a, bool trans_b, int M, int N, int K);

// One shape class's measurement under kAuto: the class (transposes, upper bounds of M, N, K, GEMM
// threads), the shape it was timed on, the GFLOP/s each candidate reached (its fastest call; with several
// threads its mean), and the choice.
struct GemmChoice {
  bool trans_a = false, trans_b = false;
  int m_max = 0, n_max = 0, k_max = 0, threads = 1;
  int M = 0, N = 0, K = 0;
  GemmBackend backend = GemmBackend::kScalar;
  std::vector<std::pair<GemmBackend, double>> gflops;
  // With several threads, the candidates again on one thread (a loaded machine can make that faster),
  // and whether the choice runs so.
  std::vector<std::pair<GemmBackend, double>> gflops_one_thread;
  bool one_thread = false;
  double measure_ms = 0.0;  // time the measurement took (0 for a class read by gemm_choices_from_text)
  // Whether the chosen backend's timed calls agreed (the slowest within 1.25x of the fastest; with
  // several threads 1.5x): a measurement disturbed by other work is not kept across processes.
  bool steady = false;
  bool cached = false;  // read by gemm_choices_from_text rather than measured by this process
};
std::vector<GemmChoice> gemm_auto_choices();  // in the order the classes were first seen

// The choices kept across processes, as FFTW keeps its "wisdom": a process that finds the classes of its
// shapes already measured on this machine skips the measurement (and runs the same backends as the
// process that measured them, so its results agree bit for bit). The command-line tool keeps them in a
// file per signature (tools/speed.h); the core only turns them into text and back.
//
// The signature of this machine and build: the CPU's brand string, its widest ISA, OpenBLAS's core and
// the compiler, its target flags and the build type, since each of these changes which backend wins.
std::string gemm_choices_signature();
// Every steady class (measured or read), as lines of text headed by the signature.
std::string gemm_choices_to_text();
// Adds the classes of `text` that are not known yet (under kAuto; a forced backend ignores choices).
// All or nothing: a text of another signature, a backend this build or CPU lacks, a malformed line or a
// class given twice is refused with one message naming the line, and changes nothing. `added` (optional)
// gets the number of classes added.
Status gemm_choices_from_text(const std::string& text, int* added = nullptr);

// The OpenBLAS core this build's OpenBLAS runs (openblas_get_corename(), e.g. "Haswell", "SkylakeX" or
// the generic "Prescott"); "" without OpenBLAS.
std::string openblas_core_name();
// This CPU: its brand string ("" where unknown) and its widest instruction set the GEMM can use
// ("avx512f", "avx2+fma", "x86-64 baseline", "wasm simd128", ...).
std::string cpu_model_name();
const char* cpu_isa_name();

// Observes every gemm_f32() call (its shape, not its data) until reset with nullptr: the benchmark
// records one training step's products to time them bare (the step's GEMM floor). One test of a
// pointer per call when unset; calls from several threads (the convolutions' threads) are serialised.
using GemmTraceFn = void (*)(void* ctx, bool trans_a, bool trans_b, int M, int N, int K, float beta);
void set_gemm_trace(GemmTraceFn fn, void* ctx);

// Threads the GEMM may use (native builds with OpenMP: Eigen's and OpenBLAS's; elsewhere always 1),
// and the convolutions' OpenMP threads over the images of a batch. Returns the number set.
int set_num_threads(int n);
int num_threads();  // the number set_num_threads() set (1 until called)
int gemm_threads();  // the threads a GEMM may use now: num_threads(), or 1 inside a SerialGemmScope

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
