// The XNNPACK inference backend (core/backends/xnnpack_infer.h) against the core: first XNNPACK's kernel layouts
// on single operators (convolution and deconvolution with odd shapes against the scalar references of
// conv.h), then whole reconstructions of every supported kind, random-initialised (seeded) and trained,
// at batch sizes 1, 3 and 128, on one and two threads, with the VQ-VAE's code indices compared one by
// one. Built only when CMake found XNNPACK.
#include <gtest/gtest.h>
#include <xnnpack.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/nn/conv.h"
#include "core/io/file_io.h"
#include "core/kernels/kernels.h"
#include "core/models/model_file.h"
#include "core/models/vqvae.h"
#include "core/backends/xnnpack_infer.h"
#include "tests/test_util.h"
#include "tools/data_paths.h"

namespace ll {
namespace {

// Tolerances. Pixel probabilities in [0, 1]: absolute. The VQ-VAE's outputs (in [0, 1], or raw with
// sigmoid_output = 0): relative to the largest magnitude of the core's output. Both are float32 through 4-6 layers with different summation orders
// (XNNPACK's microkernels against OpenBLAS/Eigen, im2col against indirect convolution). Derivation,
// u = 2^-24: two summation orders of K random-sign terms differ by ~u sqrt(K) times a typical term,
// and the largest output is itself ~sqrt(K) typical terms, so one layer moves outputs by a few u of
// the largest; through L <= 6 layers (each relative error passing on with the next layer's gain) and
// over up to ~1e5 outputs (the maximum of as many draws, ~4.5 sigma), tens of u. 1e-5 = 168 u keeps
// a 5x margin over that, and a wrong layout or index is off by the size of an output. Each
// comparison prints its ratio (test::expect_within); the worst per build is collected by
// scripts/gradcheck_ratios.sh.
// Pixel probabilities p = sigmoid(l): |dp| <= p (1 - p) |dl| <= |dl| / 4, and the logits of two float32
// evaluations differ by up to ~u sqrt(K) |l| per layer with every layer's errors aligned: K <= 784,
// L = 4 layers, |l| <= 30 for the trained models: u sqrt(784) 4 30 / 4 = 5e-5 (measured: <= 3e-6).
constexpr double kProbTol = 5e-5;
constexpr double kRawRelTol = 1e-5;
constexpr double kOpRelTol = 1e-5;  // single operators

// NCHW [B, C, H, W] <-> NHWC [B, H, W, C].
std::vector<float> nchw_to_nhwc(const std::vector<float>& x, int B, int C, int H, int W) {
  std::vector<float> y(x.size());
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (int h = 0; h < H; h++)
        for (int w = 0; w < W; w++)
          y[((static_cast<size_t>(b) * H + h) * W + w) * C + c] = x[((static_cast<size_t>(b) * C + c) * H + h) * W + w];
  return y;
}

double max_abs(const float* a, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++) m = std::max(m, static_cast<double>(std::fabs(a[i])));
  return m;
}

// Input with XNN_EXTRA_BYTES of readable padding after it, as XNNPACK requires.
std::vector<float> padded(const std::vector<float>& x) {
  std::vector<float> y(x);
  y.resize(x.size() + XNN_EXTRA_BYTES / sizeof(float) + 1, 0.0f);
  return y;
}

class XnnpackTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(xnn_initialize(nullptr), xnn_status_success); }
  void TearDown() override { xnn_deinitialize(); }
};

struct OpCase {
  int B, C, OC, H, W, K, stride, pad;
};

