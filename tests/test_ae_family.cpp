// The regularised autoencoders (core/models/ae_family.h): finite-difference gradient checks of every model's
// whole loss w.r.t. every parameter (the sparse penalty couples the batch, so the whole batch loss is
// checked), the contractive penalty's closed form against a finite-difference Jacobian, denoising
// corruption in training with a clean target, k-sparse selection and its schedule, metrics, and
// save/load round trips.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/models/ae_family.h"
#include "core/models/model.h"
#include "core/models/model_file.h"
#include "core/io/safetensors.h"
#include "core/train/trainer.h"
#include "tests/test_util.h"

namespace ll {
namespace {

constexpr int kInput = 13, kHidden = 9, kLatent = 4;

std::unique_ptr<Model> make_model(const std::string& kind, int B, uint64_t seed,
                                  const std::map<std::string, double>& hyper = {}) {
  ModelConfig c;
  c.kind = kind;
  c.input = kInput;
  c.hidden = kHidden;
  c.latent = kLatent;
  c.hyper = hyper;
  std::unique_ptr<Model> m;
  Status s = create_model(c, &m);
  EXPECT_TRUE(s.ok()) << s.message();
  if (!m) return m;
  m->reserve(B);
  Rng rng(seed);
  m->init(rng);
  return m;
}

// Checks the analytic gradient of the whole batch loss against central differences, tensor by tensor.
// The models run in float32: single entries of a numeric gradient carry rounding noise of about
// 1e-6 / (2h), so the norm-wise relative error over a tensor is the robust figure (as test_models.cpp).
void check_gradients(Model& m, const float* input, const float* target, int B, const std::string& what) {
  test::batch_loss(m, input, target, B, ZMode::kMean);
  ParamArena& a = m.params();
  a.zero_grad();
  m.backward(1.0f);
  for (const TensorSlot& slot : a.slots()) {
    auto f = [&] { return test::batch_loss(m, input, target, B, ZMode::kMean); };
    auto r = test::grad_check(f, a.params.data() + slot.offset, a.grads.data() + slot.offset, slot.size,
                              1e-2f, 1e-2, 120);
    test::expect_gradients_match(what + " " + slot.name, r, 5e-3, 5e-2);
  }
}

std::vector<float> random_images(int B, uint64_t seed) {
  Rng rng(seed);
  return test::random_vector(rng, static_cast<size_t>(B) * kInput, 0.0f, 1.0f);
}

// ---------------------------------------------------------------------------------------------------
// Gradient checks

// Smallest |pre-activation| of the MLP AE's two ReLU layers: how far the batch is from a kink.
double min_relu_margin(DenoisingAutoencoder& m, const float* x, int B) {
  const ParamArena& p = m.params();
  std::vector<float> h1(static_cast<size_t>(B) * kHidden), code(static_cast<size_t>(B) * kLatent),
      h2(static_cast<size_t>(B) * kHidden);
  linear_forward(h1.data(), x, p.param(m.enc0.weight), p.param(m.enc0.bias), B, kInput, kHidden);
  double margin = 1e30;
  for (float& v : h1) {
    margin = std::min(margin, std::fabs(static_cast<double>(v)));
    v = std::max(v, 0.0f);
  }
  linear_forward(code.data(), h1.data(), p.param(m.enc2.weight), p.param(m.enc2.bias), B, kHidden, kLatent);
  linear_forward(h2.data(), code.data(), p.param(m.dec0.weight), p.param(m.dec0.bias), B, kLatent, kHidden);
  for (float v : h2) margin = std::min(margin, std::fabs(static_cast<double>(v)));
  return margin;
}

TEST(DenoisingAutoencoder, GradientCheckWithCorruptedInputAndCleanTarget) {
  const int B = 3;
  auto clean = random_images(B, 12);
  // The first init seed that keeps every ReLU pre-activation at least 0.05 from its kink, so no
  // +-h perturbation of one weight crosses it (a fixed, deterministic choice).
  std::unique_ptr<Model> m;
  std::vector<float> input;
  for (uint64_t seed = 1; seed < 200; seed++) {
    m = make_model("dae", B, seed, {{"mask", 0.3}, {"gaussian", 0.1}});
    input = clean;
    Rng rng(13);
    m->corrupt(input.data(), B, rng);
    if (min_relu_margin(*static_cast<DenoisingAutoencoder*>(m.get()), input.data(), B) > 0.05) break;
    m.reset();
  }
  ASSERT_TRUE(m) << "no seed keeps the ReLUs away from their kinks";
  ASSERT_GT(test::max_abs_diff(input.data(), clean.data(), input.size()), 0.05);
  check_gradients(*m, input.data(), clean.data(), B, "dae");
}

// init() starts the sparse code at rho, where the penalty and its gradient vanish; bias 0 puts every
// unit at about 1/2, far from rho, so the penalty's gradient is large and is what gets checked.
void move_code_away_from_rho(Model& m) {
  auto* sp = static_cast<SparseAutoencoder*>(&m);
  std::fill(m.params().param(sp->enc0.bias), m.params().param(sp->enc0.bias) + kHidden, 0.0f);
}

TEST(SparseAutoencoder, GradientCheckOfTheBatchCoupledLoss) {
  const int B = 4;
  auto clean = random_images(B, 21);
  for (double tied : {0.0, 1.0}) {
    const std::string what = tied ? "sparse_ae tied" : "sparse_ae";
    {
      auto m = make_model("sparse_ae", B, 22, {{"tied", tied}});
      move_code_away_from_rho(*m);
      check_gradients(*m, clean.data(), clean.data(), B, what + " default");
    }
    {
      // A penalty that dominates the loss, so an error in its gradient cannot hide behind the BCE's.
      auto m = make_model("sparse_ae", B, 23, {{"rho", 0.02}, {"sparsity_beta", 40.0}, {"tied", tied}});
      move_code_away_from_rho(*m);
      check_gradients(*m, clean.data(), clean.data(), B, what + " strong");
    }
  }
}

TEST(ContractiveAutoencoder, GradientCheck) {
  const int B = 3;
  auto clean = random_images(B, 31);
  for (double tied : {0.0, 1.0})
    for (double lambda : {0.1, 30.0}) {
      // lambda = 30 makes the penalty dominate: both of its gradient paths (through h and directly
      // through sum_i W_ji^2) are then what is checked. Tied, W also carries the decoder's gradient.
      auto m = make_model("contractive_ae", B, 32, {{"contractive_lambda", lambda}, {"tied", tied}});
      Rng rng(33);
      m->init(rng);
      // Larger weights than the default init so h is away from 1/2, where (1-2h) vanishes.
      for (float& w : m->params().params) w *= 4.0f;
      check_gradients(*m, clean.data(), clean.data(), B,
                      std::string(tied ? "tied " : "") + "contractive_ae lambda " + std::to_string(lambda));
    }
}

// The k-th and (k+1)-th largest pre-activations of every example must differ by more than a
// perturbation of one weight can move them (|dW| |x| + |db| <= 2h = 0.02), else the selection
// changes inside the finite difference.
double min_topk_gap(const float* a, int B, int H, int k) {
  double gap = 1e30;
  for (int b = 0; b < B; b++) {
    std::vector<float> row(a + static_cast<size_t>(b) * H, a + static_cast<size_t>(b + 1) * H);
    std::sort(row.begin(), row.end(), std::greater<float>());
    gap = std::min(gap, static_cast<double>(row[k - 1] - row[k]));
  }
  return gap;
}

TEST(KSparseAutoencoder, GradientCheckAwayFromTies) {
  for (double tied : {0.0, 1.0}) {
    const int B = 3, k = 3;
    auto clean = random_images(B, 41);
    // The first init seed whose top-k selections have a safe margin (a fixed, deterministic choice).
    std::unique_ptr<Model> m;
    for (uint64_t seed = 1; seed < 100; seed++) {
      m = make_model("ksparse_ae", B, seed, {{"k", k}, {"tied", tied}});
      Rng rng(0);
      m->forward(clean.data(), clean.data(), B, rng, ZMode::kMean);
      // With k kept the code's k largest equal a's; recompute a = W x + b to measure the gap.
      std::vector<float> a(static_cast<size_t>(B) * kHidden);
      const ParamArena& p = m->params();
      auto* ks = static_cast<KSparseAutoencoder*>(m.get());
      linear_forward(a.data(), clean.data(), p.param(ks->enc0.weight), p.param(ks->enc0.bias), B, kInput,
                     kHidden);
      if (min_topk_gap(a.data(), B, kHidden, k) > 0.05) break;
      m.reset();
    }
    ASSERT_TRUE(m) << "no seed with a safe top-k margin";
    check_gradients(*m, clean.data(), clean.data(), B, tied ? "ksparse_ae tied" : "ksparse_ae");
  }
}

// ---------------------------------------------------------------------------------------------------
// Penalties against independent computations

TEST(ContractiveAutoencoder, ClosedFormMatchesFiniteDifferenceJacobian) {
  const int B = 2;
  auto m = make_model("contractive_ae", B, 51, {{"contractive_lambda", 0.5}});
  for (float& w : m->params().params) w *= 3.0f;
  auto x = random_images(B, 52);
  Rng rng(0);
  m->forward(x.data(), x.data(), B, rng, ZMode::kMean);
  const float* jac = static_cast<ContractiveAutoencoder*>(m.get())->jacobian_sq();
  const std::vector<float> jac_sq(jac, jac + B);
  const std::vector<float> term(m->term(1), m->term(1) + B);
  // J_ji = dh_j / dx_i by central differences of the encoder, one example at a time.
  const double d = 1e-3;
  for (int b = 0; b < B; b++) {
    double frob_sq = 0.0;
    for (int i = 0; i < kInput; i++) {
      std::vector<float> xp(x.begin() + b * kInput, x.begin() + (b + 1) * kInput), xm = xp;
      xp[i] += static_cast<float>(d);
      xm[i] -= static_cast<float>(d);
      const double step = static_cast<double>(xp[i]) - xm[i];
      m->forward(xp.data(), xp.data(), 1, rng, ZMode::kMean);
      const std::vector<float> hp(m->code(), m->code() + kHidden);
      m->forward(xm.data(), xm.data(), 1, rng, ZMode::kMean);
      for (int j = 0; j < kHidden; j++) {
        const double J = (hp[j] - static_cast<double>(m->code()[j])) / step;
        frob_sq += J * J;
      }
    }
    // Each J entry carries float32 noise ~ulp(h)/(2d) ~ 3e-5 and a truncation error of ~1e-7
    // relative (third derivative times d^2/6); 2e-3 of ||J||^2 is far above both and far below a
    // missing factor or term.
    const std::string ex = "example " + std::to_string(b);
    test::expect_within(ex + " jacobian_sq", std::fabs(jac_sq[b] - frob_sq), 2e-3 * frob_sq, "gradcheck");
    test::expect_within(ex + " term", std::fabs(term[b] - 0.5 * frob_sq), 0.5 * 2e-3 * frob_sq, "gradcheck");
    EXPECT_GT(frob_sq, 1e-2);  // a Jacobian large enough for the comparison to mean something
  }
}

TEST(SparseAutoencoder, PenaltyIsBetaTimesKlOfTheBatchMeanActivation) {
  const int B = 5;
  const double rho = 0.1, beta = 2.5;
  auto m = make_model("sparse_ae", B, 61, {{"rho", rho}, {"sparsity_beta", beta}});
  move_code_away_from_rho(*m);
  auto x = random_images(B, 62);
  Rng rng(0);
  m->forward(x.data(), x.data(), B, rng, ZMode::kMean);
  double kl = 0.0;
  for (int j = 0; j < kHidden; j++) {
    double q = 0.0;
    for (int b = 0; b < B; b++) q += m->code()[b * kHidden + j];
    q /= B;
    kl += rho * std::log(rho / q) + (1 - rho) * std::log((1 - rho) / (1 - q));
  }
  EXPECT_GT(kl, 0.1);
  for (int b = 0; b < B; b++) EXPECT_NEAR(m->term(1)[b], beta * kl, 1e-5 * beta * kl) << b;
  // A batch of one example has another mean activation, hence another penalty: the term is the batch's.
  m->forward(x.data(), x.data(), 1, rng, ZMode::kMean);
  EXPECT_GT(std::fabs(m->term(1)[0] - beta * kl), 1e-3);
}

TEST(SparseAutoencoder, InitStartsTheCodeAtRho) {
  auto m = make_model("sparse_ae", 1, 151, {{"rho", 0.05}});
  auto* sp = static_cast<SparseAutoencoder*>(m.get());
  const float* bias = m->params().param(sp->enc0.bias);
  for (int j = 0; j < kHidden; j++) EXPECT_FLOAT_EQ(bias[j], std::log(0.05f / 0.95f)) << j;
  // The weights keep PyTorch's default init: U(-1/sqrt(C), 1/sqrt(C)), not all equal.
  const float* w = m->params().param(sp->enc0.weight);
  EXPECT_NE(w[0], w[1]);
  EXPECT_LE(std::fabs(w[0]), 1.0f / std::sqrt(static_cast<float>(kInput)));
}

TEST(SparseAutoencoder, MeanActivationMetricIsTheMeanCode) {
  const int B = 6;
  auto m = make_model("sparse_ae", B, 71, {{"rho", 0.2}});
  auto x = random_images(B, 72);
  Rng rng(0);
  m->metrics_reset();
  double sum = 0.0;
  for (int pass = 0; pass < 2; pass++) {
    const int n = pass == 0 ? B : 2;
    m->forward(x.data(), x.data(), n, rng, ZMode::kMean);
    for (int i = 0; i < n * kHidden; i++) sum += m->code()[i];
    m->metrics_accumulate(n);
  }
  std::vector<std::pair<std::string, double>> out;
  m->metrics_report(&out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].first, "mean_activation");
  EXPECT_NEAR(out[0].second, sum / ((B + 2) * kHidden), 1e-6);
  EXPECT_EQ(out[1].first, "rho");
  EXPECT_DOUBLE_EQ(out[1].second, 0.2);
}

// ---------------------------------------------------------------------------------------------------
// k-sparse selection and schedule

TEST(KSparseAutoencoder, KeepsExactlyTheKLargestAndPassesGradientOnlyThroughThem) {
  const int B = 7, k = 4;
  auto m = make_model("ksparse_ae", B, 81, {{"k", k}});
  auto* ks = static_cast<KSparseAutoencoder*>(m.get());
  auto x = random_images(B, 82);
  std::vector<float> a(static_cast<size_t>(B) * kHidden);
  const ParamArena& p = m->params();
  linear_forward(a.data(), x.data(), p.param(ks->enc0.weight), p.param(ks->enc0.bias), B, kInput, kHidden);
  Rng rng(0);
  m->metrics_reset();
  m->forward(x.data(), x.data(), B, rng, ZMode::kMean);
  m->metrics_accumulate(B);
  for (int b = 0; b < B; b++) {
    const float* h = m->code() + b * kHidden;
    const float* ab = a.data() + b * kHidden;
    std::vector<float> sorted(ab, ab + kHidden);
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    int kept = 0;
    for (int j = 0; j < kHidden; j++) {
      if (ab[j] >= sorted[k - 1]) {
        EXPECT_EQ(h[j], ab[j]) << b << " " << j;  // kept units pass a unchanged
        kept++;
      } else {
        EXPECT_EQ(h[j], 0.0f) << b << " " << j;
      }
    }
    EXPECT_EQ(kept, k) << "example " << b;
  }
  std::vector<std::pair<std::string, double>> out;
  m->metrics_report(&out);
  std::map<std::string, double> metrics(out.begin(), out.end());
  EXPECT_EQ(metrics["active_per_example"], k);
  EXPECT_EQ(metrics["active_min"], k);
  EXPECT_EQ(metrics["active_max"], k);
  EXPECT_EQ(metrics["k"], k);
  int dead = 0;
  for (int j = 0; j < kHidden; j++) {
    bool used = false;
    for (int b = 0; b < B; b++) used = used || m->code()[b * kHidden + j] != 0.0f;
    dead += !used;
  }
  EXPECT_EQ(metrics["dead_units"], dead);

  // One example: the rows of encoder.0 of the dropped units get no gradient, the kept ones do.
  m->forward(x.data(), x.data(), 1, rng, ZMode::kMean);
  m->params().zero_grad();
  m->backward(1.0f);
  const float* dW = m->params().grad(ks->enc0.weight);
  int rows_with_grad = 0;
  for (int j = 0; j < kHidden; j++) {
    double g = 0.0;
    for (int i = 0; i < kInput; i++) g += std::fabs(dW[j * kInput + i]);
    if (m->code()[j] == 0.0f) {
      EXPECT_EQ(g, 0.0) << "dropped unit " << j;
    } else {
      EXPECT_GT(g, 0.0) << "kept unit " << j;
      rows_with_grad++;
    }
  }
  EXPECT_EQ(rows_with_grad, k);
}

TEST(KSparseAutoencoder, ScheduleAnnealsFromKStartToK) {
  auto m = make_model("ksparse_ae", 4, 91, {{"k", 2}, {"k_start", 8}, {"anneal_fraction", 0.5}});
  auto* ks = static_cast<KSparseAutoencoder*>(m.get());
  const int64_t total = 1000;
  EXPECT_EQ(ks->scheduled_k(0, total), 8);
  EXPECT_EQ(ks->scheduled_k(250, total), 5);  // half way through the 500 annealing steps
  EXPECT_EQ(ks->scheduled_k(499, total), 2);  // 8 - 6 * 0.998 = 2.012, rounded
  EXPECT_EQ(ks->scheduled_k(500, total), 2);
  EXPECT_EQ(ks->scheduled_k(999, total), 2);
  EXPECT_EQ(ks->scheduled_k(10, 0), 2);  // total unknown: k at once
  int prev = 100;
  for (int64_t s = 0; s < total; s++) {  // never increases
    EXPECT_LE(ks->scheduled_k(s, total), prev);
    prev = ks->scheduled_k(s, total);
  }

  // begin_step sets k for the next forward only; forwards without it (evaluation) use exactly k.
  auto x = random_images(4, 92);
  Rng rng(0);
  auto count_active = [&](int B) {
    int n = 0;
    for (int i = 0; i < B * kHidden; i++) n += m->code()[i] != 0.0f;
    return n;
  };
  m->begin_step(0, total);
  m->forward(x.data(), x.data(), 4, rng, ZMode::kSample);
  EXPECT_EQ(ks->last_k(), 8);
  EXPECT_EQ(count_active(4), 4 * 8);
  m->forward(x.data(), x.data(), 4, rng, ZMode::kSample);
  EXPECT_EQ(ks->last_k(), 2);
  EXPECT_EQ(count_active(4), 4 * 2);
}

TEST(KSparseAutoencoder, TrainerAnnealsToKOverTheFirstPartOfTraining) {
  // Through the real Trainer: the k of each step follows the schedule and ends at k.
  ImageSet im;
  im.count = 40;
  im.rows = 1;
  im.cols = kInput;
  Rng rng(5);
  for (int i = 0; i < im.count * kInput; i++) im.pixels.push_back(static_cast<uint8_t>(rng.below(256)));
  LabelSet lab;
  lab.count = im.count;
  lab.labels.assign(im.count, 0);
  Dataset d;
  ASSERT_TRUE(make_dataset(im, lab, &d).ok());
  auto m = make_model("ksparse_ae", 10, 93, {{"k", 2}, {"k_start", 9}, {"anneal_fraction", 0.5}});
  auto* ks = static_cast<KSparseAutoencoder*>(m.get());
  Trainer t;
  TrainSettings s;
  s.batch = 10;
  s.epochs = 5;  // 4 steps per epoch: 20 steps, annealing over the first 10
  ASSERT_TRUE(t.setup(m.get(), &d, s).ok());
  std::vector<int> ks_seen;
  for (int i = 0; i < 20; i++) {
    ASSERT_TRUE(t.step(nullptr).ok());
    ks_seen.push_back(ks->last_k());
  }
  EXPECT_EQ(ks_seen.front(), 9);
  EXPECT_GT(ks_seen[5], 2);
  EXPECT_LT(ks_seen[5], 9);
  for (int i = 10; i < 20; i++) EXPECT_EQ(ks_seen[i], 2) << "step " << i;
  LossTotals eval = evaluate(*m, d, ZMode::kMean, rng, 16);
  std::map<std::string, double> metrics(eval.metrics.begin(), eval.metrics.end());
  EXPECT_EQ(metrics["active_per_example"], 2.0);
}

TEST(KSparseAutoencoder, ExplicitKBeyondTheCodeSizeIsAnErrorDefaultsAreCapped) {
  // Given explicitly, k or k_start beyond the code size is a configuration error with a message.
  ModelConfig c;
  c.kind = "ksparse_ae";
  c.input = kInput;
  c.hidden = kHidden;
  c.hyper = {{"k", kHidden + 1}};
  std::unique_ptr<Model> m;
  Status s = create_model(c, &m);
  EXPECT_NE(s.message().find("exceeds the"), std::string::npos) << s.message();
  c.hyper = {{"k_start", kHidden + 5}};
  EXPECT_FALSE(create_model(c, &m).ok());
  // The default k (25) is capped at a smaller code size, so --hidden alone works.
  c.hyper.clear();
  ASSERT_TRUE(create_model(c, &m).ok());
  EXPECT_EQ(static_cast<KSparseAutoencoder*>(m.get())->k(), std::min(25, kHidden));
  // Default k_start 0 means all units, annealed to k.
  auto d = make_model("ksparse_ae", 2, 94, {{"k", 3}});
  auto* kd = static_cast<KSparseAutoencoder*>(d.get());
  EXPECT_EQ(kd->scheduled_k(0, 100), kHidden);
  EXPECT_EQ(kd->scheduled_k(50, 100), 3);
}

// ---------------------------------------------------------------------------------------------------
// Denoising: corruption in training, clean target

TEST(DenoisingAutoencoder, CorruptMasksAndAddsNoiseAtTheConfiguredLevels) {
  const int B = 200;  // 2,600 pixels
  std::vector<float> ones(static_cast<size_t>(B) * kInput, 1.0f);
  {
    auto m = make_model("dae", 1, 1);  // defaults: mask 0.25, no Gaussian noise
    std::vector<float> x = ones;
    Rng rng(3);
    m->corrupt(x.data(), B, rng);
    int zeros = 0;
    for (float v : x) {
      EXPECT_TRUE(v == 0.0f || v == 1.0f);
      zeros += v == 0.0f;
    }
    EXPECT_NEAR(zeros / static_cast<double>(x.size()), 0.25, 0.03);  // ~3.5 standard deviations
  }
  {
    auto m = make_model("dae", 1, 1, {{"mask", 0.0}, {"gaussian", 0.3}});
    std::vector<float> x = ones;
    Rng rng(4);
    m->corrupt(x.data(), B, rng);
    double s = 0.0, s2 = 0.0;
    for (float v : x) {
      s += v - 1.0;
      s2 += (v - 1.0) * (v - 1.0);
    }
    const double n = static_cast<double>(x.size()), mean = s / n;
    EXPECT_NEAR(mean, 0.0, 0.03);
    EXPECT_NEAR(std::sqrt(s2 / n - mean * mean), 0.3, 0.02);
  }
  {
    auto m = make_model("dae", 1, 1, {{"mask", 0.0}, {"gaussian", 0.0}});
    std::vector<float> x = ones;
    Rng rng(5);
    m->corrupt(x.data(), B, rng);
    EXPECT_EQ(x, ones);
  }
}

// A data set whose images are all the same random image.
Dataset constant_images(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<uint8_t> image(kInput);
  for (auto& p : image) p = static_cast<uint8_t>(40 + rng.below(180));
  ImageSet im;
  im.count = n;
  im.rows = 1;
  im.cols = kInput;
  for (int i = 0; i < n; i++) im.pixels.insert(im.pixels.end(), image.begin(), image.end());
  LabelSet lab;
  lab.count = n;
  lab.labels.assign(n, 0);
  Dataset d;
  EXPECT_TRUE(make_dataset(im, lab, &d).ok());
  return d;
}

TEST(DenoisingAutoencoder, TrainingCorruptsTheInputButNotTheTarget) {
  // mask = 1 blanks every training input. If the Trainer corrupts the input, the first layer sees only
  // zeros and its weights get no gradient; if the target stayed clean, the model still learns to
  // output the (constant) training image from a blank input rather than a blank image.
  Dataset d = constant_images(16, 7);
  std::vector<float> image(kInput);
  d.to_float(nullptr, 0, 1, image.data());
  auto m = make_model("dae", 8, 101, {{"mask", 1.0}});
  auto* dae = static_cast<DenoisingAutoencoder*>(m.get());
  const ParamArena& p = m->params();
  const std::vector<float> w0(p.param(dae->enc0.weight), p.param(dae->enc0.weight) + kHidden * kInput);
  Trainer t;
  TrainSettings s;
  s.batch = 8;
  s.adam.lr = 1e-2f;
  ASSERT_TRUE(t.setup(m.get(), &d, s).ok());
  for (int i = 0; i < 400; i++) ASSERT_TRUE(t.step(nullptr).ok());
  EXPECT_EQ(test::max_abs_diff(p.param(dae->enc0.weight), w0.data(), w0.size()), 0.0);
  std::vector<float> blank(kInput, 0.0f);
  Rng rng(0);
  m->forward(blank.data(), image.data(), 1, rng, ZMode::kMean);
  EXPECT_LT(test::max_abs_diff(m->reconstruction(), image.data(), kInput), 0.02);

  // The plain AE on the same data does update its first layer: the test above can fail.
  auto ae = make_model("ae", 8, 101);
  const std::vector<float> a0(ae->params().params);
  Trainer t2;
  ASSERT_TRUE(t2.setup(ae.get(), &d, s).ok());
  for (int i = 0; i < 5; i++) ASSERT_TRUE(t2.step(nullptr).ok());
  EXPECT_GT(test::max_abs_diff(ae->params().params.data(), a0.data(), kHidden * kInput), 1e-4);
}

TEST(DenoisingAutoencoder, LossComparesWithTheTargetNotTheInput) {
  const int B = 3;
  auto m = make_model("dae", B, 111);
  auto clean = random_images(B, 112), input = clean;
  Rng rng(113);
  m->corrupt(input.data(), B, rng);
  m->forward(input.data(), clean.data(), B, rng, ZMode::kMean);
  for (int b = 0; b < B; b++) {
    double bce = 0.0;
    for (int i = 0; i < kInput; i++) {
      const double p = m->reconstruction()[b * kInput + i], x = clean[b * kInput + i];
      bce -= x * std::log(p) + (1 - x) * std::log(1 - p);
    }
    EXPECT_NEAR(m->term(0)[b], bce, 1e-4 * bce) << b;
  }
}

// ---------------------------------------------------------------------------------------------------
// Files and sizes

TEST(AeFamily, SaveLoadRoundTripIsExactAndKeepsHyperparameters) {
  const std::map<std::string, std::map<std::string, double>> kinds = {
      {"dae", {{"mask", 0.4}, {"gaussian", 0.2}}},
      {"sparse_ae", {{"rho", 0.1}, {"sparsity_beta", 5.0}}},
      {"ksparse_ae", {{"k", 3}, {"k_start", 6}, {"anneal_fraction", 0.25}}},
      {"contractive_ae", {{"contractive_lambda", 0.3}}}};
  const std::vector<std::pair<std::string, std::map<std::string, double>>> tied_kinds = {
      {"sparse_ae", {{"rho", 0.1}, {"tied", 1}}},
      {"ksparse_ae", {{"k", 3}, {"tied", 1}}},
      {"contractive_ae", {{"contractive_lambda", 0.3}, {"tied", 1}}}};
  std::vector<std::pair<std::string, std::map<std::string, double>>> all(kinds.begin(), kinds.end());
  all.insert(all.end(), tied_kinds.begin(), tied_kinds.end());
  const int B = 3;
  auto x = random_images(B, 121);
  for (const auto& [kind, hyper] : all) {
    auto m = make_model(kind, B, 122, hyper);
    auto bytes = save_model(*m, {});
    std::unique_ptr<Model> back;
    Status s = load_model(bytes.data(), bytes.size(), &back);
    ASSERT_TRUE(s.ok()) << kind << ": " << s.message();
    EXPECT_EQ(back->config().kind, kind);
    EXPECT_EQ(back->config().to_json(), m->config().to_json()) << kind;
    for (const auto& [name, value] : hyper) EXPECT_EQ(back->config().get(name), value) << kind << " " << name;
    EXPECT_EQ(back->params().params, m->params().params) << kind;
    back->reserve(B);
    Rng r1(0), r2(0);
    m->forward(x.data(), x.data(), B, r1, ZMode::kMean);
    back->forward(x.data(), x.data(), B, r2, ZMode::kMean);
    EXPECT_EQ(test::max_abs_diff(m->reconstruction(), back->reconstruction(), B * kInput), 0.0) << kind;
  }
}

TEST(AeFamily, SingleLayerKindsUseTheHiddenLayerAsTheCode) {
  for (const char* kind : {"sparse_ae", "ksparse_ae", "contractive_ae"}) {
    auto m = make_model(kind, 2, 131);
    EXPECT_EQ(m->code_size(), kHidden) << kind;
    EXPECT_EQ(m->config().latent, kHidden) << kind;  // recorded as the code size
    std::vector<std::string> names;
    for (const TensorSlot& s : m->params().slots()) names.push_back(s.name);
    EXPECT_EQ(names, (std::vector<std::string>{"encoder.0.weight", "encoder.0.bias", "decoder.0.weight",
                                               "decoder.0.bias"}))
        << kind;
    // decode(code) reproduces the reconstruction of the forward that made the code.
    auto x = random_images(2, 132);
    Rng rng(0);
    m->forward(x.data(), x.data(), 2, rng, ZMode::kMean);
    const std::vector<float> code(m->code(), m->code() + 2 * kHidden);
    const std::vector<float> rec(m->reconstruction(), m->reconstruction() + 2 * kInput);
    std::vector<float> out(2 * kInput);
    m->decode(code.data(), 2, out.data());
    EXPECT_LT(test::max_abs_diff(out.data(), rec.data(), out.size()), 1e-6) << kind;
  }
  auto dae = make_model("dae", 2, 133);
  EXPECT_EQ(dae->code_size(), kLatent);
  EXPECT_EQ(dae->params().slots().size(), 8u);  // the MLP AE's four layers
}

// ---------------------------------------------------------------------------------------------------
// Tied weights

TEST(AeFamily, TiedKindsStoreNoDecoderWeightAndDecodeWithTheEncoderWeightTransposed) {
  const int B = 3;
  auto x = random_images(B, 151);
  for (const char* kind : {"sparse_ae", "ksparse_ae", "contractive_ae"}) {
    auto tied = make_model(kind, B, 152, {{"tied", 1}});
    std::vector<std::string> names;
    std::vector<std::vector<int64_t>> shapes;
    for (const TensorSlot& s : tied->params().slots()) {
      names.push_back(s.name);
      shapes.push_back(s.shape);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"encoder.0.weight", "encoder.0.bias", "decoder.0.bias"})) << kind;
    EXPECT_EQ(shapes, (std::vector<std::vector<int64_t>>{{kHidden, kInput}, {kHidden}, {kInput}})) << kind;
    EXPECT_EQ(tied->params().count(), static_cast<size_t>(kHidden * kInput + kHidden + kInput)) << kind;
    // The same weights in an untied model, decoder.0.weight = encoder.0.weight^T: same reconstruction.
    auto untied = make_model(kind, B, 153);
    const ParamArena& tp = tied->params();
    ParamArena& up = untied->params();
    auto* ts = static_cast<ShallowAutoencoder*>(tied.get());
    auto* us = static_cast<ShallowAutoencoder*>(untied.get());
    ASSERT_TRUE(ts->tied());
    ASSERT_FALSE(us->tied());
    std::copy_n(tp.param(ts->enc0.weight), kHidden * kInput, up.param(us->enc0.weight));
    std::copy_n(tp.param(ts->enc0.bias), kHidden, up.param(us->enc0.bias));
    std::copy_n(tp.param(ts->dec0.bias), kInput, up.param(us->dec0.bias));
    for (int j = 0; j < kHidden; j++)
      for (int i = 0; i < kInput; i++)
        up.param(us->dec0.weight)[i * kHidden + j] = tp.param(ts->enc0.weight)[j * kInput + i];
    Rng r1(0), r2(0);
    tied->forward(x.data(), x.data(), B, r1, ZMode::kMean);
    untied->forward(x.data(), x.data(), B, r2, ZMode::kMean);
    EXPECT_LT(test::max_abs_diff(tied->reconstruction(), untied->reconstruction(), B * kInput), 1e-6) << kind;
    EXPECT_NEAR(tied->term(0)[1], untied->term(0)[1], 1e-4) << kind;
    // decode(code) reproduces the reconstruction.
    const std::vector<float> code(tied->code(), tied->code() + B * kHidden);
    std::vector<float> out(B * kInput);
    tied->decode(code.data(), B, out.data());
    EXPECT_LT(test::max_abs_diff(out.data(), untied->reconstruction(), out.size()), 1e-6) << kind;
  }
}

