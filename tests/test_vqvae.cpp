// VQ-VAE: gradient checks of the straight-through surrogate for every parameter tensor, the
// straight-through estimator itself, the codebook-loss gradient, the EMA update against hand-computed
// values, dead-code restart, code-usage metrics, decode from indices, training, and the model file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <vector>

#include "core/io/idx.h"
#include "core/nn/layers.h"
#include "core/models/model_file.h"
#include "core/io/safetensors.h"
#include "core/train/trainer.h"
#include "core/models/vqvae.h"
#include "tests/test_util.h"

namespace ll {
namespace {

// Small images (8 x 8: a 2 x 2 code grid) keep the finite differences fast.
constexpr int kSide = 8, kPixels = kSide * kSide;

// The raw decoder output unless `sigmoid`: the finite-difference checks of the whole network need it
// (float32 outputs near 0.5, as a sigmoid's start, round at 3e-8 each, which swamps differences of the
// loss over 1e-3 steps); SigmoidOutputGradient checks the sigmoid stage on its own.
std::unique_ptr<VqVae> make_vq(bool ema, int B, int K = 5, int D = 3, int dead_steps = 0,
                               uint64_t seed = 11, bool sigmoid = false) {
  ModelConfig c;
  c.kind = "vqvae";
  c.input = kPixels;
  c.hyper["codebook_size"] = K;
  c.hyper["code_dim"] = D;
  c.hyper["ema"] = ema ? 1 : 0;
  c.hyper["dead_code_steps"] = dead_steps;
  c.hyper["sigmoid_output"] = sigmoid ? 1 : 0;
  std::unique_ptr<Model> m;
  Status s = create_model(c, &m);
  EXPECT_TRUE(s.ok()) << s.message();
  m->reserve(B);
  Rng rng(seed);
  m->init(rng);
  return std::unique_ptr<VqVae>(static_cast<VqVae*>(m.release()));
}

// Spread the codebook over encoder outputs of x so that several codes are in use (the default init
// puts every code near the origin), with a little noise so no code equals a z_e exactly.
void codebook_from_data(VqVae& m, const float* x, int B, uint64_t seed) {
  Rng rng(seed);
  m.forward(x, x, B, rng, ZMode::kMean);
  const int G = m.grid() * m.grid(), D = m.D();
  float* E = m.params().param(m.params().find("codebook.weight"));
  for (int k = 0; k < m.K(); k++) {
    const int cell = static_cast<int>(rng.below(static_cast<uint32_t>(B * G)));
    const int b = cell / G, c = cell % G;
    for (int d = 0; d < D; d++)
      E[k * D + d] = m.z_e()[(b * D + d) * G + c] + 0.05f * rng.normal();
  }
}

int distinct_codes(const VqVae& m, int B) {
  std::vector<int> seen(m.K(), 0);
  for (int i = 0; i < B * m.grid() * m.grid(); i++) seen[m.indices()[i]] = 1;
  int n = 0;
  for (int v : seen) n += v;
  return n;
}

// Numeric gradient of f w.r.t. x[i] for up to max_checks entries (test::grad_check: central
// differences at h and h/2, Richardson where curvature shows, with a float32 noise estimate). f reports
// whether the quantisation or the set of active ReLU units changed under the step (an argmin tie or a
// kink within it: the difference quotient is then not the derivative); such an entry is retried with
// 0.3 h, then 0.03 h (its noise then 3x or 33x larger, which the bounds account for), then skipped.
// Why 0.3 and not 0.1: these small-init ReLU layers put kinks within 3e-3 of many entries, and the
// float32 rounding of the loss changes with the GEMM kernel each process picks by timing; with a
// first retry at h/10 the retried entries' noise moved the worst ratio between 0.08 and 0.24 of its
// bound from run to run (12 runs, release and portable builds), with 0.3 h between 0.08 and 0.14.
test::GradCheckResult fd_check(const std::function<double(bool*)>& f, float* x, const float* analytic,
                               size_t n, float h, int max_checks, uint64_t seed) {
  test::GradCheckOptions o;
  o.h = h;
  o.retry_h = 0.3f * h;
  o.max_checks = static_cast<size_t>(max_checks);
  o.seed = seed;
  o.max_skipped_fraction = 0.5;  // the callers also ask for at least half the entries checked
  return test::grad_check(f, x, analytic, n, o);
}

// Which ReLU units are active (y > 0) after the last encode and decoder_forward: a finite difference
// across a change of this pattern straddles a kink and is skipped.
std::vector<bool> relu_pattern(const VqVae& m, int B) {
  const size_t half = static_cast<size_t>(kSide / 2) * (kSide / 2), grid = m.grid() * m.grid();
  std::vector<bool> p;
  for (auto [y, n] : {std::make_pair(m.encoder_1(), B * 32 * half), std::make_pair(m.encoder_3(), B * 64 * grid),
                      std::make_pair(m.decoder_1(), B * 64 * grid), std::make_pair(m.decoder_3(), B * 32 * half)})
    for (size_t i = 0; i < n; i++) p.push_back(y[i] > 0.0f);
  return p;
}

double sum_terms(const Model& m, int B) {
  double s = 0.0;
  for (size_t t = 0; t < m.loss_terms().size(); t++)
    for (int b = 0; b < B; b++) s += m.term(static_cast<int>(t))[b];
  return s;
}

// The loss whose exact gradient the straight-through estimator computes: every stop-gradient frozen at
// the base point (subscript 0):
//   L(theta) = mse(dec(z_e + (z_q0 - z_e0))) + s ||z_e0 - E[idx]||^2 + beta s ||z_e - z_q0||^2
// where z_e, idx and E[idx] are recomputed at theta (idx must equal idx0, else *changed).
struct Surrogate {
  VqVae* m;
  const float* x;
  int B;
  std::vector<int32_t> idx0;
  std::vector<float> ze0, zq0, zin;
  std::vector<bool> pattern0;
  double beta, s;

