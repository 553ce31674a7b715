// The TD-VAE network (core/models/tdvae.h): loss terms and every gradient against PyTorch autograd in
// float64 (tests/golden/tdvae_golden.safetensors, two sizes), Adam steps on moving sequences lowering
// the loss, and rollouts. (Float32 finite differences of this loss were tried: its gradients span
// three orders of magnitude and the LSTM's recurrent weights sit near the float32 noise of a loss of
// ~20 nats, so the check could not keep a 5x margin; the float64 reference can.)
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/io/binary_data.h"
#include "core/io/json.h"
#include "core/models/model_file.h"
#include "core/models/tdvae.h"
#include "core/nn/adam.h"
#include "core/train/trainer.h"
#include "tests/test_util.h"

namespace ll {
namespace {

// n "digits" of 8 x 8, random patterns of 0 and 255 (30% on): a moving sequence's bits are then exact,
// so a model that tracks the motion can drive the loss far down.
Dataset pattern_digits(int n, uint64_t seed) {
  ImageSet images;
  images.count = n;
  images.rows = images.cols = 8;
  Rng gen(seed);
  for (int k = 0; k < n * 64; k++) images.pixels.push_back(static_cast<uint8_t>(gen.uniform() < 0.3f ? 255 : 0));
  LabelSet labels;
  labels.count = n;
  labels.labels.assign(n, 0);
  Dataset d;
  EXPECT_TRUE(make_dataset(std::move(images), std::move(labels), &d).ok());
  return d;
}

TdVaeConfig small_config() {
  TdVaeConfig c;
  c.frames = 6;
  c.pixels = 12;
  c.processed = 7;
  c.belief = 5;
  c.z = 3;
  c.block_hidden = 6;
  c.decoder_hidden = 8;
  c.pairs = 2;
  c.max_jump = 3;
  return c;
}

TdVaeConfig golden_config(char which) {
  TdVaeConfig c = small_config();
  if (which == 'b') {
    c.frames = 7;
    c.pixels = 10;
    c.processed = 6;
    c.belief = 4;
    c.z = 2;
    c.block_hidden = 5;
    c.decoder_hidden = 6;
    c.pairs = 3;
    c.max_jump = 4;
  }
  return c;
}

std::string config_json(const TdVaeConfig& c) {
  auto kv = [](const char* k, int v) { return "\"" + std::string(k) + "\":" + std::to_string(v); };
  return "{" + kv("frames", c.frames) + "," + kv("pixels", c.pixels) + "," + kv("processed", c.processed) + "," +
         kv("belief", c.belief) + "," + kv("z", c.z) + "," + kv("block_hidden", c.block_hidden) + "," +
         kv("decoder_hidden", c.decoder_hidden) + "," + kv("pairs", c.pairs) + "," + kv("max_jump", c.max_jump) +
         "}";
}

// Against PyTorch autograd in float64 (make_tdvae_golden.py: the network as the public reimplementation
// writes it, two sizes, random pairs and draws): the double-precision reference of the whole model's
// loss and gradients. Every figure and gradient tensor norm-wise, with the other golden tests'
// reasoning: each of the L = 2 (frames + 10) <= 34 chained reductions (pre-processing 2, the LSTM one
// per frame, the D blocks' chain 5, the decoder 3, forward and backward) of at most K = 20 terms adds
// about u sqrt(K) of the norm; the bound is 6 times that, 6 u sqrt(20) 34 = 5.4e-5. A dropped factor,
// a gradient sent to the wrong state or a missing path gives relative errors of 0.01 to 1 (planted:
// see the commit message).
TEST(TdVae, MatchesPyTorchGolden) {
  test::GoldenFile g;
  ASSERT_TRUE(g.load("tdvae_golden.safetensors"));
  const int B = std::stoi(g.meta("batch"));
  constexpr double kTol = 6 * 0x1p-24 * 4.48 * 34;
  for (char which : {'a', 'b'}) {
    const std::string c = std::string(1, which) + ".";
    const TdVaeConfig config = golden_config(which);
    ASSERT_EQ(g.meta(c + "config"), config_json(config));
    TdVae m(config);
    m.reserve(B);
    for (const TensorSlot& slot : m.params().slots()) {
      const std::vector<float> w = g.tensor(c + "w." + slot.name);
      ASSERT_EQ(w.size(), slot.size) << slot.name;
      std::copy(w.begin(), w.end(), m.params().params.begin() + slot.offset);
    }
    const std::vector<float> x = g.tensor(c + "x"), t1f = g.tensor(c + "t1"), t2f = g.tensor(c + "t2"),
                             eps = g.tensor(c + "eps");
    std::vector<int32_t> t1(t1f.begin(), t1f.end()), t2(t2f.begin(), t2f.end());
    m.forward_with(x.data(), B, t1.data(), t2.data(), eps.data());
    double figures = 0.0;
    for (auto [name, v] : {std::make_pair("loss", m.loss()), std::make_pair("bce", m.bce()),
                           std::make_pair("kl_t1", m.kl_t1()), std::make_pair("kl_t2", m.kl_t2())})
      figures = std::max(figures, test::golden_norm_ratio(v, g.tensor(c + name), kTol));
    test::expect_within(c + " loss, bce, kl_t1, kl_t2, ||v - r|| / (tol ||r||)", figures, 1.0);
    m.params().zero_grad();
    m.backward(1.0f);
    double worst = 0.0;
    std::string where;
    for (const TensorSlot& slot : m.params().slots()) {
      const double r =
          test::golden_norm_ratio(m.params().grads.data() + slot.offset, g.tensor(c + "grad." + slot.name), kTol);
      if (r > worst) worst = r, where = slot.name;
    }
    test::expect_within(c + " every gradient tensor (worst " + where + "), ||v - r|| / (tol ||r||)", worst, 1.0,
                        "gradcheck");
  }
}

TEST(TdVae, TrainingOnMovingSequencesLowersTheLoss) {
  TdVaeConfig c;
  c.frames = 8;
  c.pixels = 64;
  c.processed = 32;
  c.belief = 16;
  c.z = 4;
  c.block_hidden = 16;
  c.decoder_hidden = 32;
  ASSERT_TRUE(c.validate().ok());
  // 16 "digits" of 8 x 8 (random patterns of 0 and 255); sequences move them left or right.
  const Dataset digits = pattern_digits(16, 7);
  Rng rng(7);
  const int B = 16;
  TdVae m(c);
  m.reserve(B);
  m.init(rng);
  std::vector<float> x(static_cast<size_t>(B) * c.frames * c.pixels);
  Adam adam;
  adam.config.lr = 3e-3;
  auto batch_loss = [&](uint64_t seed) {
    // The same evaluation batch and draws every time.
    for (int b = 0; b < B; b++)
      moving_mnist_fixed_sequence(digits, b, c.frames, seed, x.data() + b * c.frames * c.pixels, nullptr);
    Rng draws(seed);
    m.forward(x.data(), B, draws, ZMode::kSample);
    double s = 0.0;
    for (int b = 0; b < B; b++) s += m.loss()[b];
    return s / B;
  };
  const double before = batch_loss(99);
  for (int step = 0; step < 300; step++) {
    for (int b = 0; b < B; b++)
      moving_mnist_random_sequence(digits, b, c.frames, rng, x.data() + b * c.frames * c.pixels, nullptr);
    m.forward(x.data(), B, rng, ZMode::kSample);
    for (int b = 0; b < B; b++) ASSERT_TRUE(std::isfinite(m.loss()[b]));
    m.params().zero_grad();
    m.backward(1.0f / B);
    adam.step(m.params());
  }
  const double after = batch_loss(99);
  // From 45.7 to about 40 nats per sequence (seed 7): the pixels' marginal entropy (64 H(0.3) = 39.1)
  // plus the KL terms, where a freshly initialised model learns first; a wrong sign or scale in the
  // backward leaves the loss at its start or sends it up.
  EXPECT_LT(after, 0.9 * before) << before << " -> " << after;
}

TEST(TdVae, RolloutsAreProbabilitiesAndSeeded) {
  const TdVaeConfig c = small_config();
  const int B = 3, steps = 4;
  TdVae m(c);
  m.reserve(B);
  Rng rng(11);
  m.init(rng);
  std::vector<float> x(static_cast<size_t>(B) * c.frames * c.pixels);
  for (float& v : x) v = rng.uniform() < 0.5f ? 1.0f : 0.0f;
  std::vector<float> a(static_cast<size_t>(B) * steps * c.pixels), b(a.size());
  Rng r1(4), r2(4);
  m.rollout(x.data(), B, 3, steps, 2, r1, a.data());
  m.rollout(x.data(), B, 3, steps, 2, r2, b.data());
  EXPECT_EQ(a, b);
  for (float v : a) {
    ASSERT_GT(v, 0.0f);
    ASSERT_LT(v, 1.0f);
  }
  // Frames after the context are never read: changing them changes nothing.
  for (int s = 0; s < B; s++)
    for (size_t i = 3 * c.pixels; i < static_cast<size_t>(c.frames) * c.pixels; i++)
      x[s * c.frames * c.pixels + i] = 0.5f;
  Rng r3(4);
  m.rollout(x.data(), B, 3, steps, 2, r3, b.data());
  EXPECT_EQ(a, b);
}

// The registry kind: digits in, each made a moving sequence; trained by the core Trainer, saved and
// loaded through the model file, evaluating to the same figures; its sequences move one pixel per frame
// in the direction it reports.
TEST(TdVae, KindTrainsSavesAndLoadsThroughTheTrainer) {
  const Dataset data = pattern_digits(64, 21);
  ModelConfig c;
  c.kind = "tdvae";
  c.input = 64;
  c.hyper = {{"frames", 6},       {"processed", 16},      {"belief", 8}, {"z_size", 3},
             {"block_hidden", 8}, {"decoder_hidden", 16}, {"pairs", 2},  {"max_jump", 3}};
  ASSERT_TRUE(c.validate().ok()) << c.validate().message();
  std::unique_ptr<Model> model;
  ASSERT_TRUE(create_model(c, &model).ok());
  Rng init(1);
  model->init(init);
  Rng e0(5);
  const double before = evaluate(*model, data, ZMode::kMean, e0, 32).loss();
  TrainSettings settings;
  settings.batch = 16;
  settings.adam.lr = 3e-3f;
  Trainer trainer;
  Status s = trainer.setup(model.get(), &data, settings);
  ASSERT_TRUE(s.ok()) << s.message();
  for (int i = 0; i < 200; i++) {
    LossTotals t;
    ASSERT_TRUE((s = trainer.step(&t)).ok()) << s.message();
  }
  Rng e1(5);
  const LossTotals trained = evaluate(*model, data, ZMode::kMean, e1, 32);
  EXPECT_LT(trained.loss(), 0.9 * before) << before << " -> " << trained.loss();
  ASSERT_EQ(trained.terms.size(), 3u);
  const std::vector<uint8_t> bytes = save_model(*model, {});
  std::unique_ptr<Model> loaded;
  ASSERT_TRUE((s = load_model(bytes.data(), bytes.size(), &loaded)).ok()) << s.message();
  EXPECT_EQ(loaded->config().to_json(), model->config().to_json());
  Rng e2(5);
  const LossTotals again = evaluate(*loaded, data, ZMode::kMean, e2, 32);
  EXPECT_EQ(again.terms, trained.terms);
  EXPECT_EQ(again.mse, trained.mse);
  // The sequences of the last forward: frame t is the first frame shifted by direction * t (the bits
  // are exact for a 0/255 digit).
  TdVaeModel* td = static_cast<TdVaeModel*>(loaded.get());
  const float* seq = td->sequences();
  for (int b = 0; b < 4; b++)
    for (int t = 0; t < 6; t++)
      for (int r = 0; r < 8; r++)
        for (int col = 0; col < 8; col++) {
          const int src = ((col - td->directions()[b] * t) % 8 + 8) % 8;
          ASSERT_EQ(seq[(b * 6 + t) * 64 + r * 8 + col], seq[(b * 6) * 64 + r * 8 + src]);
        }
}

// Stepping one frame at a time (the SequenceStepper capability of the kind) reaches the belief the
// sequence forward computes over all frames at once (the GEMMs split the rows differently: rounding).
TEST(TdVae, SteppingReachesTheSequenceBelief) {
  ModelConfig c;
  c.kind = "tdvae";
  c.input = 16;
  c.hyper = {{"frames", 5},       {"processed", 6},      {"belief", 4}, {"z_size", 2},
             {"block_hidden", 5}, {"decoder_hidden", 6}, {"pairs", 2},  {"max_jump", 2}};
  std::unique_ptr<Model> model;
  ASSERT_TRUE(create_model(c, &model).ok());
  const int B = 3;
  model->reserve(B);
  Rng rng(8);
  model->init(rng);
  SequenceStepper* stepper = model->sequence();
  ASSERT_NE(stepper, nullptr);
  EXPECT_EQ(stepper->state_size(), 8);
  EXPECT_EQ(stepper->max_jump(), 2);
  std::vector<float> digits(B * 16);
  for (float& v : digits) v = rng.uniform();
  model->forward(digits.data(), digits.data(), B, rng, ZMode::kMean);
  TdVaeModel* td = static_cast<TdVaeModel*>(model.get());
  const std::vector<float> seq(td->sequences(), td->sequences() + B * 5 * 16);
  const std::vector<float> bel(td->net().belief(), td->net().belief() + 5 * B * 4);
  stepper->reset_state(B);
  std::vector<float> frame(B * 16);
  for (int t = 0; t < 5; t++) {
    for (int b = 0; b < B; b++) std::copy_n(seq.data() + (b * 5 + t) * 16, 16, frame.data() + b * 16);
    stepper->step(frame.data(), B);
    for (int b = 0; b < B; b++)
      for (int j = 0; j < 4; j++) EXPECT_NEAR(stepper->state()[b * 8 + j], bel[(t * B + b) * 4 + j], 1e-5) << t;
  }
  std::vector<float> out(B * 3 * 16);
  Rng r(2);
  stepper->rollout(3, 2, out.data(), B, r);
  for (float v : out) ASSERT_TRUE(v > 0.0f && v < 1.0f);
}

TEST(TdVae, ConfigValidation) {
  TdVaeConfig c;
  EXPECT_TRUE(c.validate().ok());
  c.max_jump = c.frames;
  EXPECT_NE(c.validate().message().find("max_jump"), std::string::npos);
  c = TdVaeConfig();
  c.belief = 0;
  EXPECT_NE(c.validate().message().find("belief = 0 is out of range"), std::string::npos);
}

}  // namespace
}  // namespace ll
