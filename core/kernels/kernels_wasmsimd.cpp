// GEMM for WebAssembly SIMD128, written with wasm_simd128.h: gemm_f32__wasmsimd, which gemm_f32()
// uses in the wasm build. Same contract as gemm_f32__scalar (kernels.h), which is its test oracle.
// Compiled only with -msimd128; elsewhere this file is empty. No allocation: the packed panel is a
// stack buffer.
//
// Blocking (all transposes share it):
//   K in blocks of kKc; N in panels of 8 columns (two f32x4); M in tiles of kMr rows.
//   For each (K block, panel), op(B)'s kc x 8 values are read straight from B when they are already
//   rows of 8 contiguous floats (B not transposed, full panel), else packed into a [kc][8] buffer
//   (B transposed: a 4x4 SIMD transpose; or the last, partial panel: zero padded). Loop order: when
//   op(B)'s whole K block fits in L1 (B not transposed, kc * N <= kSmallB: the small per-image conv
//   products), A is passed over once, row tile by row tile, against every panel; otherwise panel by
//   panel, the panel (8 KB) staying in L1 while every row tile of A passes over it.
//   The microkernel keeps a kMr x 8 tile of C in 2*kMr f32x4 accumulators; each k step is two loads
//   of B, kMr splat loads of op(A) (either transpose: one strided pointer), and 2*kMr mul + add (no
//   fused multiply-add in SIMD128 without relaxed SIMD).
//   The first K block applies beta (beta == 0: C is not read); later blocks add to C.
#include "core/kernels/kernels.h"

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>

#include <algorithm>

namespace ll {

namespace {

constexpr int kMr = 4;    // rows of C per microkernel tile
constexpr int kNr = 8;    // columns of C per panel (two f32x4)
constexpr int kKc = 256;  // depth of a K block: the packed panel is kKc * 8 floats = 8 KB
constexpr size_t kSmallB = 8192;  // floats of op(B)'s K block (32 KB) that L1 holds alongside the rest

// One tile: C[MR, nc] (nc <= 4 * NV) = alpha * op(A)[MR, kc] * panel[kc, 4 * NV] (+ beta C or + C).
// op(A)(r, k) is a[r * lda + k] (TA false) or a[k * lda + r] (TA true); panel row k is at b + k * ldbk.
template <int MR, int NV, bool TA>
void tile(int kc, const float* a, int lda, const float* b, int ldbk, float* c, int ldc, int nc,
          float alpha, float beta, bool first) {
  v128_t acc[MR][NV];
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = wasm_f32x4_splat(0.0f);
  for (int k = 0; k < kc; k++) {
    v128_t bv[NV];
    for (int v = 0; v < NV; v++) bv[v] = wasm_v128_load(b + 4 * v);
    b += ldbk;
    for (int r = 0; r < MR; r++) {
      v128_t av = wasm_v128_load32_splat(TA ? a + static_cast<size_t>(k) * lda + r
                                            : a + static_cast<size_t>(r) * lda + k);
      for (int v = 0; v < NV; v++) acc[r][v] = wasm_f32x4_add(acc[r][v], wasm_f32x4_mul(av, bv[v]));
    }
  }
  const v128_t valpha = wasm_f32x4_splat(alpha), vbeta = wasm_f32x4_splat(beta);
  const bool read_c = !first || beta != 0.0f;
  const v128_t vscale = first ? vbeta : wasm_f32x4_splat(1.0f);
  for (int r = 0; r < MR; r++) {
    float* row = c + static_cast<size_t>(r) * ldc;
    if (nc == 4 * NV) {
      for (int v = 0; v < NV; v++) {
        v128_t out = wasm_f32x4_mul(acc[r][v], valpha);
        if (read_c) out = wasm_f32x4_add(out, wasm_f32x4_mul(wasm_v128_load(row + 4 * v), vscale));
        wasm_v128_store(row + 4 * v, out);
      }
    } else {
      alignas(16) float tmp[4 * NV];
      for (int v = 0; v < NV; v++) wasm_v128_store(tmp + 4 * v, wasm_f32x4_mul(acc[r][v], valpha));
      const float scale = first ? beta : 1.0f;
      for (int j = 0; j < nc; j++) row[j] = read_c ? tmp[j] + scale * row[j] : tmp[j];
    }
  }
}

template <int NV, bool TA>
void tile_rows(int mr, int kc, const float* a, int lda, const float* b, int ldbk, float* c, int ldc,
               int nc, float alpha, float beta, bool first) {
  static_assert(kMr == 4, "one case per row count below");
  switch (mr) {
    case 4: tile<4, NV, TA>(kc, a, lda, b, ldbk, c, ldc, nc, alpha, beta, first); break;
    case 3: tile<3, NV, TA>(kc, a, lda, b, ldbk, c, ldc, nc, alpha, beta, first); break;
    case 2: tile<2, NV, TA>(kc, a, lda, b, ldbk, c, ldc, nc, alpha, beta, first); break;
    default: tile<1, NV, TA>(kc, a, lda, b, ldbk, c, ldc, nc, alpha, beta, first); break;
  }
}

// panel[k][0..8) = op(B)(k0 + k, j0 + 0..8) for k < kc, zero beyond column nc.
// op(B)(k, j) is B[k * ldb + j] (not transposed) or B[j * ldb + k] (transposed).
void pack_panel(float* panel, bool trans_b, const float* B, int ldb, int k0, int kc, int j0, int nc) {
  if (trans_b && nc == kNr) {
    // Rows j0..j0+8 of B, 4 k at a time: two 4x4 transposes.
    const float* rows[kNr];
    for (int j = 0; j < kNr; j++) rows[j] = B + static_cast<size_t>(j0 + j) * ldb + k0;
    int k = 0;
    for (; k + 4 <= kc; k += 4) {
      for (int h = 0; h < 2; h++) {
        v128_t r0 = wasm_v128_load(rows[4 * h] + k), r1 = wasm_v128_load(rows[4 * h + 1] + k);
        v128_t r2 = wasm_v128_load(rows[4 * h + 2] + k), r3 = wasm_v128_load(rows[4 * h + 3] + k);
        v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5);
        v128_t t2 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7), t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
        float* p = panel + static_cast<size_t>(k) * kNr + 4 * h;
        wasm_v128_store(p, wasm_i32x4_shuffle(t0, t1, 0, 1, 4, 5));
        wasm_v128_store(p + kNr, wasm_i32x4_shuffle(t0, t1, 2, 3, 6, 7));
        wasm_v128_store(p + 2 * kNr, wasm_i32x4_shuffle(t2, t3, 0, 1, 4, 5));
        wasm_v128_store(p + 3 * kNr, wasm_i32x4_shuffle(t2, t3, 2, 3, 6, 7));
      }
    }
    for (; k < kc; k++)
      for (int j = 0; j < kNr; j++) panel[k * kNr + j] = rows[j][k];
    return;
  }
  for (int k = 0; k < kc; k++) {
    float* p = panel + static_cast<size_t>(k) * kNr;
    for (int j = 0; j < nc; j++)
      p[j] = trans_b ? B[static_cast<size_t>(j0 + j) * ldb + k0 + k] : B[static_cast<size_t>(k0 + k) * ldb + j0 + j];
    for (int j = nc; j < kNr; j++) p[j] = 0.0f;
  }
}

