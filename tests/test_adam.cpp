// Adam against values computed by hand (in double, with PyTorch's update formula).
#include <gtest/gtest.h>

#include "core/nn/adam.h"

namespace ll {
namespace {

TEST(Adam, MatchesHandComputedSteps) {
  ParamArena arena;
  int id = arena.add("p", {1});
  arena.finalize();
  arena.param(id)[0] = 1.0f;
  Adam adam;
  adam.config.lr = 0.1f;
  // Expected from: m = .9m + .1g; v = .999v + .001g^2; p -= lr/(1-.9^t) * m / (sqrt(v)/sqrt(1-.999^t) + 1e-8)
  const float grads[] = {0.5f, -1.0f, 0.25f};
  const double expect[] = {0.900000002, 0.9366103542405654, 0.9502794203389762};
  for (int t = 0; t < 3; t++) {
    arena.grad(id)[0] = grads[t];
    adam.step(arena);
    EXPECT_NEAR(arena.param(id)[0], expect[t], 2e-7) << "step " << t + 1;
  }
  EXPECT_EQ(adam.step_count, 3);
  EXPECT_NEAR(arena.adam_m[0], -0.0245, 1e-7);
  EXPECT_NEAR(arena.adam_v[0], 0.00131100025, 1e-9);
}

TEST(Adam, FirstStepMovesEveryParameterByLrTimesSign) {
  // With bias correction, step 1 is lr * g / (|g| + eps): a sign step of size lr.
  ParamArena arena;
  int id = arena.add("w", {4});
  arena.finalize();
  float g[] = {3.0f, -0.001f, 1e3f, -7.0f};
  for (int i = 0; i < 4; i++) arena.grad(id)[i] = g[i];
  Adam adam;
  adam.config.lr = 0.01;
  adam.step(arena);
  for (int i = 0; i < 4; i++) EXPECT_NEAR(arena.param(id)[i], g[i] > 0 ? -0.01 : 0.01, 2e-7);
}

TEST(Adam, WeightDecayAddsToGradient) {
  ParamArena arena;
  int id = arena.add("w", {1});
  arena.finalize();
  arena.param(id)[0] = 2.0f;
  Adam adam;
  adam.config.lr = 0.1f;
  adam.config.weight_decay = 0.5f;  // effective gradient 0 + 0.5 * 2 = 1 > 0: moves down by lr
  adam.step(arena);
  EXPECT_NEAR(arena.param(id)[0], 1.9f, 1e-6);
}

}  // namespace
}  // namespace ll
