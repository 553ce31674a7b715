// Binarised MNIST and moving MNIST (core/io/binary_data.h): the Bernoulli frequencies, the fixed
// binarisation independent of batching, circular shifts in the stated direction, and reproducible
// test sequences.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/io/binary_data.h"

namespace ll {
namespace {

// A data set of n images of rows x cols with pixel (r, c) of image k = value(k, r, c).
template <typename F>
Dataset make_set(int n, int rows, int cols, F value) {
  ImageSet images;
  images.count = n;
  images.rows = rows;
  images.cols = cols;
  LabelSet labels;
  labels.count = n;
  for (int k = 0; k < n; k++) {
    labels.labels.push_back(static_cast<uint8_t>(k % 10));
    for (int r = 0; r < rows; r++)
      for (int c = 0; c < cols; c++) images.pixels.push_back(static_cast<uint8_t>(value(k, r, c)));
  }
  Dataset d;
  EXPECT_TRUE(make_dataset(std::move(images), std::move(labels), &d).ok());
  return d;
}

TEST(BinaryData, BinarizeDrawsBernoulliWithTheGivenProbability) {
  const size_t n = 200000;
  for (float p : {0.0f, 0.05f, 0.3f, 0.5f, 1.0f}) {
    std::vector<float> probs(n, p), out(n);
    Rng rng(7);
    binarize(probs.data(), n, rng, out.data());
    double ones = 0.0;
    for (float v : out) {
      ASSERT_TRUE(v == 0.0f || v == 1.0f);
      ones += v;
    }
    // Binomial: the mean is within 5 standard deviations (exact at p = 0 and 1).
    const double sd = std::sqrt(p * (1.0 - p) / n);
    EXPECT_NEAR(ones / n, p, 5 * sd + 1e-12) << p;
  }
}

TEST(BinaryData, FixedBinarisationDoesNotDependOnBatching) {
  const Dataset d = make_set(12, 5, 6, [](int k, int r, int c) { return (k * 37 + r * 11 + c * 29) % 256; });
  const int P = 30;
  std::vector<float> all(12 * P), one(P), again(12 * P), other(12 * P);
  binarized_images(d, 0, 12, kBinarizedTestSeed, all.data());
  for (int k = 0; k < 12; k++) {
    binarized_images(d, k, 1, kBinarizedTestSeed, one.data());
    for (int i = 0; i < P; i++) ASSERT_EQ(one[i], all[k * P + i]) << k << " " << i;
  }
  binarized_images(d, 0, 12, kBinarizedTestSeed, again.data());
  EXPECT_EQ(again, all);
  binarized_images(d, 0, 12, kBinarizedTestSeed + 1, other.data());
  EXPECT_NE(other, all);
  // Intensity 0 is never on, 255 always.
  const Dataset ends = make_set(4, 3, 3, [](int k, int r, int c) { return (r + c + k) % 2 ? 255 : 0; });
  std::vector<float> b(4 * 9);
  binarized_images(ends, 0, 4, 3, b.data());
  for (int k = 0; k < 4; k++)
    for (int i = 0; i < 9; i++) EXPECT_EQ(b[k * 9 + i], ends.images.pixels[k * 9 + i] == 255 ? 1.0f : 0.0f);
}

TEST(BinaryData, MovingMnistShiftsCircularlyInItsDirection) {
  // A digit of 0s and 255s (so the bits are exact): a vertical bar in column 1 and a dot at (2, 4).
  const int R = 4, C = 6;
  std::vector<uint8_t> digit(R * C, 0);
  for (int r = 0; r < R; r++) digit[r * C + 1] = 255;
  digit[2 * C + 4] = 255;
  const int T = 9;
  for (int direction : {1, -1}) {
    std::vector<float> seq(T * R * C);
    Rng rng(1);
    moving_mnist_sequence(digit.data(), R, C, T, direction, rng, seq.data());
    for (int t = 0; t < T; t++)
      for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
          // Frame t shows at column c what the digit has at column c - direction * t (mod C).
          const int src = ((c - direction * t) % C + C) % C;
          ASSERT_EQ(seq[(t * R + r) * C + c], digit[r * C + src] ? 1.0f : 0.0f)
              << "direction " << direction << " frame " << t << " (" << r << ", " << c << ")";
        }
    // The bar is in column 1 at t = 0 and in column 1 + direction at t = 1 (to the right for +1).
    EXPECT_EQ(seq[(1 * R + 0) * C + (1 + direction + C) % C], 1.0f);
  }
}

TEST(BinaryData, MovingMnistTestSequencesAreFixedAndBothDirectionsOccur) {
  const Dataset d = make_set(400, 28, 28, [](int k, int r, int c) { return (r * 28 + c + k) % 256; });
  const int T = kMovingMnistFrames, P = 28 * 28;
  std::vector<float> a(T * P), b(T * P);
  int right = 0;
  for (int i = 0; i < 400; i++) {
    int da = 0, db = 0;
    moving_mnist_fixed_sequence(d, i, T, kMovingMnistTestSeed, a.data(), &da);
    moving_mnist_fixed_sequence(d, i, T, kMovingMnistTestSeed, b.data(), &db);
    ASSERT_EQ(a, b) << i;
    ASSERT_EQ(da, db);
    ASSERT_TRUE(da == 1 || da == -1);
    right += da == 1;
  }
  // The float version (Dataset::to_float's v / 255.0f) draws the same bits.
  std::vector<float> probs(P), c(T * P);
  d.to_float(nullptr, 7, 1, probs.data());
  Rng g1(12), g2(12);
  moving_mnist_sequence(d.images.pixels.data() + 7 * P, 28, 28, T, -1, g1, a.data());
  moving_sequence(probs.data(), 28, 28, T, -1, g2, c.data());
  EXPECT_EQ(a, c);
  // Each direction with probability 1/2: 200 +- 5 standard deviations (10).
  EXPECT_NEAR(right, 200, 50);
  // Fresh training sequences of one digit differ from draw to draw.
  Rng rng(3);
  moving_mnist_random_sequence(d, 5, T, rng, a.data(), nullptr);
  moving_mnist_random_sequence(d, 5, T, rng, b.data(), nullptr);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace ll
