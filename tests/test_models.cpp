// Whole models: finite-difference gradient checks of the full loss, the reparameterisation trick,
// determinism, overfitting one batch, and the fast GEMM against the scalar one end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "core/kernels/kernels.h"
#include "core/models/mlp_vae.h"
#include "core/models/model.h"
#include "core/train/trainer.h"
#include "tests/test_util.h"

namespace ll {
namespace {

std::unique_ptr<Model> small_model(const std::string& kind, int B, uint64_t seed = 11) {
  ModelConfig c;
  c.kind = kind;
  c.input = 13;
  c.hidden = 9;
  c.latent = 4;
  std::unique_ptr<Model> m;
  EXPECT_TRUE(create_model(c, &m).ok());
  m->reserve(B);
  Rng rng(seed);
  m->init(rng);
  return m;
}

void check_model_gradients(const std::string& kind, ZMode mode) {
  const int B = 3;
  auto m = small_model(kind, B);
  Rng rng(12);
  auto x = test::random_vector(rng, B * 13, 0.0f, 1.0f);
  test::batch_loss(*m, x.data(), x.data(), B, mode);
  ParamArena& a = m->params();
  a.zero_grad();
  m->backward(1.0f);
  for (const TensorSlot& slot : a.slots()) {
    auto f = [&] { return test::batch_loss(*m, x.data(), x.data(), B, mode); };
    // The whole model runs in float32, so single entries of a numeric gradient carry rounding noise
    // of about 1e-6 / (2h); the norm-wise relative error over the tensor is the robust figure.
    // Would fail if a ReLU pre-activation crossed 0 within +-h (a kink); these seeds avoid that.
    auto r = test::grad_check(f, a.params.data() + slot.offset, a.grads.data() + slot.offset,
                              slot.size, 1e-2f, 1e-2, 80);
    test::expect_gradients_match(kind + " " + slot.name, r, 5e-3, 5e-2);
  }
}

TEST(MlpVae, GradientCheckWithSampledZ) { check_model_gradients("vae", ZMode::kSample); }
TEST(MlpVae, GradientCheckWithMeanZ) { check_model_gradients("vae", ZMode::kMean); }
TEST(MlpAutoencoder, GradientCheck) { check_model_gradients("ae", ZMode::kMean); }

TEST(MlpVae, ReparameterisationUsesMeanAndStd) {
  const int B = 2;
  auto m = small_model("vae", B);
  auto* vae = static_cast<MlpVae*>(m.get());
  Rng rng(1);
  auto x = test::random_vector(rng, B * 13, 0.0f, 1.0f);
  Rng r1(5);
  m->forward(x.data(), x.data(), B, r1, ZMode::kMean);
  const std::vector<float> bce_mean(m->term(0), m->term(0) + B);
  // Posterior-mean decode equals the reconstruction of the mean forward.
  std::vector<float> mu(m->code(), m->code() + B * 4), rec(m->reconstruction(), m->reconstruction() + B * 13);
  std::vector<float> dec(B * 13);
  m->decode(mu.data(), B, dec.data());
  EXPECT_LT(test::max_abs_diff(dec.data(), rec.data(), dec.size()), 1e-6);
  // Sampled z differs, and the KL term does not depend on the sample.
  std::vector<float> kl_mean(m->term(1), m->term(1) + B);
  Rng r2(5);
  m->forward(x.data(), x.data(), B, r2, ZMode::kSample);
  EXPECT_NE(m->term(0)[0], bce_mean[0]);
  EXPECT_EQ(m->term(1)[0], kl_mean[0]);
  EXPECT_EQ(m->term(1)[1], kl_mean[1]);
  EXPECT_TRUE(std::isfinite(vae->logvar()[0]));
}

TEST(Models, ScalarAndDefaultGemmAgreeOnTheLoss) {
  const int B = 4;
  const GemmBackend fast_backend = gemm_backend();  // OpenBLAS or Eigen natively, wasm SIMD in wasm
  for (const char* kind : {"ae", "vae"}) {
    auto m = small_model(kind, B);
    Rng rng(3);
    auto x = test::random_vector(rng, B * 13, 0.0f, 1.0f);
    double fast = test::batch_loss(*m, x.data(), x.data(), B, ZMode::kSample);
    set_gemm_backend(GemmBackend::kScalar);
    double ref = test::batch_loss(*m, x.data(), x.data(), B, ZMode::kSample);
    set_gemm_backend(fast_backend);
    EXPECT_NEAR(fast, ref, 1e-4 * std::fabs(ref)) << kind << " " << gemm_backend_name(fast_backend);
  }
}

std::vector<float> train_steps(const std::string& kind, uint64_t seed, int steps) {
  Dataset d = test::synthetic_dataset(50, 1, 13, 4);
  auto m = small_model(kind, 8, seed);
  Trainer t;
  TrainSettings s;
  s.batch = 8;
  s.seed = seed;
  EXPECT_TRUE(t.setup(m.get(), &d, s).ok());
  for (int i = 0; i < steps; i++) EXPECT_TRUE(t.step(nullptr).ok());
  EXPECT_EQ(t.steps_per_epoch(), 7);  // 6 full batches of 8 and one of 2
  EXPECT_EQ(t.epoch(), steps / 7);
  return m->params().params;
}

TEST(Training, SameSeedSameWeightsAfter100Steps) {
  for (const char* kind : {"ae", "vae"}) {
    auto a = train_steps(kind, 21, 100), b = train_steps(kind, 21, 100);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); i++) ASSERT_EQ(a[i], b[i]) << kind << " at " << i;
    auto c = train_steps(kind, 22, 100);
    EXPECT_GT(test::max_abs_diff(a.data(), c.data(), a.size()), 1e-3) << kind;
  }
}

