// Categorical cross-entropy from logits, per cell, over K classes laid out as channels (NCHW):
// logits [B, K, N] (N cells per example), targets [B, N] class indices. The loss of example b is the
// negative log-likelihood summed over its cells: sum_n -log softmax(logits[b, :, n])[target[b, n]],
// computed with the log-sum-exp trick. Backward ADDS scale * (softmax - onehot) into dlogits.
#pragma once
#include <cstdint>

namespace ll {

// probs [B, K, N] receives the softmax (needed by backward; may not be null).
void softmax_cross_entropy_forward(float* loss /*[B]*/, float* probs, const float* logits,
                                   const int32_t* target, int B, int K, int N);
void softmax_cross_entropy_backward(float* dlogits, const float* probs, const int32_t* target,
                                    float scale, int B, int K, int N);

}  // namespace ll
