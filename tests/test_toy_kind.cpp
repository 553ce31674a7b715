// The model protocol (core/models/model.h): a toy kind added from the test tree alone
// (tests/toy_kind.cpp, register_model_kind) trains with the core's Trainer, saves, loads and evaluates
// like a shipped kind; the capabilities of the shipped kinds answer as their classes can; the
// registration API refuses bad kinds. The command-line and wasm paths of the toy kind are tested by
// tests/toy_kind_cli.sh and tests/wasm/toy_kind.test.mjs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/backends/xnnpack_infer.h"
#include "core/models/model.h"
#include "core/models/model_file.h"
#include "core/train/trainer.h"
#include "tests/test_util.h"

namespace ll {
bool toy_kind_registered();  // tests/toy_kind.cpp

namespace {

ModelConfig toy_config(int input, int latent) {
  ModelConfig c;
  c.kind = "toy";
  c.input = input;
  c.latent = latent;
  return c;
}

// n images of 4x4 pixels: two stripes patterns and their mixtures, so a 2-unit code can learn them.
Dataset toy_data(int n, uint64_t seed) {
  ImageSet images;
  images.count = n, images.rows = 4, images.cols = 4;
  LabelSet labels;
  labels.count = n;
  Rng rng(seed);
  for (int i = 0; i < n; i++) {
    const int kind = static_cast<int>(rng.below(2));
    for (int y = 0; y < 4; y++)
      for (int x = 0; x < 4; x++) images.pixels.push_back((kind ? x : y) % 2 ? 230 : 20);
    labels.labels.push_back(static_cast<uint8_t>(kind));
  }
  Dataset d;
  EXPECT_TRUE(make_dataset(std::move(images), std::move(labels), &d).ok());
  return d;
}

TEST(ToyKind, IsRegisteredFromTheTestTreeWithItsSettings) {
  ASSERT_TRUE(toy_kind_registered());
  const ModelKind* k = find_model_kind("toy");
  ASSERT_NE(k, nullptr);
  ASSERT_EQ(k->hyper.size(), 1u);
  EXPECT_EQ(k->hyper[0].name, "toy_l2");
  ModelConfig c = toy_config(16, 2);
  EXPECT_TRUE(c.validate().ok());
  c.hyper["toy_l2"] = 11;  // beyond its range in the registry
  Status s = c.validate();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("toy_l2"), std::string::npos) << s.message();
}

TEST(ToyKind, GradientCheck) {
  ModelConfig c = toy_config(13, 3);
  c.hyper["toy_l2"] = 0.5;  // the code term matters
  std::unique_ptr<Model> m;
  ASSERT_TRUE(create_model(c, &m).ok());
  const int B = 3;
  m->reserve(B);
  Rng init(3);
  m->init(init);
  Rng rng(4);
  auto x = test::random_vector(rng, B * 13, 0.0f, 1.0f);
  test::batch_loss(*m, x.data(), x.data(), B, ZMode::kMean);
  ParamArena& a = m->params();
  a.zero_grad();
  m->backward(1.0f);
  for (const TensorSlot& slot : a.slots()) {
    auto f = [&] { return test::batch_loss(*m, x.data(), x.data(), B, ZMode::kMean); };
    auto r = test::grad_check(f, a.params.data() + slot.offset, a.grads.data() + slot.offset, slot.size, 1e-2f,
                              1e-2, 80);
    test::expect_gradients_match("toy " + slot.name, r, 5e-3, 5e-2);
  }
}

// Trains (the core's Trainer), saves, loads and evaluates: the loaded model's figures are the trained
// model's, digit for digit.
TEST(ToyKind, TrainsSavesLoadsAndEvaluates) {
  const Dataset train = toy_data(256, 1), test_set = toy_data(64, 2);
  std::unique_ptr<Model> model;
  ASSERT_TRUE(create_model(toy_config(16, 2), &model).ok());
  Rng init(1, 1);
  model->init(init);
  Rng eval_rng(1, 3);
  const double before = evaluate(*model, test_set, ZMode::kMean, eval_rng).loss();
  TrainSettings settings;
  settings.batch = 16;
  settings.adam.lr = 1e-2f;
  Trainer trainer;
  Status s = trainer.setup(model.get(), &train, settings);
  ASSERT_TRUE(s.ok()) << s.message();
  for (int i = 0; i < 300; i++) {
    LossTotals t;
    ASSERT_TRUE((s = trainer.step(&t)).ok()) << s.message();
  }
  Rng r1(1, 3);
  const LossTotals trained = evaluate(*model, test_set, ZMode::kMean, r1);
  EXPECT_LT(trained.loss(), 0.6 * before) << "before " << before << " after " << trained.loss();

  const std::vector<uint8_t> bytes = save_model(*model, {{"latentlab.train", "{\"test\":1}"}});
  std::unique_ptr<Model> loaded;
  std::map<std::string, std::string> meta;
  ASSERT_TRUE((s = load_model(bytes.data(), bytes.size(), &loaded, &meta)).ok()) << s.message();
  EXPECT_EQ(loaded->config().kind, "toy");
  EXPECT_EQ(meta["latentlab.model"], "toy");
  Rng r2(1, 3);
  const LossTotals again = evaluate(*loaded, test_set, ZMode::kMean, r2);
  EXPECT_EQ(again.loss(), trained.loss());
  ASSERT_EQ(again.terms.size(), 2u);
  EXPECT_EQ(again.terms, trained.terms);
  EXPECT_EQ(again.mse, trained.mse);
}

TEST(ToyKind, HasNoCapabilitiesBeyondTheBasics) {
  std::unique_ptr<Model> m;
  ASSERT_TRUE(create_model(toy_config(16, 2), &m).ok());
  EXPECT_EQ(m->code_grids(), nullptr);
  EXPECT_EQ(m->conditioning(), nullptr);
  EXPECT_EQ(m->likelihood(), nullptr);
  EXPECT_EQ(m->sampler(), nullptr);
  EXPECT_EQ(m->sequence(), nullptr);
  EXPECT_FALSE(m->inference_graph(nullptr));
  EXPECT_FALSE(xnnpack_supports_kind("toy"));
}

TEST(Registry, RefusesBadKinds) {
  ModelKind k;
  k.name = "toy";  // taken
  k.create = [](const ModelConfig&) { return std::unique_ptr<Model>(); };
  Status s = register_model_kind(k);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("exists already"), std::string::npos) << s.message();
  k.name = "Bad-Name";
  EXPECT_FALSE(register_model_kind(k).ok());
  k.name = "";
  EXPECT_FALSE(register_model_kind(k).ok());
  k.name = "no_constructor";
  k.create = nullptr;
  EXPECT_FALSE(register_model_kind(k).ok());
  EXPECT_EQ(find_model_kind("no_constructor"), nullptr);
}

