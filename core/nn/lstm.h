// A single-layer LSTM over a sequence (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et
// al. 2000), in PyTorch nn.LSTM's parameter names, layouts and gate order (i, f, g, o), and its
// backward pass through time. Used by the TD-VAE as its belief network b_t = LSTM(b_{t-1}, x_t).
//   a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh                        [B, 4H]
//   i = sigmoid(a[0:H])  f = sigmoid(a[H:2H])  g = tanh(a[2H:3H])  o = sigmoid(a[3H:4H])
//   c_t = f * c_{t-1} + i * g          h_t = o * tanh(c_t)              [B, H]
// Time-major, as nn.LSTM without batch_first: x [T, B, C], h [T, B, H]. h_{-1} = h0 and c_{-1} = c0
// ([B, H] each; null means zeros, as PyTorch's default state).
// No allocation here: the caller owns the tape (what backward needs, tape_floats()) and the backward
// scratch (scratch_floats()). Backward ACCUMULATES (+=) into the parameter gradients and into dx, dh0
// and dc0 (each may be null), as the other layers do.
// Backward through time, for dh_t = dL/dh_t [T, B, H] (the loss's direct gradient at each output) and
// dc_last = dL/dc_{T-1} [B, H] (null: the loss does not read the last cell state), from t = T-1 down
// to 0, with dh' and dc' the gradients arriving from step t+1 (at T-1: zero and dc_last):
//   e = dh_t + dh'       dc = dc' + e * o * (1 - tanh(c_t)^2)
//   da_i = dc g i (1 - i)   da_f = dc c_{t-1} f (1 - f)   da_g = dc i (1 - g^2)   da_o = e tanh(c_t) o (1 - o)
//   dc' <- dc * f        dh' <- da W_hh
// then, over all steps at once: dW_ih += da^T x, dW_hh += da_t^T h_{t-1}, db_ih = db_hh += sum da,
// dx += da W_ih.
#pragma once
#include <cstddef>
#include <string>

#include "core/base/rng.h"
#include "core/nn/arena.h"

namespace ll {

struct Lstm {
  int C = 0, H = 0;
  int weight_ih = -1, weight_hh = -1, bias_ih = -1, bias_hh = -1;  // slot ids in the arena
  // Registers "<name>.weight_ih_l0" [4H, C], "<name>.weight_hh_l0" [4H, H], "<name>.bias_ih_l0" [4H]
  // and "<name>.bias_hh_l0" [4H] (nn.LSTM's names for its first layer).
  void add_to(ParamArena& arena, const std::string& name, int input_size, int hidden_size);
  // PyTorch's default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).
  void init(ParamArena& arena, Rng& rng) const;

  // Floats of the tape of a forward over T steps of B sequences: the gates after their activations
  // [T, B, 4H], c_t [T, B, H] and tanh(c_t) [T, B, H].
  static size_t tape_floats(int T, int B, int H) { return static_cast<size_t>(T) * B * 6 * H; }
  // Floats of backward's scratch: da [T, B, 4H], dh' and dc' [B, H] each.
  static size_t scratch_floats(int T, int B, int H) {
    return static_cast<size_t>(T) * B * 4 * H + static_cast<size_t>(2) * B * H;
  }
  // c_t [B, H] in a tape written by forward() over T steps of B sequences (to continue a sequence:
  // the next forward's c0 is cell(tape, T, B, T - 1), its h0 the last row of h).
  const float* cell(const float* tape, int T, int B, int t) const {
    return tape + static_cast<size_t>(T) * B * 4 * H + static_cast<size_t>(t) * B * H;
  }

  // h [T, B, H] and the tape from x [T, B, C], h0, c0.
  void forward(const ParamArena& arena, float* h, float* tape, const float* x, const float* h0, const float* c0,
               int T, int B) const;
  // Gradients of a loss with dL/dh = dh [T, B, H] and dL/dc_{T-1} = dc_last [B, H] or null (the h and
  // tape of the forward of x, h0, c0).
  void backward(ParamArena& arena, float* dx, float* dh0, float* dc0, float* scratch, const float* dh,
                const float* dc_last, const float* h, const float* tape, const float* x, const float* h0,
                const float* c0, int T, int B) const;
};

}  // namespace ll