// XNNPACK's convolution kernel is [OC, KH, KW, C]: PyTorch's [OC, C, KH, KW] through conv_weight_to_ohwi
// must give conv2d_forward__scalar's result (in NHWC).
TEST_F(XnnpackTest, ConvolutionLayoutMatchesScalarConv2d) {
  const OpCase cases[] = {{2, 3, 5, 7, 9, 3, 2, 1}, {1, 1, 32, 28, 28, 4, 2, 1}, {3, 7, 4, 5, 5, 1, 1, 0},
                          {2, 5, 6, 6, 7, 3, 1, 1}, {1, 2, 3, 9, 6, 4, 3, 2}};
  Rng rng(11);
  for (const OpCase& k : cases) {
    ConvShape s;
    s.B = k.B, s.C = k.C, s.H = k.H, s.W = k.W, s.OC = k.OC, s.KH = s.KW = k.K, s.stride = k.stride, s.pad = k.pad;
    const int OH = s.conv_oh(), OW = s.conv_ow();
    auto x = test::random_vector(rng, static_cast<size_t>(k.B) * k.C * k.H * k.W);
    auto w = test::random_vector(rng, static_cast<size_t>(k.OC) * k.C * k.K * k.K);
    auto bias = test::random_vector(rng, k.OC);
    std::vector<float> ref(static_cast<size_t>(k.B) * k.OC * OH * OW);
    conv2d_forward__scalar(ref.data(), x.data(), w.data(), bias.data(), s);

    std::vector<float> kernel(w.size());
    conv_weight_to_ohwi(kernel.data(), w.data(), k.OC, k.C, k.K, k.K);
    xnn_operator_t op = nullptr;
    ASSERT_EQ(xnn_create_convolution2d_nhwc_f32(k.pad, k.pad, k.pad, k.pad, k.K, k.K, k.stride, k.stride, 1, 1, 1,
                                                k.C, k.OC, k.C, k.OC, kernel.data(), bias.data(),
                                                -std::numeric_limits<float>::infinity(),
                                                std::numeric_limits<float>::infinity(), 0, &op),
              xnn_status_success);
    auto in = padded(nchw_to_nhwc(x, k.B, k.C, k.H, k.W));
    std::vector<float> out(ref.size());
    ASSERT_EQ(xnn_setup_convolution2d_nhwc_f32(op, k.B, k.H, k.W, in.data(), out.data(), nullptr), xnn_status_success);
    ASSERT_EQ(xnn_run_operator(op, nullptr), xnn_status_success);
    xnn_delete_operator(op);
    auto want = nchw_to_nhwc(ref, k.B, k.OC, OH, OW);
    const double err = test::max_abs_diff(out.data(), want.data(), want.size()) / max_abs(want.data(), want.size());
    test::expect_within("C " + std::to_string(k.C) + " OC " + std::to_string(k.OC) + " k" + std::to_string(k.K) +
                            " s" + std::to_string(k.stride) + " p" + std::to_string(k.pad),
                        err, kOpRelTol);
  }
}

// XNNPACK's deconvolution kernel is [OC, KH, KW, C] too (OC = its output channels): PyTorch's transposed
// conv weight [C, OC, KH, KW] through conv_transpose_weight_to_ohwi must give
// conv_transpose2d_forward__scalar's result, not a flipped kernel's.
TEST_F(XnnpackTest, DeconvolutionLayoutMatchesScalarConvTranspose2d) {
  const OpCase cases[] = {{2, 3, 5, 5, 6, 4, 2, 1}, {1, 64, 32, 7, 7, 4, 2, 1}, {3, 32, 1, 14, 14, 4, 2, 1},
                          {2, 4, 3, 5, 4, 3, 1, 1}, {1, 3, 2, 4, 5, 3, 2, 0}};
  Rng rng(12);
  for (const OpCase& k : cases) {
    ConvShape s;
    s.B = k.B, s.C = k.C, s.H = k.H, s.W = k.W, s.OC = k.OC, s.KH = s.KW = k.K, s.stride = k.stride, s.pad = k.pad;
    const int OH = s.tconv_oh(), OW = s.tconv_ow();
    auto x = test::random_vector(rng, static_cast<size_t>(k.B) * k.C * k.H * k.W);
    auto w = test::random_vector(rng, static_cast<size_t>(k.C) * k.OC * k.K * k.K);
    auto bias = test::random_vector(rng, k.OC);
    std::vector<float> ref(static_cast<size_t>(k.B) * k.OC * OH * OW);
    conv_transpose2d_forward__scalar(ref.data(), x.data(), w.data(), bias.data(), s);

    std::vector<float> kernel(w.size());
    conv_transpose_weight_to_ohwi(kernel.data(), w.data(), k.C, k.OC, k.K, k.K);
    xnn_operator_t op = nullptr;
    ASSERT_EQ(xnn_create_deconvolution2d_nhwc_f32(k.pad, k.pad, k.pad, k.pad, k.K, k.K, k.stride, k.stride, 1, 1,
                                                  1, k.C, k.OC, k.C, k.OC, kernel.data(), bias.data(),
                                                  -std::numeric_limits<float>::infinity(),
                                                  std::numeric_limits<float>::infinity(), 0, &op),
              xnn_status_success);
    auto in = padded(nchw_to_nhwc(x, k.B, k.C, k.H, k.W));
    std::vector<float> out(ref.size());
    ASSERT_EQ(xnn_setup_deconvolution2d_nhwc_f32(op, k.B, k.H, k.W, 0, 0, in.data(), out.data(), nullptr),
              xnn_status_success);
    ASSERT_EQ(xnn_run_operator(op, nullptr), xnn_status_success);
    xnn_delete_operator(op);
    auto want = nchw_to_nhwc(ref, k.B, k.OC, OH, OW);
    const double err = test::max_abs_diff(out.data(), want.data(), want.size()) / max_abs(want.data(), want.size());
    test::expect_within("C " + std::to_string(k.C) + " OC " + std::to_string(k.OC) + " k" + std::to_string(k.K) +
                            " s" + std::to_string(k.stride) + " p" + std::to_string(k.pad),
                        err, kOpRelTol);
  }
}

