// The shared layer pairs of core/nn (reparam.h, vq.h, the conv layer structs of conv.h) checked on their
// own with finite differences, and the activation arena (arena.h): no model allocates in forward or
// backward (a counting global operator new, natively).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <vector>

#include "core/models/model.h"
#include "core/models/pixelcnn.h"
#include "core/nn/arena.h"
#include "core/nn/conv.h"
#include "core/nn/reparam.h"
#include "core/nn/vq.h"
#include "tests/test_util.h"

// Every operator new of the process counts here while counting is on (native builds without
// AddressSanitizer: it brings its own operator new, and the wasm build is not the one measured).
#if !defined(__EMSCRIPTEN__) && !defined(__SANITIZE_ADDRESS__)
#define LL_COUNT_NEW 1
namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_news{0};
void* counted_new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  std::abort();  // the test binary has no handler to run
}
}  // namespace
void* operator new(std::size_t n) { return counted_new(n); }
void* operator new[](std::size_t n) { return counted_new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#endif

namespace ll {
namespace {

TEST(Reparam, GradientsMatchFiniteDifferences) {
  const size_t N = 24;
  Rng rng(3);
  auto mu = test::random_vector(rng, N), logvar = test::random_vector(rng, N, -2.0f, 1.0f);
  auto r = test::random_vector(rng, N);
  std::vector<float> z(N), sd(N), eps(N);
  auto loss = [&] {
    Rng draws(7);  // the same eps at every evaluation
    gaussian_reparam_forward(z.data(), sd.data(), eps.data(), mu.data(), logvar.data(), N, &draws);
    return test::weighted_sum(z.data(), r.data(), N);
  };
  loss();
  std::vector<float> dmu(N, 0.0f), dlogvar(N, 0.0f);
  gaussian_reparam_backward(dmu.data(), dlogvar.data(), r.data(), eps.data(), sd.data(), N);
  test::expect_gradients_match("mu", test::grad_check(loss, mu.data(), dmu.data(), N), 1e-3, 1e-3);
  test::expect_gradients_match("logvar", test::grad_check(loss, logvar.data(), dlogvar.data(), N), 1e-3, 1e-3);
  // The posterior mean: eps = 0, z = mu exactly.
  gaussian_reparam_forward(z.data(), sd.data(), eps.data(), mu.data(), logvar.data(), N, nullptr);
  EXPECT_EQ(z, mu);
}

// Quantisation of B = 2 grids of G = 5 cells, D = 3, K = 4 codes spread apart (no near-ties).
struct VqCase {
  static constexpr int B = 2, D = 3, G = 5, K = 4;
  float s = 1.5f, beta = 0.25f;
  std::vector<float> ze, codebook, zq = std::vector<float>(B * D * G), rows = std::vector<float>(B * G * D),
                                   dist = std::vector<float>(B * G * K), cb = std::vector<float>(B),
                                   commit = std::vector<float>(B);
  std::vector<int32_t> idx = std::vector<int32_t>(B * G);
  VqCase() {
    Rng rng(5);
    ze = test::random_vector(rng, B * D * G, -2.0f, 2.0f);
    codebook = test::random_vector(rng, K * D, -2.0f, 2.0f);
  }
  // Runs the forward; *changed when a cell's nearest code differs from `before`.
  void forward(bool* changed = nullptr) {
    const std::vector<int32_t> before = idx;
    vq_forward(zq.data(), idx.data(), rows.data(), cb.data(), commit.data(), ze.data(), codebook.data(), B, D,
               G, K, s, beta, dist.data());
    if (changed) *changed = idx != before;
  }
};

TEST(VqPair, CommitmentAndCodebookGradientsMatchFiniteDifferences) {
  VqCase c;
  c.forward();
  const std::vector<int32_t> chosen = c.idx;
  // With dzq = 0 the backward leaves only the losses' own gradients: commitment into z_e (the codebook
  // held fixed, sg[z_q]), the codebook term into the codebook (z_e held fixed, sg[z_e]).
  std::vector<float> dzq(c.zq.size(), 0.0f), dze(c.ze.size(), 0.0f), dcodebook(c.codebook.size(), 0.0f);
  const float scale = 0.7f;
  vq_backward(dze.data(), dcodebook.data(), dzq.data(), c.ze.data(), c.zq.data(), c.idx.data(), c.B, c.D, c.G,
              c.s, c.beta, scale);
  // Both terms are s sum ||z_e - E[idx]||^2 (times beta for the commitment), evaluated here in double
  // from that definition at the forward's codes: the finite differences then carry no float32 rounding
  // of the forward's own sums (~1e-7 of the term over a 1e-3 step: 0.17 of the bound before), and the
  // check measures the backward alone. The forward's float32 terms are held to the same values below.
  auto sq_dist = [&] {
    double sum = 0.0;
    for (int b = 0; b < c.B; b++)
      for (int cell = 0; cell < c.G; cell++)
        for (int d = 0; d < c.D; d++) {
          const double diff = static_cast<double>(c.ze[(b * c.D + d) * c.G + cell]) -
                              c.codebook[c.idx[b * c.G + cell] * c.D + d];
          sum += diff * diff;
        }
    return sum;
  };
  auto term_sum = [&](double weight, bool* changed) {
    c.idx = chosen;
    c.forward(changed);
    return scale * weight * c.s * sq_dist();
  };
  c.forward();
  const double commit_sum = static_cast<double>(c.commit[0]) + c.commit[1];
  const double cb_sum = static_cast<double>(c.cb[0]) + c.cb[1];
  // Float32 sums of B G D = 30 squares: within gamma_32 of the exact value, with room for the products.
  EXPECT_NEAR(commit_sum, c.beta * c.s * sq_dist(), 64 * 0x1p-24 * commit_sum);
  EXPECT_NEAR(cb_sum, c.s * sq_dist(), 64 * 0x1p-24 * cb_sum);
  test::GradCheckOptions o;
  o.h = 1e-3f;
  o.retry_h = 1e-4f;
  auto commitment = [&](bool* changed) { return term_sum(c.beta, changed); };
  test::expect_gradients_match("commitment -> z_e",
                               test::grad_check(commitment, c.ze.data(), dze.data(), dze.size(), o), 1e-3, 1e-2);
  auto codebook_term = [&](bool* changed) { return term_sum(1.0, changed); };
  test::expect_gradients_match("codebook term -> codebook",
                               test::grad_check(codebook_term, c.codebook.data(), dcodebook.data(),
                                                dcodebook.size(), o), 1e-3, 1e-2);
}

TEST(VqPair, StraightThroughCopiesTheDecoderGradientAndTheNearestCodeIsChosen) {
  VqCase c;
  c.beta = 0.0f;  // no commitment: dz_e is exactly dz_q
  c.forward();
  Rng rng(9);
  auto dzq = test::random_vector(rng, c.zq.size());
  std::vector<float> dze(c.ze.size(), 0.0f);
  vq_backward(dze.data(), nullptr, dzq.data(), c.ze.data(), c.zq.data(), c.idx.data(), c.B, c.D, c.G, c.s, c.beta,
              1.0f);
  EXPECT_EQ(dze, dzq);
  // The forward's z_q is the chosen code's vector, and its squared distance is the minimum.
  for (int b = 0; b < c.B; b++)
    for (int cell = 0; cell < c.G; cell++) {
      const int k = c.idx[b * c.G + cell];
      double best = HUGE_VAL, mine = 0.0;
      for (int j = 0; j < c.K; j++) {
        double d2 = 0.0;
        for (int d = 0; d < c.D; d++) {
          const double diff = c.ze[(b * c.D + d) * c.G + cell] - c.codebook[j * c.D + d];
          d2 += diff * diff;
        }
        best = std::min(best, d2);
        if (j == k) mine = d2;
      }
      EXPECT_EQ(mine, best);
      for (int d = 0; d < c.D; d++) EXPECT_EQ(c.zq[(b * c.D + d) * c.G + cell], c.codebook[k * c.D + d]);
    }
}

// The conv layer structs: forward/backward through arena slices and a bound workspace.
template <typename Layer>
void check_conv_layer(const char* what, int H, int W) {
  ParamArena arena;
  Layer l;
  l.add_to(arena, "c", 3, 4, 3, 2, 1);
  arena.finalize();
  Rng rng(4);
  l.init(arena, rng);
  const int B = 2;
  const ConvShape s = l.shape(B, H, W);
  const bool transposed = std::is_same<Layer, ConvTranspose2d>::value;
  const int OH = transposed ? s.tconv_oh() : s.conv_oh(), OW = transposed ? s.tconv_ow() : s.conv_ow();
  std::vector<float> ws(l.workspace_floats(H, W));
  l.workspace = ws.data();
  auto x = test::random_vector(rng, static_cast<size_t>(B) * 3 * H * W);
  auto r = test::random_vector(rng, static_cast<size_t>(B) * 4 * OH * OW);
  std::vector<float> out(r.size()), dx(x.size(), 0.0f);
  auto loss = [&] {
    l.forward(arena, out.data(), x.data(), B, H, W);
    return test::weighted_sum(out.data(), r.data(), out.size());
  };
  loss();
  arena.zero_grad();
  l.backward(arena, dx.data(), r.data(), x.data(), B, H, W);
  const std::string name = what;
  test::expect_gradients_match(name + " input", test::grad_check(loss, x.data(), dx.data(), dx.size()), 1e-3, 1e-3);
  test::expect_gradients_match(name + " weight", test::grad_check(loss, arena.param(l.weight), arena.grad(l.weight),
                                                                  arena.slots()[l.weight].size), 1e-3, 1e-3);
  test::expect_gradients_match(name + " bias", test::grad_check(loss, arena.param(l.bias), arena.grad(l.bias),
                                                                arena.slots()[l.bias].size), 1e-3, 1e-3);
}

TEST(ConvLayers, ForwardBackwardPairsMatchFiniteDifferences) {
  check_conv_layer<Conv2d>("Conv2d", 6, 5);
  check_conv_layer<ConvTranspose2d>("ConvTranspose2d", 3, 4);
}

TEST(ActivationArena, OneBlockAlignedSlicesMovedByALargerLayout) {
  ActivationArena a;
  Slice<float> x, y;
  Slice<int32_t> k;
  a.begin();
  a.add(&x, 5);
  a.add(&y, 17);
  a.add(&k, 3);
  a.allocate();
  EXPECT_EQ(x.size(), 5u);
  EXPECT_EQ(y.size(), 17u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.data()) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(y.data()) % 64, 0u);
  EXPECT_GE(y.data(), x.data() + 5);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  a.begin();
  a.add(&x, 50);
  a.add(&y, 170);
  a.add(&k, 30);
  a.allocate();
  EXPECT_EQ(y.size(), 170u);
  EXPECT_GE(y.data(), x.data() + 50);
}

// After setup (create, reserve, init, one warm-up step: the GEMM's per-thread pack buffers grow once),
// forward and backward allocate nothing, for every kind of the registry and the PixelCNN prior.
TEST(ActivationArena, NoModelAllocatesInForwardOrBackward) {
#if !defined(LL_COUNT_NEW)
  GTEST_SKIP() << "counted natively without AddressSanitizer only";
#else
  const int B = 4;
  Rng rng(1);
  auto x = test::random_vector(rng, B * 784, 0.0f, 1.0f);
  for (const ModelKind& kind : model_kinds()) {
    ModelConfig c;
    c.kind = kind.name;
    c.hidden = 64;
    c.latent = 8;
    if (kind.input_of) continue;  // the PixelCNN (a kind over grids of categories): below, on code grids
    std::unique_ptr<Model> m;
    ASSERT_TRUE(create_model(c, &m).ok()) << kind.name;
    m->reserve(B);
    m->init(rng);
    const std::vector<int32_t> labels = {1, 7, 0, 9};  // for the kinds that need them (the classifier)
    for (int round = 0; round < 2; round++) {
      if (round == 1) g_news = 0, g_counting = true;
      m->set_batch_labels(labels.data());
      m->forward(x.data(), x.data(), B, rng, ZMode::kSample);
      m->backward(1.0f);
      m->set_batch_labels(labels.data());
      m->forward(x.data(), x.data(), B, rng, ZMode::kMean);
      g_counting = false;
    }
    EXPECT_EQ(g_news.load(), 0) << kind.name << ": operator new calls in forward/backward";
  }
  PixelCnnConfig pc;
  pc.K = 8, pc.H = 4, pc.W = 4, pc.channels = 8, pc.layers = 2, pc.stacks = 2, pc.classes = 3;
  PixelCnnPrior prior(pc);
  prior.reserve(B);
  prior.init(rng);
  std::vector<int32_t> codes(B * 16), labels(B);
  for (size_t i = 0; i < codes.size(); i++) codes[i] = static_cast<int32_t>(i % 8);
  for (int b = 0; b < B; b++) labels[b] = b % 3;
  std::vector<float> grid(codes.begin(), codes.end());  // the same codes as the Model's categorical input
  for (int round = 0; round < 2; round++) {
    if (round == 1) g_news = 0, g_counting = true;
    prior.forward(codes.data(), B, labels.data());
    prior.backward(1.0f);
    prior.set_batch_labels(labels.data());
    prior.forward(grid.data(), grid.data(), B, rng, ZMode::kSample);
    prior.backward(1.0f);
    g_counting = false;
  }
  EXPECT_EQ(g_news.load(), 0) << "pixelcnn prior: operator new calls in forward/backward";
#endif
}

}  // namespace
}  // namespace ll
