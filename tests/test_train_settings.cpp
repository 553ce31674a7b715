// Tests for the training settings table and the Trainer's per-step features (core/train/settings.h,
// trainer.h): the cosine schedule at known steps, gradient clipping against a hand-computed norm, the
// loss reduction (the one gradient convention), per-step metrics, TrainSettings' JSON and its messages.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "core/models/model.h"
#include "core/train/settings.h"
#include "core/train/trainer.h"
#include "test_util.h"

namespace ll {
namespace {

// A model whose gradient is known by hand: one tensor w[2], per-example loss 3 w0 + 4 w1, so the
// gradient of the batch sum is B * (3, 4) (norm 5 B) whatever w is.
class ToyLinear : public Model {
 public:
  ToyLinear() {
    config_.kind = "toy";
    config_.input = 4;
    config_.hidden = 2;
    config_.latent = 1;
    w_ = params_.add("w", {2});
    params_.finalize();
  }
  void reserve(int max_batch) override {
    max_batch_ = max_batch;
    loss_.assign(max_batch, 0.0f);
    recon_.assign(static_cast<size_t>(max_batch) * 4, 0.0f);
    code_.assign(max_batch, 0.0f);
  }
  void init(Rng&) override {}
  void forward(const float*, const float*, int B, Rng&, ZMode) override {
    B_ = B;
    const float* w = params_.param(w_);
    for (int b = 0; b < B; b++) loss_[b] = 3.0f * w[0] + 4.0f * w[1];
  }
  void backward(float scale) override {
    float* g = params_.grad(w_);
    g[0] += scale * 3.0f * B_;
    g[1] += scale * 4.0f * B_;
  }
  std::vector<std::string> loss_terms() const override { return {"linear"}; }
  const float* term(int) const override { return loss_.data(); }
  const float* reconstruction() const override { return recon_.data(); }
  const float* code() const override { return code_.data(); }
  void decode(const float*, int, float*) override {}
  const float* grad() const { return params_.grad(w_); }

