// Dense layers and activations: forward and backward side by side, on raw float pointers
// (outputs first, then inputs, then weights, then sizes). Backward ACCUMULATES (+=) into parameter
// gradients and into input gradients; callers zero them first. No allocation here.
// Dimension letters: B batch, C inputs, OC outputs, N element count.
#pragma once
#include <cmath>
#include <cstddef>
#include <string>

#include "core/nn/arena.h"
#include "core/base/rng.h"

namespace ll {

// out[B,OC] = inp[B,C] * weight[OC,C]^T + bias[OC]
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int B, int C,
                    int OC);
// dinp[B,C] += dout[B,OC] * weight[OC,C]        (dL/dx = dL/dy W)      dinp may be null
// dweight[OC,C] += dout[B,OC]^T * inp[B,C]     (dL/dW = sum_b dy_b x_b^T)
// dbias[OC] += sum_b dout[b,:]                  (dL/db = sum_b dy_b)
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int B, int C, int OC);

// Element-wise activations. Backward uses the forward OUTPUT where that is cheaper (sigmoid, tanh)
// and the input where the output is ambiguous (relu: at 0 the derivative is taken as 0).
void relu_forward(float* out, const float* inp, size_t N);
void relu_backward(float* dinp, const float* dout, const float* inp, size_t N);  // dx += dy * [x > 0]
void leaky_relu_forward(float* out, const float* inp, float slope, size_t N);
void leaky_relu_backward(float* dinp, const float* dout, const float* inp, float slope, size_t N);
void sigmoid_forward(float* out, const float* inp, size_t N);
void sigmoid_backward(float* dinp, const float* dout, const float* out, size_t N);  // dx += dy*y(1-y)
void tanh_forward(float* out, const float* inp, size_t N);
void tanh_backward(float* dinp, const float* dout, const float* out, size_t N);  // dx += dy*(1-y^2)

// Numerically stable logistic function (never exp of a large positive number).
inline float stable_sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + std::exp(-x));
  float e = std::exp(x);
  return e / (1.0f + e);
}

// Linear layer: config plus its slices of the parameter arena (PyTorch nn.Linear names and layout).
struct Linear {
  int C = 0, OC = 0;
  int weight = -1, bias = -1;  // slot ids in the arena
  // Registers "<name>.weight" [OC, C] and "<name>.bias" [OC].
  void add_to(ParamArena& arena, const std::string& name, int in_features, int out_features);
  // PyTorch's default: weight and bias ~ U(-1/sqrt(C), 1/sqrt(C)) (kaiming_uniform with a = sqrt(5)).
  void init(ParamArena& arena, Rng& rng) const;
  void forward(ParamArena& arena, float* out, const float* inp, int B) const {
    linear_forward(out, inp, arena.param(weight), arena.param(bias), B, C, OC);
  }
  void backward(ParamArena& arena, float* dinp, const float* dout, const float* inp, int B) const {
    linear_backward(dinp, arena.grad(weight), arena.grad(bias), dout, inp, arena.param(weight), B, C, OC);
  }
};

}  // namespace ll
