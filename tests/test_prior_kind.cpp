// The PixelCNN prior as a kind of the registry: the shipped file through load_model / save_model, the
// Model forward over categorical inputs against the prior's own, the Trainer against the prior's old
// training loop (bit for bit), the labels the Trainer hands a model, and the code-grid data sets.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "core/io/file_io.h"
#include "core/io/safetensors.h"
#include "core/models/model_file.h"
#include "core/models/pixelcnn.h"
#include "core/nn/adam.h"
#include "core/train/code_data.h"
#include "core/train/trainer.h"
#include "tests/test_util.h"

namespace ll {
namespace {

PixelCnnConfig small_grid(int classes) {
  PixelCnnConfig c;
  c.K = 5, c.H = 4, c.W = 3, c.channels = 6, c.layers = 2, c.kernel_a = 3, c.kernel_b = 3, c.stacks = 2;
  c.classes = classes;
  return c;
}

// n random grids of the config's size (one byte per cell) with labels i % 3, as a categorical data set.
Dataset random_grids(const PixelCnnConfig& c, int n, uint64_t seed) {
  Rng rng(seed);
  Dataset d;
  d.categorical = true;
  d.images.count = d.labels.count = n, d.images.rows = c.H, d.images.cols = c.W;
  for (int i = 0; i < n * c.H * c.W; i++) {
    // Cells that depend on their left neighbour, so the prior has something to learn.
    const int prev = i % c.W ? d.images.pixels.back() : 0;
    d.images.pixels.push_back(static_cast<uint8_t>(rng.uniform() < 0.7f ? (prev + 1) % c.K : rng.below(c.K)));
  }
  for (int i = 0; i < n; i++) d.labels.labels.push_back(static_cast<uint8_t>(i % 3));
  return d;
}

TEST(PriorKind, ShippedFileLoadsAsARegistryKindAndSavesInItsOwnLayout) {
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(read_file(std::string(LATENTLAB_SOURCE_DIR) + "/models/vqvae_prior.safetensors", &bytes).ok());
  std::unique_ptr<Model> m;
  std::map<std::string, std::string> meta;
  Status s = load_model(bytes.data(), bytes.size(), &m, &meta);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(m->config().kind, "pixelcnn_prior");
  EXPECT_EQ(m->config().input, 49);
  CodeLevel g;
  ASSERT_TRUE(m->categorical_input(&g));
  EXPECT_EQ(g.H, 7);
  EXPECT_EQ(g.W, 7);
  EXPECT_EQ(g.K, 64);
  ASSERT_NE(m->likelihood(), nullptr);
  EXPECT_TRUE(m->likelihood()->exact());
  ASSERT_NE(m->sampler(), nullptr);
  ASSERT_NE(m->conditioning(), nullptr);
  EXPECT_EQ(m->conditioning()->classes(), 10);
  EXPECT_TRUE(m->needs_labels());
  EXPECT_EQ(m->code_grids(), nullptr);
  EXPECT_NE(meta.find("latentlab.train"), meta.end());
  // Saved through the registry (F16 as shipped): the same tensors at the same (masked-box) shapes, the
  // same weights, and the file loads back to them.
  std::vector<uint8_t> again = save_model(*m, {}, DType::kF16);
  SafetensorsFile a, b;
  ASSERT_TRUE(parse_safetensors(bytes.data(), bytes.size(), &a).ok());
  ASSERT_TRUE(parse_safetensors(again.data(), again.size(), &b).ok());
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const SafetensorsTensor& t : a.tensors) {
    const SafetensorsTensor* u = b.find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_EQ(u->shape, t.shape) << t.name;
    // F16 -> F32 -> F16 is exact: the tensor's bytes are the shipped file's.
    ASSERT_EQ(u->end - u->begin, t.end - t.begin) << t.name;
    EXPECT_TRUE(std::equal(a.data + t.begin, a.data + t.end, b.data + u->begin)) << t.name;
  }
  std::unique_ptr<Model> back;
  ASSERT_TRUE(load_model(again.data(), again.size(), &back).ok());
  EXPECT_EQ(back->params().params, m->params().params);
  EXPECT_EQ(back->config().to_json(), m->config().to_json());
}

TEST(PriorKind, ModelForwardOnCategoricalInputIsThePriorsOwnForward) {
  const PixelCnnConfig c = small_grid(3);
  PixelCnnPrior a(c), b(c);
  Rng rng(11);
  a.init(rng);
  for (float& w : a.params().params) w += 0.05f * (rng.uniform() - 0.5f);  // class embeddings too
  a.apply_masks();
  b.params().params = a.params().params;
  const int B = 5, G = c.H * c.W;
  a.reserve(B);
  b.reserve(B);
  const Dataset d = random_grids(c, B, 3);
  std::vector<float> x(static_cast<size_t>(B) * G);
  d.to_float(nullptr, 0, B, x.data());
  std::vector<int32_t> codes(d.images.pixels.begin(), d.images.pixels.end()), labels = {2, 0, 1, 1, 2};
  for (int i = 0; i < B * G; i++) ASSERT_EQ(x[i], static_cast<float>(codes[i]));  // categorical: the indices
  a.set_batch_labels(labels.data());
  a.forward(x.data(), x.data(), B, rng, ZMode::kSample);
  b.forward(codes.data(), B, labels.data());
  for (int i = 0; i < B; i++) EXPECT_EQ(a.term(0)[i], b.nll()[i]);
  EXPECT_EQ(a.likelihood()->nll(), a.term(0));
  a.params().zero_grad();
  b.params().zero_grad();
  a.backward(0.5f);
  b.backward(0.5f);
  EXPECT_EQ(a.params().grads, b.params().grads);
  // reconstruction(): each cell's most likely code, an index in [0, K).
  for (int i = 0; i < B * G; i++) EXPECT_TRUE(a.reconstruction()[i] >= 0 && a.reconstruction()[i] < c.K);
}

// The prior's training loop before it moved onto the Trainer (tools/cli_prior.cpp at ac54e58): one
// generator initialises the prior and then shuffles at the start of every epoch; mean reduction.
// cosine: the old loop's cosine schedule, its lr rounded to float as the old loop did (round_lr) or not.
std::vector<float> train_old_loop(const PixelCnnConfig& c, const Dataset& data, int epochs, int batch, uint64_t seed,
                                  double lr, std::vector<double>* epoch_nll, bool cosine = false, bool round_lr = true) {
  TrainSettings recipe;
  recipe.adam.lr = lr;
  recipe.schedule = cosine ? LrSchedule::kCosine : LrSchedule::kConstant;
  const int64_t total = int64_t(epochs) * ((data.size() + batch - 1) / batch);
  int64_t step = 0;
  PixelCnnPrior prior(c);
  Rng rng(seed, 1);
  prior.init(rng);
  prior.reserve(batch);
  const int G = c.H * c.W;
  std::vector<int32_t> codes(data.images.pixels.begin(), data.images.pixels.end());
  std::vector<int32_t> grids(static_cast<size_t>(batch) * G), labels(batch);
  Adam adam;
  adam.config.lr = lr;
  std::vector<uint32_t> order(data.size());
  std::iota(order.begin(), order.end(), 0u);
  for (int e = 0; e < epochs; e++) {
    rng.shuffle(order.data(), order.size());
    double sum = 0.0;
    for (int first = 0; first < data.size(); first += batch) {
      const int B = std::min(batch, data.size() - first);
      for (int b = 0; b < B; b++) {
        std::copy_n(codes.begin() + static_cast<size_t>(order[first + b]) * G, G, grids.begin() + static_cast<size_t>(b) * G);
        labels[b] = data.labels.labels[order[first + b]];
      }
      prior.forward(grids.data(), B, labels.data());
      double batch_sum = 0.0;
      for (int b = 0; b < B; b++) batch_sum += prior.nll()[b];
      sum += batch_sum;
      prior.params().zero_grad();
      prior.backward(1.0f / B);
      if (cosine)
        adam.config.lr = round_lr ? static_cast<float>(recipe.lr_at(step, total)) : recipe.lr_at(step, total);
      step++;
      adam.step(prior.params());
    }
    epoch_nll->push_back(sum / data.size());
  }
  return prior.params().params;
}

TEST(PriorKind, TheTrainerTrainsThePriorBitForBitAsItsOldLoop) {
  for (int classes : {0, 3}) {
    const PixelCnnConfig c = small_grid(classes);
    const Dataset data = random_grids(c, 70, 5);  // 70 grids in batches of 16: a short last batch
    std::vector<double> old_nll, new_nll;
    const std::vector<float> old_params = train_old_loop(c, data, 3, 16, 9, 3e-3, &old_nll);

    std::unique_ptr<Model> prior;
    ASSERT_TRUE(create_model(c.to_model_config(), &prior).ok());
    Rng rng(9, 1);
    prior->init(rng);
    TrainSettings t;
    t.batch = 16, t.epochs = 3, t.seed = 9, t.adam.lr = 3e-3, t.reduction = LossReduction::kMean;
    Trainer trainer;
    Status s = trainer.setup(prior.get(), &data, t);
    ASSERT_TRUE(s.ok()) << s.message();
    trainer.set_rng(rng);
    for (int e = 0; e < 3; e++) {
      LossTotals epoch;
      for (int i = 0; i < trainer.steps_per_epoch(); i++) {
        LossTotals batch;
        ASSERT_TRUE(trainer.step(&batch).ok());
        epoch.add(batch);
      }
      new_nll.push_back(epoch.loss());
    }
    EXPECT_EQ(new_nll, old_nll) << "classes " << classes;
    EXPECT_LT(new_nll.back(), new_nll.front());
    EXPECT_TRUE(prior->params().params == old_params) << "classes " << classes;
  }
}

// A model that records what the Trainer hands it: each example's first input value and its label.
class LabelProbe : public Model {
 public:
  explicit LabelProbe(bool needs) : needs_(needs) {
    config_.kind = "vae", config_.input = 2;
    params_.add("w", {1});
    params_.finalize();
  }
  bool needs_labels() const override { return needs_; }
  void reserve(int B) override { zero_.assign(static_cast<size_t>(std::max(B, 1)) * 2, 0.0f), max_batch_ = B; }
  void init(Rng&) override {}
  void forward(const float* x, const float*, int B, Rng&, ZMode) override {
    for (int b = 0; b < B; b++) {
      seen.push_back({x[b * 2], batch_labels_ ? batch_labels_[b] : -1});
    }
  }
  void backward(float) override {}
  std::vector<std::string> loss_terms() const override { return {"zero"}; }
  const float* term(int) const override { return zero_.data(); }
  const float* reconstruction() const override { return zero_.data(); }
  const float* code() const override { return zero_.data(); }
  void decode(const float*, int, float*) override {}
  std::vector<std::pair<float, int32_t>> seen;

