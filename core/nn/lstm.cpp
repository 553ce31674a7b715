// The LSTM layer (lstm.h): the input projections of all steps in one GEMM, one GEMM per step for the
// recurrence, and the weight gradients of all steps in one GEMM each after the backward sweep.
#include "core/nn/lstm.h"

#include <algorithm>
#include <cmath>

#include "core/kernels/kernels.h"
#include "core/nn/layers.h"

namespace ll {

void Lstm::add_to(ParamArena& arena, const std::string& name, int input_size, int hidden_size) {
  C = input_size;
  H = hidden_size;
  weight_ih = arena.add(name + ".weight_ih_l0", {4 * H, C});
  weight_hh = arena.add(name + ".weight_hh_l0", {4 * H, H});
  bias_ih = arena.add(name + ".bias_ih_l0", {4 * H});
  bias_hh = arena.add(name + ".bias_hh_l0", {4 * H});
}

void Lstm::init(ParamArena& arena, Rng& rng) const {
  const float bound = 1.0f / std::sqrt(static_cast<float>(H));
  rng.fill_uniform(arena.param(weight_ih), static_cast<size_t>(4) * H * C, -bound, bound);
  rng.fill_uniform(arena.param(weight_hh), static_cast<size_t>(4) * H * H, -bound, bound);
  rng.fill_uniform(arena.param(bias_ih), static_cast<size_t>(4) * H, -bound, bound);
  rng.fill_uniform(arena.param(bias_hh), static_cast<size_t>(4) * H, -bound, bound);
}

void Lstm::forward(const ParamArena& arena, float* h, float* tape, const float* x, const float* h0,
                   const float* c0, int T, int B) const {
  const size_t G = static_cast<size_t>(4) * H, rows = static_cast<size_t>(T) * B;
  float* gates = tape;                  // [T, B, 4H]
  float* cells = tape + rows * G;       // [T, B, H]
  float* tanh_c = cells + rows * H;     // [T, B, H]
  const float* w_hh = arena.param(weight_hh);
  const float* b_ih = arena.param(bias_ih);
  const float* b_hh = arena.param(bias_hh);
  // a[T*B, 4H] = x W_ih^T for every step at once.
  gemm_f32(false, true, static_cast<int>(rows), static_cast<int>(G), C, 1.0f, x, C, arena.param(weight_ih), C,
           0.0f, gates, static_cast<int>(G));
  for (int t = 0; t < T; t++) {
    float* a = gates + static_cast<size_t>(t) * B * G;
    for (int b = 0; b < B; b++)
      for (size_t j = 0; j < G; j++) a[b * G + j] += b_ih[j] + b_hh[j];
    const float* h_prev = t > 0 ? h + static_cast<size_t>(t - 1) * B * H : h0;
    const float* c_prev = t > 0 ? cells + static_cast<size_t>(t - 1) * B * H : c0;
    if (h_prev)
      gemm_f32(false, true, B, static_cast<int>(G), H, 1.0f, h_prev, H, w_hh, H, 1.0f, a, static_cast<int>(G));
    float* c = cells + static_cast<size_t>(t) * B * H;
    float* tc = tanh_c + static_cast<size_t>(t) * B * H;
    float* ht = h + static_cast<size_t>(t) * B * H;
    for (int b = 0; b < B; b++) {
      float* ab = a + b * G;
      for (int j = 0; j < H; j++) {
        const float i = stable_sigmoid(ab[j]), f = stable_sigmoid(ab[H + j]);
        const float g = std::tanh(ab[2 * H + j]), o = stable_sigmoid(ab[3 * H + j]);
        ab[j] = i;
        ab[H + j] = f;
        ab[2 * H + j] = g;
        ab[3 * H + j] = o;
        const size_t k = static_cast<size_t>(b) * H + j;
        c[k] = i * g + (c_prev ? f * c_prev[k] : 0.0f);
        tc[k] = std::tanh(c[k]);
        ht[k] = o * tc[k];
      }
    }
  }
}

void Lstm::backward(ParamArena& arena, float* dx, float* dh0, float* dc0, float* scratch, const float* dh,
                    const float* dc_last, const float* h, const float* tape, const float* x, const float* h0,
                    const float* c0, int T, int B) const {
  const size_t G = static_cast<size_t>(4) * H, rows = static_cast<size_t>(T) * B, BH = static_cast<size_t>(B) * H;
  const float* gates = tape;
  const float* cells = tape + rows * G;
  const float* tanh_c = cells + rows * H;
  float* da = scratch;                // [T, B, 4H]
  float* dh_next = scratch + rows * G;  // [B, H]: dL/dh_t through step t+1
  float* dc_next = dh_next + BH;        // [B, H]: dL/dc_t through step t+1
  std::fill(dh_next, dh_next + BH, 0.0f);
  if (dc_last)
    std::copy(dc_last, dc_last + BH, dc_next);
  else
    std::fill(dc_next, dc_next + BH, 0.0f);
  const float* w_hh = arena.param(weight_hh);
  for (int t = T - 1; t >= 0; t--) {
    const float* gt = gates + static_cast<size_t>(t) * B * G;
    const float* tc = tanh_c + static_cast<size_t>(t) * BH;
    const float* c_prev = t > 0 ? cells + static_cast<size_t>(t - 1) * BH : c0;
    const float* dht = dh + static_cast<size_t>(t) * BH;
    float* dat = da + static_cast<size_t>(t) * B * G;
    for (int b = 0; b < B; b++) {
      const float* g4 = gt + b * G;
      float* d4 = dat + b * G;
      for (int j = 0; j < H; j++) {
        const size_t k = static_cast<size_t>(b) * H + j;
        const float i = g4[j], f = g4[H + j], g = g4[2 * H + j], o = g4[3 * H + j];
        const float e = dht[k] + dh_next[k];
        const float dc = dc_next[k] + e * o * (1.0f - tc[k] * tc[k]);
        const float cp = c_prev ? c_prev[k] : 0.0f;
        d4[j] = dc * g * i * (1.0f - i);
        d4[H + j] = dc * cp * f * (1.0f - f);
        d4[2 * H + j] = dc * i * (1.0f - g * g);
        d4[3 * H + j] = e * tc[k] * o * (1.0f - o);
        dc_next[k] = dc * f;
      }
    }
    // dh' = da_t W_hh: what h_{t-1} receives through step t.
    gemm_f32(false, false, B, H, static_cast<int>(G), 1.0f, dat, static_cast<int>(G), w_hh, H, 0.0f, dh_next, H);
  }
  if (dh0)
    for (size_t k = 0; k < BH; k++) dh0[k] += dh_next[k];
  if (dc0)
    for (size_t k = 0; k < BH; k++) dc0[k] += dc_next[k];
  const int Gi = static_cast<int>(G);
  // dW_ih += da^T x over all steps; dW_hh += da_t^T h_{t-1} (steps 1..T-1 at once, step 0 with h0).
  gemm_f32(true, false, Gi, C, static_cast<int>(rows), 1.0f, da, Gi, x, C, 1.0f, arena.grad(weight_ih), C);
  if (T > 1)
    gemm_f32(true, false, Gi, H, static_cast<int>((T - 1) * static_cast<size_t>(B)), 1.0f, da + B * G, Gi, h, H,
             1.0f, arena.grad(weight_hh), H);
  if (h0) gemm_f32(true, false, Gi, H, B, 1.0f, da, Gi, h0, H, 1.0f, arena.grad(weight_hh), H);
  float* db_ih = arena.grad(bias_ih);
  float* db_hh = arena.grad(bias_hh);
  for (size_t r = 0; r < rows; r++)
    for (size_t j = 0; j < G; j++) {
      db_ih[j] += da[r * G + j];
      db_hh[j] += da[r * G + j];
    }
  if (dx)
    gemm_f32(false, false, static_cast<int>(rows), C, Gi, 1.0f, da, Gi, arena.param(weight_ih), C, 1.0f, dx, C);
}

}  // namespace ll
