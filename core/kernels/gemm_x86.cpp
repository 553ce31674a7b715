// Own x86 sgemm kernels: gemm_f32__avx2 (AVX2 + FMA, 6x16 register tile) and gemm_f32__avx512
// (AVX-512F, 14x32 register tile), so that the native GEMM never depends on a library recognising the
// CPU (Debian's OpenBLAS 0.3.21 runs its generic Prescott kernels on Sapphire Rapids).
// Each is compiled with per-function target attributes, not with -mavx2/-mavx512f on the file: the same
// binary runs on a baseline x86-64 CPU, and kernels.cpp calls one only when cpuid
// (__builtin_cpu_supports) says the CPU has it. Layout (BLIS/GotoBLAS): C is cut into NC-column blocks,
// K into KC-deep slices; each slice of op(B) is packed into NR-wide panels (zero-padded), each MC-row
// block of op(A) into MR-tall panels, and the microkernel multiplies one MR x kc panel by one kc x NR
// panel in registers; edge tiles use a microkernel of their own size (fewer rows, one vector). All four transposes
// are handled by the packing alone; alpha and beta at the store (beta only on the first K slice;
// beta == 0 never reads C). No allocation after the first call per thread (thread-local pack buffers).
// Only x86-64 compilers see this code; elsewhere the file is empty.
#include "core/kernels/kernels.h"

#if defined(LATENTLAB_HAVE_X86_KERNELS)

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <utility>
#include <vector>

#if defined(LATENTLAB_HAVE_OPENMP)
#include <omp.h>
#endif

#define LL_AVX2 __attribute__((target("avx2,fma")))
#define LL_AVX512 __attribute__((target("avx512f")))

namespace ll {

namespace {

constexpr int kKC = 256;  // K slice: one A panel (MR x KC) and one B panel (KC x NR) sit in L1/L2

// Thread-local, 64-byte aligned pack buffers that only grow.
float* pack_buffer(std::vector<float>& buf, size_t floats) {
  if (buf.size() < floats + 16) buf.resize(floats + 16);
  uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<float*>((p + 63) & ~static_cast<uintptr_t>(63));
}

// op(A)[i0 : i0 + mc, p0 : p0 + kc] into panels of MR rows: panel r holds, for each k, MR consecutive
// values (rows past mc are zero).
template <int MR>
void pack_a(bool ta, const float* A, int lda, int i0, int mc, int p0, int kc, float* out) {
  for (int ir = 0; ir < mc; ir += MR) {
    const int mr = std::min(MR, mc - ir);
    for (int k = 0; k < kc; k++) {
      float* dst = out + static_cast<size_t>(ir) * kc + static_cast<size_t>(k) * MR;
      if (ta) {  // A is [K, M]: row p0 + k holds op(A)'s column
        const float* src = A + static_cast<size_t>(p0 + k) * lda + i0 + ir;
        for (int i = 0; i < mr; i++) dst[i] = src[i];
      } else {
        const float* src = A + static_cast<size_t>(i0 + ir) * lda + p0 + k;
        for (int i = 0; i < mr; i++) dst[i] = src[static_cast<size_t>(i) * lda];
      }
      for (int i = mr; i < MR; i++) dst[i] = 0.0f;
    }
  }
}

// op(B)[p0 : p0 + kc, j0 : j0 + nc] into panels of NR columns: panel r holds, for each k, NR
// consecutive values (columns past nc are zero).
template <int NR>
void pack_b(bool tb, const float* B, int ldb, int p0, int kc, int j0, int nc, float* out) {
  for (int jr = 0; jr < nc; jr += NR) {
    const int nr = std::min(NR, nc - jr);
    float* panel = out + static_cast<size_t>(jr) * kc;
    if (!tb) {  // B is [K, N]: rows are contiguous
      for (int k = 0; k < kc; k++) {
        const float* src = B + static_cast<size_t>(p0 + k) * ldb + j0 + jr;
        float* dst = panel + static_cast<size_t>(k) * NR;
        for (int j = 0; j < nr; j++) dst[j] = src[j];
        for (int j = nr; j < NR; j++) dst[j] = 0.0f;
      }
    } else {  // B is [N, K]: op(B)'s column j is B's row j
      for (int j = 0; j < nr; j++) {
        const float* src = B + static_cast<size_t>(j0 + jr + j) * ldb + p0;
        for (int k = 0; k < kc; k++) panel[static_cast<size_t>(k) * NR + j] = src[k];
      }
      for (int j = nr; j < NR; j++)
        for (int k = 0; k < kc; k++) panel[static_cast<size_t>(k) * NR + j] = 0.0f;
    }
  }
}

// C[mr, nr] = alpha * T + beta * C for an edge tile computed into T[MR, NR] (beta == 0: C not read).
template <int NR>
void store_edge(const float* T, int mr, int nr, float alpha, float beta, float* C, int ldc) {
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) {
      float& c = C[static_cast<size_t>(i) * ldc + j];
      c = beta == 0.0f ? alpha * T[i * NR + j] : alpha * T[i * NR + j] + beta * c;
    }
}

// The microkernels: C[mr, nr] = alpha * A_panel * B_panel + beta * C over kc steps, for MRT rows and NV
// vectors of W columns held in registers (the panels are packed MR and NR wide whatever MRT and NV are).
// Each tile size has its own instantiation (a table indexed by rows and vectors), so a tile at the
// bottom or right edge computes only the rows and vectors it needs; columns past nr in the last vector
// go through a small buffer.
using MicroFn = void (*)(int kc, const float* a, const float* b, float* C, int ldc, float alpha, float beta, int nr);

// ---- AVX2 + FMA: 6 x 16 (12 accumulators, 2 B vectors, 1 broadcast) ----
constexpr int kMR2 = 6, kNR2 = 16, kMC2 = 120, kNC2 = 2048;

template <int MRT, int NV>
LL_AVX2 void micro_avx2(int kc, const float* a, const float* b, float* C, int ldc, float alpha, float beta, int nr) {
  __m256 acc[MRT][NV];
#pragma GCC unroll 6
  for (int i = 0; i < MRT; i++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) acc[i][v] = _mm256_setzero_ps();
  for (int k = 0; k < kc; k++) {
    __m256 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) bv[v] = _mm256_load_ps(b + 8 * v);
#pragma GCC unroll 6
    for (int i = 0; i < MRT; i++) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += kMR2;
    b += kNR2;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (nr == 8 * NV) {
#pragma GCC unroll 6
    for (int i = 0; i < MRT; i++) {
      float* c = C + static_cast<size_t>(i) * ldc;
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) {
        __m256 r = _mm256_mul_ps(va, acc[i][v]);
        if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8 * v), r);
        _mm256_storeu_ps(c + 8 * v, r);
      }
    }
    return;
  }
  alignas(32) float T[MRT * kNR2];
  for (int i = 0; i < MRT; i++)
    for (int v = 0; v < NV; v++) _mm256_store_ps(T + i * kNR2 + 8 * v, acc[i][v]);
  store_edge<kNR2>(T, MRT, nr, alpha, beta, C, ldc);
}