template <bool TA>
void gemm_blocked(bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                  const float* B, int ldb, float beta, float* C, int ldc) {
  alignas(16) float panel[kKc * kNr];
  for (int k0 = 0; k0 < K; k0 += kKc) {
    const int kc = std::min(kKc, K - k0);
    const bool first = k0 == 0;
    auto run_tile = [&](int i0, int j0, const float* bp, int ldbk) {
      const int mr = std::min(kMr, M - i0), nc = std::min(kNr, N - j0);
      const float* a = TA ? A + static_cast<size_t>(k0) * lda + i0 : A + static_cast<size_t>(i0) * lda + k0;
      float* c = C + static_cast<size_t>(i0) * ldc + j0;
      if (nc > 4) tile_rows<2, TA>(mr, kc, a, lda, bp, ldbk, c, ldc, nc, alpha, beta, first);
      else tile_rows<1, TA>(mr, kc, a, lda, bp, ldbk, c, ldc, nc, alpha, beta, first);
    };
    if (!trans_b && static_cast<size_t>(kc) * N <= kSmallB) {
      // op(B)'s K block fits in L1: read it in place (the partial last panel packed once), and pass
      // over A once, row tile by row tile.
      const int full = N / kNr * kNr;
      if (full < N) pack_panel(panel, false, B, ldb, k0, kc, full, N - full);
      for (int i0 = 0; i0 < M; i0 += kMr) {
        for (int j0 = 0; j0 < full; j0 += kNr) run_tile(i0, j0, B + static_cast<size_t>(k0) * ldb + j0, ldb);
        if (full < N) run_tile(i0, full, panel, kNr);
      }
      continue;
    }
    for (int j0 = 0; j0 < N; j0 += kNr) {
      const int nc = std::min(kNr, N - j0);
      const float* bp = panel;
      int ldbk = kNr;
      if (!trans_b && nc == kNr) {
        bp = B + static_cast<size_t>(k0) * ldb + j0;
        ldbk = ldb;
      } else {
        pack_panel(panel, trans_b, B, ldb, k0, kc, j0, nc);
      }
      for (int i0 = 0; i0 < M; i0 += kMr) run_tile(i0, j0, bp, ldbk);
    }
  }
}

}  // namespace