TEST(Training, OverfitsOneBatch) {
  // Eight images, one batch, many steps: the AE must memorise them almost perfectly.
  Dataset d = test::synthetic_dataset(8, 1, 13, 5);
  auto m = small_model("ae", 8);
  Trainer t;
  TrainSettings s;
  s.batch = 8;
  s.adam.lr = 1e-2f;
  ASSERT_TRUE(t.setup(m.get(), &d, s).ok());
  LossTotals first, last;
  ASSERT_TRUE(t.step(&first).ok());
  for (int i = 0; i < 1500; i++) ASSERT_TRUE(t.step(&last).ok());
  // Minimum possible BCE is the entropy of the targets; the MSE shows the memorisation directly.
  EXPECT_LT(last.mse_mean(), 0.01 * first.mse_mean());
  EXPECT_LT(last.mse_mean(), 1e-3);
}

TEST(Training, NonFiniteLossSkipsTheUpdateWithAMessage) {
  Dataset d = test::synthetic_dataset(16, 1, 13, 6);
  auto m = small_model("vae", 8);
  Trainer t;
  TrainSettings s;
  s.batch = 8;
  ASSERT_TRUE(t.setup(m.get(), &d, s).ok());
  ASSERT_TRUE(t.step(nullptr).ok());
  // Poison a weight: the forward pass turns NaN; the step must refuse and leave the weights alone.
  m->params().params[m->params().slots()[0].offset] = NAN;
  const std::vector<float> before = m->params().params;
  Status st = t.step(nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("not finite"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("step 2"), std::string::npos) << st.message();
  EXPECT_EQ(t.steps_done(), 1);
  for (size_t i = 1; i < before.size(); i++) ASSERT_EQ(m->params().params[i], before[i]);
}

TEST(Training, RejectsBadSettings) {
  Dataset d = test::synthetic_dataset(16, 1, 13, 6);
  auto m = small_model("vae", 8);
  Trainer t;
  TrainSettings s;
  s.batch = 0;
  EXPECT_EQ(t.setup(m.get(), &d, s).message(), "batch = 0 is out of range [1, 65536]");
  s.batch = 8;
  s.adam.lr = -1.0f;
  EXPECT_EQ(t.setup(m.get(), &d, s).message(), "lr = -1 is out of range [1e-08, 10]");
  Dataset wrong = test::synthetic_dataset(16, 1, 12, 6);
  s.adam.lr = 1e-3f;
  EXPECT_NE(t.setup(m.get(), &wrong, s).message().find("12 pixels per image"), std::string::npos);
}

TEST(ModelConfig, JsonRoundTripAndValidation) {
  ModelConfig c;
  c.kind = "ae";
  c.hidden = 256;
  c.latent = 2;
  ModelConfig back;
  ASSERT_TRUE(ModelConfig::from_json(c.to_json(), &back).ok());
  EXPECT_EQ(back.kind, "ae");
  EXPECT_EQ(back.hidden, 256);
  EXPECT_EQ(back.latent, 2);
  EXPECT_NE(ModelConfig::from_json(R"({"kind":"vae","lattent":3})", &back).message().find("unknown key 'lattent'"),
            std::string::npos);
  EXPECT_NE(ModelConfig::from_json(R"({"kind":"gan"})", &back).message().find("unknown model kind"),
            std::string::npos);
  EXPECT_NE(ModelConfig::from_json(R"({"kind":"vae","latent":0})", &back).message().find("'latent'"),
            std::string::npos);
}

}  // namespace
}  // namespace ll

namespace ll {
namespace {

TEST(ModelConfig, KindChecksRejectBadConfigsWithAMessage) {
  // A conv kind on a non-square or odd-sided image, from a file's metadata, must be an error, never a crash.
  ModelConfig c;
  for (const char* kind : {"conv_vae", "vqvae"}) {
    std::string json = std::string("{\"kind\":\"") + kind + "\",\"input\":780}";
    Status s = ModelConfig::from_json(json, &c);
    EXPECT_NE(s.message().find("square image"), std::string::npos) << kind << ": " << s.message();
    json = std::string("{\"kind\":\"") + kind + "\",\"input\":900}";  // 30 x 30: side not a multiple of 4
    EXPECT_FALSE(ModelConfig::from_json(json, &c).ok()) << kind;
    json = std::string("{\"kind\":\"") + kind + "\",\"input\":784}";
    EXPECT_TRUE(ModelConfig::from_json(json, &c).ok()) << kind;
  }
  Status s = ModelConfig::from_json(R"({"kind":"ksparse_ae","hidden":20,"k":25})", &c);
  EXPECT_NE(s.message().find("exceeds the 20 code units"), std::string::npos) << s.message();
  EXPECT_TRUE(ModelConfig::from_json(R"({"kind":"ksparse_ae","hidden":20})", &c).ok());  // default k capped
}

TEST(ParamArena, CountExcludesAlignmentPadding) {
  ParamArena a;
  a.add("w", {3, 5});
  a.add("b", {3});
  a.finalize();
  EXPECT_EQ(a.count(), 18u);
  EXPECT_GE(a.size(), 18u);
}

}  // namespace
}  // namespace ll
