// Losses; see losses.h. Sums per example are accumulated in double: they become the reported figures.
#include "core/losses.h"

#include <cmath>

namespace ll {

void bce_logits_forward(float* loss, float* probs, const float* logits, const float* target, int B,
                        int N) {
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