  Surrogate(VqVae* model, const float* input, int batch) : m(model), x(input), B(batch) {
    Rng rng(1);
    m->forward(x, x, B, rng, ZMode::kMean);
    const size_t nz = static_cast<size_t>(B) * m->D() * m->grid() * m->grid();
    idx0.assign(m->indices(), m->indices() + B * m->grid() * m->grid());
    ze0.assign(m->z_e(), m->z_e() + nz);
    zq0.assign(m->z_q(), m->z_q() + nz);
    zin.resize(nz);
    beta = m->config().get("commitment");
    s = static_cast<double>(kPixels) / (m->grid() * m->grid() * m->D());
    bool changed;
    (*this)(&changed);
    pattern0 = relu_pattern(*m, B);
  }

  double operator()(bool* changed) {
    Rng rng(1);
    m->forward(x, x, B, rng, ZMode::kMean);
    *changed = !std::equal(idx0.begin(), idx0.end(), m->indices());
    double codebook = 0.0, commitment = 0.0;
    for (size_t i = 0; i < zin.size(); i++) {
      const double ze = m->z_e()[i], zq = m->z_q()[i];  // zq = E[idx] at theta
      codebook += (ze0[i] - zq) * (ze0[i] - zq);
      commitment += (ze - zq0[i]) * (ze - zq0[i]);
      zin[i] = m->z_e()[i] + (zq0[i] - ze0[i]);
    }
    m->decoder_forward(zin.data(), B);
    *changed = *changed || (!pattern0.empty() && relu_pattern(*m, B) != pattern0);
    double mse = 0.0;
    for (int i = 0; i < B * kPixels; i++) {
      const double d = static_cast<double>(m->reconstruction()[i]) - x[i];
      mse += d * d;
    }
    return mse + (m->ema() ? 0.0 : s * codebook) + beta * s * commitment;
  }
};

void check_all_gradients(bool ema) {
  const int B = 3;
  auto m = make_vq(ema, B);
  Rng rng(12);
  auto x = test::random_vector(rng, B * kPixels, 0.0f, 1.0f);
  codebook_from_data(*m, x.data(), B, 5);
  Surrogate f(m.get(), x.data(), B);
  ASSERT_GE(distinct_codes(*m, B), 3);
  // At the base point the surrogate is the model's own loss.
  bool changed = false;
  const double at_base = f(&changed);
  Rng r1(1);
  m->forward(x.data(), x.data(), B, r1, ZMode::kMean);
  EXPECT_NEAR(at_base, sum_terms(*m, B), 1e-5 * std::fabs(at_base));
  ParamArena& a = m->params();
  a.zero_grad();
  m->backward(1.0f);
  for (const TensorSlot& slot : a.slots()) {
    if (ema && slot.name == "codebook.weight") {
      // Under EMA the codebook is not trained by gradients.
      for (size_t i = 0; i < slot.size; i++) ASSERT_EQ(a.grads[slot.offset + i], 0.0f);
      continue;
    }
    auto r = fd_check([&](bool* c) { return f(c); }, a.params.data() + slot.offset,
                      a.grads.data() + slot.offset, slot.size, 3e-3f, 60, 3);
    // float32 forward: the norm-wise relative error is the main figure (test_util.h). Steps: 3e-3,
    // then 9e-4 and 9e-5 across a kink or an argmin change (these small-init ReLU layers have many
    // units near 0; encoder.4.bias moves every cell's z_e at once). The float32 rounding of the loss
    // (~1e-7) gives ~3e-5 of noise on gradients of ~1e-2 in the first layers at 3e-3 (1e-3 left
    // only 2x margin): against 1e-2 (a missing or mis-scaled straight-through or commitment
    // gradient gives errors of order 0.1 to 1).
    test::expect_gradients_match((ema ? "ema " : "") + slot.name, r, 1e-2);
    EXPECT_GE(r.checked, std::min<size_t>(slot.size, 60) / 2) << slot.name;
  }
}

TEST(VqVae, GradientCheckEveryTensor) { check_all_gradients(false); }
TEST(VqVae, GradientCheckEveryTensorWithEma) { check_all_gradients(true); }

// The sigmoid output (the default): the reconstruction is sigmoid(raw), in (0, 1), and the gradient
// goes through sigma' = y (1 - y). decoder.4's weight and bias reach the loss through the sigmoid
// alone (no ReLU after them), so the loss is smooth in them and larger steps are exact enough; the
// layers before share the raw model's code, checked above.
TEST(VqVae, SigmoidOutputGradient) {
  const int B = 3;
  auto m = make_vq(false, B, 5, 3, 0, 11, /*sigmoid=*/true);
  Rng rng(12);
  auto x = test::random_vector(rng, B * kPixels, 0.0f, 1.0f);
  codebook_from_data(*m, x.data(), B, 5);
  Surrogate f(m.get(), x.data(), B);
  Rng r1(1);
  m->forward(x.data(), x.data(), B, r1, ZMode::kMean);
  for (int i = 0; i < B * kPixels; i++) {
    ASSERT_GT(m->reconstruction()[i], 0.0f);
    ASSERT_LT(m->reconstruction()[i], 1.0f);
  }
  ParamArena& a = m->params();
  a.zero_grad();
  m->backward(1.0f);
  for (const char* name : {"decoder.4.weight", "decoder.4.bias"}) {
    const TensorSlot* slot = nullptr;
    for (const TensorSlot& t : a.slots()) {
      if (t.name == name) slot = &t;
    }
    ASSERT_NE(slot, nullptr) << name;
    auto r = fd_check([&](bool* c) { return f(c); }, a.params.data() + slot->offset,
                      a.grads.data() + slot->offset, slot->size, 1e-2f, 60, 3);
    test::expect_gradients_match(name, r, 1e-3);
    EXPECT_GE(r.checked, std::min<size_t>(slot->size, 60) / 2) << name;
  }
}

TEST(VqVae, StraightThroughCopiesTheDecoderInputGradient) {
  const int B = 2;
  for (bool ema : {false, true}) {
    auto m = make_vq(ema, B);
    Rng rng(23);  // seed 13 puts a decoder.1 unit at 3e-6 from its kink
    auto x = test::random_vector(rng, B * kPixels, 0.0f, 1.0f);
    codebook_from_data(*m, x.data(), B, 6);
    Rng r1(1);
    m->forward(x.data(), x.data(), B, r1, ZMode::kMean);
    m->params().zero_grad();
    const float scale = 0.5f;
    m->backward(scale);
    const int nz = B * m->D() * m->grid() * m->grid();
    const double beta = m->config().get("commitment"), s = double(kPixels) / (m->grid() * m->grid() * m->D());
    std::vector<float> zq(m->z_q(), m->z_q() + nz), ze(m->z_e(), m->z_e() + nz);
    std::vector<float> dzq(m->dz_q(), m->dz_q() + nz), dze(m->dz_e(), m->dz_e() + nz);
    // dL/dz_e = dL/dz_q + d/dz_e beta s ||z_e - sg[z_q]||^2 = dz_q + 2 beta s (z_e - z_q), times scale.
    double max_dzq = 0.0;
    for (int i = 0; i < nz; i++) {
      EXPECT_NEAR(dze[i], dzq[i] + scale * 2.0 * beta * s * (ze[i] - zq[i]), 1e-5 * (1.0 + std::fabs(dze[i])))
          << i;
      max_dzq = std::max(max_dzq, std::fabs(double(dzq[i])));
    }
    EXPECT_GT(max_dzq, 1e-3);  // the decoder gradient is really there, not just the commitment one
    // dz_q is the gradient of scale * mse w.r.t. the decoder input (finite differences on z_q).
    m->decoder_forward(zq.data(), B);
    const std::vector<bool> pattern0 = relu_pattern(*m, B);
    auto mse_at = [&](bool* changed) {
      m->decoder_forward(zq.data(), B);
      *changed = relu_pattern(*m, B) != pattern0;
      double s2 = 0.0;
      for (int i = 0; i < B * kPixels; i++) {
        double d = double(m->reconstruction()[i]) - x[i];
        s2 += d * d;
      }
      return scale * s2;
    };
    auto r = fd_check(mse_at, zq.data(), dzq.data(), zq.size(), 1e-3f, 100, 4);
    test::expect_gradients_match(ema ? "dz_q ema" : "dz_q", r, 5e-3);
    EXPECT_GE(r.checked, zq.size() / 2);
  }
}

TEST(VqVae, CodebookLossGradient) {
  const int B = 3;
  auto m = make_vq(false, B);
  Rng rng(14);
  auto x = test::random_vector(rng, B * kPixels, 0.0f, 1.0f);
  codebook_from_data(*m, x.data(), B, 7);
  Rng r1(1);
  m->forward(x.data(), x.data(), B, r1, ZMode::kMean);
  const std::vector<int32_t> idx0(m->indices(), m->indices() + B * 4);
  const int G = 4, D = m->D();
  const double s = double(kPixels) / (G * D);
  ParamArena& a = m->params();
  a.zero_grad();
  m->backward(1.0f);
  const int cb = a.find("codebook.weight");
  // Closed form: dE_k = 2 s sum over cells choosing k of (e_k - z_e); unchosen codes get 0.
  std::vector<double> expect(m->K() * D, 0.0);
  for (int b = 0; b < B; b++)
    for (int c = 0; c < G; c++)
      for (int d = 0; d < D; d++) {
        const int k = idx0[b * G + c];
        expect[k * D + d] += 2.0 * s * (m->codebook()[k * D + d] - m->z_e()[(b * D + d) * G + c]);
      }
  for (int i = 0; i < m->K() * D; i++) EXPECT_NEAR(a.grad(cb)[i], expect[i], 1e-4 * (1 + std::fabs(expect[i])));
  // And by finite differences of the model's own "codebook" term (z_e does not depend on E).
  auto f = [&](bool* changed) {
    Rng r(1);
    m->forward(x.data(), x.data(), B, r, ZMode::kMean);
    *changed = !std::equal(idx0.begin(), idx0.end(), m->indices());
    double t = 0.0;
    for (int b = 0; b < B; b++) t += m->term(1)[b];
    return t;
  };
  ASSERT_EQ(m->loss_terms()[1], "codebook");
  auto r = fd_check(f, a.param(cb), a.grad(cb), m->K() * D, 1e-2f, 100, 5);
  test::expect_gradients_match("codebook", r, 2e-3);
  EXPECT_GT(r.checked, 10u);
}

TEST(VqVae, EmaUpdateMatchesHandComputedValues) {
  // K = 3 codes in D = 2, decay 0.5, eps 0.1.
  float E[6] = {1, 1, 2, 0, 5, 5};
  float N[3] = {0, 0, 0}, M[6] = {0, 0, 0, 0, 0, 0};
  float cnt[3], sum[6];
  // Update 1: code 0 gets (1,2) and (3,0), code 1 gets (0,4), code 2 nothing.
  const float z1[6] = {1, 2, 0, 4, 3, 0};
  const int32_t i1[3] = {0, 1, 0};
  vq_batch_stats(cnt, sum, z1, i1, 3, 3, 2);
  EXPECT_EQ(cnt[0], 2.0f);
  EXPECT_EQ(sum[0], 4.0f);
  EXPECT_EQ(sum[1], 2.0f);
  vq_ema_update(E, N, M, cnt, sum, 3, 2, 0.5, 0.1, 1);
  // t = 1: w = 0, so N = (2, 1, 0), m_0 = (4, 2), m_1 = (0, 4); n = 3;
  // N~_k = (N_k + 0.1) / 3.3 * 3: N~_0 = 6.3/3.3, N~_1 = 1. e_0 = (4, 2) * 3.3/6.3, e_1 = (0, 4);
  // code 2 was never chosen (N_2 = 0 exactly) and keeps (5, 5).
  EXPECT_FLOAT_EQ(N[0], 2.0f);
  EXPECT_FLOAT_EQ(N[1], 1.0f);
  EXPECT_EQ(N[2], 0.0f);
  EXPECT_NEAR(E[0], 13.2 / 6.3, 1e-6);
  EXPECT_NEAR(E[1], 6.6 / 6.3, 1e-6);
  EXPECT_NEAR(E[2], 0.0, 1e-6);
  EXPECT_NEAR(E[3], 4.0, 1e-6);
  EXPECT_EQ(E[4], 5.0f);
  EXPECT_EQ(E[5], 5.0f);
  // Update 2: code 1 gets (1,1), (2,2), (3,3); code 2 gets (4,4); code 0 nothing.
  const float z2[8] = {1, 1, 2, 2, 3, 3, 4, 4};
  const int32_t i2[4] = {1, 1, 1, 2};
  vq_batch_stats(cnt, sum, z2, i2, 4, 3, 2);
  vq_ema_update(E, N, M, cnt, sum, 3, 2, 0.5, 0.1, 2);
  // t = 2: w = 0.5 (1 - 0.5) / (1 - 0.25) = 1/3. N = (2/3, 1/3 + 2, 2/3) = (2/3, 7/3, 2/3), n = 11/3;
  // m_0 = (4/3, 2/3), m_1 = (0, 4)/3 + (2/3)(6, 6) = (4, 16/3), m_2 = (2/3)(4, 4) = (8/3, 8/3).
  // N~_k = (N_k + 0.1) / (11/3 + 0.3) * 11/3: N~_0 = N~_2 = 253/357, N~_1 = 803/357.
  EXPECT_NEAR(N[1], 7.0 / 3.0, 1e-6);
  EXPECT_NEAR(E[0], 476.0 / 253.0, 1e-5);
  EXPECT_NEAR(E[1], 238.0 / 253.0, 1e-5);
  EXPECT_NEAR(E[2], 1428.0 / 803.0, 1e-5);
  EXPECT_NEAR(E[3], 1904.0 / 803.0, 1e-5);
  EXPECT_NEAR(E[4], 952.0 / 253.0, 1e-5);
  EXPECT_NEAR(E[5], 952.0 / 253.0, 1e-5);
}

// Make every cell's z_e equal `v`: encoder.4's weight 0 and its bias v.
void constant_encoder_output(VqVae& m, const float* v) {
  ParamArena& a = m.params();
  const int w = a.find("encoder.4.weight"), b = a.find("encoder.4.bias");
  std::fill(a.param(w), a.param(w) + a.slots()[w].size, 0.0f);
  std::copy(v, v + m.D(), a.param(b));
}

TEST(VqVae, EmaUpdateInTheModelAfterAStep) {
  const int B = 2, K = 4, D = 3;
  auto m = make_vq(true, B, K, D);
  Rng rng(15);
  auto x = test::random_vector(rng, B * kPixels, 0.0f, 1.0f);
  const std::vector<float> E0(m->codebook(), m->codebook() + K * D);
  // Every cell's z_e is e_2 + (0.01, 0.02, -0.01): all 8 cells choose code 2.
  float v[3] = {E0[6] + 0.01f, E0[7] + 0.02f, E0[8] - 0.01f};
  constant_encoder_output(*m, v);
  Rng r1(1);
  m->forward(x.data(), x.data(), B, r1, ZMode::kMean);
  for (int i = 0; i < B * 4; i++) ASSERT_EQ(m->indices()[i], 2);
  m->after_step(r1);
  // First update: N_2 = 8, m_2 = 8 v, the others never chosen; N~_2 = (8 + 1e-5) / (8 + 4e-5) * 8.
  const double smoothed = (8 + 1e-5) / (8 + 4e-5) * 8;
  EXPECT_FLOAT_EQ(m->ema_counts()[2], 8.0f);
  for (int d = 0; d < D; d++) EXPECT_NEAR(m->codebook()[2 * D + d], 8 * v[d] / smoothed, 1e-6);
  for (int k : {0, 1, 3})
    for (int d = 0; d < D; d++) EXPECT_EQ(m->codebook()[k * D + d], E0[k * D + d]);
  // The model has no codebook term with EMA.
  EXPECT_EQ(m->loss_terms(), (std::vector<std::string>{"mse", "commitment"}));
}

TEST(VqVae, DeadCodeIsRestartedAndThenUsed) {
  for (bool ema : {false, true}) {
    const int B = 4, K = 5, D = 3, dead = 3;
    auto m = make_vq(ema, B, K, D, dead);
    Dataset data = test::synthetic_dataset(B, kSide, kPixels / kSide, 8);
    std::vector<float> x(B * kPixels);
    data.to_float(nullptr, 0, B, x.data());
    codebook_from_data(*m, x.data(), B, 9);
    // Code 4 far from every encoder output: unreachable.
    float* E = m->params().param(m->params().find("codebook.weight"));
    for (int d = 0; d < D; d++) E[4 * D + d] = 100.0f;
    Trainer t;
    TrainSettings s;
    s.batch = B;  // one batch per epoch: the same four images every step
    s.adam.lr = 1e-4;
    ASSERT_TRUE(t.setup(m.get(), &data, s).ok());
    for (int step = 1; step < dead; step++) {
      ASSERT_TRUE(t.step(nullptr).ok());
      EXPECT_EQ(m->steps_since_used()[4], step);
      EXPECT_EQ(m->codebook()[4 * D], 100.0f);
    }
    const int64_t restarts_before = m->restarts();
    ASSERT_TRUE(t.step(nullptr).ok());
    EXPECT_GT(m->restarts(), restarts_before) << "ema " << ema;
    EXPECT_EQ(m->steps_since_used()[4], 0);
    // Re-initialised to an encoder output of the batch: near the data now, not at 100.
    for (int d = 0; d < D; d++) EXPECT_LT(std::fabs(m->codebook()[4 * D + d]), 10.0f);
    // The next forward of the same images uses it.
    m->metrics_reset();
    Rng r(1);
    m->forward(x.data(), x.data(), B, r, ZMode::kMean);
    m->metrics_accumulate(B);
    EXPECT_GT(m->usage_counts()[4], 0) << "ema " << ema;
  }
}

TEST(VqVae, NoRestartWhenDisabled) {
  const int B = 4, K = 5, D = 3;
  auto m = make_vq(true, B, K, D, /*dead_steps=*/0);
  Dataset data = test::synthetic_dataset(B, kSide, kPixels / kSide, 8);
  float* E = m->params().param(m->params().find("codebook.weight"));
  for (int d = 0; d < D; d++) E[4 * D + d] = 100.0f;
  Trainer t;
  TrainSettings s;
  s.batch = B;
  ASSERT_TRUE(t.setup(m.get(), &data, s).ok());
  for (int i = 0; i < 10; i++) ASSERT_TRUE(t.step(nullptr).ok());
  EXPECT_EQ(m->restarts(), 0);
  EXPECT_EQ(m->steps_since_used()[4], 10);
  EXPECT_EQ(m->codebook()[4 * D], 100.0f);
}

TEST(VqVae, PerplexityOfAKnownAssignment) {
  const int64_t counts[4] = {2, 2, 0, 4};
  // p = (1/4, 1/4, 0, 1/2): entropy = 1.5 ln 2, perplexity 2^1.5.
  EXPECT_NEAR(code_perplexity(counts, 4), std::pow(2.0, 1.5), 1e-12);
  const int64_t uniform[3] = {5, 5, 5}, none[2] = {0, 0};
  EXPECT_NEAR(code_perplexity(uniform, 3), 3.0, 1e-12);
  EXPECT_EQ(code_perplexity(none, 2), 0.0);

  // Through the model: one image all on code 0, then three images all on code 3: counts (4, 0, 0, 12).
  const int K = 4, D = 3;
  auto m = make_vq(false, 3, K, D);
  Rng rng(16);
  auto x = test::random_vector(rng, 3 * kPixels, 0.0f, 1.0f);
  const std::vector<float> E(m->codebook(), m->codebook() + K * D);
  m->metrics_reset();
  constant_encoder_output(*m, &E[0]);
  m->forward(x.data(), x.data(), 1, rng, ZMode::kMean);
  m->metrics_accumulate(1);
  constant_encoder_output(*m, &E[3 * D]);
  m->forward(x.data(), x.data(), 3, rng, ZMode::kMean);
  m->metrics_accumulate(3);
  EXPECT_EQ(m->usage_counts()[0], 4);
  EXPECT_EQ(m->usage_counts()[3], 12);
  std::vector<std::pair<std::string, double>> report;
  m->metrics_report(&report);
  ASSERT_EQ(report.size(), 3u);
  EXPECT_EQ(report[0].first, "perplexity");
  EXPECT_NEAR(report[0].second, std::exp(-(0.25 * std::log(0.25) + 0.75 * std::log(0.75))), 1e-9);
  EXPECT_EQ(report[1], (std::pair<std::string, double>{"codes_used", 2.0}));
  EXPECT_EQ(report[2], (std::pair<std::string, double>{"dead_codes", 2.0}));
}

TEST(VqVae, DecodeFromIndicesMatchesTheReconstruction) {
  const int B = 3;
  auto m = make_vq(true, B, 64, 16);
  EXPECT_EQ(m->code_size(), 4);
  Rng rng(17);
  auto x = test::random_vector(rng, B * kPixels, 0.0f, 1.0f);
  m->forward(x.data(), x.data(), B, rng, ZMode::kMean);
  const std::vector<float> code(m->code(), m->code() + B * 4);
  const std::vector<float> rec(m->reconstruction(), m->reconstruction() + B * kPixels);
  for (int i = 0; i < B * 4; i++) EXPECT_EQ(code[i], static_cast<float>(m->indices()[i]));
  std::vector<float> out(B * kPixels);
  m->decode(code.data(), B, out.data());
  EXPECT_EQ(test::max_abs_diff(out.data(), rec.data(), out.size()), 0.0);
  // Out-of-range and NaN indices are clamped, not read out of bounds.
  std::vector<float> wild = {-3.0f, 1e9f, NAN, 62.6f};
  m->decode(wild.data(), 1, out.data());
  EXPECT_EQ(m->indices()[0], 0);
  EXPECT_EQ(m->indices()[1], 63);
  EXPECT_EQ(m->indices()[2], 0);
  EXPECT_EQ(m->indices()[3], 63);
}

TEST(VqVae, TrainingReducesTheLossAndIsDeterministic) {
  auto run = [](uint64_t seed) {
    Dataset d = test::synthetic_dataset(32, kSide, kPixels / kSide, 4);
    auto m = make_vq(true, 8, 8, 4, 20, seed);
    Trainer t;
    TrainSettings s;
    s.batch = 8;
    s.seed = seed;
    EXPECT_TRUE(t.setup(m.get(), &d, s).ok());
    LossTotals first, last;
    EXPECT_TRUE(t.step(&first).ok());
    for (int i = 0; i < 300; i++) EXPECT_TRUE(t.step(&last).ok());
    EXPECT_LT(last.mse_mean(), 0.5 * first.mse_mean());
    return m->params().params;
  };
  auto a = run(21), b = run(21);
  ASSERT_EQ(a, b);
}

// A file written before the sigmoid output existed names every other hyperparameter but not
// "sigmoid_output": it loads with the raw output it was trained with, and a current file keeps its own.
TEST(VqVae, FilesBeforeTheSigmoidOutputLoadRaw) {
  const int B = 2;
  auto m = make_vq(false, B, 6, 5, 0, 11, /*sigmoid=*/true);
  std::vector<TensorToWrite> tensors;
  for (const TensorSlot& t : m->params().slots())
    tensors.push_back({t.name, t.shape, m->params().params.data() + t.offset});
  std::string config = m->config().to_json();
  const std::string key = ",\"sigmoid_output\":1";
  const size_t at = config.find(key);
  ASSERT_NE(at, std::string::npos) << config;
  std::unique_ptr<Model> now, before;
  auto current = write_safetensors(tensors, {{"latentlab.model", "vqvae"}, {"latentlab.config", config}});
  ASSERT_TRUE(load_model(current.data(), current.size(), &now).ok());
  EXPECT_EQ(now->config().get("sigmoid_output"), 1);
  config.erase(at, key.size());
  auto old = write_safetensors(tensors, {{"latentlab.model", "vqvae"}, {"latentlab.config", config}});
  Status s = load_model(old.data(), old.size(), &before);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(before->config().get("sigmoid_output"), 0);
  // The raw model's reconstruction is the logit of the sigmoid model's.
  Rng rng(5);
  auto x = test::random_vector(rng, B * kPixels, 0.0f, 1.0f);
  now->reserve(B);
  before->reserve(B);
  Rng r1(1), r2(1);
  now->forward(x.data(), x.data(), B, r1, ZMode::kMean);
  before->forward(x.data(), x.data(), B, r2, ZMode::kMean);
  for (int i = 0; i < B * kPixels; i++) {
    ASSERT_NEAR(now->reconstruction()[i], stable_sigmoid(before->reconstruction()[i]), 1e-6) << i;
  }
}

TEST(VqVae, ModelFileRoundTripAndInference) {
  const int B = 2;
  auto m = make_vq(false, B, 6, 5);
  auto bytes = save_model(*m, {});
  std::unique_ptr<Model> back;
  Status s = load_model(bytes.data(), bytes.size(), &back);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(back->config().kind, "vqvae");
  EXPECT_EQ(back->config().get("codebook_size"), 6);
  EXPECT_EQ(back->config().get("code_dim"), 5);
  EXPECT_EQ(back->config().get("ema"), 0);
  EXPECT_EQ(back->params().params, m->params().params);
  std::vector<std::string> names;
  for (const TensorSlot& t : back->params().slots()) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"encoder.0.weight", "encoder.0.bias", "encoder.2.weight",
                                             "encoder.2.bias", "encoder.4.weight", "encoder.4.bias",
                                             "codebook.weight", "decoder.0.weight", "decoder.0.bias",
                                             "decoder.2.weight", "decoder.2.bias", "decoder.4.weight",
                                             "decoder.4.bias"}));
  EXPECT_EQ(back->params().slots()[2].shape, (std::vector<int64_t>{64, 32, 4, 4}));
  EXPECT_EQ(back->params().slots()[6].shape, (std::vector<int64_t>{6, 5}));
  EXPECT_EQ(back->params().slots()[9].shape, (std::vector<int64_t>{64, 32, 4, 4}));  // [C_in, C_out, k, k]
  EXPECT_EQ(back->params().slots()[11].shape, (std::vector<int64_t>{32, 1, 4, 4}));

  // A file without LatentLab metadata (as PyTorch's save_file writes it): recognised by its names.
  std::vector<TensorToWrite> tensors;
  for (const TensorSlot& t : m->params().slots())
    tensors.push_back({t.name, t.shape, m->params().params.data() + t.offset});
  auto plain = write_safetensors(tensors, {});
  std::unique_ptr<Model> inferred;
  s = load_model(plain.data(), plain.size(), &inferred);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(inferred->config().kind, "vqvae");
  EXPECT_EQ(inferred->config().get("codebook_size"), 6);
  EXPECT_EQ(inferred->config().get("code_dim"), 5);
  EXPECT_EQ(inferred->config().input, 784);
  EXPECT_EQ(inferred->params().params, m->params().params);
}