// ---- AVX-512F: 14 x 32 (28 accumulators, 2 B vectors, 1 broadcast: 31 of 32 zmm registers) ----
constexpr int kMR5 = 14, kNR5 = 32, kMC5 = 112, kNC5 = 2048;

template <int MRT, int NV>
LL_AVX512 void micro_avx512(int kc, const float* a, const float* b, float* C, int ldc, float alpha, float beta,
                            int nr) {
  __m512 acc[MRT][NV];
#pragma GCC unroll 14
  for (int i = 0; i < MRT; i++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
  for (int k = 0; k < kc; k++) {
    __m512 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 14
    for (int i = 0; i < MRT; i++) {
      const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += kMR5;
    b += kNR5;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  if (nr == 16 * NV) {
#pragma GCC unroll 14
    for (int i = 0; i < MRT; i++) {
      float* c = C + static_cast<size_t>(i) * ldc;
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) {
        __m512 r = _mm512_mul_ps(va, acc[i][v]);
        if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + 16 * v), r);
        _mm512_storeu_ps(c + 16 * v, r);
      }
    }
    return;
  }
  alignas(64) float T[MRT * kNR5];
  for (int i = 0; i < MRT; i++)
    for (int v = 0; v < NV; v++) _mm512_store_ps(T + i * kNR5 + 16 * v, acc[i][v]);
  store_edge<kNR5>(T, MRT, nr, alpha, beta, C, ldc);
}

// Tables of the instantiations: entry (v - 1) * MR + (m - 1) computes m rows and v vectors.
template <int... I>
constexpr std::array<MicroFn, 2 * sizeof...(I)> avx2_table(std::integer_sequence<int, I...>) {
  return {micro_avx2<I + 1, 1>..., micro_avx2<I + 1, 2>...};
}
template <int... I>
constexpr std::array<MicroFn, 2 * sizeof...(I)> avx512_table(std::integer_sequence<int, I...>) {
  return {micro_avx512<I + 1, 1>..., micro_avx512<I + 1, 2>...};
}
constexpr auto kAvx2Micro = avx2_table(std::make_integer_sequence<int, kMR2>());
constexpr auto kAvx512Micro = avx512_table(std::make_integer_sequence<int, kMR5>());

