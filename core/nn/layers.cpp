// Dense layers and activations; see layers.h for the contract (backward accumulates).
#include "core/nn/layers.h"

#include <cmath>

#include "core/kernels/kernels.h"

namespace ll {

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int B, int C,
                    int OC) {
  // out = inp * W^T, then + bias per row.
  gemm_f32(false, true, B, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
  if (bias) {
    for (int b = 0; b < B; b++) {
      float* o = out + static_cast<size_t>(b) * OC;
      for (int j = 0; j < OC; j++) o[j] += bias[j];
    }
  }
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int B, int C, int OC) {
  if (dinp) gemm_f32(false, false, B, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
  if (dweight) gemm_f32(true, false, OC, C, B, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
  if (dbias) {
    for (int b = 0; b < B; b++) {
      const float* d = dout + static_cast<size_t>(b) * OC;
      for (int j = 0; j < OC; j++) dbias[j] += d[j];
    }
  }
}

void relu_forward(float* out, const float* inp, size_t N) {
  // `x < 0 ? 0 : x` rather than `x > 0 ? x : 0`: a NaN input stays NaN (as in PyTorch) instead of
  // being silently zeroed, so divergence is seen by the loss.
  for (size_t i = 0; i < N; i++) out[i] = inp[i] < 0.0f ? 0.0f : inp[i];
}
void relu_backward(float* dinp, const float* dout, const float* inp, size_t N) {
  for (size_t i = 0; i < N; i++) dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
}

void leaky_relu_forward(float* out, const float* inp, float slope, size_t N) {
  for (size_t i = 0; i < N; i++) out[i] = inp[i] < 0.0f ? slope * inp[i] : inp[i];
}
void leaky_relu_backward(float* dinp, const float* dout, const float* inp, float slope, size_t N) {
  for (size_t i = 0; i < N; i++) dinp[i] += inp[i] > 0.0f ? dout[i] : slope * dout[i];
}

void sigmoid_forward(float* out, const float* inp, size_t N) {
  for (size_t i = 0; i < N; i++) out[i] = stable_sigmoid(inp[i]);
}
void sigmoid_backward(float* dinp, const float* dout, const float* out, size_t N) {
  // d sigma(x)/dx = sigma(x) (1 - sigma(x))
  for (size_t i = 0; i < N; i++) dinp[i] += dout[i] * out[i] * (1.0f - out[i]);
}

void tanh_forward(float* out, const float* inp, size_t N) {
  for (size_t i = 0; i < N; i++) out[i] = std::tanh(inp[i]);
}
void tanh_backward(float* dinp, const float* dout, const float* out, size_t N) {
  // d tanh(x)/dx = 1 - tanh(x)^2
  for (size_t i = 0; i < N; i++) dinp[i] += dout[i] * (1.0f - out[i] * out[i]);
}

void Linear::add_to(ParamArena& arena, const std::string& name, int in_features, int out_features) {
  C = in_features;
  OC = out_features;
  weight = arena.add(name + ".weight", {OC, C});
  bias = arena.add(name + ".bias", {OC});
}

void Linear::init(ParamArena& arena, Rng& rng) const {
  float bound = 1.0f / std::sqrt(static_cast<float>(C));
  rng.fill_uniform(arena.param(weight), static_cast<size_t>(OC) * C, -bound, bound);
  rng.fill_uniform(arena.param(bias), static_cast<size_t>(OC), -bound, bound);
}

}  // namespace ll