TEST(AeFamily, TiedFilesAreLoadedStrictly) {
  auto tied = make_model("sparse_ae", 2, 161, {{"tied", 1}});
  auto untied = make_model("sparse_ae", 2, 162);
  // A tied config with an extra decoder.0.weight, and an untied config without one: both rejected.
  std::map<std::string, std::string> tied_meta = {{"latentlab.model", "sparse_ae"},
                                                  {"latentlab.config", tied->config().to_json()}};
  std::map<std::string, std::string> untied_meta = {{"latentlab.model", "sparse_ae"},
                                                    {"latentlab.config", untied->config().to_json()}};
  std::vector<TensorToWrite> untied_tensors, tied_tensors;
  for (const TensorSlot& s : untied->params().slots())
    untied_tensors.push_back({s.name, s.shape, untied->params().params.data() + s.offset});
  for (const TensorSlot& s : tied->params().slots())
    tied_tensors.push_back({s.name, s.shape, tied->params().params.data() + s.offset});
  std::unique_ptr<Model> back;
  auto bytes = write_safetensors(untied_tensors, tied_meta);
  Status s = load_model(bytes.data(), bytes.size(), &back);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("unexpected tensor 'decoder.0.weight'"), std::string::npos) << s.message();
  bytes = write_safetensors(tied_tensors, untied_meta);
  s = load_model(bytes.data(), bytes.size(), &back);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("missing tensor 'decoder.0.weight'"), std::string::npos) << s.message();
  // "tied" is 0 or 1.
  ModelConfig c = tied->config();
  c.hyper["tied"] = 2;
  EXPECT_FALSE(c.validate().ok());
}

