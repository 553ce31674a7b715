// beta-VAE (both forms) and the convolutional VAE: finite-difference gradient checks of every
// parameter, the capacity schedule and its wiring through the Trainer, the weighted term's value,
// beta = 1 being exactly the plain VAE, tensor names, save/load round trips (with and without
// LatentLab metadata), and the conv VAE's loss and gradients against PyTorch's
// (tests/golden/conv_vae_golden.json, made by tests/golden/make_conv_vae_golden.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <vector>

#include "core/models/beta_vae.h"
#include "core/nn/conv.h"
#include "core/models/conv_vae.h"
#include "core/io/file_io.h"
#include "core/io/json.h"
#include "core/nn/layers.h"
#include "core/models/model.h"
#include "core/models/model_file.h"
#include "core/io/safetensors.h"
#include "core/train/trainer.h"
#include "tests/test_util.h"

namespace ll {
namespace {

std::unique_ptr<Model> make(const std::string& kind, int input, int latent,
                            std::map<std::string, double> hyper = {}, int B = 4, uint64_t seed = 11) {
  ModelConfig c;
  c.kind = kind;
  c.input = input;
  c.hidden = 9;
  c.latent = latent;
  c.hyper = hyper;
  std::unique_ptr<Model> m;
  Status s = create_model(c, &m);
  EXPECT_TRUE(s.ok()) << s.message();
  m->reserve(B);
  Rng rng(seed);
  m->init(rng);
  return m;
}

// The same loss recomputed in double from the model's float outputs (reconstruction probabilities,
// mu, logvar): BCE + w(KL) with w the kind's weighting. The model's own terms are float32 sums of
// hundreds of nats (an ulp of 6e-5 at 784 pixels), which over 2h = 0.02 is a gradient resolution of
// 3e-3: too coarse for a conv net's small per-weight gradients. Here the noise is ~1e-6 nats.
double precise_loss(Model& m, const float* x, int B, ZMode mode) {
  Rng rng(99);
  m.forward(x, x, B, rng, mode);
  const int I = m.config().input, Z = m.code_size();
  const float* p = m.reconstruction();
  const float *mu, *logvar, *z;
  EXPECT_TRUE(m.posterior(&mu, &logvar, &z));
  double total = 0.0;
  for (int b = 0; b < B; b++) {
    double bce = 0.0, kl = 0.0;
    for (int i = 0; i < I; i++) {
      const double pi = p[static_cast<size_t>(b) * I + i], xi = x[static_cast<size_t>(b) * I + i];
      bce -= xi * std::log(pi) + (1.0 - xi) * std::log1p(-pi);
    }
    for (int j = 0; j < Z; j++) {
      const double mj = mu[b * Z + j], lv = logvar[b * Z + j];
      kl += -0.5 * (1.0 + lv - mj * mj - std::exp(lv));
    }
    if (m.config().kind == "beta_vae") {
      const double gamma = m.config().get("gamma");
      kl = gamma == 0.0 ? m.config().get("beta") * kl
                        : gamma * std::fabs(kl - static_cast<BetaVae&>(m).capacity());
    }
    total += bce + kl;
  }
  return total;
}

// Analytic gradient of every parameter against central differences of precise_loss (as
// tests/test_models.cpp: the norm-wise relative error over each tensor is the robust figure).
void check_gradients(Model& m, const std::vector<float>& x, int B, ZMode mode, double tol = 5e-3,
                     float h = 1e-2f, size_t max_checks = 80) {
  // The float terms and the double recomputation agree (so the latter is the loss being checked).
  const double f32 = test::batch_loss(m, x.data(), x.data(), B, mode), f64 = precise_loss(m, x.data(), B, mode);
  EXPECT_NEAR(f32, f64, 1e-5 * std::fabs(f64));
  ParamArena& a = m.params();
  a.zero_grad();
  m.backward(1.0f);
  for (const TensorSlot& slot : a.slots()) {
    auto f = [&] { return precise_loss(m, x.data(), B, mode); };
    auto r = test::grad_check(f, a.params.data() + slot.offset, a.grads.data() + slot.offset, slot.size,
                              h, 1e-3, max_checks);
    test::expect_gradients_match(m.config().kind + " " + slot.name, r, tol, 10 * tol);
  }
}

// ---------------------------------------------------------------------------------------------
// beta-VAE

TEST(BetaVae, GradientCheckBetaForm) {
  const int B = 3;
  auto m = make("beta_vae", 13, 4, {{"beta", 4.0}}, B);
  Rng rng(12);
  auto x = test::random_vector(rng, B * 13, 0.0f, 1.0f);
  check_gradients(*m, x, B, ZMode::kSample);
  check_gradients(*m, x, B, ZMode::kMean);
}

TEST(BetaVae, BetaFormTermIsBetaTimesKl) {
  const int B = 3;
  auto m = make("beta_vae", 13, 4, {{"beta", 4.0}}, B);
  auto* bv = static_cast<BetaVae*>(m.get());
  Rng rng(12);
  auto x = test::random_vector(rng, B * 13, 0.0f, 1.0f);
  test::batch_loss(*m, x.data(), x.data(), B, ZMode::kSample);
  EXPECT_EQ(m->loss_terms(), (std::vector<std::string>{"bce", "weighted_kl"}));
  for (int b = 0; b < B; b++) {
    EXPECT_GT(bv->raw_kl()[b], 0.0f);
    EXPECT_FLOAT_EQ(m->term(1)[b], 4.0f * bv->raw_kl()[b]);
  }
}

// The capacity form gamma * |KL - C| with C between the examples' KLs, so the batch has examples on
// both sides of the kink (sign +1 and -1), each far enough from it that no perturbation crosses it.
TEST(BetaVae, GradientCheckCapacityFormOnBothSidesOfC) {
  const int B = 4;
  auto m = make("beta_vae", 13, 4, {{"gamma", 3.0}, {"capacity_max", 100.0}, {"capacity_steps", 1000000}}, B);
  auto* bv = static_cast<BetaVae*>(m.get());
  // A sharper encoder than at initialisation, so the examples' KLs are nats apart.
  float* w = m->params().param(bv->fc21.weight);
  for (int i = 0; i < 9 * 4; i++) w[i] *= 8.0f;
  Rng rng(14);
  auto x = test::random_vector(rng, B * 13, 0.0f, 1.0f);
  test::batch_loss(*m, x.data(), x.data(), B, ZMode::kSample);
  std::vector<float> kl(bv->raw_kl(), bv->raw_kl() + B);
  std::vector<float> sorted = kl;
  std::sort(sorted.begin(), sorted.end());
  // C halfway between the second and third smallest KL: begin_step sets C = 100 * step / 1e6.
  const double C = 0.5 * (sorted[1] + sorted[2]);
  bv->begin_step(static_cast<int64_t>(std::lround(C * 1e4)), 0);
  const double c = bv->capacity();
  EXPECT_NEAR(c, C, 1e-4);
  double margin = 1e9;
  for (float k : kl) margin = std::min(margin, std::fabs(k - c));
  ASSERT_GT(margin, 0.02) << "the examples' KLs are too close to C for a finite-difference check";
  test::batch_loss(*m, x.data(), x.data(), B, ZMode::kSample);
  int above = 0;
  for (int b = 0; b < B; b++) {
    EXPECT_NEAR(m->term(1)[b], 3.0 * std::fabs(kl[b] - c), 1e-4);
    above += kl[b] > c;
  }
  EXPECT_EQ(above, 2);
  // The sharper encoder makes the gradients large, so a small h is well resolved; no ReLU
  // pre-activation (fc1's, fc3's) may lie within reach of it.
  const float *mu, *logvar, *z;
  ASSERT_TRUE(m->posterior(&mu, &logvar, &z));
  std::vector<float> h1(B * 9), h3(B * 9);
  bv->fc1.forward(m->params(), h1.data(), x.data(), B);
  bv->fc3.forward(m->params(), h3.data(), z, B);
  double relu_margin = 1e9;
  for (const auto* v : {&h1, &h3})
    for (float a : *v) relu_margin = std::min(relu_margin, static_cast<double>(std::fabs(a)));
  ASSERT_GT(relu_margin, 0.01);
  check_gradients(*m, x, B, ZMode::kSample, 5e-3, 3e-3f);
}

// With C below every KL the capacity form's gradient is that of BCE + gamma * KL (the beta form with
// beta = gamma); with C above every KL it is that of BCE - gamma * KL, i.e. 2 * BCE-only minus the
// beta form's (beta < 0 is not allowed, so it is built from beta = 0 and beta = gamma).
TEST(BetaVae, CapacityFormGradientIsSignTimesGammaTimesKlGradient) {
  const int B = 3;
  Rng rng(12);
  auto x = test::random_vector(rng, B * 13, 0.0f, 1.0f);
  auto grads = [&](std::map<std::string, double> hyper, int64_t step) {
    auto m = make("beta_vae", 13, 4, hyper, B);
    m->begin_step(step, 0);
    test::batch_loss(*m, x.data(), x.data(), B, ZMode::kSample);
    m->params().zero_grad();
    m->backward(1.0f);
    return m->params().grads;
  };
  auto bce_only = grads({{"beta", 0.0}}, 0);
  auto beta2 = grads({{"beta", 2.0}}, 0);
  // C = 0 (step 0 of 1000): every KL is above C, so the gradient is that of BCE + 2 KL.
  auto below = grads({{"gamma", 2.0}, {"capacity_max", 1000.0}, {"capacity_steps", 1000}}, 0);
  // C = 1000 nats, far above any KL: the gradient is that of BCE - 2 KL.
  auto above = grads({{"gamma", 2.0}, {"capacity_max", 1000.0}, {"capacity_steps", 1000}}, 1000);
  ASSERT_EQ(bce_only.size(), below.size());
  double worst_below = 0.0, worst_above = 0.0, scale = 0.0;
  for (size_t i = 0; i < bce_only.size(); i++) {
    worst_below = std::max(worst_below, std::fabs(static_cast<double>(below[i]) - beta2[i]));
    const double expect_above = 2.0 * bce_only[i] - beta2[i];  // BCE - 2 KL
    worst_above = std::max(worst_above, std::fabs(above[i] - expect_above));
    scale = std::max(scale, std::fabs(static_cast<double>(beta2[i])));
  }
  EXPECT_LT(worst_below, 1e-5 * scale);
  EXPECT_LT(worst_above, 1e-4 * scale);
  EXPECT_GT(scale, 0.1);
}

TEST(BetaVae, BetaOneIsExactlyThePlainVae) {
  const int B = 3;
  auto bv = make("beta_vae", 13, 4, {{"beta", 1.0}}, B, 7);
  auto vae = make("vae", 13, 4, {}, B, 7);
  ASSERT_EQ(bv->params().params, vae->params().params);
  Rng rng(12);
  auto x = test::random_vector(rng, B * 13, 0.0f, 1.0f);
  EXPECT_EQ(test::batch_loss(*bv, x.data(), x.data(), B, ZMode::kSample), test::batch_loss(*vae, x.data(), x.data(), B, ZMode::kSample));
  for (Model* m : {bv.get(), vae.get()}) {
    m->params().zero_grad();
    m->backward(1.0f);
  }
  EXPECT_EQ(bv->params().grads, vae->params().grads);
}

TEST(BetaVae, CapacitySchedule) {
  auto m = make("beta_vae", 13, 4, {{"gamma", 10.0}, {"capacity_max", 25.0}});
  auto* bv = static_cast<BetaVae*>(m.get());
  EXPECT_EQ(bv->capacity(), 25.0);  // never trained: the end-of-training target
  bv->begin_step(0, 1000);
  EXPECT_EQ(bv->capacity(), 0.0);
  bv->begin_step(400, 1000);
  EXPECT_DOUBLE_EQ(bv->capacity(), 10.0);
  bv->begin_step(1000, 1000);
  EXPECT_DOUBLE_EQ(bv->capacity(), 25.0);
  bv->begin_step(5000, 1000);  // held at the maximum
  EXPECT_DOUBLE_EQ(bv->capacity(), 25.0);
  bv->begin_step(10, 0);  // length unknown and no capacity_steps: C = capacity_max
  EXPECT_DOUBLE_EQ(bv->capacity(), 25.0);
  // capacity_steps overrides the training length.
  auto m2 = make("beta_vae", 13, 4, {{"gamma", 10.0}, {"capacity_max", 25.0}, {"capacity_steps", 100}});
  auto* bv2 = static_cast<BetaVae*>(m2.get());
  bv2->begin_step(50, 1000);
  EXPECT_DOUBLE_EQ(bv2->capacity(), 12.5);
  bv2->begin_step(100, 0);
  EXPECT_DOUBLE_EQ(bv2->capacity(), 25.0);
}

TEST(BetaVae, TrainerRaisesCapacityStepByStep) {
  Dataset d = test::synthetic_dataset(40, 1, 13, 3);
  auto m = make("beta_vae", 13, 4, {{"gamma", 5.0}, {"capacity_max", 8.0}}, 8);
  auto* bv = static_cast<BetaVae*>(m.get());
  Trainer t;
  TrainSettings s;
  s.batch = 8;
  s.epochs = 4;  // 5 steps per epoch: 20 steps planned
  ASSERT_TRUE(t.setup(m.get(), &d, s).ok());
  for (int i = 1; i <= 25; i++) {
    LossTotals tot;
    ASSERT_TRUE(t.step(&tot).ok());
    // The step just taken was step i - 1 (counting from 0) of 20.
    EXPECT_DOUBLE_EQ(bv->capacity(), 8.0 * std::min(1.0, (i - 1) / 20.0)) << i;
    // The reported terms are the optimised loss: weighted_kl = gamma * |KL - C| per image.
    double expect = 0.0;
    for (int b = 0; b < 8; b++) expect += 5.0 * std::fabs(bv->raw_kl()[b] - bv->capacity());
    EXPECT_NEAR(tot.terms[1], expect, 1e-3 * expect + 1e-3);
  }
}

TEST(BetaVae, MetricsReportRawKlAndCapacity) {
  Dataset d = test::synthetic_dataset(30, 1, 13, 3);
  auto m = make("beta_vae", 13, 4, {{"gamma", 5.0}, {"capacity_max", 8.0}}, 8);
  auto plain = make("beta_vae", 13, 4, {{"beta", 1.0}}, 8);
  m->params().params = plain->params().params;  // same weights: the raw KL is the plain VAE's
  Rng r1(1), r2(1);
  LossTotals a = evaluate(*m, d, ZMode::kMean, r1, 8);
  LossTotals b = evaluate(*plain, d, ZMode::kMean, r2, 8);
  std::map<std::string, double> ma(a.metrics.begin(), a.metrics.end()), mb(b.metrics.begin(), b.metrics.end());
  ASSERT_TRUE(ma.count("kl") && ma.count("capacity") && ma.count("active_units"));
  EXPECT_FALSE(mb.count("capacity"));  // only the capacity form has a C
  EXPECT_NEAR(ma["kl"], b.mean(1), 1e-5 * b.mean(1));  // beta = 1: weighted_kl is the raw KL
  EXPECT_DOUBLE_EQ(ma["capacity"], 8.0);
  // mean |KL_b - C| >= |mean KL - C| (triangle inequality), with equality when all KL_b are on one side.
  EXPECT_GE(a.mean(1), 5.0 * std::fabs(ma["kl"] - 8.0) - 1e-4);
}

TEST(BetaVae, SaveLoadRoundTripKeepsTheSettings) {
  auto m = make("beta_vae", 784, 5, {{"gamma", 100.0}, {"capacity_max", 12.5}, {"capacity_steps", 3000}});
  auto bytes = save_model(*m, {});
  std::unique_ptr<Model> back;
  Status s = load_model(bytes.data(), bytes.size(), &back);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(back->config().kind, "beta_vae");
  EXPECT_EQ(back->config().get("gamma"), 100.0);
  EXPECT_EQ(back->config().get("capacity_max"), 12.5);
  EXPECT_EQ(back->config().get("capacity_steps"), 3000.0);
  EXPECT_EQ(back->config().get("beta"), 4.0);
  EXPECT_EQ(back->params().params, m->params().params);
  EXPECT_EQ(save_model(*back, {}), bytes);
  // The tensors are the plain VAE's: without metadata the file reads as a "vae".
  std::vector<TensorToWrite> t;
  for (const TensorSlot& slot : m->params().slots())
    t.push_back({slot.name, slot.shape, m->params().params.data() + slot.offset});
  auto bare = write_safetensors(t, {});
  ASSERT_TRUE(load_model(bare.data(), bare.size(), &back).ok());
  EXPECT_EQ(back->config().kind, "vae");
}

// ---------------------------------------------------------------------------------------------
// Convolutional VAE

TEST(ConvVae, TensorNamesAndShapesAreThePyTorchModules) {
  auto m = make("conv_vae", 784, 20);
  std::vector<std::pair<std::string, std::vector<int64_t>>> expect = {
      {"encoder.0.weight", {32, 1, 4, 4}},  {"encoder.0.bias", {32}},
      {"encoder.2.weight", {64, 32, 4, 4}}, {"encoder.2.bias", {64}},
      {"fc_mu.weight", {20, 3136}},         {"fc_mu.bias", {20}},
      {"fc_logvar.weight", {20, 3136}},     {"fc_logvar.bias", {20}},
      {"decoder_input.weight", {3136, 20}}, {"decoder_input.bias", {3136}},
      {"decoder.0.weight", {64, 32, 4, 4}}, {"decoder.0.bias", {32}},
      {"decoder.2.weight", {32, 1, 4, 4}},  {"decoder.2.bias", {1}}};
  const auto& slots = m->params().slots();
  ASSERT_EQ(slots.size(), expect.size());
  for (size_t i = 0; i < slots.size(); i++) {
    EXPECT_EQ(slots[i].name, expect[i].first);
    EXPECT_EQ(slots[i].shape, expect[i].second) << slots[i].name;
  }
  size_t total = 0;
  for (const TensorSlot& s : slots) total += s.size;
  EXPECT_EQ(total, 32u * 16 + 32 + 64 * 32 * 16 + 64 + 2 * (20 * 3136 + 20) + 3136 * 20 + 3136 +
                       64 * 32 * 16 + 32 + 32 * 16 + 1);
}

// The smallest |pre-activation| of the four ReLUs in the last forward (recomputed with the public
// layers): the distance to the nearest kink.
double relu_margin(ConvVae& m, const float* x, int B, int S) {
  const float *mu, *logvar, *z;
  m.posterior(&mu, &logvar, &z);
  ParamArena& P = m.params();
  const int S2 = S / 2, S4 = S / 4, F = 64 * S4 * S4;
  std::vector<float> a1(B * 32 * S2 * S2), r1(a1.size()), a2(B * F), r2(a2.size()), d0(B * F), d0r(d0.size()),
      d1(a1.size());
  std::vector<float> ws(64 * 16 * S2 * S2);
  conv2d_forward(a1.data(), x, P.param(m.enc0.weight), P.param(m.enc0.bias), m.enc0.shape(B, S, S), ws.data());
  relu_forward(r1.data(), a1.data(), a1.size());
  conv2d_forward(a2.data(), r1.data(), P.param(m.enc2.weight), P.param(m.enc2.bias), m.enc2.shape(B, S2, S2), ws.data());
  m.decoder_input.forward(P, d0.data(), z, B);
  relu_forward(d0r.data(), d0.data(), d0.size());
  conv_transpose2d_forward(d1.data(), d0r.data(), P.param(m.dec0.weight), P.param(m.dec0.bias),
                           m.dec0.shape(B, S4, S4), ws.data());
  double margin = 1e9;
  for (const auto* v : {&a1, &a2, &d0, &d1})
    for (float a : *v) margin = std::min(margin, static_cast<double>(std::fabs(a)));
  return margin;
}

// Central differences across a ReLU kink measure neither side's slope, and a conv net at PyTorch's
// initialisation has pre-activations within 1e-4 of 0 (1-6% of them within 0.01). So for the check
// every ReLU layer's weights are scaled down and its biases set to +-offset (alternating by channel
// or unit: half the units active, half not), which puts every pre-activation far from 0; the test
// asserts that margin, so it cannot silently check across a kink.
void keep_away_from_kinks(ConvVae& m, float offset) {
  ParamArena& P = m.params();
  auto adjust = [&](int weight, int bias, float scale) {
    const TensorSlot& w = P.slots()[weight];
    const TensorSlot& b = P.slots()[bias];
    for (size_t i = 0; i < w.size; i++) P.params[w.offset + i] *= scale;
    for (size_t i = 0; i < b.size; i++) P.params[b.offset + i] = (i % 2 ? -offset : offset);
  };
  // Scales found by measuring: they leave the pre-activations' spread (rms about 0.03-0.1 around the
  // offsets) well inside +-offset.
  adjust(m.enc0.weight, m.enc0.bias, 0.1f);
  adjust(m.enc2.weight, m.enc2.bias, 0.3f);
  adjust(m.decoder_input.weight, m.decoder_input.bias, 0.05f);
  adjust(m.dec0.weight, m.dec0.bias, 0.3f);
  // The posterior heads have no ReLU after them: scaled up, they carry a larger (better resolved)
  // gradient back to the encoder.
  for (int w : {m.fc_mu.weight, m.fc_logvar.weight}) {
    const TensorSlot& slot = P.slots()[w];
    for (size_t i = 0; i < slot.size; i++) P.params[slot.offset + i] *= 4.0f;
  }
}

void check_conv_vae(int S, int Z, uint64_t seed, std::vector<ZMode> modes, size_t max_checks) {
  const int B = 2;
  auto m = make("conv_vae", S * S, Z, {}, B, seed);
  auto* cv = static_cast<ConvVae*>(m.get());
  keep_away_from_kinks(*cv, 0.5f);
  Rng rng(12);
  auto x = test::random_vector(rng, B * S * S, 0.0f, 1.0f);
  for (ZMode mode : modes) {
    test::batch_loss(*m, x.data(), x.data(), B, mode);
    const double margin = relu_margin(*cv, x.data(), B, S);
    // h = 0.03 moves a pre-activation by at most 0.03 * |its layer input| (inputs <= 1, |z| < 4).
    ASSERT_GT(margin, 0.2) << "a pre-activation is too close to a ReLU kink for finite differences";
    check_gradients(*m, x, B, mode, 5e-3, 0.03f, max_checks);
  }
}

TEST(ConvVae, GradientCheckEveryParameter) {
  // 12x12 images (S/4 = 3) keep the check fast; the code is the same for 28x28.
  check_conv_vae(12, 3, 5, {ZMode::kSample, ZMode::kMean}, 80);
}

TEST(ConvVae, GradientCheckAt28x28) { check_conv_vae(28, 4, 6, {ZMode::kSample}, 30); }

TEST(ConvVae, DecodeOfTheMeanIsTheMeanReconstruction) {
  const int B = 3;
  auto m = make("conv_vae", 784, 5, {}, B);
  Rng rng(2);
  auto x = test::random_vector(rng, B * 784, 0.0f, 1.0f);
  Rng r(1);
  m->forward(x.data(), x.data(), B, r, ZMode::kMean);
  std::vector<float> mu(m->code(), m->code() + B * 5);
  std::vector<float> rec(m->reconstruction(), m->reconstruction() + B * 784), dec(B * 784);
  const float *pm, *plv, *pz;
  ASSERT_TRUE(m->posterior(&pm, &plv, &pz));
  EXPECT_EQ(std::vector<float>(pz, pz + B * 5), mu);  // z = mu in the mean mode
  m->decode(mu.data(), B, dec.data());
  // decode uses libm's sigmoid, forward the BCE kernel's own exp: equal to float rounding.
  EXPECT_LT(test::max_abs_diff(dec.data(), rec.data(), dec.size()), 1e-6);
  // KL is independent of the sample; BCE is not.
  std::vector<float> bce(m->term(0), m->term(0) + B), kl(m->term(1), m->term(1) + B);
  m->forward(x.data(), x.data(), B, r, ZMode::kSample);
  EXPECT_NE(m->term(0)[0], bce[0]);
  EXPECT_EQ(std::vector<float>(m->term(1), m->term(1) + B), kl);
}

TEST(ConvVae, SaveLoadRoundTripAndPyTorchFileWithoutMetadata) {
  auto m = make("conv_vae", 784, 7);
  auto bytes = save_model(*m, {{"latentlab.train", "{}"}});
  std::unique_ptr<Model> back;
  Status s = load_model(bytes.data(), bytes.size(), &back);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(back->config().kind, "conv_vae");
  EXPECT_EQ(back->config().latent, 7);
  EXPECT_EQ(back->params().params, m->params().params);
  EXPECT_EQ(save_model(*back, {{"latentlab.train", "{}"}}), bytes);
  // As PyTorch would save it (names only): recognised as conv_vae, sizes read from fc_mu.
  for (int input : {784, 144}) {
    auto src = make("conv_vae", input, 3);
    std::vector<TensorToWrite> t;
    for (const TensorSlot& slot : src->params().slots())
      t.push_back({slot.name, slot.shape, src->params().params.data() + slot.offset});
    auto bare = write_safetensors(t, {{"format", "pt"}});
    s = load_model(bare.data(), bare.size(), &back);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(back->config().kind, "conv_vae");
    EXPECT_EQ(back->config().input, input);
    EXPECT_EQ(back->config().latent, 3);
    EXPECT_EQ(back->params().params, src->params().params);
  }
}

// The golden file's weights and inputs are closed-form (see make_conv_vae_golden.py), z = mu.
TEST(ConvVae, LossAndGradientsMatchPyTorch) {
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(read_file(std::string(LATENTLAB_SOURCE_DIR) + "/tests/golden/conv_vae_golden.json", &bytes).ok());
  JsonValue g;
  ASSERT_TRUE(parse_json(reinterpret_cast<const char*>(bytes.data()), bytes.size(), &g).ok());
  const int B = 3, S = 28;
  auto m = make("conv_vae", S * S, 4, {}, B);
  ParamArena& P = m->params();
  const JsonValue* order = g.get("tensor_order");
  ASSERT_TRUE(order && order->array.size() == P.slots().size());
  for (size_t t = 0; t < P.slots().size(); t++) {
    const TensorSlot& slot = P.slots()[t];
    ASSERT_EQ(order->array[t].string, slot.name);
    // A bias takes its weight's fan-in; fan-in = shape[1] * K * K (conv, transposed conv) or shape[1].
    const TensorSlot& w = slot.shape.size() == 1 ? P.slots()[t - 1] : slot;
    const double fan_in = w.shape.size() == 4 ? w.shape[1] * w.shape[2] * w.shape[3] : w.shape[1];
    for (size_t i = 0; i < slot.size; i++)
      P.params[slot.offset + i] = static_cast<float>(std::sin(0.7 * i + 1.3 * t + 0.1) / std::sqrt(fan_in));
  }
  std::vector<float> x(B * S * S);
  for (int b = 0; b < B; b++)
    for (int i = 0; i < S * S; i++) x[b * S * S + i] = static_cast<float>(0.5 + 0.5 * std::sin(0.37 * i + 1.1 * b));
  Rng rng(1);
  m->forward(x.data(), x.data(), B, rng, ZMode::kMean);
  // Derived bounds, u = 2^-24. The loss: BCE = sum of 784 non-negative terms summed in float32, at
  // most gamma_784 BCE ~ 784 u BCE from the float64 sum in any order; the logits' own float32 errors
  // (random sign, d BCE / d logit = p - x) add far less: bound 1000 u BCE = 6e-5 BCE. KL: 4
  // terms of size <= 1: 64 u. Probabilities: 4 layers of random-sign sums of K <= 1024 terms,
  // ~u sqrt(K) each relative to the logit (|logit| <= 10 here): 8 u sqrt(1024) (|logit| + 1) p (1 - p).
  const double u = std::ldexp(1.0, -24);
  double worst_loss = 0.0, worst_probs = 0.0, worst_grads = 0.0;
  for (int b = 0; b < B; b++) {
    const double bce = g.get("bce")->array[b].number, kl = g.get("kl")->array[b].number;
    worst_loss = std::max(worst_loss, std::fabs(m->term(0)[b] - bce) / (1000 * u * bce));
    worst_loss = std::max(worst_loss, std::fabs(m->term(1)[b] - kl) / (64 * u * (1.0 + std::fabs(kl))));
  }
  for (int i = 0; i < 8; i++) {
    const double p = g.get("probs_first")->array[i].number, logit = std::log(p / (1.0 - p));
    worst_probs = std::max(worst_probs, std::fabs(m->reconstruction()[i] - p) /
                                            (8 * u * 32 * (std::fabs(logit) + 1.0) * p * (1.0 - p)));
  }
  test::expect_within("loss terms", worst_loss, 1.0);
  test::expect_within("probs_first", worst_probs, 1.0);
  P.zero_grad();
  m->backward(1.0f);
  // Gradients, float32 against float64: the deepest layer's gradient has passed L = 8 chained
  // reductions (4 forward and 4 backward convolutions, each GEMM backend summing in its own order) of
  // up to K = 1024 random-sign terms, each adding ~u sqrt(K) of the tensor's norm: u sqrt(K) L = 1.5e-5
  // of the norm (the worst measured: 1.6e-5, encoder.0.weight in the sanitizer build with OpenBLAS).
  // The bound is 6x that, 9.2e-5 of the norm; a wrong term or factor is off by a sizeable part of it.
  const double tol = 6 * u * std::sqrt(1024.0) * 8;
  for (const TensorSlot& slot : P.slots()) {
    const JsonValue* want = g.get("grads")->get(slot.name);
    ASSERT_TRUE(want) << slot.name;
    const float* d = P.grads.data() + slot.offset;
    double sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < slot.size; i++) sum += d[i], sq += static_cast<double>(d[i]) * d[i];
    const double norm = want->get("norm")->number;
    worst_grads = std::max(worst_grads, std::fabs(std::sqrt(sq) - norm) / (tol * norm));
    // The sum's error is a random-sign sum of the entries' errors: sqrt(size) of one entry's.
    worst_grads = std::max(worst_grads, std::fabs(sum - want->get("sum")->number) /
                                            (tol * norm * std::sqrt(static_cast<double>(slot.size))));
    for (const JsonValue& at : want->get("at")->array) {
      const double r = std::fabs(d[at.array[0].integer] - at.array[1].number) / (tol * norm);
      EXPECT_LE(r, 1.0) << slot.name << "[" << at.array[0].integer << "]";
      worst_grads = std::max(worst_grads, r);
    }
  }
  test::expect_within("gradients", worst_grads, 1.0);
}

TEST(ConvVae, TrainingLowersTheLoss) {
  // 12x12 images made of four binary prototypes: learnable, so the loss must fall a long way.
  Rng rng(8);
  std::vector<uint8_t> proto(4 * 144);
  for (auto& p : proto) p = rng.uniform() < 0.3f ? 255 : 0;
  ImageSet im;
  im.count = 64, im.rows = 12, im.cols = 12;
  for (int i = 0; i < 64; i++) im.pixels.insert(im.pixels.end(), proto.begin() + (i % 4) * 144, proto.begin() + (i % 4 + 1) * 144);
  LabelSet lab;
  lab.count = 64;
  lab.labels.assign(64, 0);
  Dataset d;
  ASSERT_TRUE(make_dataset(im, lab, &d).ok());
  auto m = make("conv_vae", 144, 3, {}, 16);
  Trainer t;
  TrainSettings s;
  s.batch = 16;
  s.adam.lr = 3e-3f;
  ASSERT_TRUE(t.setup(m.get(), &d, s).ok());
  Rng r(1);
  const double before = evaluate(*m, d, ZMode::kMean, r, 16).loss();
  for (int i = 0; i < 100; i++) ASSERT_TRUE(t.step(nullptr).ok());
  const double after = evaluate(*m, d, ZMode::kMean, r, 16).loss();
  EXPECT_LT(after, 0.25 * before) << before << " -> " << after;
}

}  // namespace
}  // namespace ll
