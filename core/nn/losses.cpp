// Losses; see losses.h. Sums per example are accumulated in double: they become the reported figures.
#include "core/nn/losses.h"

#include <cmath>
#include <cstring>

#include "core/kernels/fastmath.h"

namespace ll {

void bce_logits_forward__scalar(float* loss, float* probs, const float* logits, const float* target,
                                int B, int N) {
  for (int b = 0; b < B; b++) {
    const float* l = logits + static_cast<size_t>(b) * N;
    const float* x = target + static_cast<size_t>(b) * N;
    float* p = probs ? probs + static_cast<size_t>(b) * N : nullptr;
    double acc = 0.0;
    for (int i = 0; i < N; i++) {
      float e = std::exp(-std::fabs(l[i]));  // in (0, 1]: never overflows
      float softplus = (l[i] > 0.0f ? l[i] : 0.0f) + std::log1p(e);
      acc += static_cast<double>(softplus - x[i] * l[i]);
      if (p) p[i] = l[i] >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
    loss[b] = static_cast<float>(acc);
  }
}

void bce_logits_forward(float* loss, float* probs, const float* logits, const float* target, int B,
                        int N) {
  // Same arithmetic as the scalar reference, but with exp/log1p the compiler can vectorise, in chunks
  // whose per-element terms are summed in double over 8 independent lanes (a vectorisable order).
  constexpr int kChunk = 256;
  float term[kChunk], sig[kChunk];
  for (int b = 0; b < B; b++) {
    const float* l = logits + static_cast<size_t>(b) * N;
    const float* x = target + static_cast<size_t>(b) * N;
    float* p = probs ? probs + static_cast<size_t>(b) * N : nullptr;
    double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int i0 = 0; i0 < N; i0 += kChunk) {
      const int n = N - i0 < kChunk ? N - i0 : kChunk;
      for (int i = 0; i < n; i++) {
        const float li = l[i0 + i];
        const float e = exp_f32(-std::fabs(li));
        const float softplus = (li > 0.0f ? li : 0.0f) + log1p_unit_f32(e);
        term[i] = softplus - x[i0 + i] * li;
        const float inv = 1.0f / (1.0f + e);
        sig[i] = li >= 0.0f ? inv : e * inv;
      }
      int i = 0;
      for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) lanes[j] += static_cast<double>(term[i + j]);
      for (; i < n; i++) lanes[0] += static_cast<double>(term[i]);
      if (p) std::memcpy(p + i0, sig, sizeof(float) * static_cast<size_t>(n));
    }
    loss[b] = static_cast<float>(((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                                 ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7])));
  }
}

void bce_logits_backward(float* dlogits, const float* probs, const float* target, float scale, int B,
                         int N) {
  size_t n = static_cast<size_t>(B) * N;
  for (size_t i = 0; i < n; i++) dlogits[i] += scale * (probs[i] - target[i]);
}

void mse_forward(float* loss, const float* pred, const float* target, int B, int N) {
  for (int b = 0; b < B; b++) {
    const float* p = pred + static_cast<size_t>(b) * N;
    const float* t = target + static_cast<size_t>(b) * N;
    double acc = 0.0;
    for (int i = 0; i < N; i++) {
      double d = static_cast<double>(p[i]) - t[i];
      acc += d * d;
    }
    loss[b] = static_cast<float>(acc);
  }
}

void mse_backward(float* dpred, const float* pred, const float* target, float scale, int B, int N) {
  size_t n = static_cast<size_t>(B) * N;
  for (size_t i = 0; i < n; i++) dpred[i] += scale * 2.0f * (pred[i] - target[i]);
}

void gaussian_kl_forward(float* kl, const float* mu, const float* logvar, int B, int Z) {
  for (int b = 0; b < B; b++) {
    const float* m = mu + static_cast<size_t>(b) * Z;
    const float* lv = logvar + static_cast<size_t>(b) * Z;
    double acc = 0.0;
    for (int j = 0; j < Z; j++)
      acc += 1.0 + lv[j] - static_cast<double>(m[j]) * m[j] - std::exp(static_cast<double>(lv[j]));
    kl[b] = static_cast<float>(-0.5 * acc);
  }
}

void gaussian_kl_backward(float* dmu, float* dlogvar, const float* mu, const float* logvar, float scale,
                          int B, int Z) {
  size_t n = static_cast<size_t>(B) * Z;
  for (size_t i = 0; i < n; i++) {
    dmu[i] += scale * mu[i];
    dlogvar[i] += scale * 0.5f * (std::exp(logvar[i]) - 1.0f);
  }
}

}  // namespace ll
