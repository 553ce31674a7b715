// PixelCNN prior: categorical loss, causality of the masks, gradient checks, learning a known
// autoregressive distribution and sampling it back, and its model files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/nn/adam.h"
#include "core/nn/categorical.h"
#include "core/models/model_file.h"
#include "core/models/pixelcnn.h"
#include "core/io/safetensors.h"
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
  test::expect_gradients_match("logits", r, 1e-3);
}

// Class embeddings start at zero; give them values scale * U(-0.5, 0.5).
void randomise_class_embeddings(PixelCnnPrior& prior, Rng& rng, float scale) {
  for (const TensorSlot& slot : prior.params().slots())
    if (slot.name.rfind("cond_", 0) == 0)
      for (size_t i = 0; i < slot.size; i++) prior.params().params[slot.offset + i] = scale * (rng.uniform() - 0.5f);
}

// `steps` Adam steps (lr 1e-2) on batches from make(grids, labels); returns the last batch's mean NLL.
template <typename MakeBatch>
double train(PixelCnnPrior& prior, int steps, int B, int HW, MakeBatch make) {
  Adam adam;
  adam.config.lr = 1e-2;
  std::vector<int32_t> grids(static_cast<size_t>(B) * HW), labels(B);
  double nll = 0.0;
  for (int step = 0; step < steps; step++) {
    make(grids, labels);
    prior.forward(grids.data(), B, labels.data());
    nll = 0.0;
    for (int b = 0; b < B; b++) nll += prior.nll()[b] / B;
    prior.params().zero_grad();
    prior.backward(1.0f / B);
    adam.step(prior.params());
  }
  return nll;
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

void check_causality(int stacks, int classes = 0) {
  PixelCnnConfig c = tiny();
  c.H = c.W = 5;
  c.stacks = stacks;
  c.classes = classes;
  PixelCnnPrior prior(c);
  prior.reserve(1);
  Rng rng(2);
  prior.init(rng);
  randomise_class_embeddings(prior, rng, 1.0f);
  const int32_t label[1] = {classes - 1};
  auto forward = [&](const std::vector<int32_t>& codes) { prior.forward(codes.data(), 1, label); };
  const int HW = 25;
  std::vector<int32_t> codes(HW);
  for (int& v : codes) v = static_cast<int32_t>(rng.below(5));
  forward(codes);
  const std::vector<float> base(prior.logits(), prior.logits() + 5 * HW);
  for (int n = 0; n < HW; n++) {
    // Changing the cell itself or any later cell leaves the logits of cell n unchanged.
    for (int m = n; m < HW; m++) {
      std::vector<int32_t> changed = codes;
      changed[m] = (changed[m] + 1) % 5;
      forward(changed);
      for (int k = 0; k < 5; k++) ASSERT_EQ(prior.logits()[k * HW + n], base[k * HW + n]) << n << " " << m;
    }
  }
  // ... while the cell just before does influence it (cell 6 = row 1, col 1 sees cell 5 to its left).
  std::vector<int32_t> changed = codes;
  changed[5] = (changed[5] + 1) % 5;
  forward(changed);
  double diff = 0.0;
  for (int k = 0; k < 5; k++) diff += std::fabs(prior.logits()[k * HW + 6] - base[k * HW + 6]);
  EXPECT_GT(diff, 1e-4);
}

TEST(PixelCnn, LogitsOfACellDependOnlyOnEarlierCells) { check_causality(1); }
TEST(PixelCnn, TwoStacksLogitsOfACellDependOnlyOnEarlierCells) { check_causality(2); }
TEST(PixelCnn, ClassConditionalLogitsOfACellDependOnlyOnEarlierCells) {
  check_causality(1, 4);
  check_causality(2, 4);
}

// How much the logits of cell n move when cell m changes (summed over codes and 5 random grids).
double influence(PixelCnnPrior& prior, int K, int HW, int n, int m) {
  Rng rng(7);
  double diff = 0.0;
  for (int trial = 0; trial < 5; trial++) {
    std::vector<int32_t> codes(HW);
    for (int& v : codes) v = static_cast<int32_t>(rng.below(K));
    prior.forward(codes.data(), 1);
    const std::vector<float> base(prior.logits(), prior.logits() + K * HW);
    codes[m] = (codes[m] + 1) % K;
    prior.forward(codes.data(), 1);
    for (int k = 0; k < K; k++) diff += std::fabs(prior.logits()[k * HW + n] - base[k * HW + n]);
  }
  return diff;
}

TEST(PixelCnn, TwoStacksHaveNoBlindSpot) {
  // 3x3 kernels on a 5x5 grid: cell (2, 0) = 10 and cell (1, 2) = 7, up one row and two to the right.
  // The single stack never connects them (its blind spot, at any depth); two stacks do.
  for (int stacks : {1, 2}) {
    PixelCnnConfig c = tiny();
    c.H = c.W = 5;
    c.layers = 4;
    c.stacks = stacks;
    PixelCnnPrior prior(c);
    prior.reserve(1);
    Rng rng(4);
    prior.init(rng);
    const double d = influence(prior, c.K, 25, 10, 7);
    if (stacks == 1)
      EXPECT_EQ(d, 0.0) << "the single stack's blind spot";
    else
      EXPECT_GT(d, 1e-4) << "two stacks see every earlier row";
    // Both see every cell of the row above within reach, and the cell to the left.
    EXPECT_GT(influence(prior, c.K, 25, 12, 6), 1e-4) << stacks;
    EXPECT_GT(influence(prior, c.K, 25, 12, 11), 1e-4) << stacks;
  }
  // With two stacks the last cell sees every earlier cell (4 layers reach the whole 5x5 grid).
  PixelCnnConfig c = tiny();
  c.H = c.W = 5;
  c.layers = 4;
  c.stacks = 2;
  PixelCnnPrior prior(c);
  prior.reserve(1);
  Rng rng(5);
  prior.init(rng);
  for (int m = 0; m < 24; m++) EXPECT_GT(influence(prior, c.K, 25, 24, m), 1e-5) << m;
}

void check_prior_gradients(int stacks, int classes = 0) {
  // One 3x3 grid: a small loss (little float32 noise in the differences) and few ReLUs (few kinks).
  PixelCnnConfig c = tiny();
  c.H = c.W = 3;
  c.stacks = stacks;
  c.classes = classes;
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
  randomise_class_embeddings(prior, rng, 0.3f);  // the label's row gets a gradient, the others none
  std::vector<int32_t> codes(B * 9), labels = {classes > 1 ? 1 : 0};
  for (int& v : codes) v = static_cast<int32_t>(rng.below(5));
  // The NLL recomputed in double from the float32 logits (log-sum-exp per cell): the model's own nll()
  // is a float32 sum whose rounding (~1e-6 nats) would be the largest noise in the differences.
  const int HW = c.H * c.W;
  auto f = [&] {
    prior.forward(codes.data(), B, labels.data());
    double nll = 0.0;
    for (int n = 0; n < HW; n++) {
      double mx = -1e300, z = 0.0;
      for (int k = 0; k < c.K; k++) mx = std::max(mx, double(prior.logits()[k * HW + n]));
      for (int k = 0; k < c.K; k++) z += std::exp(double(prior.logits()[k * HW + n]) - mx);
      nll += mx + std::log(z) - prior.logits()[codes[n] * HW + n];
    }
    return nll;
  };
  const double nll64 = f();
  EXPECT_NEAR(nll64, prior.nll()[0], 1e-5 * (1.0 + prior.nll()[0]));
  ParamArena& a = prior.params();
  a.zero_grad();
  prior.backward(1.0f);
  // Only live connections: masked weights are exactly zero after init and have no gradient by design
  // (perturbing one would create a connection the model does not have). Kinks: a ReLU input crossing
  // zero within +-h makes the differences at h and h/2 disagree; such entries are skipped (ggml's
  // approach) and must stay under 10% of all entries checked (test::GradCheckOptions::skip_kinks; a
  // tensor of 6 entries may have one). h = 2e-3 keeps them rare.
  size_t checked = 0, kinks = 0;
  for (const TensorSlot& slot : a.slots()) {
    float* w = a.params.data() + slot.offset;
    const float* g = a.grads.data() + slot.offset;
    test::GradCheckOptions o;
    o.h = 2e-3f;
    o.skip_kinks = true;
    o.max_skipped_fraction = 0.5;
    for (size_t i = 0; i < slot.size; i++) {
      if (slot.name.rfind("cond_", 0) == 0 && i / c.channels != static_cast<size_t>(labels[0])) {
        EXPECT_EQ(g[i], 0.0f) << slot.name << " row of another class has a gradient";
        continue;
      }
      if (w[i] == 0.0f) {
        EXPECT_EQ(g[i], 0.0f) << slot.name << " masked entry " << i << " has a gradient";
        continue;
      }
      o.indices.push_back(i);
    }
    auto r = test::grad_check([&](bool*) { return f(); }, w, g, slot.size, o);
    test::expect_gradients_match("stacks " + std::to_string(stacks) + " classes " + std::to_string(classes) +
                                     " " + slot.name, r, 1e-2);
    checked += r.checked;
    kinks += r.skipped;
  }
  EXPECT_LT(kinks * 10, checked) << kinks << " kinks among " << checked + kinks << " entries";
}

TEST(PixelCnn, GradientsMatchFiniteDifferences) { check_prior_gradients(1); }
TEST(PixelCnn, TwoStacksGradientsMatchFiniteDifferences) { check_prior_gradients(2); }
TEST(PixelCnn, ClassConditionalGradientsMatchFiniteDifferences) {
  check_prior_gradients(1, 3);
  check_prior_gradients(2, 3);
}

// Grids whose every cell holds the class label's code: a class-conditional prior learns them to an NLL
// near 0, samples the asked class, and its causality holds whatever the label.
TEST(PixelCnn, ClassConditionalPriorLearnsItsClassesAndSamplesThem) {
  PixelCnnConfig c = tiny();
  c.channels = 16;
  c.stacks = 2;
  c.classes = 5;
  PixelCnnPrior prior(c);
  const int B = 32, HW = 16;
  prior.reserve(B);
  Rng rng(4);
  prior.init(rng);
  std::vector<int32_t> grids, labels;
  const double nll = train(prior, 300, B, HW, [&](std::vector<int32_t>& g, std::vector<int32_t>& y) {
    for (int b = 0; b < B; b++) {
      y[b] = static_cast<int32_t>(rng.below(5));
      std::fill_n(g.begin() + b * HW, HW, y[b]);
    }
    grids = g;
    labels = y;
  });
  // The unconditional ideal is log 5 = 1.609 nats (the first cell); the label determines every cell.
  EXPECT_LT(nll, 0.2);
  std::vector<int32_t> s(static_cast<size_t>(B) * HW);
  for (int b = 0; b < B; b++) labels[b] = b % 5;
  prior.sample(s.data(), B, 1.0f, rng, labels.data());
  int right = 0;
  for (int i = 0; i < B * HW; i++) right += s[i] == labels[i / HW];
  EXPECT_GE(right, B * HW * 95 / 100);
  // The label shifts the logits of every cell, the first included.
  std::vector<int32_t> other(B, 2);
  prior.forward(grids.data(), 1, labels.data());
  const std::vector<float> base(prior.logits(), prior.logits() + c.K * HW);
  prior.forward(grids.data(), 1, other.data());
  EXPECT_GT(std::fabs(prior.logits()[labels[0] * HW] - base[labels[0] * HW]), 1.0f);
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

void check_learns_and_samples(int stacks) {
  PixelCnnConfig c = tiny();
  c.channels = 16;
  c.stacks = stacks;
  PixelCnnPrior prior(c);
  const int B = 32, HW = 16;
  prior.reserve(B);
  Rng rng(4);
  prior.init(rng);
  const double nll = train(prior, 400, B, HW, [&](std::vector<int32_t>& g, std::vector<int32_t>&) {
    g = copy_first_grids(B, 5, HW, rng);
  });
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

TEST(PixelCnn, LearnsAnAutoregressiveDistributionAndSamplesIt) { check_learns_and_samples(1); }
TEST(PixelCnn, TwoStacksLearnAnAutoregressiveDistributionAndSampleIt) { check_learns_and_samples(2); }

// sample_cell computes only the rows up to the cell's own: its draws must equal draws from the full
// forward's softmax with the same random numbers, for every cell, both architectures.
TEST(PixelCnn, CellSamplingOnTheTruncatedGridMatchesTheFullForward) {
  for (int stacks : {1, 2, 3}) {  // 3: two stacks, class-conditional
    PixelCnnConfig c = tiny();
    c.H = 5;
    c.W = 4;
    c.stacks = std::min(stacks, 2);
    c.classes = stacks == 3 ? 3 : 0;
    PixelCnnPrior prior(c);
    const int B = 6, HW = 20, K = c.K;
    prior.reserve(B);
    Rng init(8);
    prior.init(init);
    for (float& w : prior.params().params) w *= 3.0f;  // peaked distributions: wrong logits show
    prior.apply_masks();
    randomise_class_embeddings(prior, init, 2.0f);
    std::vector<int32_t> fast(static_cast<size_t>(B) * HW, 0), slow = fast, labels = {0, 1, 2, 2, 1, 0};
    Rng r_fast(9), r_slow(9);
    for (int cell = 0; cell < HW; cell++) {
      prior.sample_cell(fast.data(), B, cell, 0.8f, r_fast, labels.data());
      prior.forward(slow.data(), B, labels.data());
      for (int b = 0; b < B; b++) {
        const float* l = prior.logits() + static_cast<size_t>(b) * K * HW;
        std::vector<double> p(K);
        double mx = -1e30, sum = 0.0;
        for (int k = 0; k < K; k++) mx = std::max(mx, double(l[k * HW + cell]));
        for (int k = 0; k < K; k++) sum += p[k] = std::exp((l[k * HW + cell] - mx) / 0.8);
        double u = r_slow.uniform() * sum;
        int chosen = K - 1;
        for (int k = 0; k < K; k++)
          if ((u -= p[k]) < 0.0) {
            chosen = k;
            break;
          }
        slow[b * HW + cell] = chosen;
      }
      ASSERT_EQ(fast, slow) << "stacks " << stacks << " cell " << cell;
    }
  }
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
  EXPECT_FALSE(load_prior(other.data(), other.size(), &back).ok());
  // A model file of another kind is refused by load_prior (load_model reads both).
  ModelConfig vae;
  vae.kind = "vae", vae.input = 4, vae.hidden = 3, vae.latent = 2;
  std::unique_ptr<Model> m;
  ASSERT_TRUE(create_model(vae, &m).ok());
  auto vae_bytes = save_model(*m, {});
  Status s = load_prior(vae_bytes.data(), vae_bytes.size(), &back);
  EXPECT_NE(s.message().find("not a PixelCNN prior"), std::string::npos) << s.message();
  PixelCnnConfig bad;
  EXPECT_FALSE(PixelCnnConfig::from_json(R"({"K":1})", &bad).ok());
  EXPECT_FALSE(PixelCnnConfig::from_json(R"({"kernel_a":4})", &bad).ok());
  EXPECT_FALSE(PixelCnnConfig::from_json(R"({"depth":4})", &bad).ok());
  EXPECT_FALSE(PixelCnnConfig::from_json(R"({"stacks":3})", &bad).ok());
  EXPECT_FALSE(PixelCnnConfig::from_json(R"({"stacks":2,"kernel_b":1})", &bad).ok());
  EXPECT_FALSE(PixelCnnConfig::from_json(R"({"classes":-1})", &bad).ok());
  EXPECT_FALSE(PixelCnnConfig::from_json(R"({"classes":2000})", &bad).ok());
  // A config from before "stacks" and "classes" existed is the unconditional single stack.
  ASSERT_TRUE(PixelCnnConfig::from_json(R"({"K":8,"channels":4})", &bad).ok());
  EXPECT_EQ(bad.stacks, 1);
  EXPECT_EQ(bad.classes, 0);
}

TEST(PixelCnn, TwoStackFileRoundTripAndStrictTensors) {
  PixelCnnConfig c = tiny();
  c.stacks = 2;
  c.classes = 3;
  PixelCnnPrior prior(c);
  Rng rng(6);
  prior.init(rng);
  randomise_class_embeddings(prior, rng, 1.0f);
  std::vector<std::string> names;
  for (const TensorSlot& slot : prior.params().slots()) names.push_back(slot.name);
  for (const char* n : {"input_vconv.weight", "input_v2h.weight", "vlayers.1.weight", "v2h.1.bias", "cond_input_conv.weight",
                        "cond_layers.1.weight", "cond_input_vconv.weight", "cond_vlayers.1.weight", "cond_output.weight"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  for (DType dt : {DType::kF32, DType::kF16}) {
    auto bytes = save_prior(prior, {}, dt);
    std::unique_ptr<PixelCnnPrior> back;
    ASSERT_TRUE(load_prior(bytes.data(), bytes.size(), &back).ok());
    EXPECT_EQ(back->grid_config().stacks, 2);
    EXPECT_EQ(back->grid_config().classes, 3);
    const std::vector<float>& a = prior.params().params;
    const std::vector<float>& b = back->params().params;
    for (size_t i = 0; i < a.size(); i++) {
      if (a[i] == 0.0f) {
        EXPECT_EQ(b[i], 0.0f) << i;  // masked weights stay exactly zero in F16
      }
      EXPECT_NEAR(b[i], a[i], dt == DType::kF32 ? 0.0 : 1e-3 * std::fabs(a[i]) + 1e-7) << i;
    }
  }
  // The file holds each masked kernel at its true shape: the taps its mask allows, nothing else.
  {
    auto bytes = save_prior(prior, {});
    SafetensorsFile file;
    ASSERT_TRUE(parse_safetensors(bytes.data(), bytes.size(), &file).ok());
    const int C = c.channels, K = c.K;
    const std::vector<std::pair<const char*, std::vector<int64_t>>> shapes = {
        {"input_conv.weight", {C, K, 1, 1}}, {"layers.1.weight", {C, C, 1, 2}}, {"input_vconv.weight", {C, K, 1, 3}},
        {"vlayers.1.weight", {C, C, 2, 3}}, {"v2h.1.weight", {C, C, 1, 1}},   {"output.2.weight", {K, C, 1, 1}}};
    for (const auto& [name, shape] : shapes) {
      const SafetensorsTensor* t = file.find(name);
      ASSERT_NE(t, nullptr) << name;
      EXPECT_EQ(t->shape, shape) << name;
    }
    // A file from before (whole k x k kernels) loads to the same weights.
    std::vector<TensorToWrite> full;
    for (const TensorSlot& slot : prior.params().slots())
      full.push_back({slot.name, slot.shape, prior.params().params.data() + slot.offset});
    auto old = write_safetensors(full, {{"latentlab.model", "pixelcnn_prior"}, {"latentlab.config", c.to_json()}});
    std::unique_ptr<PixelCnnPrior> back;
    ASSERT_TRUE(load_prior(old.data(), old.size(), &back).ok());
    EXPECT_EQ(back->params().params, prior.params().params);
    EXPECT_LT(bytes.size() * 3, old.size() * 2);  // tiny: 60% of the bytes (embeddings, 1x1 convs, biases stay)
    // Any other shape is refused, naming the one expected.
    for (TensorToWrite& t : full)
      if (t.name == "vlayers.1.weight") t.shape = {C, C, 3, 2};
    auto bad = write_safetensors(full, {{"latentlab.model", "pixelcnn_prior"}, {"latentlab.config", c.to_json()}});
    Status s = load_prior(bad.data(), bad.size(), &back);
    EXPECT_NE(s.message().find("'vlayers.1.weight' has shape [6, 6, 3, 2]"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("needs [6, 6, 2, 3]"), std::string::npos) << s.message();
  }
  // Its tensors without the vertical stack are not a two-stack prior.
  std::vector<TensorToWrite> tensors;
  for (const TensorSlot& slot : prior.params().slots())
    if (slot.name.rfind("vlayers.0", 0) != 0) tensors.push_back({slot.name, slot.shape, prior.params().params.data() + slot.offset});
  auto broken = write_safetensors(tensors, {{"latentlab.model", "pixelcnn_prior"}, {"latentlab.config", c.to_json()}});
  std::unique_ptr<PixelCnnPrior> back;
  Status s = load_prior(broken.data(), broken.size(), &back);
  EXPECT_NE(s.message().find("missing tensor 'vlayers.0.weight'"), std::string::npos) << s.message();
}

// Against PyTorch autograd (tests/golden/pixelcnn_prior_golden.safetensors, made by
// make_pixelcnn_prior_golden.py, whose masks are written from the papers): a single masked stack and the
// class-conditional vertical + horizontal stacks. Every compared value v has a reference r and a sum of
// absolute values S (the same expression on |weights| and |upstream gradients| with the real ReLU masks,
// the forward's error bound carried into d nll / d logits): to first order |v - r| <= gamma_N S, N the
// summed reductions of the forward, the backward and one weight-gradient sum (metadata path_length);
// the bound is 2 gamma_N S (forward and backward halves, libm's exp and log) plus u |r| for storing r.
// Masked taps have S = 0: their gradient must be exactly zero.
// As for the VQ-VAE (test_vqvae.cpp), each gradient tensor is also compared norm-wise with the random-sign
// estimate: L = 2 (2 + layers) + 2 = 10 chained reductions (two stacks: the h stack's convolutions and
// its links, forward and backward, and the softmax) of at most K = 200 terms (the largest, the first
// convolution: 6 codes x 5 x 5 = 150), each adding about
// u sqrt(K) of the norm: u sqrt(200) 10 = 8.4e-6; the tolerance is 6 times that, 5.1e-5.
constexpr double kNormTol = 6 * 0x1p-24 * 14.15 * 10;
TEST(PixelCnn, MatchesPyTorchGolden) {
  test::GoldenFile g;
  ASSERT_TRUE(g.load("pixelcnn_prior_golden.safetensors"));
  const int B = std::stoi(g.meta("batch"));
  const double u = std::ldexp(1.0, -24);
  for (const std::string c : {"one.", "two."}) {
    PixelCnnConfig config;
    ASSERT_TRUE(PixelCnnConfig::from_json(g.meta(c + "config"), &config).ok()) << g.meta(c + "config");
    const double two_gamma = 2.0 * test::gamma_n(std::stod(g.meta(c + "path_length")));
    PixelCnnPrior prior(config);
    prior.reserve(B);
    for (const TensorSlot& slot : prior.params().slots()) {
      std::vector<float> w = g.tensor(c + "w." + slot.name);
      ASSERT_EQ(w.size(), slot.size) << slot.name;
      std::copy(w.begin(), w.end(), prior.params().params.begin() + slot.offset);
    }
    auto worst = [&](const float* v, const std::string& name, size_t n) {
      const std::vector<float> r = g.tensor(c + name), s = g.tensor(c + "abs." + name);
      EXPECT_EQ(r.size(), n) << name;
      double w = 0.0;
      for (size_t i = 0; i < n && i < r.size(); i++) {
        const double bound = two_gamma * s[i] + u * std::fabs(r[i]);
        const double ratio = bound > 0.0 ? std::fabs(v[i] - r[i]) / bound : (v[i] == r[i] ? 0.0 : HUGE_VAL);
        EXPECT_LE(ratio, 1.0) << c << name << "[" << i << "]: " << v[i] << " vs " << r[i];
        w = std::max(w, ratio);
      }
      return w;
    };
    const std::vector<float> cf = g.tensor(c + "codes"), lf = g.tensor(c + "labels");
    std::vector<int32_t> codes(cf.begin(), cf.end()), labels(lf.begin(), lf.end());
    prior.forward(codes.data(), B, labels.data());
    const size_t HW = static_cast<size_t>(config.H) * config.W;
    double forward = worst(prior.logits(), "logits", B * config.K * HW);
    forward = std::max(forward, worst(prior.nll(), "nll", B));
    test::expect_within(c + " forward (logits, nll) / 2 gamma_N S", forward, 1.0);
    prior.params().zero_grad();
    prior.backward(1.0f);
    double grads = 0.0, norms = 0.0;
    for (const TensorSlot& slot : prior.params().slots()) {
      const float* d = prior.params().grads.data() + slot.offset;
      grads = std::max(grads, worst(d, "grad." + slot.name, slot.size));
      norms = std::max(norms, test::golden_norm_ratio(d, g.tensor(c + "grad." + slot.name), kNormTol));
    }
    test::expect_within(c + " every gradient entry / 2 gamma_N S", grads, 1.0);
    test::expect_within(c + " each gradient tensor, ||v - r|| / (tol ||r||)", norms, 1.0);
  }
}

}  // namespace
}  // namespace ll