// ---- whole models ----

// "vqvae_raw": a VQ-VAE with sigmoid_output = 0 (the raw decoder.4 output, as older files).
std::unique_ptr<Model> make_model(const std::string& kind, uint64_t seed) {
  ModelConfig config;
  config.kind = kind;
  if (kind == "vqvae_raw") config.kind = "vqvae", config.hyper["sigmoid_output"] = 0;
  const ModelKind* k = find_model_kind(config.kind);
  if (k && k->input_of) config.input = k->input_of(config);  // a kind over grids: H * W cells
  std::unique_ptr<Model> m;
  Status s = create_model(config, &m);
  EXPECT_TRUE(s.ok()) << s.message();
  if (!m) return m;
  Rng rng(seed);
  m->init(rng);
  return m;
}

// Images: MNIST test digits when installed (so activations look like real ones), else uniform noise.
std::vector<float> images(int B, uint64_t seed) {
  static Dataset test;
  static bool have = [] {
    std::string dir;
    return data_dir("mnist", &dir).ok() && load_idx_dataset(dir, "t10k", &test).ok();
  }();
  std::vector<float> x(static_cast<size_t>(B) * 784);
  if (have) {
    test.to_float(nullptr, static_cast<int>(seed % 1000), B, x.data());
  } else {
    Rng rng(seed);
    rng.fill_uniform(x.data(), x.size(), 0.0f, 1.0f);
  }
  return x;
}