 private:
  int w_ = 0, B_ = 0;
  std::vector<float> loss_, recon_, code_;
};

TEST(LrSchedule, CosineAtKnownSteps) {
  TrainSettings s;
  s.adam.lr = 1e-3;
  s.schedule = LrSchedule::kCosine;
  // lr (1 + cos(pi t / T)) / 2 with T = 100.
  EXPECT_DOUBLE_EQ(s.lr_at(0, 100), 1e-3);
  EXPECT_NEAR(s.lr_at(25, 100), 0.5e-3 * (1.0 + std::sqrt(0.5)), 1e-15);  // 8.5355e-4
  EXPECT_NEAR(s.lr_at(50, 100), 0.5e-3, 1e-15);
  EXPECT_NEAR(s.lr_at(75, 100), 0.5e-3 * (1.0 - std::sqrt(0.5)), 1e-15);  // 1.4645e-4
  EXPECT_EQ(s.lr_at(100, 100), 0.0);
  EXPECT_EQ(s.lr_at(7, 0), 1e-3);  // open-ended training: no length to decay over
  // A warm-up of 10 steps: lr (t + 1) / 10, then the cosine over the remaining 100 steps.
  s.warmup = 10;
  EXPECT_NEAR(s.lr_at(0, 110), 1e-4, 1e-18);
  EXPECT_NEAR(s.lr_at(4, 110), 5e-4, 1e-18);
  EXPECT_DOUBLE_EQ(s.lr_at(9, 110), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr_at(10, 110), 1e-3);
  EXPECT_NEAR(s.lr_at(60, 110), 0.5e-3, 1e-15);
  // The constant schedule returns the configured lr itself (the shipped recipes stay bit-identical).
  TrainSettings c;
  c.adam.lr = 3e-4;
  for (int64_t t : {0, 1, 500, 100000}) EXPECT_EQ(c.lr_at(t, 1000), 3e-4);
}

// Trains the toy model for `steps` steps on 2 images a batch; returns the last step's metrics.
StepMetrics train_toy(const TrainSettings& settings, int steps, ToyLinear* model, std::vector<StepMetrics>* all = nullptr) {
  static const Dataset data = test::synthetic_dataset(4, 2, 2, 7);
  Trainer trainer;
  Status s = trainer.setup(model, &data, settings);
  EXPECT_TRUE(s.ok()) << s.message();
  StepMetrics m;
  for (int i = 0; i < steps; i++) {
    LossTotals t;
    s = trainer.step(&t, &m);
    EXPECT_TRUE(s.ok()) << s.message();
    if (all) all->push_back(m);
  }
  return m;
}

TEST(GradientClipping, GlobalNormAgainstHandComputedValue) {
  TrainSettings s;
  s.batch = 2;
  // Sum over the batch: gradient 2 * (3, 4) = (6, 8), norm 10. Clipped to 5: (3, 4).
  s.clip = 5.0;
  ToyLinear a;
  a.reserve(2);
  StepMetrics m = train_toy(s, 1, &a);
  EXPECT_DOUBLE_EQ(m.grad_norm, 10.0);
  EXPECT_TRUE(m.clipped);
  EXPECT_FLOAT_EQ(a.grad()[0], 3.0f);
  EXPECT_FLOAT_EQ(a.grad()[1], 4.0f);
  // A limit above the norm leaves the gradient as it is.
  s.clip = 10.5;
  ToyLinear b;
  m = train_toy(s, 1, &b);
  EXPECT_DOUBLE_EQ(m.grad_norm, 10.0);
  EXPECT_FALSE(m.clipped);
  EXPECT_FLOAT_EQ(b.grad()[0], 6.0f);
  EXPECT_FLOAT_EQ(b.grad()[1], 8.0f);
}

TEST(GradientConvention, ModelSumsTheTrainerScales) {
  // Every Model's backward(scale) gives scale * the gradient of the batch sum; the reduction setting
  // picks the scale: the mean over B = 2 images halves the sum's gradient (6, 8) to (3, 4).
  TrainSettings s;
  s.batch = 2;
  s.reduction = LossReduction::kMean;
  ToyLinear a;
  StepMetrics m = train_toy(s, 1, &a);
  EXPECT_DOUBLE_EQ(m.grad_norm, 5.0);
  EXPECT_FLOAT_EQ(a.grad()[0], 3.0f);
  EXPECT_FLOAT_EQ(a.grad()[1], 4.0f);
  s.clip = 1.0;  // mean, clipped to norm 1: (0.6, 0.8)
  ToyLinear b;
  m = train_toy(s, 1, &b);
  EXPECT_TRUE(m.clipped);
  EXPECT_FLOAT_EQ(b.grad()[0], 0.6f);
  EXPECT_FLOAT_EQ(b.grad()[1], 0.8f);
}

TEST(StepMetrics, EveryStepHasItsNumberLrAndNorm) {
  TrainSettings s;
  s.batch = 2;
  s.epochs = 3;  // 4 images, 2 a batch: 6 planned steps
  s.schedule = LrSchedule::kCosine;
  s.warmup = 2;
  ToyLinear a;
  std::vector<StepMetrics> all;
  train_toy(s, 6, &a, &all);
  ASSERT_EQ(all.size(), 6u);
  const double want_lr[] = {0.5e-3, 1e-3, 1e-3, 0.5e-3 * (1 + std::cos(M_PI / 4)), 0.5e-3,
                            0.5e-3 * (1 + std::cos(3 * M_PI / 4))};
  for (int i = 0; i < 6; i++) {
    EXPECT_EQ(all[i].step, i + 1);
    EXPECT_EQ(all[i].epoch, (i + 1) / 2);
    EXPECT_NEAR(all[i].lr, want_lr[i], 1e-15) << "step " << i + 1;
    EXPECT_DOUBLE_EQ(all[i].grad_norm, 10.0);
  }
}

TEST(StepMetrics, ARealModelReportsTheNormOfItsGradient) {
  // An MLP autoencoder: the reported norm is the norm of the gradient the step left in the arena
  // (unclipped), and the loss terms are the batch's.
  ModelConfig c;
  c.kind = "ae";
  c.input = 16;
  c.hidden = 8;
  c.latent = 2;
  std::unique_ptr<Model> model;
  ASSERT_TRUE(create_model(c, &model).ok());
  Rng rng(3, 1);
  model->init(rng);
  const Dataset data = test::synthetic_dataset(20, 4, 4, 11);
  TrainSettings s;
  s.batch = 8;
  Trainer trainer;
  ASSERT_TRUE(trainer.setup(model.get(), &data, s).ok());
  for (int i = 1; i <= 3; i++) {
    LossTotals t;
    StepMetrics m;
    ASSERT_TRUE(trainer.step(&t, &m).ok());
    double sq = 0.0;
    const ParamArena& p = model->params();
    for (size_t k = 0; k < p.size(); k++) sq += double(p.grads[k]) * p.grads[k];
    EXPECT_NEAR(m.grad_norm, std::sqrt(sq), 1e-9 * std::sqrt(sq));
    EXPECT_GT(m.grad_norm, 0.0);
    EXPECT_EQ(m.step, i);
    EXPECT_EQ(m.lr, 1e-3);
    ASSERT_EQ(t.terms.size(), 1u);
    EXPECT_EQ(t.count, i == 3 ? 4 : 8);
  }
}

TEST(TrainSettings, DefaultsAreTheTable) {
  TrainSettings t;
  for (const SettingSpec& spec : train_setting_specs()) EXPECT_EQ(t.get(spec.name), spec.def) << spec.name;
  EXPECT_TRUE(t.validate().ok());
  // The shipped recipes (models/README.md): Adam 1e-3, batch 128, seed 1, constant lr, summed loss.
  EXPECT_EQ(t.adam.lr, 1e-3);
  EXPECT_EQ(t.batch, 128);
  EXPECT_EQ(t.seed, 1u);
  EXPECT_EQ(t.schedule, LrSchedule::kConstant);
  EXPECT_EQ(t.reduction, LossReduction::kSum);
  EXPECT_EQ(t.clip, 0.0);
}

TEST(TrainSettings, JsonRoundTrips) {
  TrainSettings t;
  ASSERT_TRUE(TrainSettings::from_json(
                  R"({"lr":0.0003,"batch":64,"epochs":5,"seed":9007199254740991,"schedule":"cosine","warmup":100,"clip":1.5,"reduction":"mean"})",
                  &t)
                  .ok());
  EXPECT_EQ(t.adam.lr, 3e-4);
  EXPECT_EQ(t.seed, 9007199254740991ull);
  EXPECT_EQ(t.schedule, LrSchedule::kCosine);
  EXPECT_EQ(t.reduction, LossReduction::kMean);
  const std::string json = t.to_json();
  EXPECT_EQ(json,
            R"({"lr":0.0003,"batch":64,"epochs":5,"seed":9007199254740991,"schedule":"cosine","warmup":100,"clip":1.5,"reduction":"mean"})");
  TrainSettings back;
  ASSERT_TRUE(TrainSettings::from_json(json, &back).ok());
  EXPECT_EQ(back.to_json(), json);
  EXPECT_EQ(TrainSettings().to_json({"\"data\":\"mnist\""}),
            R"({"lr":0.001,"batch":128,"epochs":10,"seed":1,"schedule":"constant","warmup":0,"clip":0,"reduction":"sum","data":"mnist"})");
}

TEST(TrainSettings, BadValuesGetOneMessageAndChangeNothing) {
  const struct {
    const char* json;
    const char* message;
  } cases[] = {
      {R"({"lr":20})", "lr = 20 is out of range [1e-08, 10]"},
      {R"({"lr":0})", "lr = 0 is out of range [1e-08, 10]"},
      {R"({"batch":0})", "batch = 0 is out of range [1, 65536]"},
      {R"({"batch":1.5})", "batch = 1.5 must be an integer"},
      {R"({"seed":-1})", "seed = -1 is out of range [0, 9007199254740991]"},
      {R"({"schedule":"step"})", "schedule = \"step\" is not one of constant, cosine"},
      {R"({"schedule":1})", "schedule = 1 is not one of constant, cosine"},
      {R"({"clip":-1})", "clip = -1 is out of range [0, 1000000]"},
      {R"({"lr":"fast"})", "lr = \"fast\" must be a number"},
      {R"({"lr":null})", "lr must be a number"},
      {R"({"momentum":0.9})",
       "unknown training setting 'momentum' (expected lr, batch, epochs, seed, schedule, warmup, clip, reduction)"},
      {R"([1])", "expected a JSON object"},
  };
  for (const auto& c : cases) {
    TrainSettings t;
    t.batch = 7;
    Status s = TrainSettings::from_json(c.json, &t);
    EXPECT_EQ(s.message(), c.message) << c.json;
    EXPECT_EQ(t.batch, 7) << "changed on error: " << c.json;
  }
}

// The bad value whose message the CLI test (cli_bad_setting, CMakeLists.txt) and the bindings' test
// (tests/wasm/bindings.test.mjs) also expect, from the same file: one message everywhere.
TEST(TrainSettings, TheSharedBadValueMessage) {
  std::ifstream f(std::string(LATENTLAB_SOURCE_DIR) + "/tests/bad_setting.txt");
  std::string name, value, message;
  ASSERT_TRUE(std::getline(f, name) && std::getline(f, value) && std::getline(f, message));
  TrainSettings t;
  EXPECT_EQ(t.set(name, std::stod(value)).message(), message);
}

}  // namespace
}  // namespace ll
