// Vector quantisation (van den Oord, Vinyals & Kavukcuoglu 2017) as a forward/backward pair on grids of
// code vectors, shared by every model with a discrete code (the VQ-VAE; each level of a VQ-VAE-2):
// the nearest code, the straight-through estimator, the commitment and codebook losses, and the EMA
// codebook update. Grids are channel-first like the convolutions around them: z [B, D, G] for G cells.
// Letters: B batch, D code dimension, G cells per example, K codebook size, N = B*G rows.
// Backward ACCUMULATES (+=) into dze and dcodebook. No allocation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/nn/arena.h"
#include "core/base/rng.h"

namespace ll {

// Rows of the distance matrix vq_nearest computes at a time: its scratch is kVqDistRows * K floats.
constexpr int kVqDistRows = 256;

// Nearest codes. z [N, D] rows, codebook [K, D]: idx[n] = argmin_k ||z_n - e_k||^2, computed as
// ||e_k||^2 - 2 z_n . e_k (||z_n||^2 does not change the argmin); ties go to the lowest k.
// dist is scratch of at least min(N, kVqDistRows) * K floats.
void vq_nearest(int32_t* idx, const float* z, const float* codebook, int N, int K, int D, float* dist);

// Assignment counts [K] and sums of the assigned rows [K, D] (overwritten).
void vq_batch_stats(float* count, float* sum, const float* z, const int32_t* idx, int N, int K, int D);

// One EMA codebook update, number t (from 1), debiased (Sonnet 2; Kingma & Ba's bias correction):
//   w = decay (1 - decay^(t-1)) / (1 - decay^t)          (w = 0 at t = 1: the first update is the batch)
//   N_k = w N_k + (1 - w) n_k;   m_k = w m_k + (1 - w) sum_k
//   n = sum_k N_k;  N~_k = (N_k + eps) / (n + K eps) * n  (Laplace smoothing)
//   e_k = m_k / N~_k, except that a code never chosen since the averages started (N_k exactly 0) keeps
//   its vector (Sonnet would set it to 0 / N~_k = 0, piling all such codes onto the origin).
// ema_count [K] and ema_sum [K, D] hold N and m (the debiased averages).
void vq_ema_update(float* codebook, float* ema_count, float* ema_sum, const float* batch_count,
                   const float* batch_sum, int K, int D, double decay, double eps, int64_t t);

// exp(entropy) of the code distribution counts[K] / sum(counts); 0 when all counts are 0.
double code_perplexity(const int64_t* counts, int K);

// zq [B, D, G] = codebook[idx[b*G + c]] cell by cell (idx in [0, K)).
void vq_lookup(float* zq, const int32_t* idx, const float* codebook, int B, int D, int G);

// Forward: ze [B, D, G] -> rows [B*G, D] (z_e cell by cell, row b*G + c; kept for the EMA statistics),
// idx [B*G] the nearest codes, zq [B, D, G] their vectors, and the per-example loss terms
//   codebook_term[b] = s * sum_{d,c} (sg[z_e] - z_q)^2,  commitment[b] = beta * s * sum_{d,c} (z_e - sg[z_q])^2
// (the squared distance summed in double). dist: scratch of min(B*G, kVqDistRows) * K floats.
void vq_forward(float* zq, int32_t* idx, float* rows, float* codebook_term, float* commitment,
                const float* ze, const float* codebook, int B, int D, int G, int K, float s, float beta,
                float* dist);
// Backward, scaled by loss_scale. The decoder read z_e + sg(z_q - z_e) (= z_q): its gradient dzq passes
// straight through to z_e; the commitment term adds its own:
//   dze += dzq + 2 beta s (z_e - z_q)
// and the codebook term moves the chosen codes (skipped when dcodebook is null, as with EMA):
//   dcodebook[k] += 2 s (z_q - z_e), summed over the cells that chose k.
void vq_backward(float* dze, float* dcodebook, const float* dzq, const float* ze, const float* zq,
                 const int32_t* idx, int B, int D, int G, float s, float beta, float loss_scale);

// The codebook as a layer: config plus its arena slice "<name>.weight" [K, D] (nn.Embedding's layout).
struct VectorQuantizer {
  int K = 0, D = 0;
  int codebook = -1;  // slot id
  void add_to(ParamArena& arena, const std::string& name, int codes, int dim);
  // U(-1/K, 1/K), as the VQ-VAE paper's reference code.
  void init(ParamArena& arena, Rng& rng) const;
  void forward(const ParamArena& arena, float* zq, int32_t* idx, float* rows, float* codebook_term,
               float* commitment, const float* ze, int B, int G, float s, float beta, float* dist) const {
    vq_forward(zq, idx, rows, codebook_term, commitment, ze, arena.param(codebook), B, D, G, K, s, beta,
               dist);
  }
  // codebook_loss = false (EMA): the codebook gets no gradient.
  void backward(ParamArena& arena, float* dze, const float* dzq, const float* ze, const float* zq,
                const int32_t* idx, int B, int G, float s, float beta, float loss_scale,
                bool codebook_loss) const {
    vq_backward(dze, codebook_loss ? arena.grad(codebook) : nullptr, dzq, ze, zq, idx, B, D, G, s, beta,
                loss_scale);
  }
};

}  // namespace ll