// Compares xnn's last run with the core's forward of the same B images; for a VQ-VAE also the indices:
// identical except at a near-tie, where the core's own two distances (recomputed in double from the
// core's z_e) differ by at most 1e-5 of their size; images with a tied cell are left out of the
// reconstruction comparison (one different code changes a 8x8 patch). Returns the error measured.
double expect_parity(Model& model, XnnpackInference& xnn, const std::vector<float>& x, int B,
                     const std::string& what) {
  Rng rng(1);
  model.reserve(B);
  model.forward(x.data(), x.data(), B, rng, ZMode::kMean);
  const float* want = model.reconstruction();
  Status s = xnn.run(x.data(), B);
  EXPECT_TRUE(s.ok()) << what << ": " << s.message();
  if (!s.ok()) return 1.0;
  const float* got = xnn.reconstruction();
  const int P = model.config().input;
  std::vector<bool> compare(B, true);
  if (auto* vq = dynamic_cast<VqVae*>(&model)) {
    const int G = vq->grid() * vq->grid(), D = vq->D(), K = vq->K();
    // z_e: the core's [B, D, G] against XNNPACK's NHWC rows [B*G, D].
    double ze_err = 0.0, ze_max = 0.0;
    for (int b = 0; b < B; b++)
      for (int d = 0; d < D; d++)
        for (int c = 0; c < G; c++) {
          const double a = vq->z_e()[(static_cast<size_t>(b) * D + d) * G + c];
          const double r = xnn.z_e_rows()[(static_cast<size_t>(b) * G + c) * D + d];
          ze_err = std::max(ze_err, std::fabs(a - r));
          ze_max = std::max(ze_max, std::fabs(a));
        }
    test::expect_within(what + " B " + std::to_string(B) + " z_e", ze_err / ze_max, kRawRelTol);
    int differ = 0, distinct = 0;
    std::vector<bool> used(K, false);
    for (int i = 0; i < B * G; i++) {
      const int a = vq->indices()[i], r = xnn.indices()[i];
      if (!used[a]) used[a] = true, distinct++;
      if (a == r) continue;
      differ++;
      compare[i / G] = false;
      auto dist = [&](int k) {
        double sum = 0.0;
        for (int d = 0; d < D; d++) {
          const double diff = static_cast<double>(vq->z_e()[(static_cast<size_t>(i / G) * D + d) * G + i % G]) -
                              vq->codebook()[static_cast<size_t>(k) * D + d];
          sum += diff * diff;
        }
        return sum;
      };
      const double da = dist(a), dr = dist(r);
      EXPECT_LE(std::fabs(da - dr), 1e-5 * std::max(da, dr))
          << what << ": cell " << i << " core code " << a << " (distance " << da << "), XNNPACK code " << r
          << " (distance " << dr << "): not a tie";
    }
    EXPECT_LE(differ, std::max(1, B * G / 1000)) << what << ": too many near-ties";
    std::printf("[ %s ] B %d: %d of %d cells on %d distinct codes, %d differ (near-ties)\n", what.c_str(), B,
                B * G - differ, B * G, distinct, differ);
  }
  double err = 0.0, scale = 0.0;
  for (int b = 0; b < B; b++) {
    if (!compare[b]) continue;
    const size_t o = static_cast<size_t>(b) * P;
    err = std::max(err, test::max_abs_diff(got + o, want + o, P));
    scale = std::max(scale, max_abs(want + o, P));
  }
  if (model.config().kind == "vqvae") {
    err /= std::max(scale, 1e-30);
    test::expect_within(what + " B " + std::to_string(B) + " reconstruction (relative)", err, kRawRelTol);
  } else {
    test::expect_within(what + " B " + std::to_string(B) + " probabilities (absolute)", err, kProbTol);
  }
  std::printf("[ %s ] B %d: max %s error %.3g\n", what.c_str(), B, model.config().kind == "vqvae" ? "relative" : "abs",
              err);
  return err;
}

class XnnpackModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(XnnpackModelTest, RandomInitMatchesCoreAtBatch1_3_128) {
  const std::string kind = GetParam();
  for (uint64_t seed : {1u, 2u}) {
    auto model = make_model(kind, seed);
    ASSERT_TRUE(model);
    for (int B : {1, 3, 128}) {
      XnnpackInference xnn;
      Status s = xnn.setup(*model, B);
      ASSERT_TRUE(s.ok()) << s.message();
      EXPECT_EQ(xnn.batch(), B);
      expect_parity(*model, xnn, images(B, seed * 100 + B), B, kind + " seed " + std::to_string(seed));
    }
  }
}

// One object, set up once, run at changing batch sizes (operators re-set up), on two threads.
TEST_P(XnnpackModelTest, ChangingBatchAndTwoThreadsMatchCore) {
  const std::string kind = GetParam();
  auto model = make_model(kind, 3);
  ASSERT_TRUE(model);
  for (int threads : {1, 2}) {
    XnnpackInference xnn;
    Status s = xnn.setup(*model, 3, threads);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(xnn.threads(), threads);
    for (int B : {3, 128, 1, 5, 128}) {
      expect_parity(*model, xnn, images(B, 7 + B), B, kind + " threads " + std::to_string(threads));
      EXPECT_EQ(xnn.batch(), B);
    }
  }
}

