// The importance-weighted log p(x) (core/eval/iwae.h): exact where log p(x) has a closed form (posterior =
// prior, decoder independent of z), equal to the numerically integrated log p(x) for a 1-d latent as K
// grows, rising with K on average, K = 1 equal to the negative ELBO in expectation (and, with the same
// z, to -BCE + log p(z) - log q(z|x) term by term), independent of how the samples are batched, and
// refusing models it does not apply to.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/eval/iwae.h"
#include "core/nn/layers.h"
#include "core/models/mlp_vae.h"
#include "core/models/model.h"
#include "tests/test_util.h"

namespace ll {
namespace {

std::unique_ptr<Model> make(const std::string& kind, int input, int latent, uint64_t seed = 3,
                            int hidden = 9) {
  ModelConfig c;
  c.kind = kind;
  c.input = input;
  c.hidden = hidden;
  c.latent = latent;
  std::unique_ptr<Model> m;
  Status s = create_model(c, &m);
  EXPECT_TRUE(s.ok()) << s.message();
  Rng rng(seed);
  m->init(rng);
  return m;
}

float* tensor(Model& m, const std::string& name) {
  ParamArena& a = m.params();
  const int id = a.find(name);
  EXPECT_GE(id, 0) << name;
  return a.param(id);
}
size_t tensor_size(Model& m, const std::string& name) {
  return m.params().slots()[m.params().find(name)].size;
}

// log p(x|z) = sum_i x log s(l) + (1 - x) log(1 - s(l)) for logits l, in double, stably.
double bernoulli_log_lik(const float* x, const double* logit, int n) {
  double s = 0.0;
  for (int i = 0; i < n; i++) {
    const double l = logit[i];
    const double softplus = std::max(l, 0.0) + std::log1p(std::exp(-std::fabs(l)));
    s += x[i] * l - softplus;
  }
  return s;
}

// With every weight zero and the posterior heads' biases zero, q(z|x) = N(0, I) = p(z) and the decoder
// outputs its last bias whatever z is, so log p(x) = log p(x | logits = last bias) exactly, and every
// importance weight equals it.
void check_posterior_equals_prior(const std::string& kind, int input, const std::vector<std::string>& weights,
                                  const std::vector<std::string>& posterior_biases, const std::string& out_bias) {
  auto m = make(kind, input, 3);
  for (const std::string& w : weights) std::fill_n(tensor(*m, w), tensor_size(*m, w), 0.0f);
  for (const std::string& b : posterior_biases) std::fill_n(tensor(*m, b), tensor_size(*m, b), 0.0f);
  const int n = 4;
  Rng rng(5);
  auto x = test::random_vector(rng, static_cast<size_t>(n) * input, 0.0f, 1.0f);
  const float* bias = tensor(*m, out_bias);
  std::vector<double> logit(input);
  for (int i = 0; i < input; i++) logit[i] = bias[tensor_size(*m, out_bias) == 1 ? 0 : i];
  for (int K : {1, 7, 100}) {
    std::vector<double> log_px(n);
    Status s = iw_log_px(*m, x.data(), n, K, rng, log_px.data());
    ASSERT_TRUE(s.ok()) << s.message();
    for (int i = 0; i < n; i++) {
      const double exact = bernoulli_log_lik(x.data() + static_cast<size_t>(i) * input, logit.data(), input);
      EXPECT_NEAR(log_px[i], exact, 2e-6 * std::fabs(exact)) << kind << " K " << K << " image " << i;
    }
  }
}

TEST(Iwae, ExactWhenThePosteriorIsThePriorMlpVae) {
  for (const char* kind : {"vae", "beta_vae"})
    check_posterior_equals_prior(kind, 13, {"fc1.weight", "fc21.weight", "fc22.weight", "fc3.weight", "fc4.weight"},
                                 {"fc21.bias", "fc22.bias"}, "fc4.bias");
}

TEST(Iwae, ExactWhenThePosteriorIsThePriorConvVae) {
  check_posterior_equals_prior("conv_vae", 144,
                               {"encoder.0.weight", "encoder.2.weight", "fc_mu.weight", "fc_logvar.weight",
                                "decoder_input.weight", "decoder.0.weight", "decoder.2.weight"},
                               {"fc_mu.bias", "fc_logvar.bias"}, "decoder.2.bias");
}

// A tiny VAE with a 1-d latent whose decoder depends strongly on z and whose posterior is narrower than
// the prior, so the ELBO is well below log p(x) and importance sampling has something to do.
std::unique_ptr<Model> tiny_vae_1d() {
  auto m = make("vae", 13, 1, 21, 9);
  for (const char* w : {"fc3.weight", "fc4.weight", "fc21.weight"}) {
    float* p = tensor(*m, w);
    for (size_t i = 0; i < tensor_size(*m, w); i++) p[i] *= 4.0f;
  }
  tensor(*m, "fc22.bias")[0] = -2.0f;  // posterior std around exp(-1)
  return m;
}

// log p(x) = log of the integral of p(x|z) N(z; 0, 1) over z, by the trapezoidal rule on [-12, 12]
// (the integrand is negligible outside); the decoder's logits recomputed with the model's public layers.
double integrated_log_px(Model& model, const float* x) {
  auto& m = static_cast<MlpVae&>(model);
  const int n = 24001, I = m.config().input, H = m.config().hidden;
  const double lo = -12.0, h = 24.0 / (n - 1);
  std::vector<double> f(n), logit(I);
  std::vector<float> h3(H), out(I);
  for (int k = 0; k < n; k++) {
    const double zz = lo + k * h;
    const float z = static_cast<float>(zz);
    m.fc3.forward(m.params(), h3.data(), &z, 1);
    for (float& v : h3) v = std::max(v, 0.0f);
    m.fc4.forward(m.params(), out.data(), h3.data(), 1);
    for (int i = 0; i < I; i++) logit[i] = out[i];
    f[k] = bernoulli_log_lik(x, logit.data(), I) - 0.5 * zz * zz - 0.5 * std::log(2 * M_PI);
  }
  const double mx = *std::max_element(f.begin(), f.end());
  double acc = 0.0;
  for (int k = 0; k < n; k++) acc += (k == 0 || k == n - 1 ? 0.5 : 1.0) * std::exp(f[k] - mx);
  return mx + std::log(acc * h);
}

TEST(Iwae, ConvergesToTheIntegratedLogLikelihoodAndRisesWithK) {
  auto m = tiny_vae_1d();
  const int n = 3;
  Rng rng(8);
  auto x = test::random_vector(rng, n * 13, 0.0f, 1.0f);
  std::vector<double> exact(n);
  for (int i = 0; i < n; i++) exact[i] = integrated_log_px(*m, x.data() + i * 13);
  // Mean over repetitions of the K-sample estimate, per image.
  auto mean_estimate = [&](int K, int reps, std::vector<double>* se) {
    std::vector<double> sum(n, 0.0), sum_sq(n, 0.0), lp(n);
    for (int r = 0; r < reps; r++) {
      EXPECT_TRUE(iw_log_px(*m, x.data(), n, K, rng, lp.data()).ok());
      for (int i = 0; i < n; i++) sum[i] += lp[i], sum_sq[i] += lp[i] * lp[i];
    }
    std::vector<double> mean(n);
    se->assign(n, 0.0);
    for (int i = 0; i < n; i++) {
      mean[i] = sum[i] / reps;
      (*se)[i] = std::sqrt(std::max(0.0, sum_sq[i] / reps - mean[i] * mean[i]) / reps);
    }
    return mean;
  };
  std::vector<double> se1, se8, se64, se_big;
  auto k1 = mean_estimate(1, 4000, &se1);
  auto k8 = mean_estimate(8, 2000, &se8);
  auto k64 = mean_estimate(64, 1000, &se64);
  // 2^18 / 100000 = 2: the log-weights are kept two images at a time, so this also crosses a group.
  auto big = mean_estimate(100000, 1, &se_big);
  for (int i = 0; i < n; i++) {
    SCOPED_TRACE("image " + std::to_string(i) + " exact " + std::to_string(exact[i]));
    // The bound is not tight at K = 1 here (so the comparisons below mean something) ...
    EXPECT_GT(exact[i] - k1[i], 0.1);
    // ... rises with K (Burda et al. 2016, theorem 1), each step by much more than the noise ...
    EXPECT_GT(k8[i] - k1[i], 4 * (se1[i] + se8[i]));
    EXPECT_GT(k64[i] - k8[i], 4 * (se8[i] + se64[i]));
    // ... stays below log p(x) in expectation, and reaches it for large K.
    EXPECT_LT(k64[i], exact[i] + 4 * se64[i]);
    EXPECT_NEAR(big[i], exact[i], 0.01);
  }
}

// K = 1 with the same z as a forward pass: log w = -BCE + log p(z) - log q(z|x) term by term, with
// eps replayed from the same generator (the model draws eps with one fill_normal per forward).
TEST(Iwae, OneSampleEqualsTheElboTermsWithTheSameZ) {
  const int n = 5, Z = 3;
  for (const char* kind : {"vae", "conv_vae"}) {
    const int input = std::string(kind) == "vae" ? 13 : 144;
    auto m = make(kind, input, Z, 4);
    Rng rx(9);
    auto x = test::random_vector(rx, static_cast<size_t>(n) * input, 0.0f, 1.0f);
    std::vector<double> log_px(n);
    Rng r1(77);
    ASSERT_TRUE(iw_log_px(*m, x.data(), n, 1, r1, log_px.data()).ok());
    m->reserve(n);
    Rng r2(77);
    m->forward(x.data(), x.data(), n, r2, ZMode::kSample);
    std::vector<float> eps(n * Z);
    Rng r3(77);
    r3.fill_normal(eps.data(), eps.size(), 0.0f, 1.0f);
    const float *mu, *logvar, *z;
    ASSERT_TRUE(m->posterior(&mu, &logvar, &z));
    for (int i = 0; i < n; i++) {
      // log N(z; 0, 1) - log N(z; mu, s^2) = sum_j -z^2/2 + eps^2/2 + logvar/2 with z = mu + s eps
      double log_ratio = 0.0;
      for (int j = 0; j < Z; j++) {
        const int k = i * Z + j;
        const double zj = mu[k] + std::exp(0.5 * logvar[k]) * eps[k];
        EXPECT_NEAR(zj, z[k], 1e-5);
        log_ratio += -0.5 * zj * zj + 0.5 * eps[k] * eps[k] + 0.5 * logvar[k];
      }
      EXPECT_NEAR(log_px[i], -m->term(0)[i] + log_ratio, 1e-4) << kind << " image " << i;
    }
  }
}

// E_q[log p(z) - log q(z|x)] = -KL(q || p), so the K = 1 estimate averages to -(BCE + KL), the
// negative ELBO loss, with the same draws: the difference has mean 0.
TEST(Iwae, OneSampleIsTheNegativeElboInExpectation) {
  auto m = tiny_vae_1d();
  const int n = 4, reps = 5000;
  Rng rx(10);
  auto x = test::random_vector(rx, n * 13, 0.0f, 1.0f);
  m->reserve(n);
  Rng iw_rng(31), fw_rng(31);
  double sum = 0.0, sum_sq = 0.0, sum_iw = 0.0;
  std::vector<double> lp(n);
  for (int r = 0; r < reps; r++) {
    ASSERT_TRUE(iw_log_px(*m, x.data(), n, 1, iw_rng, lp.data()).ok());
    m->forward(x.data(), x.data(), n, fw_rng, ZMode::kSample);  // the same z (same stream)
    for (int i = 0; i < n; i++) {
      const double neg_elbo = -(m->term(0)[i] + m->term(1)[i]);
      const double d = lp[i] - neg_elbo;
      sum += d, sum_sq += d * d, sum_iw += lp[i];
    }
  }
  const double N = static_cast<double>(n) * reps, mean = sum / N;
  const double se = std::sqrt((sum_sq / N - mean * mean) / N);
  EXPECT_LT(std::fabs(mean), 4 * se) << "mean difference " << mean << " standard error " << se;
  EXPECT_GT(se, 1e-3);  // the difference is random (not identically zero): the test has power
}

TEST(Iwae, BatchingDoesNotChangeTheEstimate) {
  auto m = make("vae", 13, 2, 4);
  const int n = 5;
  Rng rx(10);
  auto x = test::random_vector(rx, n * 13, 0.0f, 1.0f);
  std::vector<double> a(n), b(n);
  double wa = 0.0, wb = 0.0;
  Rng r1(3), r2(3);
  ASSERT_TRUE(iw_log_px(*m, x.data(), n, 10, r1, a.data(), &wa, 500).ok());
  ASSERT_TRUE(iw_log_px(*m, x.data(), n, 10, r2, b.data(), &wb, 7).ok());  // rows split images
  for (int i = 0; i < n; i++) EXPECT_NEAR(a[i], b[i], 1e-5) << i;
  EXPECT_NEAR(wa, wb, 1e-4);
}

TEST(Iwae, DatasetVersionAveragesTheImages) {
  auto m = make("vae", 13, 2, 4);
  ImageSet im;
  im.count = 12, im.rows = 1, im.cols = 13;
  Rng rx(1);
  for (int i = 0; i < 12 * 13; i++) im.pixels.push_back(static_cast<uint8_t>(rx.below(256)));
  LabelSet lab;
  lab.count = 12;
  lab.labels.assign(12, 0);
  Dataset d;
  ASSERT_TRUE(make_dataset(im, lab, &d).ok());
  std::vector<float> x(12 * 13);
  d.to_float(nullptr, 0, 12, x.data());
  std::vector<double> lp(10);
  double w = 0.0;
  Rng r1(6), r2(6);
  ASSERT_TRUE(iw_log_px(*m, x.data(), 10, 20, r1, lp.data(), &w).ok());
  IwEstimate e;
  ASSERT_TRUE(iw_log_likelihood(*m, d, 20, r2, 10, &e).ok());
  double mean = 0.0;
  for (double v : lp) mean += v / 10;
  EXPECT_EQ(e.images, 10);
  EXPECT_EQ(e.K, 20);
  EXPECT_NEAR(e.mean_log_px, mean, 1e-9);
  EXPECT_NEAR(e.mean_log_w, w / 200, 1e-9);
  EXPECT_LT(e.mean_log_w, e.mean_log_px);  // the average log weight is the ELBO: lower
  EXPECT_GT(e.std_error, 0.0);
}

TEST(Iwae, RefusesWhatItDoesNotApplyTo) {
  auto ae = make("ae", 13, 2);
  std::vector<float> x(13, 0.5f);
  double lp;
  Rng rng(1);
  Status s = iw_log_px(*ae, x.data(), 1, 5, rng, &lp);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("needs a VAE"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("the ae model"), std::string::npos) << s.message();
  auto vae = make("vae", 13, 2);
  s = iw_log_px(*vae, x.data(), 1, 0, rng, &lp);
  EXPECT_NE(s.message().find("K = 0"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace ll
