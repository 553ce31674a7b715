// Categorical cross-entropy; see categorical.h.
#include "core/nn/categorical.h"

#include <cmath>

namespace ll {

void softmax_cross_entropy_forward(float* loss, float* probs, const float* logits,
                                   const int32_t* target, int B, int K, int N) {
  for (int b = 0; b < B; b++) {
    const float* l = logits + static_cast<size_t>(b) * K * N;
    float* p = probs + static_cast<size_t>(b) * K * N;
    double acc = 0.0;
    for (int n = 0; n < N; n++) {
      // log softmax = l - max - log sum exp(l - max)
      float mx = l[n];
      for (int k = 1; k < K; k++) mx = std::fmax(mx, l[k * N + n]);
      double sum = 0.0;
      for (int k = 0; k < K; k++) {
        float e = std::exp(l[k * N + n] - mx);
        p[k * N + n] = e;
        sum += e;
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int k = 0; k < K; k++) p[k * N + n] *= inv;
      const int t = target[static_cast<size_t>(b) * N + n];
      acc += -(static_cast<double>(l[t * N + n]) - mx - std::log(sum));
    }
    loss[b] = static_cast<float>(acc);
  }
}

void softmax_cross_entropy_backward(float* dlogits, const float* probs, const int32_t* target,
                                    float scale, int B, int K, int N) {
  // d/dl_k of -log softmax_t = softmax_k - [k == t]
  for (int b = 0; b < B; b++) {
    float* d = dlogits + static_cast<size_t>(b) * K * N;
    const float* p = probs + static_cast<size_t>(b) * K * N;
    for (int i = 0; i < K * N; i++) d[i] += scale * p[i];
    for (int n = 0; n < N; n++) d[target[static_cast<size_t>(b) * N + n] * N + n] -= scale;
  }
}

}  // namespace ll