TEST(SparseAutoencoder, TrainingPullsTheMeanActivationToRho) {
  // Random images, a code of 9 units: the penalty alone must bring the mean activation near rho.
  ImageSet im;
  im.count = 64;
  im.rows = 1;
  im.cols = kInput;
  Rng rng(141);
  for (int i = 0; i < im.count * kInput; i++) im.pixels.push_back(static_cast<uint8_t>(rng.below(256)));
  LabelSet lab;
  lab.count = im.count;
  lab.labels.assign(im.count, 0);
  Dataset d;
  ASSERT_TRUE(make_dataset(im, lab, &d).ok());
  auto mean_activation = [&](Model& m) {
    LossTotals e = evaluate(m, d, ZMode::kMean, rng, 64);
    return e.metrics.at(0).second;
  };
  auto m = make_model("sparse_ae", 16, 142, {{"rho", 0.1}, {"sparsity_beta", 3.0}});
  move_code_away_from_rho(*m);
  const double before = mean_activation(*m);
  Trainer t;
  TrainSettings s;
  s.batch = 16;
  s.adam.lr = 1e-2f;
  ASSERT_TRUE(t.setup(m.get(), &d, s).ok());
  for (int i = 0; i < 400; i++) ASSERT_TRUE(t.step(nullptr).ok());
  const double after = mean_activation(*m);
  EXPECT_GT(std::fabs(before - 0.1), 0.2);  // starts far from rho (about 1/2)
  EXPECT_NEAR(after, 0.1, 0.02);
}

}  // namespace
}  // namespace ll
