// PixelCNN prior: categorical loss, causality of the masks, gradient checks, learning a known
// autoregressive distribution and sampling it back, and its model files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/adam.h"
#include "core/categorical.h"
#include "core/pixelcnn.h"
#include "core/safetensors.h"
#include "tests/test_util.h"

namespace ll {
namespace {

TEST(SoftmaxCrossEntropy, ValueAndGradient) {
  const int B = 2, K = 5, N = 3;
  Rng rng(1);
  auto l = test::random_vector(rng, B * K * N, -3.0f, 3.0f);
  std::vector<int32_t> t = {0, 4, 2, 1, 1, 3};
  std::vector<float> loss(B), p(B * K * N), dl(B * K * N, 0.0f);
  auto f = [&] {
    softmax_cross_entropy_forward(loss.data(), p.data(), l.data(), t.data(), B, K, N);
    return double(loss[0]) + loss[1];
  };
  f();
  // Example 0 by the definition.
  double expect = 0.0;
  for (int n = 0; n < N; n++) {
    double z = 0.0;
    for (int k = 0; k < K; k++) z += std::exp(double(l[k * N + n]));
    expect += -(l[t[n] * N + n] - std::log(z));
  }
  EXPECT_NEAR(loss[0], expect, 1e-5);
  softmax_cross_entropy_backward(dl.data(), p.data(), t.data(), 1.0f, B, K, N);
  auto r = test::grad_check(f, l.data(), dl.data(), dl.size(), 1e-2f);
  EXPECT_LT(r.norm_rel_error, 1e-3);
}

PixelCnnConfig tiny() {
  PixelCnnConfig c;
  c.K = 5;
  c.H = 4;
  c.W = 4;
  c.channels = 6;
  c.layers = 2;
  c.kernel_a = 3;
  c.kernel_b = 3;
  return c;
}

TEST(PixelCnn, LogitsOfACellDependOnlyOnEarlierCells) {
  PixelCnnConfig c = tiny();
  c.H = c.W = 5;
  PixelCnnPrior prior(c);
  prior.reserve(1);
  Rng rng(2);
  prior.init(rng);
  const int HW = 25;
  std::vector<int32_t> codes(HW);
  for (int& v : codes) v = static_cast<int32_t>(rng.below(5));
  prior.forward(codes.data(), 1);
  const std::vector<float> base(prior.logits(), prior.logits() + 5 * HW);
  for (int n = 0; n < HW; n++) {
    // Changing the cell itself or any later cell leaves the logits of cell n unchanged.
    for (int m = n; m < HW; m++) {
      std::vector<int32_t> changed = codes;
      changed[m] = (changed[m] + 1) % 5;
      prior.forward(changed.data(), 1);
      for (int k = 0; k < 5; k++) ASSERT_EQ(prior.logits()[k * HW + n], base[k * HW + n]) << n << " " << m;
    }
  }
  // ... while the cell just before does influence it (cell 6 = row 1, col 1 sees cell 5 to its left).
  std::vector<int32_t> changed = codes;
  changed[5] = (changed[5] + 1) % 5;
  prior.forward(changed.data(), 1);
  double diff = 0.0;
  for (int k = 0; k < 5; k++) diff += std::fabs(prior.logits()[k * HW + 6] - base[k * HW + 6]);
  EXPECT_GT(diff, 1e-4);
}

TEST(PixelCnn, GradientsMatchFiniteDifferences) {
  // One 3x3 grid: a small loss (little float32 noise in the differences) and few ReLUs (few kinks).
  PixelCnnConfig c = tiny();
  c.H = c.W = 3;
  PixelCnnPrior prior(c);
  const int B = 1;
  prior.reserve(B);
  Rng rng(3);  // robust over seeds 3..12
  prior.init(rng);
  // Cells whose receptive field is empty (cell 0 sees only padding) have a pre-activation equal to
  // the bias, in every example: a bias near 0 would put them all on the ReLU kink at once. Keep
  // |bias| >= 0.05, beyond the finite-difference steps.
  for (const TensorSlot& slot : prior.params().slots())
    if (slot.shape.size() == 1)
      for (size_t i = 0; i < slot.size; i++) {
        float& b = prior.params().params[slot.offset + i];
        b = b < 0 ? std::min(b, -0.05f) : std::max(b, 0.05f);
      }
  std::vector<int32_t> codes(B * 9);
  for (int& v : codes) v = static_cast<int32_t>(rng.below(5));
  auto f = [&] {
    prior.forward(codes.data(), B);
    return double(prior.nll()[0]);
  };
  f();
  ParamArena& a = prior.params();
  a.zero_grad();
  prior.backward(1.0f);
  // Only live connections: masked weights are exactly zero after init and have no gradient by design
  // (perturbing one would create a connection the model does not have). Kinks: a ReLU input crossing
  // zero within the step makes the steps h and h/2 disagree; such entries are skipped (ggml's approach)
  // and must stay rare.
  size_t checked = 0, kinks = 0;
  for (const TensorSlot& slot : a.slots()) {
    float* w = a.params.data() + slot.offset;
    const float* g = a.grads.data() + slot.offset;
    double d2 = 0.0, a2 = 0.0, n2 = 0.0;
    // One-sided differences disagree across a kink (a ReLU input crossing 0 within the step); a
    // symmetric pair of steps would average the two slopes and hide it.
    const double f0 = f();
    auto one_sided = [&](size_t i, float h, double* forward, double* backward) {
      const float saved = w[i];
      w[i] = saved + h;
      *forward = (f() - f0) / (double(saved + h) - double(saved));
      w[i] = saved - h;
      *backward = (f0 - f()) / (double(saved) - double(saved - h));
      w[i] = saved;
    };
    for (size_t i = 0; i < slot.size; i++) {
      if (w[i] == 0.0f) {
        EXPECT_EQ(g[i], 0.0f) << slot.name << " masked entry " << i << " has a gradient";
        continue;
      }
      double fwd, bwd;
      one_sided(i, 2e-3f, &fwd, &bwd);
      if (std::fabs(fwd - bwd) > 0.03 * (std::fabs(fwd) + std::fabs(bwd)) + 3e-3) {
        kinks++;
        continue;
      }
      const double n2h = 0.5 * (fwd + bwd);
      checked++;
      d2 += (g[i] - n2h) * (g[i] - n2h);
      a2 += double(g[i]) * g[i];
      n2 += n2h * n2h;
    }
    EXPECT_LT(std::sqrt(d2) / (std::sqrt(a2) + std::sqrt(n2)), 1e-2) << slot.name;
  }
  EXPECT_LT(kinks * 10, checked) << kinks << " kinks among " << checked + kinks << " entries";
}

// Grids whose cells all copy the first cell's code (uniform over K): the ideal NLL is log K per grid.
std::vector<int32_t> copy_first_grids(int n, int K, int HW, Rng& rng) {
  std::vector<int32_t> g(static_cast<size_t>(n) * HW);
  for (int i = 0; i < n; i++) {
    int32_t v = static_cast<int32_t>(rng.below(K));
    for (int j = 0; j < HW; j++) g[static_cast<size_t>(i) * HW + j] = v;
  }
  return g;
}

TEST(PixelCnn, LearnsAnAutoregressiveDistributionAndSamplesIt) {
  PixelCnnConfig c = tiny();
  c.channels = 16;
  PixelCnnPrior prior(c);
  const int B = 32, HW = 16;
  prior.reserve(B);
  Rng rng(4);
  prior.init(rng);
  Adam adam;
  adam.config.lr = 1e-2;
  double nll = 0.0;
  for (int step = 0; step < 400; step++) {
    auto grids = copy_first_grids(B, 5, HW, rng);
    prior.forward(grids.data(), B);
    nll = 0.0;
    for (int b = 0; b < B; b++) nll += prior.nll()[b] / B;
    prior.params().zero_grad();
    prior.backward(1.0f / B);
    adam.step(prior.params());
  }
  // log 5 = 1.609 nats: the first cell is uniform, the rest are determined.
  EXPECT_LT(nll, 1.609 + 0.25);
  EXPECT_GT(nll, 1.609 - 0.3);
  // Masked weights stayed exactly zero through training.
  PixelCnnPrior copy(c);
  copy.params().params = prior.params().params;
  copy.apply_masks();
  EXPECT_EQ(copy.params().params, prior.params().params);
  // Samples at a low temperature are constant grids.
  std::vector<int32_t> s(static_cast<size_t>(B) * HW);
  prior.sample(s.data(), B, 0.3f, rng);
  int constant = 0;
  for (int b = 0; b < B; b++) {
    bool same = true;
    for (int j = 1; j < HW; j++) same = same && s[b * HW + j] == s[b * HW];
    constant += same;
  }
  EXPECT_GE(constant, B - 2);
}

TEST(PixelCnn, FileRoundTripAndRejections) {
  PixelCnnPrior prior(tiny());
  Rng rng(5);
  prior.init(rng);
  auto bytes = save_prior(prior, {{"latentlab.vqvae", "models/vqvae.safetensors"}});
  std::unique_ptr<PixelCnnPrior> back;
  std::map<std::string, std::string> meta;
  ASSERT_TRUE(load_prior(bytes.data(), bytes.size(), &back, &meta).ok());
  EXPECT_EQ(back->params().params, prior.params().params);
  EXPECT_EQ(meta["latentlab.vqvae"], "models/vqvae.safetensors");
  EXPECT_EQ(back->config().to_json(), prior.config().to_json());
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + bytes.size() / 2);
  EXPECT_FALSE(load_prior(cut.data(), cut.size(), &back).ok());
  static float w[2] = {1, 2};
  auto other = write_safetensors({{"fc1.weight", {2}, w}}, {{"latentlab.model", "vae"}});
  Status s = load_prior(other.data(), other.size(), &back);
  EXPECT_NE(s.message().find("not a PixelCNN prior"), std::string::npos) << s.message();
  PixelCnnConfig bad;
  EXPECT_FALSE(PixelCnnConfig::from_json(R"({"K":1})", &bad).ok());
  EXPECT_FALSE(PixelCnnConfig::from_json(R"({"kernel_a":4})", &bad).ok());
  EXPECT_FALSE(PixelCnnConfig::from_json(R"({"depth":4})", &bad).ok());
}

}  // namespace
}  // namespace ll