// ---- the capabilities of the shipped kinds ----

std::unique_ptr<Model> shipped(const std::string& kind) {
  ModelConfig c;
  c.kind = kind;
  c.hidden = 32;
  c.latent = 4;
  if (kind == "vqvae") c.hyper = {{"codebook_size", 16}, {"code_dim", 8}};
  std::unique_ptr<Model> m;
  EXPECT_TRUE(create_model(c, &m).ok()) << kind;
  Rng rng(7);
  m->init(rng);
  return m;
}

TEST(Capabilities, InferenceGraphsOfTheMlpAndVqKinds) {
  for (const char* kind : {"vae", "beta_vae", "ae", "dae", "vqvae"}) {
    auto m = shipped(kind);
    InferenceGraph g;
    ASSERT_TRUE(m->inference_graph(&g)) << kind;
    EXPECT_TRUE(g.sigmoid_output) << kind;
    EXPECT_EQ(g.layers.size(), std::string(kind) == "vqvae" ? 7u : 4u) << kind;
    for (const InferenceLayer& l : g.layers) EXPECT_NE(l.weight, nullptr) << kind << " " << l.name;
  }
  for (const char* kind : {"conv_vae", "sparse_ae", "ksparse_ae", "contractive_ae"})
    EXPECT_FALSE(shipped(kind)->inference_graph(nullptr)) << kind;
}

TEST(Capabilities, CodeGridsOfTheVqVaeAgreeWithItsForwardAndDecode) {
  for (const char* kind : {"vae", "ae", "conv_vae", "sparse_ae"}) EXPECT_EQ(shipped(kind)->code_grids(), nullptr) << kind;
  auto m = shipped("vqvae");
  CodeGrids* g = m->code_grids();
  ASSERT_NE(g, nullptr);
  ASSERT_EQ(g->levels(), 1);
  const CodeLevel level = g->level(0);
  EXPECT_EQ(level.H, 7);
  EXPECT_EQ(level.W, 7);
  EXPECT_EQ(level.K, 16);
  EXPECT_EQ(level.D, 8);
  const int B = 3, P = 784, G = level.cells();
  m->reserve(B);
  Rng rng(2);
  auto x = test::random_vector(rng, B * P, 0.0f, 1.0f);
  m->forward(x.data(), x.data(), B, rng, ZMode::kMean);
  const std::vector<float> code(m->code(), m->code() + B * G), rec(m->reconstruction(), m->reconstruction() + B * P);
  g->encode_codes(x.data(), B);
  std::vector<int32_t> idx(g->indices(0), g->indices(0) + B * G);
  for (int i = 0; i < B * G; i++) EXPECT_EQ(static_cast<float>(idx[i]), code[i]) << i;
  // z_e rows are the encoder output: each index is a nearest code of its row (up to float rounding of
  // the search's ||e||^2 - 2 z.e).
  for (int i = 0; i < B * G; i++) {
    std::vector<double> d(level.K, 0.0);
    for (int k = 0; k < level.K; k++)
      for (int j = 0; j < level.D; j++) {
        const double t = g->z_e_rows(0)[i * level.D + j] - g->codebook(0)[k * level.D + j];
        d[k] += t * t;
      }
    const double best = *std::min_element(d.begin(), d.end());
    EXPECT_LE(d[idx[i]] - best, 1e-5 * (1.0 + best)) << i;
  }
  std::vector<float> out(B * P);
  const int32_t* grids[1] = {idx.data()};
  g->decode_codes(grids, B, out.data());
  EXPECT_EQ(out, rec);
}

}  // namespace
}  // namespace ll
