// Vector quantisation: nearest codes, the straight-through / commitment / codebook pair, the EMA
// update; see vq.h.
#include "core/nn/vq.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "core/kernels/kernels.h"

namespace ll {

// ---------------------------------------------------------------------------------------------
// Kernels.

void vq_nearest(int32_t* idx, const float* z, const float* codebook, int N, int K, int D, float* dist) {
  for (int first = 0; first < N; first += kVqDistRows) {
    const int n = std::min(kVqDistRows, N - first);
    // dist[n, K] = -2 z[n, D] * codebook[K, D]^T
    gemm_f32(false, true, n, K, D, -2.0f, z + static_cast<size_t>(first) * D, D, codebook, D, 0.0f,
             dist, K);
    for (int k = 0; k < K; k++) {
      const float* e = codebook + static_cast<size_t>(k) * D;
      float sq = 0.0f;
      for (int d = 0; d < D; d++) sq += e[d] * e[d];
      for (int r = 0; r < n; r++) dist[static_cast<size_t>(r) * K + k] += sq;
    }
    for (int r = 0; r < n; r++) {
      const float* row = dist + static_cast<size_t>(r) * K;
      int best = 0;
      for (int k = 1; k < K; k++)
        if (row[k] < row[best]) best = k;
      idx[first + r] = best;
    }
  }
}

void vq_batch_stats(float* count, float* sum, const float* z, const int32_t* idx, int N, int K, int D) {
  std::fill(count, count + K, 0.0f);
  std::fill(sum, sum + static_cast<size_t>(K) * D, 0.0f);
  for (int n = 0; n < N; n++) {
    const int k = idx[n];
    count[k] += 1.0f;
    float* s = sum + static_cast<size_t>(k) * D;
    const float* v = z + static_cast<size_t>(n) * D;
    for (int d = 0; d < D; d++) s[d] += v[d];
  }
}

void vq_ema_update(float* codebook, float* ema_count, float* ema_sum, const float* batch_count,
                   const float* batch_sum, int K, int D, double decay, double eps, int64_t t) {
  assert(t >= 1);
  // 1 - decay^t and 1 - decay^(t-1): the debiasing denominators after and before this update.
  const double after = 1.0 - std::pow(decay, static_cast<double>(t));
  const double before = 1.0 - std::pow(decay, static_cast<double>(t - 1));
  const float w = after > 0.0 ? static_cast<float>(decay * before / after) : 0.0f;
  const float one_minus_w = 1.0f - w;
  double n = 0.0;
  for (int k = 0; k < K; k++) {
    ema_count[k] = w * ema_count[k] + one_minus_w * batch_count[k];
    n += ema_count[k];
    float* m = ema_sum + static_cast<size_t>(k) * D;
    const float* s = batch_sum + static_cast<size_t>(k) * D;
    for (int d = 0; d < D; d++) m[d] = w * m[d] + one_minus_w * s[d];
  }
  for (int k = 0; k < K; k++) {
    // A code no cell has chosen since the averages started (N_k exactly 0) keeps its vector: Sonnet
    // would set it to 0 / eps = 0, piling every such code onto the origin (one point, ties).
    if (ema_count[k] == 0.0f) continue;
    const double smoothed = (ema_count[k] + eps) / (n + K * eps) * n;
    const float inv = static_cast<float>(1.0 / smoothed);
    const float* m = ema_sum + static_cast<size_t>(k) * D;
    float* e = codebook + static_cast<size_t>(k) * D;
    for (int d = 0; d < D; d++) e[d] = m[d] * inv;
  }
}

double code_perplexity(const int64_t* counts, int K) {
  double total = 0.0;
  for (int k = 0; k < K; k++) total += static_cast<double>(counts[k]);
  if (total <= 0.0) return 0.0;
  double entropy = 0.0;
  for (int k = 0; k < K; k++) {
    if (counts[k] <= 0) continue;
    const double p = counts[k] / total;
    entropy -= p * std::log(p);
  }
  return std::exp(entropy);
}

void vq_lookup(float* zq, const int32_t* idx, const float* codebook, int B, int D, int G) {
  for (int b = 0; b < B; b++)
    for (int c = 0; c < G; c++) {
      const float* e = codebook + static_cast<size_t>(idx[static_cast<size_t>(b) * G + c]) * D;
      for (int d = 0; d < D; d++) zq[(static_cast<size_t>(b) * D + d) * G + c] = e[d];
    }
}

// ---------------------------------------------------------------------------------------------
// The layer pair.

void vq_forward(float* zq, int32_t* idx, float* rows, float* codebook_term, float* commitment,
                const float* ze, const float* codebook, int B, int D, int G, int K, float s, float beta,
                float* dist) {
  // rows[b*G + c, d] = z_e[b, d, c]
  for (int b = 0; b < B; b++)
    for (int d = 0; d < D; d++) {
      const float* src = ze + (static_cast<size_t>(b) * D + d) * G;
      float* dst = rows + static_cast<size_t>(b) * G * D + d;
      for (int c = 0; c < G; c++) dst[static_cast<size_t>(c) * D] = src[c];
    }
  vq_nearest(idx, rows, codebook, B * G, K, D, dist);
  vq_lookup(zq, idx, codebook, B, D, G);
  const size_t per = static_cast<size_t>(D) * G;
  for (int b = 0; b < B; b++) {
    const float* e = ze + b * per;
    const float* q = zq + b * per;
    double sq = 0.0;
    for (size_t i = 0; i < per; i++) {
      const double diff = static_cast<double>(e[i]) - q[i];
      sq += diff * diff;
    }
    codebook_term[b] = static_cast<float>(s * sq);
    commitment[b] = static_cast<float>(beta * s * sq);
  }
}

void vq_backward(float* dze, float* dcodebook, const float* dzq, const float* ze, const float* zq,
                 const int32_t* idx, int B, int D, int G, float s, float beta, float loss_scale) {
  // Straight-through: d(z_e + sg(z_q - z_e))/dz_e is the identity, so dz_e gets dz_q.
  // Commitment: d/dz_e beta s ||z_e - sg[z_q]||^2 = 2 beta s (z_e - z_q).
  const size_t n = static_cast<size_t>(B) * D * G;
  const float c = 2.0f * beta * s * loss_scale;
  for (size_t i = 0; i < n; i++) dze[i] += dzq[i] + c * (ze[i] - zq[i]);
  if (!dcodebook) return;
  // Codebook loss: d/de_k s ||sg[z_e] - e_k||^2 = 2 s (e_k - z_e), summed over the cells choosing k.
  const float cb = 2.0f * s * loss_scale;
  for (int b = 0; b < B; b++)
    for (int cell = 0; cell < G; cell++) {
      float* de = dcodebook + static_cast<size_t>(idx[static_cast<size_t>(b) * G + cell]) * D;
      for (int d = 0; d < D; d++) {
        const size_t i = (static_cast<size_t>(b) * D + d) * G + cell;
        de[d] += cb * (zq[i] - ze[i]);
      }
    }
}

void VectorQuantizer::add_to(ParamArena& arena, const std::string& name, int codes, int dim) {
  K = codes;
  D = dim;
  codebook = arena.add(name + ".weight", {K, D});
}

void VectorQuantizer::init(ParamArena& arena, Rng& rng) const {
  const float bound = 1.0f / static_cast<float>(K);
  rng.fill_uniform(arena.param(codebook), static_cast<size_t>(K) * D, -bound, bound);
}

}  // namespace ll
