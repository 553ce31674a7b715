// The judge classifier: gradient check, and real accuracy on MNIST after one epoch.
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "core/classifier.h"
#include "core/file_io.h"
#include "tests/test_util.h"
#include "tools/data_paths.h"

namespace ll {
namespace {

TEST(Classifier, GradientsMatchFiniteDifferences) {
  MlpClassifier c(11, 7, 4);
  const int B = 3;
  c.reserve(B);
  Rng rng(1);
  c.init(rng);
  auto x = test::random_vector(rng, B * 11, 0.0f, 1.0f);
  std::vector<int32_t> y = {0, 3, 2};
  auto f = [&] {
    c.forward(x.data(), y.data(), B);
    return double(c.loss()[0]) + c.loss()[1] + c.loss()[2];
  };
  f();
  c.params().zero_grad();
  c.backward(1.0f);
  for (const TensorSlot& slot : c.params().slots()) {
    auto r = test::grad_check(f, c.params().params.data() + slot.offset, c.params().grads.data() + slot.offset,
                              slot.size, 1e-3f, 1e-2, 80);  // h = 1e-2 crosses ReLU kinks here
    EXPECT_LT(r.norm_rel_error, 1e-2) << slot.name;
  }
}

TEST(Classifier, ReachesHighAccuracyOnMnistAndRoundTrips) {
  std::string dir;
  Dataset train, test;
  if (!data_dir("mnist", &dir).ok() || !load_idx_dataset(dir, "train", &train).ok() ||
      !load_idx_dataset(dir, "t10k", &test).ok())
    FAIL() << "MNIST not installed (scripts/setup.sh: npm ci)";
  MlpClassifier c(784, 128, 10);
  Rng rng(1);
  c.init(rng);
  double acc = 0.0;
  ASSERT_TRUE(train_classifier(&c, train, test, 1, 1, &acc).ok());
  std::printf("[ measured ] classifier 784-128-10 after 1 epoch: test accuracy %.4f\n", acc);
  EXPECT_GT(acc, 0.92);
  auto bytes = save_classifier(c, {});
  std::unique_ptr<MlpClassifier> back;
  ASSERT_TRUE(load_classifier(bytes.data(), bytes.size(), &back).ok());
  EXPECT_NEAR(classifier_accuracy(*back, test), acc, 0.003);  // stored as F16
}

}  // namespace
}  // namespace ll
