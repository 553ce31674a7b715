// The judge classifiers (MLP and convolutional): gradient checks, the conv forward against an
// independent direct computation, file round trips and strict loading, and real accuracy on MNIST.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/eval/classifier.h"
#include "core/io/file_io.h"
#include "core/io/safetensors.h"
#include "tests/test_util.h"
#include "tools/data_paths.h"

namespace ll {
namespace {

// Central differences of the summed loss of one labelled batch, tensor by tensor (norm-wise relative
// error: float32 per-entry noise). h = 1e-3 keeps the steps from crossing ReLU kinks.
void check_gradients(Classifier& c, const std::vector<float>& x, const std::vector<int32_t>& y) {
  const int B = static_cast<int>(y.size());
  auto f = [&] {
    c.forward(x.data(), y.data(), B);
    double sum = 0.0;
    for (int b = 0; b < B; b++) sum += c.loss()[b];
    return sum;
  };
  f();
  c.params().zero_grad();
  c.backward(1.0f);
  for (const TensorSlot& slot : c.params().slots()) {
    auto r = test::grad_check(f, c.params().params.data() + slot.offset, c.params().grads.data() + slot.offset,
                              slot.size, 1e-3f, 1e-2, 80);
    test::expect_gradients_match(c.arch() + " " + slot.name, r, 1e-2);
  }
}

TEST(Classifier, GradientsMatchFiniteDifferences) {
  MlpClassifier c(11, 7, 4);
  const int B = 3;
  c.reserve(B);
  Rng rng(1);
  c.init(rng);
  check_gradients(c, test::random_vector(rng, B * 11, 0.0f, 1.0f), {0, 3, 2});
  // Non-digits: the target is the uniform distribution.
  check_gradients(c, test::random_vector(rng, B * 11, 0.0f, 1.0f), {kUniformTarget, 1, kUniformTarget});
}

TEST(ConvClassifier, GradientsMatchFiniteDifferences) {
  // 8x8 images -> conv1 [3, 4x4] -> conv2 [6, 2x2] -> fc 24 -> 5 classes.
  ConvClassifier c(8, 3, 5);
  const int B = 3;
  c.reserve(B);
  Rng rng(2);
  c.init(rng);
  // Larger weights than the default init: the loss then depends strongly on every layer.
  for (float& w : c.params().params) w *= 2.0f;
  check_gradients(c, test::random_vector(rng, B * 64, 0.0f, 1.0f), {4, 0, 2});
  check_gradients(c, test::random_vector(rng, B * 64, 0.0f, 1.0f), {kUniformTarget, 3, kUniformTarget});
}

TEST(Classifier, UniformTargetLossIsTheCrossEntropyWithTheUniformDistribution) {
  MlpClassifier c(5, 4, 3);
  c.reserve(2);
  Rng rng(5);
  c.init(rng);
  for (float& w : c.params().params) w *= 3.0f;
  auto x = test::random_vector(rng, 2 * 5, 0.0f, 1.0f);
  const std::vector<int32_t> y = {kUniformTarget, 2};
  c.forward(x.data(), y.data(), 2);
  double expected = 0.0;
  for (int k = 0; k < 3; k++) expected -= std::log(static_cast<double>(c.probs()[k])) / 3.0;
  EXPECT_NEAR(c.loss()[0], expected, 1e-5);
  EXPECT_NEAR(c.loss()[1], -std::log(static_cast<double>(c.probs()[3 + 2])), 1e-5);
  EXPECT_GT(expected, std::log(3.0));  // at its minimum, log K, only when the prediction is uniform
}

TEST(Classifier, JigsawShufflesWholePatches) {
  const int side = 28;
  std::vector<float> digit(side * side), out(side * side);
  for (int i = 0; i < side * side; i++) digit[i] = static_cast<float>(i);  // every pixel distinct
  for (int patch : {4, 7}) {
    Rng rng(7);
    make_jigsaw(out.data(), digit.data(), side, patch, rng);
    // Each output patch is one source patch, intact: its top-left pixel says which.
    std::vector<int> used(side * side, 0);
    int moved = 0;
    for (int oy = 0; oy < side; oy += patch)
      for (int ox = 0; ox < side; ox += patch) {
        const int src = static_cast<int>(out[oy * side + ox]), sy = src / side, sx = src % side;
        ASSERT_EQ(sy % patch, 0);
        ASSERT_EQ(sx % patch, 0);
        used[src]++;
        moved += src != oy * side + ox;
        for (int r = 0; r < patch; r++)
          for (int q = 0; q < patch; q++) ASSERT_EQ(out[(oy + r) * side + ox + q], digit[(sy + r) * side + sx + q]);
      }
    for (int i = 0; i < side * side; i++) EXPECT_LE(used[i], 1);  // a permutation: no patch twice
    EXPECT_GT(moved, (side / patch) * (side / patch) / 2) << patch;
  }
}

// Direct loops of Conv2d (stride 2, pad 2, k5) + ReLU: an independent forward to compare with.
std::vector<float> direct_conv_relu(const std::vector<float>& x, int C, int S, const float* w, const float* bias,
                                    int OC) {
  const int OS = (S + 4 - 5) / 2 + 1;
  std::vector<float> out(static_cast<size_t>(OC) * OS * OS);
  for (int oc = 0; oc < OC; oc++)
    for (int oy = 0; oy < OS; oy++)
      for (int ox = 0; ox < OS; ox++) {
        double acc = bias[oc];
        for (int c = 0; c < C; c++)
          for (int ky = 0; ky < 5; ky++)
            for (int kx = 0; kx < 5; kx++) {
              const int iy = oy * 2 - 2 + ky, ix = ox * 2 - 2 + kx;
              if (iy < 0 || iy >= S || ix < 0 || ix >= S) continue;
              acc += static_cast<double>(w[((oc * C + c) * 5 + ky) * 5 + kx]) * x[(c * S + iy) * S + ix];
            }
        out[(oc * OS + oy) * OS + ox] = static_cast<float>(std::max(acc, 0.0));
      }
  return out;
}

TEST(ConvClassifier, ForwardMatchesDirectLoops) {
  ConvClassifier c(12, 4, 10);
  c.reserve(2);
  Rng rng(3);
  c.init(rng);
  auto x = test::random_vector(rng, 2 * 144, 0.0f, 1.0f);
  c.forward(x.data(), nullptr, 2);
  const ParamArena& p = c.params();
  for (int b = 0; b < 2; b++) {
    std::vector<float> img(x.begin() + b * 144, x.begin() + (b + 1) * 144);
    auto h1 = direct_conv_relu(img, 1, 12, p.param(c.conv1.weight), p.param(c.conv1.bias), 4);
    auto h2 = direct_conv_relu(h1, 4, 6, p.param(c.conv2.weight), p.param(c.conv2.bias), 8);
    ASSERT_EQ(h2.size(), 8u * 3 * 3);
    std::vector<double> logits(10);
    double mx = -1e30;
    for (int k = 0; k < 10; k++) {
      double acc = p.param(c.fc.bias)[k];
      for (size_t i = 0; i < h2.size(); i++) acc += static_cast<double>(p.param(c.fc.weight)[k * h2.size() + i]) * h2[i];
      logits[k] = acc;
      mx = std::max(mx, acc);
    }
    double sum = 0.0;
    for (double l : logits) sum += std::exp(l - mx);
    for (int k = 0; k < 10; k++) EXPECT_NEAR(c.probs()[b * 10 + k], std::exp(logits[k] - mx) / sum, 1e-5) << b << " " << k;
  }
}

TEST(ConvClassifier, FileRoundTripAndStrictLoading) {
  ConvClassifier c(28, 4, 10);
  Rng rng(4);
  c.init(rng);
  auto bytes = save_classifier(c, {{"latentlab.train", "{}"}});
  std::unique_ptr<Classifier> back;
  std::map<std::string, std::string> meta;
  Status s = load_classifier(bytes.data(), bytes.size(), &back, &meta);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(back->arch(), "conv");
  EXPECT_EQ(back->input(), 784);
  EXPECT_EQ(back->classes(), 10);
  EXPECT_EQ(meta.at("latentlab.arch"), "conv");
  EXPECT_EQ(meta.at("latentlab.model"), "classifier");
  ASSERT_EQ(back->params().slots().size(), c.params().slots().size());
  for (size_t i = 0; i < c.params().size(); i++)  // stored as F16
    EXPECT_NEAR(back->params().params[i], c.params().params[i], 1e-3 * std::fabs(c.params().params[i]) + 1e-7);
  // A file missing conv2, or with an extra tensor, is rejected with a message.
  std::vector<TensorToWrite> tensors;
  for (const TensorSlot& slot : c.params().slots())
    if (slot.name.rfind("conv2", 0) != 0) tensors.push_back({slot.name, slot.shape, c.params().params.data() + slot.offset});
  auto broken = write_safetensors(tensors, {});
  s = load_classifier(broken.data(), broken.size(), &back);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("tensors, expected"), std::string::npos) << s.message();
  // fc.weight whose inputs are not 2C * (S/4)^2.
  std::vector<float> junk(10 * 30, 0.1f);
  tensors.clear();
  for (const TensorSlot& slot : c.params().slots())
    tensors.push_back({slot.name, slot.name == "fc.weight" ? std::vector<int64_t>{10, 30} : slot.shape,
                       slot.name == "fc.weight" ? junk.data() : c.params().params.data() + slot.offset});
  broken = write_safetensors(tensors, {});
  s = load_classifier(broken.data(), broken.size(), &back);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not 2C * (S/4)^2"), std::string::npos) << s.message();
}

void load_mnist(Dataset* train, Dataset* test) {
  std::string dir;
  if (!data_dir("mnist", &dir).ok() || !load_idx_dataset(dir, "train", train).ok() ||
      !load_idx_dataset(dir, "t10k", test).ok())
    FAIL() << "MNIST not installed (scripts/setup.sh: npm ci)";
}

TEST(Classifier, ReachesHighAccuracyOnMnistAndRoundTrips) {
  Dataset train, test;
  ASSERT_NO_FATAL_FAILURE(load_mnist(&train, &test));
  MlpClassifier c(784, 128, 10);
  Rng rng(1);
  c.init(rng);
  double acc = 0.0;
  ClassifierTrainSettings st;
  st.epochs = 1;
  ASSERT_TRUE(train_classifier(&c, train, test, st, &acc).ok());
  std::printf("[ measured ] classifier 784-128-10 after 1 epoch: test accuracy %.4f\n", acc);
  EXPECT_GT(acc, 0.92);
  auto bytes = save_classifier(c, {});
  std::unique_ptr<Classifier> back;
  ASSERT_TRUE(load_classifier(bytes.data(), bytes.size(), &back).ok());
  EXPECT_EQ(back->arch(), "mlp");
  EXPECT_NEAR(classifier_accuracy(*back, test), acc, 0.003);  // stored as F16
}

// One epoch with outlier exposure: accurate on digits, and far less confident on jigsaw non-digits
// made from TEST digits (never seen in training) than on the test digits themselves.
TEST(ConvClassifier, LearnsDigitsAndIsUnsureOnJigsawsInOneEpoch) {
  Dataset train, test;
  ASSERT_NO_FATAL_FAILURE(load_mnist(&train, &test));
  ConvClassifier c(28, 16, 10);
  Rng rng(1);
  c.init(rng);
  double acc = 0.0;
  ClassifierTrainSettings st;
  st.epochs = 1;
  st.negatives = 64;
  ASSERT_TRUE(train_classifier(&c, train, test, st, &acc).ok());
  const int n = 500;
  std::vector<float> x(static_cast<size_t>(n) * 784), jig(x.size());
  test.to_float(nullptr, 0, n, x.data());
  Rng jr(9);
  for (int i = 0; i < n; i++) make_jigsaw(jig.data() + i * 784, x.data() + i * 784, 28, i % 2 ? 7 : 4, jr);
  auto confident = [&](const std::vector<float>& images) {
    c.reserve(n);
    c.forward(images.data(), nullptr, n);
    int count = 0;
    for (int i = 0; i < n; i++) count += *std::max_element(c.probs() + i * 10, c.probs() + (i + 1) * 10) >= 0.9f;
    return static_cast<double>(count) / n;
  };
  const double on_digits = confident(x), on_jigsaws = confident(jig);
  std::printf("[ measured ] conv classifier 16-32, 1 epoch with 64 jigsaws per step: test accuracy %.4f; "
              "p >= 0.9 on %.1f%% of test digits, %.1f%% of their jigsaws\n", acc, 100 * on_digits, 100 * on_jigsaws);
  EXPECT_GT(acc, 0.96);
  EXPECT_GT(on_digits, 0.6);  // one epoch: still unsure on many digits (5 epochs: see models/README.md)
  EXPECT_LT(on_jigsaws, 0.05);
}

}  // namespace
}  // namespace ll
