// The page's analyses, computed in the core: code counts and usage (used, dead, perplexity of a known
// distribution), the sliding window of training counts, the mean input patch of each code on
// hand-built images, uniformly random codes (reproducible, in range, the CLI's stream), and the
// per-image squared error that the Draw panel shows next to the model's own per-image loss terms (equal,
// for one image, to an evaluation of that image alone).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/eval/code_usage.h"
#include "core/eval/image_figures.h"
#include "core/io/idx.h"
#include "core/models/model.h"
#include "core/models/vqvae.h"
#include "core/train/trainer.h"

namespace ll {
namespace {

TEST(CodeUsage, CountsUsedDeadAndPerplexityOfAKnownDistribution) {
  // Codes 0 x4, 1 x2, 3 x1, 4 x1 of K = 6: p = (1/2, 1/4, 0, 1/8, 1/8, 0),
  // entropy = (1/2) ln 2 + (1/4) 2 ln 2 + 2 (1/8) 3 ln 2 = 1.75 ln 2, perplexity 2^1.75.
  const std::vector<float> codes = {0, 1, 0, 3, 0, 4, 1, 0};
  std::vector<int64_t> counts(6, 0);
  ASSERT_TRUE(count_codes(codes.data(), codes.size(), 6, counts.data()).ok());
  EXPECT_EQ(counts, (std::vector<int64_t>{4, 2, 0, 1, 1, 0}));
  const CodeUsage u = summarise_code_usage(counts.data(), 6);
  EXPECT_EQ(u.cells, 8);
  EXPECT_EQ(u.used, 4);
  EXPECT_EQ(u.dead, 2);
  EXPECT_NEAR(u.perplexity, std::pow(2.0, 1.75), 1e-12);
  // Counting adds: the same codes again double the counts, not the perplexity.
  ASSERT_TRUE(count_codes(codes.data(), codes.size(), 6, counts.data()).ok());
  EXPECT_EQ(counts[0], 8);
  EXPECT_NEAR(summarise_code_usage(counts.data(), 6).perplexity, std::pow(2.0, 1.75), 1e-12);
  // All on one code: perplexity 1; nothing counted: 0, every code dead.
  const int64_t one[3] = {0, 7, 0}, none[3] = {0, 0, 0};
  EXPECT_EQ(summarise_code_usage(one, 3).perplexity, 1.0);
  EXPECT_EQ(summarise_code_usage(none, 3).perplexity, 0.0);
  EXPECT_EQ(summarise_code_usage(none, 3).dead, 3);
}

TEST(CodeUsage, BadCodesAreRefusedAndCountNothing) {
  std::vector<int64_t> counts(4, 0);
  for (float bad : {4.0f, -1.0f, 1.5f, NAN, INFINITY}) {
    const std::vector<float> codes = {0, 1, bad};
    Status s = count_codes(codes.data(), codes.size(), 4, counts.data());
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.message().find("at index 2"), std::string::npos) << s.message();
    EXPECT_EQ(counts, (std::vector<int64_t>{0, 0, 0, 0}));
  }
  const float zero = 0;
  EXPECT_FALSE(count_codes(&zero, 1, 0, counts.data()).ok());
}

TEST(CodeUsage, WindowKeepsTheLastBatches) {
  CodeUsageWindow w(3, 2);
  const int64_t a[3] = {1, 0, 0}, b[3] = {0, 2, 0}, c[3] = {0, 0, 5}, d[3] = {3, 0, 0};
  w.add(a);
  w.add(b);
  EXPECT_EQ(std::vector<int64_t>(w.counts(), w.counts() + 3), (std::vector<int64_t>{1, 2, 0}));
  w.add(c);  // a leaves
  EXPECT_EQ(std::vector<int64_t>(w.counts(), w.counts() + 3), (std::vector<int64_t>{0, 2, 5}));
  w.add(d);  // b leaves
  EXPECT_EQ(std::vector<int64_t>(w.counts(), w.counts() + 3), (std::vector<int64_t>{3, 0, 5}));
  EXPECT_EQ(w.batches(), 2);
  EXPECT_EQ(w.summary().used, 2);
  EXPECT_EQ(w.summary().cells, 8);
}

TEST(CodePatches, MeanInputPatchOfEachCode) {
  // Two 4x4 images, a 2x2 grid of 2x2 cells, patch 4 (one pixel of margin around each cell).
  const int S = 4, g = 2, K = 3, patch = 4;
  std::vector<uint8_t> images(2 * S * S, 0);
  images[0 * S + 0] = 255;           // image 0, pixel (0, 0): in cell 0
  images[16 + 3 * S + 3] = 51;       // image 1, pixel (3, 3): in cell 3 (0.2)
  images[16 + 2 * S + 1] = 102;      // image 1, pixel (2, 1): in cell 2 (0.4), margin of cell 3
  const std::vector<float> codes = {0, 1, 1, 1,    // image 0
                                    1, 1, 2, 0};  // image 1
  std::vector<float> patches(K * patch * patch, -1.0f);
  std::vector<int64_t> counts(K, -1);
  ASSERT_TRUE(code_patches(images.data(), codes.data(), 2, S, g, K, patch, patches.data(), counts.data()).ok());
  EXPECT_EQ(counts, (std::vector<int64_t>{2, 5, 1}));
  auto at = [&](int k, int y, int x) { return patches[(k * patch + y) * patch + x]; };
  // Code 0: image 0's cell 0 (patch corner at (-1, -1): pixel (0, 0) lands at (1, 1)) and image 1's
  // cell 3 (corner (1, 1): (3, 3) lands at (2, 2), (2, 1) at (1, 0)); the mean of the two cells.
  EXPECT_FLOAT_EQ(at(0, 1, 1), 0.5f);
  EXPECT_FLOAT_EQ(at(0, 2, 2), 0.1f);
  EXPECT_FLOAT_EQ(at(0, 1, 0), 0.2f);
  // Code 2: image 1's cell 2 (corner (1, -1)): (2, 1) at (1, 2); (3, 3) at (2, 4) is outside the patch.
  EXPECT_FLOAT_EQ(at(2, 1, 2), 0.4f);
  double rest = 0;
  for (int i = 0; i < patch * patch; i++) rest += patches[2 * patch * patch + i];
  EXPECT_FLOAT_EQ(static_cast<float>(rest), 0.4f);
  // Code 1 (five cells): image 0's (0, 0) falls outside the patches of its cells 1, 2, 3; image 1's
  // (2, 1) lands at (3, 2) of cell 0 (corner (-1, -1)) and at (3, 0) of cell 1 (corner (-1, 1)).
  EXPECT_FLOAT_EQ(at(1, 3, 2), 0.4f / 5);
  EXPECT_FLOAT_EQ(at(1, 3, 0), 0.4f / 5);
  EXPECT_FLOAT_EQ(at(1, 1, 1), 0.0f);
}

TEST(CodePatches, BadShapesAndCodesChangeNothing) {
  std::vector<uint8_t> images(16, 0);
  std::vector<float> codes = {0, 1, 1, 1}, patches(4 * 16, -1.0f);
  std::vector<int64_t> counts(4, -1);
  EXPECT_FALSE(code_patches(images.data(), codes.data(), 1, 4, 3, 4, 4, patches.data(), counts.data()).ok());  // 4 % 3
  EXPECT_FALSE(code_patches(images.data(), codes.data(), 1, 4, 2, 4, 1, patches.data(), counts.data()).ok());  // < cell
  EXPECT_FALSE(code_patches(images.data(), codes.data(), 1, 4, 2, 4, 3, patches.data(), counts.data()).ok());  // odd margin
  EXPECT_FALSE(code_patches(images.data(), codes.data(), 1, 4, 2, 4, 6, patches.data(), counts.data()).ok());  // > S
  codes[3] = 4;
  EXPECT_FALSE(code_patches(images.data(), codes.data(), 1, 4, 2, 4, 4, patches.data(), counts.data()).ok());
  for (float v : patches) EXPECT_EQ(v, -1.0f);
  for (int64_t c : counts) EXPECT_EQ(c, -1);
}

TEST(UniformCodes, SeededInRangeAndTheClisStream) {
  std::vector<int32_t> a(7 * 49), b(7 * 49);
  Rng r1(42, 5), r2(42, 5);
  vq_uniform_codes(a.data(), a.size(), 64, r1);
  vq_uniform_codes(b.data(), b.size(), 64, r2);
  EXPECT_EQ(a, b);
  Rng r3(42, 5);  // the CLI's `sample --uniform-codes`: rng.below(K) cell after cell
  for (int32_t c : a) EXPECT_EQ(c, static_cast<int32_t>(r3.below(64)));
  Rng r4(43, 5);
  vq_uniform_codes(b.data(), b.size(), 64, r4);
  EXPECT_NE(a, b);
  // Uniform: 64,000 draws over K = 64 use every code, each within 5 standard deviations of 1,000.
  std::vector<int32_t> many(64000);
  Rng r5(7, 5);
  vq_uniform_codes(many.data(), many.size(), 64, r5);
  std::vector<int64_t> counts(64, 0);
  for (int32_t c : many) {
    ASSERT_TRUE(c >= 0 && c < 64);
    counts[c]++;
  }
  for (int64_t c : counts) EXPECT_NEAR(static_cast<double>(c), 1000.0, 5 * std::sqrt(1000.0 * 63 / 64));
}

TEST(ImageFigures, OneImageEqualsItsEvaluationExactly) {
  // A small VAE: each image's own terms and squared error after a forward of that image equal an
  // evaluation (z = mean) of that image alone, to the last bit. (A batch's forward is not bit-equal to
  // single-image ones: the GEMM chosen at run time may block rows differently.)
  ModelConfig c;
  c.kind = "vae";
  c.input = 16;
  c.hidden = 7;
  c.latent = 3;
  std::unique_ptr<Model> m;
  ASSERT_TRUE(create_model(c, &m).ok());
  m->reserve(3);
  Rng init(5);
  m->init(init);
  ImageSet images;
  images.count = 3;
  images.rows = images.cols = 4;
  for (int i = 0; i < 48; i++) images.pixels.push_back(static_cast<uint8_t>((i * 37) % 256));
  std::vector<float> x(48);
  for (int i = 0; i < 48; i++) x[i] = images.pixels[i] / 255.0f;
  const size_t T = m->loss_terms().size();
  Rng rng(1);
  for (int b = 0; b < 3; b++) {
    m->forward(x.data() + b * 16, x.data() + b * 16, 1, rng, ZMode::kMean);
    std::vector<float> terms(T);
    for (size_t t = 0; t < T; t++) terms[t] = m->term(static_cast<int>(t))[0];
    double se = -1;
    image_squared_errors(m->reconstruction(), x.data() + b * 16, 1, 16, &se);
    ImageSet one;
    one.count = 1;
    one.rows = one.cols = 4;
    one.pixels.assign(images.pixels.begin() + b * 16, images.pixels.begin() + (b + 1) * 16);
    LabelSet label;
    label.count = 1;
    label.labels = {0};
    Dataset d;
    ASSERT_TRUE(make_dataset(one, label, &d).ok());
    Rng r(1);
    LossTotals e = evaluate(*m, d, ZMode::kMean, r, 1);
    for (size_t t = 0; t < T; t++) EXPECT_EQ(e.mean(t), static_cast<double>(terms[t])) << m->loss_terms()[t];
    EXPECT_EQ(e.mse_mean(), se) << "image " << b;
  }
  // A batch: the per-image errors sum to accumulate_totals' figure for the same forward.
  m->forward(x.data(), x.data(), 3, rng, ZMode::kMean);
  std::vector<double> se(3);
  image_squared_errors(m->reconstruction(), x.data(), 3, 16, se.data());
  LossTotals all;
  accumulate_totals(*m, x.data(), 3, &all);
  EXPECT_NEAR(all.mse, se[0] + se[1] + se[2], 1e-12 * all.mse);
  EXPECT_GT(se[0], 0.0);
}

}  // namespace
}  // namespace ll