// The weights are packed at setup: changing (or destroying) the model afterwards does not change the
// operators, and a second setup picks the new weights up.
TEST_P(XnnpackModelTest, WeightsArePackedAtSetup) {
  const std::string kind = GetParam();
  auto model = make_model(kind, 4);
  ASSERT_TRUE(model);
  const int B = 3;
  const auto x = images(B, 5);
  XnnpackInference xnn;
  ASSERT_TRUE(xnn.setup(*model, B).ok());
  ASSERT_TRUE(xnn.run(x.data(), B).ok());
  const size_t n = static_cast<size_t>(B) * model->config().input;
  std::vector<float> before(xnn.reconstruction(), xnn.reconstruction() + n);
  auto other = make_model(kind, 5);
  model->params().params = other->params().params;
  ASSERT_TRUE(xnn.run(x.data(), B).ok());
  EXPECT_EQ(test::max_abs_diff(before.data(), xnn.reconstruction(), n), 0.0);
  ASSERT_TRUE(xnn.setup(*model, B).ok());
  expect_parity(*model, xnn, x, B, kind + " re-setup");
  EXPECT_GT(test::max_abs_diff(before.data(), xnn.reconstruction(), n), 0.0);
  other.reset();
}

INSTANTIATE_TEST_SUITE_P(Kinds, XnnpackModelTest,
                         ::testing::Values("vae", "beta_vae", "ae", "dae", "vqvae", "vqvae_raw"));

// The trained models of models/ on real digits (the VQ-VAE's trained codebook spreads the cells over
// many codes, unlike a random one).
TEST(XnnpackTrained, ModelFilesMatchCore) {
  for (const char* file : {"vae_mlp", "ae_mlp", "vqvae"}) {
    std::vector<uint8_t> bytes;
    const std::string path = std::string(LATENTLAB_SOURCE_DIR) + "/models/" + file + ".safetensors";
    ASSERT_TRUE(read_file(path, &bytes).ok()) << path;
    std::unique_ptr<Model> model;
    Status s = load_model(bytes.data(), bytes.size(), &model);
    ASSERT_TRUE(s.ok()) << s.message();
    for (int B : {1, 3, 128}) {
      XnnpackInference xnn;
      ASSERT_TRUE((s = xnn.setup(*model, B)).ok()) << s.message();
      expect_parity(*model, xnn, images(B, 300 + B), B, std::string(file) + ".safetensors");
    }
  }
}

// ---- errors: a Status with a message, never a crash ----

TEST(XnnpackErrors, UnsupportedKindsAreRefusedWithAMessage) {
  for (const char* kind : {"conv_vae", "sparse_ae", "ksparse_ae", "contractive_ae"}) {
    auto model = make_model(kind, 1);
    ASSERT_TRUE(model);
    XnnpackInference xnn;
    Status s = xnn.setup(*model, 4);
    ASSERT_FALSE(s.ok()) << kind;
    EXPECT_NE(s.message().find(std::string("not '") + kind + "'"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("core"), std::string::npos) << s.message();
    EXPECT_FALSE(xnn.ready());
    EXPECT_EQ(xnn.reconstruction(), nullptr);
    EXPECT_FALSE(xnnpack_supports_kind(kind));
    double ratio = -1.0;
    EXPECT_EQ(choose_inference_backend(*model, std::vector<float>(784, 0.5f).data(), 1, 1, &ratio),
              InferenceBackend::kCore);
    EXPECT_EQ(ratio, 0.0) << kind << ": nothing to measure";
    std::vector<float> x(784, 0.5f);
    s = xnn.run(x.data(), 1);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("before a successful setup"), std::string::npos) << s.message();
  }
}