// One row of op(A) (M == 1: single-image inference), a contiguous a[K]. The 4x8 tiles would waste
// three of their four rows on it.
//   B transposed (B [N,K], the layers' weights): c_n = a . B_n, four rows of B per pass, 4 lanes each.
//   B not transposed (B [K,N]): c += a_k * B_k, row after row, 8 columns per step.
static void gemv_wasmsimd(bool trans_b, int N, int K, float alpha, const float* a, const float* B, int ldb, float beta,
                   float* c) {
  if (trans_b) {
    auto dot_tail = [&](const float* row, int k0) {
      float t = 0.0f;
      for (int k = k0; k < K; k++) t += a[k] * row[k];
      return t;
    };
    auto store = [&](int n, float dot) { c[n] = alpha * dot + (beta == 0.0f ? 0.0f : beta * c[n]); };
    auto hsum = [](v128_t v) {
      return wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 2) +
             wasm_f32x4_extract_lane(v, 3);
    };
    const int K4 = K & ~3;
    int n = 0;
    for (; n + 4 <= N; n += 4) {
      const float* r0 = B + static_cast<size_t>(n) * ldb;
      const float* r1 = r0 + ldb;
      const float* r2 = r1 + ldb;
      const float* r3 = r2 + ldb;
      v128_t s0 = wasm_f32x4_splat(0.0f), s1 = s0, s2 = s0, s3 = s0;
      for (int k = 0; k < K4; k += 4) {
        const v128_t x = wasm_v128_load(a + k);
        s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(x, wasm_v128_load(r0 + k)));
        s1 = wasm_f32x4_add(s1, wasm_f32x4_mul(x, wasm_v128_load(r1 + k)));
        s2 = wasm_f32x4_add(s2, wasm_f32x4_mul(x, wasm_v128_load(r2 + k)));
        s3 = wasm_f32x4_add(s3, wasm_f32x4_mul(x, wasm_v128_load(r3 + k)));
      }
      store(n, hsum(s0) + dot_tail(r0, K4));
      store(n + 1, hsum(s1) + dot_tail(r1, K4));
      store(n + 2, hsum(s2) + dot_tail(r2, K4));
      store(n + 3, hsum(s3) + dot_tail(r3, K4));
    }
    for (; n < N; n++) {
      const float* r = B + static_cast<size_t>(n) * ldb;
      v128_t s0 = wasm_f32x4_splat(0.0f);
      for (int k = 0; k < K4; k += 4) s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(wasm_v128_load(a + k), wasm_v128_load(r + k)));
      store(n, hsum(s0) + dot_tail(r, K4));
    }
    return;
  }
  // c = beta * c (beta == 0: zeros without reading), then c += (alpha a_k) B_k for each k.
  gemm_f32_scale_c(1, N, beta, c, N);
  const int N8 = N & ~7;
  for (int k = 0; k < K; k++) {
    const float ak = alpha * a[k];
    const float* row = B + static_cast<size_t>(k) * ldb;
    const v128_t s = wasm_f32x4_splat(ak);
    int n = 0;
    for (; n < N8; n += 8) {
      wasm_v128_store(c + n, wasm_f32x4_add(wasm_v128_load(c + n), wasm_f32x4_mul(s, wasm_v128_load(row + n))));
      wasm_v128_store(c + n + 4, wasm_f32x4_add(wasm_v128_load(c + n + 4), wasm_f32x4_mul(s, wasm_v128_load(row + n + 4))));
    }
    for (; n < N; n++) c[n] += ak * row[n];
  }
}

void gemm_f32__wasmsimd(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                        int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return gemm_f32_scale_c(M, N, beta, C, ldc);
  if (M == 1 && (!trans_a || lda == 1)) {  // op(A) is one contiguous row
    gemv_wasmsimd(trans_b, N, K, alpha, A, B, ldb, beta, C);
    return;
  }
  if (trans_a) gemm_blocked<true>(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else gemm_blocked<false>(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace ll

#endif  // __wasm_simd128__
