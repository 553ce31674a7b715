// Adam (Kingma & Ba 2015) with bias correction, over a whole ParamArena in one loop, matching
// PyTorch's torch.optim.Adam (1.13, non-fused) update order:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
#pragma once
#include <cstdint>

#include "core/nn/arena.h"

namespace ll {

struct AdamConfig {
  // Doubles, as PyTorch's hyperparameters are Python floats: 1 - beta2 is computed in double and only
  // then rounded to float (1.0f - 0.999f would differ from PyTorch in the 5th digit).
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2 added to the gradient, as torch.optim.Adam (not AdamW)
};

struct Adam {
  AdamConfig config;
  int64_t step_count = 0;
  // One update with the gradients in arena.grads; increments step_count first (t starts at 1).
  void step(ParamArena& arena);
};

}  // namespace ll