// The default backend (--inference auto) is measured, not a table (xnnpack_infer.h): the rule picks the
// faster of the two measured times, and choose_inference_backend() applies it to what it measured on the
// caller's model. No figure is asserted (speed is for benchmarks); the checks are the rule, that the
// choice is the rule applied to the measured ratio, that refused kinds get the core unmeasured, and that
// measuring leaves the model as it was.
TEST(XnnpackDefault, TheRulePicksTheFasterMeasuredBackend) {
  EXPECT_EQ(faster_inference_backend(0.5), InferenceBackend::kXnnpack);
  EXPECT_EQ(faster_inference_backend(0.999), InferenceBackend::kXnnpack);
  EXPECT_EQ(faster_inference_backend(1.0), InferenceBackend::kCore);  // a tie: the core, the specification
  EXPECT_EQ(faster_inference_backend(1.5), InferenceBackend::kCore);
}

TEST(XnnpackDefault, TheChoiceIsTheRuleOnWhatWasMeasured) {
  for (const ModelKind& k : model_kinds()) {
    auto model = make_model(k.name, 2);
    ASSERT_TRUE(model) << k.name;
    if (model->categorical_input(nullptr)) continue;  // no images to reconstruct (the PixelCNN over codes)
    XnnpackInference probe;
    const bool takes = probe.setup(*model, 1).ok();
    for (int B : {1, 16}) {
      const auto x = images(B, 5);
      Rng rng(1);
      model->reserve(B);
      model->forward(x.data(), x.data(), B, rng, ZMode::kMean);
      if (!model->reconstruction()) break;  // a classifier reconstructs nothing: nothing to choose
      const std::vector<float> before(model->reconstruction(),
                                      model->reconstruction() + static_cast<size_t>(B) * 784);
      double ratio = -1.0;
      const InferenceBackend chosen = choose_inference_backend(*model, x.data(), B, 1, &ratio);
      if (!takes) {
        EXPECT_EQ(chosen, InferenceBackend::kCore) << k.name << " B " << B;
        EXPECT_EQ(ratio, 0.0) << k.name;
      } else {
        EXPECT_GT(ratio, 0.0) << k.name << " B " << B << ": XNNPACK takes it, so both were timed";
        EXPECT_EQ(chosen, faster_inference_backend(ratio)) << k.name << " B " << B << " ratio " << ratio;
        std::printf("[ default ] %s B %d: %s (XNNPACK / core time %.2f)\n", k.name.c_str(), B,
                    inference_backend_name(chosen), ratio);
      }
      // Measuring changed nothing: the same forward gives the same reconstruction, bit for bit.
      Rng rng2(1);
      model->forward(x.data(), x.data(), B, rng2, ZMode::kMean);
      EXPECT_EQ(test::max_abs_diff(before.data(), model->reconstruction(), before.size()), 0.0) << k.name;
    }
  }
}

TEST(XnnpackErrors, BadSizesAreRefused) {
  auto model = make_model("vae", 1);
  ASSERT_TRUE(model);
  XnnpackInference xnn;
  Status s = xnn.setup(*model, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("batch size must be at least 1, not 0"), std::string::npos) << s.message();
  s = xnn.setup(*model, 2, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("thread count must be at least 1, not 0"), std::string::npos) << s.message();
  EXPECT_FALSE(xnn.ready());
  ASSERT_TRUE(xnn.setup(*model, 2).ok());
  std::vector<float> x(784 * 2, 0.5f);
  s = xnn.run(x.data(), -1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("at least 1, not -1"), std::string::npos) << s.message();
  EXPECT_TRUE(xnn.ready());  // a refused run leaves the object usable
  EXPECT_TRUE(xnn.run(x.data(), 2).ok());
  EXPECT_EQ(xnn.indices(), nullptr);  // not a VQ-VAE
}

// Two objects live at once, and one destroyed while the other still runs (xnn_initialize and
// xnn_deinitialize are paired per object).
TEST(XnnpackErrors, IndependentObjects) {
  auto vae = make_model("vae", 1), vq = make_model("vqvae", 1);
  ASSERT_TRUE(vae && vq);
  auto a = std::make_unique<XnnpackInference>();
  XnnpackInference b;
  ASSERT_TRUE(a->setup(*vae, 3).ok());
  ASSERT_TRUE(b.setup(*vq, 3).ok());
  a.reset();
  expect_parity(*vq, b, images(3, 9), 3, "vqvae after another object's end");
}

}  // namespace
}  // namespace ll