 private:
  bool needs_;
  std::vector<float> zero_;
};

// With the cosine schedule the old loop rounded each step's lr to float; the Trainer keeps the double.
// That rounding is the only difference: without it the two are bit for bit the same again.
TEST(PriorKind, UnderCosineTheOldLoopDiffersOnlyByItsLrRoundedToFloat) {
  const PixelCnnConfig c = small_grid(3);
  const Dataset data = random_grids(c, 70, 5);
  std::vector<double> exact_nll, rounded_nll, new_nll;
  const std::vector<float> exact = train_old_loop(c, data, 3, 16, 9, 3e-3, &exact_nll, true, false);
  const std::vector<float> rounded = train_old_loop(c, data, 3, 16, 9, 3e-3, &rounded_nll, true, true);
  std::unique_ptr<Model> prior;
  ASSERT_TRUE(create_model(c.to_model_config(), &prior).ok());
  Rng rng(9, 1);
  prior->init(rng);
  TrainSettings t;
  t.batch = 16, t.epochs = 3, t.seed = 9, t.adam.lr = 3e-3, t.reduction = LossReduction::kMean;
  t.schedule = LrSchedule::kCosine;
  Trainer trainer;
  ASSERT_TRUE(trainer.setup(prior.get(), &data, t).ok());
  trainer.set_rng(rng);
  for (int64_t i = 0; i < trainer.planned_steps(); i++) ASSERT_TRUE(trainer.step(nullptr).ok());
  EXPECT_TRUE(prior->params().params == exact);
  EXPECT_FALSE(prior->params().params == rounded);  // the float lr moves the weights, by float noise
  double worst = 0.0;
  for (size_t i = 0; i < exact.size(); i++)
    worst = std::max(worst, std::fabs(double(exact[i]) - rounded[i]) / (std::fabs(double(exact[i])) + 1e-3));
  EXPECT_LT(worst, 1e-4);
}

TEST(TrainerLabels, EachExampleComesWithItsOwnLabelInTheBatchOrder) {
  Dataset d;
  d.images.count = d.labels.count = 37, d.images.rows = 1, d.images.cols = 2;
  for (int i = 0; i < 37; i++) {
    d.images.pixels.push_back(static_cast<uint8_t>(i)), d.images.pixels.push_back(0);
    d.labels.labels.push_back(static_cast<uint8_t>((i * 7) % 10));
  }
  LabelProbe probe(true);
  TrainSettings t;
  t.batch = 8;
  Trainer trainer;
  ASSERT_TRUE(trainer.setup(&probe, &d, t).ok());
  for (int i = 0; i < 12; i++) ASSERT_TRUE(trainer.step(nullptr).ok());  // 2 epochs (5 steps each) and 2 steps
  ASSERT_EQ(probe.seen.size(), 2u * 37 + 2 * 8);
  std::vector<int> firsts;
  for (const auto& [x, label] : probe.seen) {
    const int i = static_cast<int>(std::lround(x * 255.0f));
    EXPECT_EQ(label, (i * 7) % 10) << "image " << i;
    firsts.push_back(i);
  }
  EXPECT_FALSE(std::is_sorted(firsts.begin(), firsts.begin() + 37));  // the order was shuffled
  // evaluate() hands the labels in the data's order.
  probe.seen.clear();
  Rng rng(1);
  evaluate(probe, d, ZMode::kMean, rng, 10);
  ASSERT_EQ(probe.seen.size(), 37u);
  for (size_t i = 0; i < probe.seen.size(); i++) EXPECT_EQ(probe.seen[i].second, static_cast<int>((i * 7) % 10));
  // Data without labels: refused for a model that needs them, null labels for one that does not.
  d.labels.labels.clear();
  d.labels.count = 0;
  Status s = trainer.setup(&probe, &d, t);
  EXPECT_NE(s.message().find("has no labels"), std::string::npos) << s.message();
  LabelProbe free(false);
  ASSERT_TRUE(trainer.setup(&free, &d, t).ok());
  ASSERT_TRUE(trainer.step(nullptr).ok());
  EXPECT_EQ(free.seen[0].second, -1);
}

TEST(TrainerLabels, CategoricalAndImageDataAreNotMixedUp) {
  const PixelCnnConfig c = small_grid(0);
  std::unique_ptr<Model> prior;
  ASSERT_TRUE(create_model(c.to_model_config(), &prior).ok());
  Dataset grids = random_grids(c, 10, 1);
  Trainer trainer;
  TrainSettings t;
  t.batch = 4;
  ASSERT_TRUE(trainer.setup(prior.get(), &grids, t).ok());
  grids.categorical = false;  // the same bytes as an image data set
  Status s = trainer.setup(prior.get(), &grids, t);
  EXPECT_NE(s.message().find("grids of categories"), std::string::npos) << s.message();
  LabelProbe image_model(false);
  Dataset d = random_grids(c, 10, 1);
  d.images.rows = 1, d.images.cols = 2, d.images.pixels.resize(20);
  s = trainer.setup(&image_model, &d, t);
  EXPECT_NE(s.message().find("takes images"), std::string::npos) << s.message();
}

TEST(CodeData, AVqVaesCodeGridsBecomeACategoricalDataSet) {
  ModelConfig vc;
  vc.kind = "vqvae";
  std::unique_ptr<Model> vq;
  ASSERT_TRUE(create_model(vc, &vq).ok());
  Rng rng(4);
  vq->init(rng);
  Dataset images;
  images.images.count = images.labels.count = 12, images.images.rows = images.images.cols = 28;
  for (int i = 0; i < 12 * 784; i++) images.images.pixels.push_back(static_cast<uint8_t>(rng.below(256)));
  for (int i = 0; i < 12; i++) images.labels.labels.push_back(static_cast<uint8_t>(9 - i % 10));
  Dataset codes;
  Status s = encode_code_grids(*vq, images, &codes, 0, 10, 4);  // the first 10, in batches of 4
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(codes.categorical);
  ASSERT_EQ(codes.size(), 10);
  EXPECT_EQ(codes.images.rows, 7);
  EXPECT_EQ(codes.images.cols, 7);
  EXPECT_EQ(codes.labels.labels, std::vector<uint8_t>(images.labels.labels.begin(), images.labels.labels.begin() + 10));
  // Each grid is the model's own encoding of its image.
  std::vector<float> x(784);
  for (int i = 0; i < 10; i++) {
    images.to_float(nullptr, i, 1, x.data());
    vq->code_grids()->encode_codes(x.data(), 1);
    for (int n = 0; n < 49; n++)
      ASSERT_EQ(codes.images.pixels[static_cast<size_t>(i) * 49 + n], vq->code_grids()->indices(0)[n]) << i << " " << n;
  }
  // More than 256 codes do not fit a byte per cell; a model without code grids has none to give.
  vc.hyper["codebook_size"] = 300;
  std::unique_ptr<Model> big;
  ASSERT_TRUE(create_model(vc, &big).ok());
  s = encode_code_grids(*big, images, &codes);
  EXPECT_NE(s.message().find("at most 256 codes"), std::string::npos) << s.message();
  EXPECT_EQ(codes.size(), 10);  // unchanged
  ModelConfig ae;
  ae.kind = "ae";
  std::unique_ptr<Model> plain;
  ASSERT_TRUE(create_model(ae, &plain).ok());
  s = encode_code_grids(*plain, images, &codes);
  EXPECT_NE(s.message().find("no grids of discrete codes"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace ll