// Against PyTorch autograd (tests/golden/vqvae_golden.safetensors, made by make_vqvae_golden.py): the
// same weights and batch, codebook loss (ema = 0). Every compared value v has a reference r and a sum
// of absolute values S (the same expression on |weights|, |inputs|, |upstream gradients|, the real
// ReLU masks, plus the forward's error bound carried into the upstream gradient): to first order,
// |v - r| <= gamma_N S for the longest path of N summed reductions (forward and backward convolutions
// and one weight-gradient reduction, metadata "path_length"); the bound is 2 gamma_N S (the forward's
// half and the backward's, and the libm ulps of the sigmoid) plus u |r| for storing r. The codes must
// be equal: the script made sure no cell is near a tie. Checked: z_e, the code indices, the
// reconstruction, the three loss terms, every gradient entry (straight-through, commitment, codebook
// loss) and one EMA codebook step (ema = 1) from the same batch.
// The worst-case bound is far from the errors float32 really makes (1e-5 of it here): a wrong term the
// size of a few percent of a gradient (a dropped factor 2 in the commitment gradient, the straight-through
// copy with the wrong sign) can hide under it where sum|terms| is large. So each gradient tensor is also
// compared norm-wise as the conv VAE's golden test does (test_beta_conv_vae.cpp): each of the L = 12
// chained reductions (6 convolutions forward, 6 backward) of up to K = 1024 random-sign terms adds about
// u sqrt(K) of the tensor's norm, u sqrt(K) L = 2.3e-5; the tolerance is 6 times that, 1.4e-4.
constexpr double kNormTol = 6 * 0x1p-24 * 32 * 12;
TEST(VqVae, MatchesPyTorchGolden) {
  test::GoldenFile g;
  ASSERT_TRUE(g.load("vqvae_golden.safetensors"));
  ModelConfig c;
  ASSERT_TRUE(ModelConfig::from_json(g.meta("config"), &c).ok()) << g.meta("config");
  const int B = std::stoi(g.meta("batch"));
  const double two_gamma = 2.0 * test::gamma_n(std::stod(g.meta("path_length"))), u = std::ldexp(1.0, -24);
  auto load = [&](const ModelConfig& config) {
    std::unique_ptr<Model> m;
    EXPECT_TRUE(create_model(config, &m).ok());
    m->reserve(B);
    for (const TensorSlot& slot : m->params().slots()) {
      std::vector<float> w = g.tensor("w." + slot.name);
      EXPECT_EQ(w.size(), slot.size) << slot.name;
      std::copy(w.begin(), w.end(), m->params().params.begin() + slot.offset);
    }
    return std::unique_ptr<VqVae>(static_cast<VqVae*>(m.release()));
  };
  // The worst |v - r| / bound over n values.
  auto worst = [&](const float* v, const std::string& name, size_t n) {
    const std::vector<float> r = g.tensor(name), s = g.tensor("abs." + name);
    EXPECT_EQ(r.size(), n) << name;
    double w = 0.0;
    for (size_t i = 0; i < n && i < r.size(); i++) {
      const double ratio = std::fabs(v[i] - r[i]) / (two_gamma * s[i] + u * std::fabs(r[i]) + 1e-30);
      EXPECT_LE(ratio, 1.0) << name << "[" << i << "]: " << v[i] << " vs " << r[i];
      w = std::max(w, ratio);
    }
    return w;
  };
  auto m = load(c);
  const std::vector<float> x = g.tensor("x");
  Rng rng(1);
  m->forward(x.data(), x.data(), B, rng, ZMode::kMean);
  const std::vector<float> idx = g.tensor("idx");
  const int G = m->code_size(), D = m->D();
  for (int i = 0; i < B * G; i++) EXPECT_EQ(m->indices()[i], static_cast<int32_t>(idx[i])) << "cell " << i;
  double forward = worst(m->z_e(), "z_e", static_cast<size_t>(B) * D * G);
  forward = std::max(forward, worst(m->reconstruction(), "xhat", static_cast<size_t>(B) * c.input));
  for (int t = 0; t < 3; t++) forward = std::max(forward, worst(m->term(t), m->loss_terms()[t], B));
  test::expect_within("forward (z_e, xhat, loss terms) / 2 gamma_N S", forward, 1.0);
  m->params().zero_grad();
  m->backward(1.0f);
  double grads = 0.0, norms = 0.0;
  for (const TensorSlot& slot : m->params().slots()) {
    const float* d = m->params().grads.data() + slot.offset;
    grads = std::max(grads, worst(d, "grad." + slot.name, slot.size));
    norms = std::max(norms, test::golden_norm_ratio(d, g.tensor("grad." + slot.name), kNormTol));
  }
  test::expect_within("every gradient entry / 2 gamma_N S", grads, 1.0);
  test::expect_within("each gradient tensor, ||v - r|| / (tol ||r||)", norms, 1.0);
  // One EMA step (the first: the averages are this batch's counts and sums).
  ModelConfig ce = c;
  ce.hyper["ema"] = 1;
  auto e = load(ce);
  e->forward(x.data(), x.data(), B, rng, ZMode::kMean);
  e->after_step(rng);
  test::expect_within("EMA codebook step / 2 gamma_N S", worst(e->codebook(), "ema_codebook",
                      static_cast<size_t>(e->K()) * D), 1.0);
}

}  // namespace
}  // namespace ll
