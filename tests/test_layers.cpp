// Dense layers and activations: finite-difference gradient checks and accumulation semantics.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/nn/layers.h"
#include "tests/test_util.h"

namespace ll {
namespace {

TEST(Linear, ForwardMatchesDefinition) {
  // out[b,o] = sum_c inp[b,c] * W[o,c] + bias[o]
  std::vector<float> x = {1, 2, 3, -1, 0, 2};     // [2,3]
  std::vector<float> w = {1, 0, -1, 2, 1, 0.5f};  // [2,3]
  std::vector<float> bias = {0.5f, -1};
  std::vector<float> out(4);
  linear_forward(out.data(), x.data(), w.data(), bias.data(), 2, 3, 2);
  EXPECT_FLOAT_EQ(out[0], 1 - 3 + 0.5f);
  EXPECT_FLOAT_EQ(out[1], 2 + 2 + 1.5f - 1);
  EXPECT_FLOAT_EQ(out[2], -1 - 2 + 0.5f);
  EXPECT_FLOAT_EQ(out[3], -2 + 1 - 1);
}

TEST(Linear, GradientsMatchFiniteDifferences) {
  const int B = 3, C = 7, OC = 5;
  Rng rng(1);
  auto x = test::random_vector(rng, B * C), w = test::random_vector(rng, OC * C);
  auto bias = test::random_vector(rng, OC), r = test::random_vector(rng, B * OC);
  std::vector<float> out(B * OC), dx(B * C, 0.0f), dw(OC * C, 0.0f), db(OC, 0.0f);
  auto loss = [&] {
    linear_forward(out.data(), x.data(), w.data(), bias.data(), B, C, OC);
    return test::weighted_sum(out.data(), r.data(), out.size());
  };
  loss();
  linear_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), B, C, OC);
  // The loss is linear in each argument: the differences are exact up to float32 rounding (noise
  // ~1e-5 of the entries here), so both bounds can be tight (1e-3) and still leave a wide margin.
  test::expect_gradients_match("x", test::grad_check(loss, x.data(), dx.data(), dx.size()), 1e-3, 1e-3);
  test::expect_gradients_match("weight", test::grad_check(loss, w.data(), dw.data(), dw.size()), 1e-3, 1e-3);
  test::expect_gradients_match("bias", test::grad_check(loss, bias.data(), db.data(), db.size()), 1e-3, 1e-3);
}

TEST(Linear, BackwardAccumulatesAndSkipsNull) {
  const int B = 2, C = 3, OC = 4;
  Rng rng(2);
  auto x = test::random_vector(rng, B * C), w = test::random_vector(rng, OC * C);
  auto dout = test::random_vector(rng, B * OC);
  std::vector<float> dw1(OC * C, 0.0f), db1(OC, 0.0f), dw2(OC * C, 0.0f), db2(OC, 0.0f);
  linear_backward(nullptr, dw1.data(), db1.data(), dout.data(), x.data(), w.data(), B, C, OC);
  linear_backward(nullptr, dw2.data(), db2.data(), dout.data(), x.data(), w.data(), B, C, OC);
  linear_backward(nullptr, dw2.data(), db2.data(), dout.data(), x.data(), w.data(), B, C, OC);
  for (size_t i = 0; i < dw1.size(); i++) EXPECT_NEAR(dw2[i], 2 * dw1[i], 1e-6);
  for (size_t i = 0; i < db1.size(); i++) EXPECT_NEAR(db2[i], 2 * db1[i], 1e-6);
}

TEST(Linear, InitIsPyTorchUniformBound) {
  ParamArena arena;
  Linear l;
  l.add_to(arena, "fc", 400, 20);
  arena.finalize();
  Rng rng(3);
  l.init(arena, rng);
  EXPECT_EQ(arena.slots()[l.weight].name, "fc.weight");
  EXPECT_EQ(arena.slots()[l.weight].shape, (std::vector<int64_t>{20, 400}));
  const float bound = 1.0f / std::sqrt(400.0f);
  double sum_sq = 0.0;
  float mx = 0.0f;
  for (size_t i = 0; i < 8000; i++) {
    float v = arena.param(l.weight)[i];
    mx = std::max(mx, std::fabs(v));
    sum_sq += v * v;
  }
  EXPECT_LE(mx, bound);
  EXPECT_GT(mx, 0.99f * bound);
  // Variance of U(-a, a) is a^2 / 3.
  EXPECT_NEAR(sum_sq / 8000, bound * bound / 3, 0.05 * bound * bound / 3);
}

// Element-wise activations: inputs kept away from the kinks of relu/leaky relu (|x| >= 0.05 > h).
struct ActCase {
  const char* name;
  void (*forward)(float*, const float*, size_t);
  void (*backward)(float*, const float*, const float*, const float*, size_t);  // dinp,dout,inp,out
};

void relu_bw(float* dx, const float* dy, const float* x, const float*, size_t n) { relu_backward(dx, dy, x, n); }
void sig_bw(float* dx, const float* dy, const float*, const float* y, size_t n) { sigmoid_backward(dx, dy, y, n); }
void tanh_bw(float* dx, const float* dy, const float*, const float* y, size_t n) { tanh_backward(dx, dy, y, n); }
void lrelu_fw(float* y, const float* x, size_t n) { leaky_relu_forward(y, x, 0.2f, n); }
void lrelu_bw(float* dx, const float* dy, const float* x, const float*, size_t n) { leaky_relu_backward(dx, dy, x, 0.2f, n); }

TEST(Activations, GradientsMatchFiniteDifferences) {
  const ActCase cases[] = {{"relu", relu_forward, relu_bw},
                           {"leaky_relu", lrelu_fw, lrelu_bw},
                           {"sigmoid", sigmoid_forward, sig_bw},
                           {"tanh", tanh_forward, tanh_bw}};
  for (const ActCase& c : cases) {
    Rng rng(4);
    const size_t n = 64;
    auto x = test::random_vector(rng, n, -3.0f, 3.0f);
    for (float& v : x)
      if (std::fabs(v) < 0.05f) v = v < 0 ? -0.05f : 0.05f;
    auto r = test::random_vector(rng, n);
    std::vector<float> y(n), dx(n, 0.0f);
    auto loss = [&] {
      c.forward(y.data(), x.data(), n);
      return test::weighted_sum(y.data(), r.data(), n);
    };
    loss();
    c.backward(dx.data(), r.data(), x.data(), y.data(), n);
    // Inputs are >= 0.05 from ReLU's kink, beyond h; Richardson removes the curvature of sigmoid and
    // tanh, so a 1e-2 bound per entry (a dropped y(1-y) factor is off by 4x or more) has wide margin.
    auto res = test::grad_check(loss, x.data(), dx.data(), n, 1e-2f);
    test::expect_gradients_match(c.name, res, 1e-2, 1e-2);
  }
}

TEST(Activations, SigmoidIsStableAtExtremes) {
  std::vector<float> x = {-1000.0f, -88.0f, 0.0f, 88.0f, 1000.0f}, y(5);
  sigmoid_forward(y.data(), x.data(), 5);
  for (float v : y) EXPECT_TRUE(std::isfinite(v));
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[2], 0.5f);
  EXPECT_EQ(y[4], 1.0f);
}

}  // namespace
}  // namespace ll