// One thread's GEMM with the blocking of a microkernel (M, N, K > 0).
template <int MR, int NR, int MC, int NC>
void blocked_gemm(const MicroFn* micro, bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                  const float* B, int ldb, float beta, float* C, int ldc) {
  static thread_local std::vector<float> a_buf, b_buf;
  const int nc_max = std::min(NC, (N + NR - 1) / NR * NR), kc_max = std::min(kKC, K);
  const int mc_max = std::min(MC, (M + MR - 1) / MR * MR);
  float* bp = pack_buffer(b_buf, static_cast<size_t>(kc_max) * nc_max);
  float* ap = pack_buffer(a_buf, static_cast<size_t>(kc_max) * mc_max);
  for (int jc = 0; jc < N; jc += NC) {
    const int nc = std::min(NC, N - jc);
    for (int pc = 0; pc < K; pc += kKC) {
      const int kc = std::min(kKC, K - pc);
      const float beta_slice = pc == 0 ? beta : 1.0f;  // later K slices add to the first one's result
      pack_b<NR>(tb, B, ldb, pc, kc, jc, nc, bp);
      for (int ic = 0; ic < M; ic += MC) {
        const int mc = std::min(MC, M - ic);
        pack_a<MR>(ta, A, lda, ic, mc, pc, kc, ap);
        for (int jr = 0; jr < nc; jr += NR) {
          const int nr = std::min(NR, nc - jr), vectors = nr > NR / 2 ? 2 : 1;
          for (int ir = 0; ir < mc; ir += MR) {
            const int mr = std::min(MR, mc - ir);
            micro[(vectors - 1) * MR + mr - 1](kc, ap + static_cast<size_t>(ir) * kc, bp + static_cast<size_t>(jr) * kc,
                                               C + static_cast<size_t>(ic + ir) * ldc + jc + jr, ldc, alpha,
                                               beta_slice, nr);
          }
        }
      }
    }
  }
}

// With more than one GEMM thread (and outside a parallel region), the larger of M and N is cut into one
// contiguous part per thread, each a GEMM of its own; the parts are fixed by the sizes alone, so the
// result does not depend on timing.
template <int MR, int NR, int MC, int NC>
void x86_gemm(const MicroFn* micro, bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
              const float* B, int ldb, float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return gemm_f32_scale_c(M, N, beta, C, ldc);
  int T = 1;
#if defined(LATENTLAB_HAVE_OPENMP)
  // Below ~8 MFLOP (about 0.1 ms on one core) a second thread's wake-up and join cost about what it
  // saves, and on a loaded machine far more (each join waits for a thread the scheduler may not run).
  if (!omp_in_parallel() && 2.0 * M * N * K >= 8e6) T = gemm_threads();
#endif
  const bool split_m = M >= N;
  const int unit = split_m ? MR : NR, len = split_m ? M : N;
  const int units = (len + unit - 1) / unit;
  T = std::max(1, std::min(T, units));
  if (T == 1) return blocked_gemm<MR, NR, MC, NC>(micro, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#if defined(LATENTLAB_HAVE_OPENMP)
#pragma omp parallel for num_threads(T) schedule(static)
  for (int t = 0; t < T; t++) {
    const int u0 = units * t / T, u1 = units * (t + 1) / T;
    const int lo = u0 * unit, hi = std::min(len, u1 * unit);
    if (hi <= lo) continue;
    if (split_m)
      blocked_gemm<MR, NR, MC, NC>(micro, ta, tb, hi - lo, N, K, alpha, ta ? A + lo : A + static_cast<size_t>(lo) * lda,
                                   lda, B, ldb, beta, C + static_cast<size_t>(lo) * ldc, ldc);
    else
      blocked_gemm<MR, NR, MC, NC>(micro, ta, tb, M, hi - lo, K, alpha, A, lda,
                                   tb ? B + static_cast<size_t>(lo) * ldb : B + lo, ldb, beta, C + lo, ldc);
  }
#endif
}

}  // namespace

bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

bool cpu_has_avx512f() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}

void gemm_f32__avx2(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                    const float* B, int ldb, float beta, float* C, int ldc) {
  x86_gemm<kMR2, kNR2, kMC2, kNC2>(kAvx2Micro.data(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_f32__avx512(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                      const float* B, int ldb, float beta, float* C, int ldc) {
  x86_gemm<kMR5, kNR5, kMC5, kNC5>(kAvx512Micro.data(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace ll

#endif  // LATENTLAB_HAVE_X86_KERNELS
