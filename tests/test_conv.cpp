// Tests for core/conv: the im2col + GEMM path against the direct scalar loops over many odd shapes
// (forward, all three gradients, accumulation, null gradients), central-difference gradient checks,
// the Conv2d / ConvTranspose2d adjoint identity, the VQ-VAE output sizes, the layer structs, and a
// golden file made by PyTorch (tests/golden/make_conv_golden.py).
#include "core/nn/conv.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#if defined(LATENTLAB_HAVE_OPENMP)
#include <omp.h>
#endif

#include "core/io/json.h"
#include "core/kernels/kernels.h"
#include "tests/test_util.h"

namespace ll {
namespace {

enum class Kind { kConv, kTConv };

const char* kind_name(Kind k) { return k == Kind::kConv ? "conv2d" : "conv_transpose2d"; }

std::string describe(Kind k, const ConvShape& s) {
  std::ostringstream o;
  o << kind_name(k) << " B" << s.B << " C" << s.C << " H" << s.H << " W" << s.W << " OC" << s.OC
    << " K" << s.KH << "x" << s.KW << " s" << s.stride << " p" << s.pad;
  return o.str();
}

ConvShape make_shape(int B, int C, int H, int W, int OC, int KH, int KW, int stride, int pad) {
  ConvShape s;
  s.B = B, s.C = C, s.H = H, s.W = W, s.OC = OC, s.KH = KH, s.KW = KW, s.stride = stride;
  s.pad = pad;
  return s;
}

int out_h(Kind k, const ConvShape& s) { return k == Kind::kConv ? s.conv_oh() : s.tconv_oh(); }
int out_w(Kind k, const ConvShape& s) { return k == Kind::kConv ? s.conv_ow() : s.tconv_ow(); }
bool valid(Kind k, const ConvShape& s) {
  if (k == Kind::kConv) return s.H + 2 * s.pad >= s.KH && s.W + 2 * s.pad >= s.KW;
  return s.tconv_oh() >= 1 && s.tconv_ow() >= 1;
}
size_t inp_size(const ConvShape& s) { return static_cast<size_t>(s.B) * s.C * s.H * s.W; }
size_t weight_size(const ConvShape& s) { return static_cast<size_t>(s.OC) * s.C * s.KH * s.KW; }
size_t out_size(Kind k, const ConvShape& s) {
  return static_cast<size_t>(s.B) * s.OC * out_h(k, s) * out_w(k, s);
}

// Everything one op needs, randomly filled; the workspace is exactly the advertised size so ASan
// catches overruns, and is filled with NaN so reads of stale values show.
struct Problem {
  Kind kind;
  ConvShape s;
  std::vector<float> inp, weight, bias, dout, ws;
  Problem(Kind k, const ConvShape& shape, Rng& rng) : kind(k), s(shape) {
    inp = test::random_vector(rng, inp_size(s));
    weight = test::random_vector(rng, weight_size(s), -0.5f, 0.5f);
    bias = test::random_vector(rng, s.OC);
    dout = test::random_vector(rng, out_size(k, s));
    size_t n = k == Kind::kConv ? conv2d_workspace_floats(s) : conv_transpose2d_workspace_floats(s);
    ws.assign(n, std::numeric_limits<float>::quiet_NaN());
  }
  void forward(float* out, const float* b) {
    std::fill(ws.begin(), ws.end(), std::numeric_limits<float>::quiet_NaN());
    if (kind == Kind::kConv) conv2d_forward(out, inp.data(), weight.data(), b, s, ws.data());
    else conv_transpose2d_forward(out, inp.data(), weight.data(), b, s, ws.data());
  }
  void backward(float* dinp, float* dweight, float* dbias) {
    std::fill(ws.begin(), ws.end(), std::numeric_limits<float>::quiet_NaN());
    if (kind == Kind::kConv) {
      conv2d_backward(dinp, dweight, dbias, dout.data(), inp.data(), weight.data(), s, ws.data());
    } else {
      conv_transpose2d_backward(dinp, dweight, dbias, dout.data(), inp.data(), weight.data(), s,
                                ws.data());
    }
  }
  void forward_scalar(float* out, const float* b) {
    if (kind == Kind::kConv) conv2d_forward__scalar(out, inp.data(), weight.data(), b, s);
    else conv_transpose2d_forward__scalar(out, inp.data(), weight.data(), b, s);
  }
  void backward_scalar(float* dinp, float* dweight, float* dbias) {
    if (kind == Kind::kConv) {
      conv2d_backward__scalar(dinp, dweight, dbias, dout.data(), inp.data(), weight.data(), s);
    } else {
      conv_transpose2d_backward__scalar(dinp, dweight, dbias, dout.data(), inp.data(),
                                        weight.data(), s);
    }
  }
  // The same problem with every input replaced by its absolute value: its scalar results are, entry
  // by entry, the sums of |term| that float32 rounding errors scale with.
  Problem absolute() const {
    Problem a = *this;
    for (std::vector<float>* v : {&a.inp, &a.weight, &a.bias, &a.dout})
      for (float& x : *v) x = std::fabs(x);
    return a;
  }
  // The most terms any output, input-gradient, weight-gradient or bias-gradient entry sums, plus two
  // (the bias or an accumulation, and the scaling).
  int max_terms() const {
    const int oh = out_h(kind, s), ow = out_w(kind, s);
    return std::max({s.C * s.KH * s.KW, s.OC * s.KH * s.KW, s.B * oh * ow, s.B * s.H * s.W}) + 2;
  }
};

// The rounding bound of two float32 evaluations of the same sums in any order (Higham 3.1):
// |a - b| <= 2 gamma_n sum |terms|, gamma_n = n u / (1 - n u), u = 2^-24; `abs_sum` per entry.
std::vector<double> rounding_bound(const std::vector<float>& abs_sum, int n) {
  const double u = std::ldexp(1.0, -24), gamma = n * u / (1.0 - n * u);
  std::vector<double> b(abs_sum.size());
  for (size_t i = 0; i < b.size(); i++) b[i] = 2.0 * gamma * abs_sum[i] + 1e-30;
  return b;
}

std::vector<float> abs_plus(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> r(a.size());
  for (size_t i = 0; i < a.size(); i++) r[i] = std::fabs(a[i]) + b[i];
  return r;
}

// Every comparison of two float32 computations of the same sums (fast against scalar, accumulated
// against summed, against PyTorch) uses the rounding bound derived from the absolute problem
// (rounding_bound): no tuned tolerance, and a wrong index, a dropped or repeated term gives errors of
// the size of a term, far above it. Every comparison records its worst |got - want| / bound;
// CloseReport prints the test's worst ratio (test::expect_within).
double g_close_worst = 0.0;

// |got - want| <= bound[i] entry by entry (a derived rounding bound), recording the worst ratio.
::testing::AssertionResult within(const std::vector<float>& got, const std::vector<float>& want,
                                  const std::vector<double>& bound, const std::string& what) {
  if (got.size() != want.size() || bound.size() != want.size())
    return ::testing::AssertionFailure() << what << ": size differs";
  for (size_t i = 0; i < got.size(); i++) {
    const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(d <= bound[i])) {
      g_close_worst = INFINITY;
      return ::testing::AssertionFailure() << what << ": entry " << i << " got " << got[i] << " want "
                                           << want[i] << ", rounding bound " << bound[i];
    }
    g_close_worst = std::max(g_close_worst, d / bound[i]);
  }
  return ::testing::AssertionSuccess();
}

// Prints (and checks) the worst ratio of the within() calls made during its lifetime.
struct CloseReport {
  std::string what;
  explicit CloseReport(std::string w) : what(std::move(w)) { g_close_worst = 0.0; }
  ~CloseReport() { test::expect_within(what, g_close_worst, 1.0); }
};

std::vector<float> plus(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> r(a.size());
  for (size_t i = 0; i < a.size(); i++) r[i] = a[i] + b[i];
  return r;
}

// Restores the GEMM backend when a test ends.
struct BackendGuard {
  GemmBackend saved = gemm_backend();
  ~BackendGuard() { set_gemm_backend(saved); }
};

// Random valid shapes over B 1..3, C/OC 1..5, H,W 1..11, K 1..5 (square or not), stride 1..3,
// pad 0..2, plus a few fixed corners.
std::vector<ConvShape> odd_shapes(Kind k, int count, uint64_t seed) {
  const ConvShape corners[] = {
      make_shape(1, 1, 1, 1, 1, 1, 1, 1, 0), make_shape(2, 3, 28, 28, 4, 4, 4, 2, 1),
      make_shape(1, 2, 7, 7, 3, 4, 4, 2, 1), make_shape(3, 5, 11, 1, 5, 5, 1, 3, 2),
      make_shape(3, 5, 11, 2, 5, 5, 1, 3, 0), make_shape(1, 1, 1, 11, 2, 3, 3, 1, 1)};
  std::vector<ConvShape> shapes;
  for (const ConvShape& s : corners) {
    if (valid(k, s)) shapes.push_back(s);
  }
  Rng rng(seed);
  while (static_cast<int>(shapes.size()) < count) {
    int KH = 1 + rng.below(5);
    int KW = rng.below(2) ? KH : 1 + static_cast<int>(rng.below(5));
    ConvShape s = make_shape(1 + rng.below(3), 1 + rng.below(5), 1 + rng.below(11),
                             1 + rng.below(11), 1 + rng.below(5), KH, KW, 1 + rng.below(3),
                             rng.below(3));
    if (valid(k, s)) shapes.push_back(s);
  }
  return shapes;
}

void check_parity(Kind kind, GemmBackend backend) {
  CloseReport report("fast vs scalar");
  BackendGuard guard;
  set_gemm_backend(backend);
  Rng rng(kind == Kind::kConv ? 11 : 12);
  for (const ConvShape& s : odd_shapes(kind, 300, kind == Kind::kConv ? 21 : 22)) {
    SCOPED_TRACE(describe(kind, s));
    Problem p(kind, s, rng);
    const size_t no = out_size(kind, s);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    // Per-entry bounds from the absolute problem (derived, not tuned: see rounding_bound).
    Problem ap = p.absolute();
    const int n = p.max_terms();

    // Forward overwrites out, with and without bias.
    for (bool with_bias : {true, false}) {
      const float* b = with_bias ? p.bias.data() : nullptr;
      std::vector<float> fast(no, nan), ref(no, nan), abs_out(no);
      p.forward(fast.data(), b);
      p.forward_scalar(ref.data(), b);
      ap.forward_scalar(abs_out.data(), with_bias ? ap.bias.data() : nullptr);
      ASSERT_TRUE(within(fast, ref, rounding_bound(abs_out, n), b ? "out" : "out (no bias)"));
    }

    // Backward: fast accumulates onto random gradients g0; scalar starts from zero.
    std::vector<float> g0_inp = test::random_vector(rng, p.inp.size());
    std::vector<float> g0_w = test::random_vector(rng, p.weight.size());
    std::vector<float> g0_b = test::random_vector(rng, p.bias.size());
    std::vector<float> dinp = g0_inp, dw = g0_w, db = g0_b;
    p.backward(dinp.data(), dw.data(), db.data());
    std::vector<float> rinp(p.inp.size(), 0.0f), rw(p.weight.size(), 0.0f), rb(p.bias.size(), 0.0f);
    p.backward_scalar(rinp.data(), rw.data(), rb.data());
    std::vector<float> ainp(p.inp.size(), 0.0f), aw(p.weight.size(), 0.0f), ab(p.bias.size(), 0.0f);
    ap.backward_scalar(ainp.data(), aw.data(), ab.data());
    ASSERT_TRUE(within(dinp, plus(g0_inp, rinp), rounding_bound(abs_plus(g0_inp, ainp), n), "dinp"));
    ASSERT_TRUE(within(dw, plus(g0_w, rw), rounding_bound(abs_plus(g0_w, aw), n), "dweight"));
    ASSERT_TRUE(within(db, plus(g0_b, rb), rounding_bound(abs_plus(g0_b, ab), n), "dbias"));
  }
}

TEST(Conv, Conv2dFastMatchesScalarEigenGemm) { check_parity(Kind::kConv, GemmBackend::kEigen); }
TEST(Conv, Conv2dFastMatchesScalarScalarGemm) { check_parity(Kind::kConv, GemmBackend::kScalar); }
TEST(Conv, ConvTranspose2dFastMatchesScalarEigenGemm) {
  check_parity(Kind::kTConv, GemmBackend::kEigen);
}
TEST(Conv, ConvTranspose2dFastMatchesScalarScalarGemm) {
  check_parity(Kind::kTConv, GemmBackend::kScalar);
}
// Two threads share out the images (B 1..3 in odd_shapes), each with its slice of the workspace and a
// weight-gradient partial; same oracle, same tolerance.
struct ThreadGuard {
  explicit ThreadGuard(int n) { set_num_threads(n); }
  ~ThreadGuard() { set_num_threads(1); }
};
TEST(Conv, FastMatchesScalarOnTwoThreads) {
#if defined(LATENTLAB_HAVE_OPENMP)
  if (omp_get_num_procs() < 2) GTEST_SKIP() << "one processor: the convolutions never use threads here";
  ThreadGuard threads(2);
  ASSERT_EQ(num_threads(), 2);
  check_parity(Kind::kConv, gemm_backend());
  check_parity(Kind::kTConv, gemm_backend());
#else
  GTEST_SKIP() << "built without OpenMP: the convolutions never use threads";
#endif
}

#if defined(LATENTLAB_HAVE_OPENBLAS)
TEST(Conv, Conv2dFastMatchesScalarOpenBlasGemm) { check_parity(Kind::kConv, GemmBackend::kOpenBlas); }
TEST(Conv, ConvTranspose2dFastMatchesScalarOpenBlasGemm) { check_parity(Kind::kTConv, GemmBackend::kOpenBlas); }
#endif
#if defined(__wasm_simd128__)
// The wasm build's default GEMM (only there: natively the backend does not exist).
TEST(Conv, Conv2dFastMatchesScalarWasmSimdGemm) { check_parity(Kind::kConv, GemmBackend::kWasmSimd); }
TEST(Conv, ConvTranspose2dFastMatchesScalarWasmSimdGemm) {
  check_parity(Kind::kTConv, GemmBackend::kWasmSimd);
}
#endif

// Calling backward twice gives twice the gradient; each null pointer skips only its own output;
// the scalar references obey the same contract.
void check_accumulate_and_null(Kind kind, bool scalar) {
  CloseReport report(scalar ? "accumulate (scalar)" : "accumulate (fast)");
  Rng rng(31);
  for (const ConvShape& s : odd_shapes(kind, 40, 41)) {
    SCOPED_TRACE(describe(kind, s) + (scalar ? " (scalar)" : " (fast)"));
    Problem p(kind, s, rng);
    auto bwd = [&](float* a, float* b, float* c) {
      if (scalar) p.backward_scalar(a, b, c);
      else p.backward(a, b, c);
    };
    std::vector<float> dinp(p.inp.size(), 0.0f), dw(p.weight.size(), 0.0f), db(s.OC, 0.0f);
    bwd(dinp.data(), dw.data(), db.data());
    // Rounding bounds from the absolute problem; twice the sums for the accumulation twice.
    Problem ap = p.absolute();
    const int n = p.max_terms();
    std::vector<float> ainp(dinp.size(), 0.0f), aw(dw.size(), 0.0f), ab(db.size(), 0.0f);
    ap.backward_scalar(ainp.data(), aw.data(), ab.data());
    std::vector<float> dinp2(dinp.size(), 0.0f), dw2(dw.size(), 0.0f), db2(db.size(), 0.0f);
    bwd(dinp2.data(), dw2.data(), db2.data());
    bwd(dinp2.data(), dw2.data(), db2.data());
    ASSERT_TRUE(within(dinp2, plus(dinp, dinp), rounding_bound(plus(ainp, ainp), n), "dinp twice"));
    ASSERT_TRUE(within(dw2, plus(dw, dw), rounding_bound(plus(aw, aw), n), "dweight twice"));
    ASSERT_TRUE(within(db2, plus(db, db), rounding_bound(plus(ab, ab), n), "dbias twice"));

    std::vector<float> only_inp(dinp.size(), 0.0f), only_w(dw.size(), 0.0f), only_b(db.size(), 0.0f);
    bwd(only_inp.data(), nullptr, nullptr);
    bwd(nullptr, only_w.data(), nullptr);
    bwd(nullptr, nullptr, only_b.data());
    ASSERT_TRUE(within(only_inp, dinp, rounding_bound(ainp, n), "dinp alone"));
    ASSERT_TRUE(within(only_w, dw, rounding_bound(aw, n), "dweight alone"));
    ASSERT_TRUE(within(only_b, db, rounding_bound(ab, n), "dbias alone"));
    bwd(nullptr, nullptr, nullptr);  // must not touch anything (ASan would see a bad write)
  }
}

TEST(Conv, Conv2dBackwardAccumulatesAndSkipsNull) {
  check_accumulate_and_null(Kind::kConv, false);
  check_accumulate_and_null(Kind::kConv, true);
}
TEST(Conv, ConvTranspose2dBackwardAccumulatesAndSkipsNull) {
  check_accumulate_and_null(Kind::kTConv, false);
  check_accumulate_and_null(Kind::kTConv, true);
}

// Central differences of loss = sum(out * r) for the fast path. The loss is linear in each argument,
// so the differences are exact up to float rounding and h = 1e-2 is safe.
void check_gradients(Kind kind) {
  const std::vector<ConvShape> shapes = {
      make_shape(2, 3, 6, 5, 4, 3, 3, 1, 1), make_shape(1, 2, 8, 8, 3, 4, 4, 2, 1),
      make_shape(2, 2, 5, 7, 2, 2, 3, 3, 2), make_shape(1, 4, 4, 4, 2, 1, 1, 1, 0),
      make_shape(1, 1, 3, 3, 5, 5, 5, 2, 2)};
  Rng rng(51);
  for (const ConvShape& s : shapes) {
    if (!valid(kind, s)) continue;
    SCOPED_TRACE(describe(kind, s));
    Problem p(kind, s, rng);
    std::vector<float> r = p.dout;  // the loss weights double as dout = dL/dout
    std::vector<float> out(out_size(kind, s));
    auto loss = [&]() {
      p.forward(out.data(), p.bias.data());
      return test::weighted_sum(out.data(), r.data(), out.size());
    };
    std::vector<float> dinp(p.inp.size(), 0.0f), dw(p.weight.size(), 0.0f), db(s.OC, 0.0f);
    p.backward(dinp.data(), dw.data(), db.data());
    struct Arg {
      const char* name;
      std::vector<float>* x;
      const std::vector<float>* g;
    };
    for (const Arg& a : {Arg{"inp", &p.inp, &dinp}, Arg{"weight", &p.weight, &dw},
                         Arg{"bias", &p.bias, &db}}) {
      test::GradCheckResult res = test::grad_check(loss, a.x->data(), a.g->data(), a.x->size());
      test::expect_gradients_match(describe(kind, s) + " " + a.name, res, 1e-2, 1e-2);
    }
  }
}

TEST(Conv, Conv2dGradCheck) { check_gradients(Kind::kConv); }
TEST(Conv, ConvTranspose2dGradCheck) { check_gradients(Kind::kTConv); }

// <conv2d(x; w), y> == <x, conv_transpose2d(y; w)> with the same weight tensor [OC, C, KH, KW],
// which ConvTranspose2d reads as [its C = OC, its OC = C, KH, KW]. Shapes are chosen so that the
// transposed conv maps back to exactly H x W ((H + 2 pad - KH) divisible by stride).
TEST(Conv, TransposeIsAdjointOfConv) {
  Rng rng(61);
  int tested = 0;
  for (const ConvShape& s : odd_shapes(Kind::kConv, 200, 62)) {
    if ((s.H + 2 * s.pad - s.KH) % s.stride || (s.W + 2 * s.pad - s.KW) % s.stride) continue;
    SCOPED_TRACE(describe(Kind::kConv, s));
    const int OH = s.conv_oh(), OW = s.conv_ow();
    ConvShape t = make_shape(s.B, s.OC, OH, OW, s.C, s.KH, s.KW, s.stride, s.pad);
    ASSERT_EQ(t.tconv_oh(), s.H);
    ASSERT_EQ(t.tconv_ow(), s.W);
    std::vector<float> x = test::random_vector(rng, inp_size(s));
    std::vector<float> w = test::random_vector(rng, weight_size(s));
    std::vector<float> y = test::random_vector(rng, out_size(Kind::kConv, s));
    std::vector<float> cx(y.size()), ty(x.size());
    std::vector<float> ws(std::max(conv2d_workspace_floats(s), conv_transpose2d_workspace_floats(t)));
    conv2d_forward(cx.data(), x.data(), w.data(), nullptr, s, ws.data());
    conv_transpose2d_forward(ty.data(), y.data(), w.data(), nullptr, t, ws.data());
    double lhs = test::weighted_sum(cx.data(), y.data(), y.size());
    double rhs = test::weighted_sum(x.data(), ty.data(), x.size());
    EXPECT_NEAR(lhs, rhs, 1e-4 * std::max(1.0, std::fabs(lhs)));
    // The scalar references are adjoint too.
    conv2d_forward__scalar(cx.data(), x.data(), w.data(), nullptr, s);
    conv_transpose2d_forward__scalar(ty.data(), y.data(), w.data(), nullptr, t);
    lhs = test::weighted_sum(cx.data(), y.data(), y.size());
    rhs = test::weighted_sum(x.data(), ty.data(), x.size());
    EXPECT_NEAR(lhs, rhs, 1e-4 * std::max(1.0, std::fabs(lhs)));
    tested++;
  }
  EXPECT_GT(tested, 20);
}

// The VQ-VAE path: 28 -> 14 -> 7 down with Conv(k4 s2 p1), 7 -> 14 -> 28 up with ConvT(k4 s2 p1),
// through the layer structs and an arena, running forward at each size.
TEST(Conv, VqVaeOutputSizes) {
  ParamArena arena;
  Conv2d down1, down2;
  ConvTranspose2d up1, up2;
  down1.add_to(arena, "enc.conv1", 1, 4, 4, 2, 1);
  down2.add_to(arena, "enc.conv2", 4, 6, 4, 2, 1);
  up1.add_to(arena, "dec.deconv1", 6, 4, 4, 2, 1);
  up2.add_to(arena, "dec.deconv2", 4, 1, 4, 2, 1);
  arena.finalize();
  Rng rng(71);
  down1.init(arena, rng);
  down2.init(arena, rng);
  up1.init(arena, rng);
  up2.init(arena, rng);

  const int B = 2;
  ConvShape s1 = down1.shape(B, 28, 28);
  EXPECT_EQ(s1.conv_oh(), 14);
  EXPECT_EQ(s1.conv_ow(), 14);
  ConvShape s2 = down2.shape(B, 14, 14);
  EXPECT_EQ(s2.conv_oh(), 7);
  EXPECT_EQ(s2.conv_ow(), 7);
  ConvShape s3 = up1.shape(B, 7, 7);
  EXPECT_EQ(s3.tconv_oh(), 14);
  EXPECT_EQ(s3.tconv_ow(), 14);
  ConvShape s4 = up2.shape(B, 14, 14);
  EXPECT_EQ(s4.tconv_oh(), 28);
  EXPECT_EQ(s4.tconv_ow(), 28);

  std::vector<float> x = test::random_vector(rng, B * 1 * 28 * 28);
  std::vector<float> h1(B * 4 * 14 * 14), h2(B * 6 * 7 * 7), h3(B * 4 * 14 * 14), y(B * 1 * 28 * 28);
  std::vector<float> ws(std::max({conv2d_workspace_floats(s1), conv2d_workspace_floats(s2),
                                  conv_transpose2d_workspace_floats(s3),
                                  conv_transpose2d_workspace_floats(s4)}));
  conv2d_forward(h1.data(), x.data(), arena.param(down1.weight), arena.param(down1.bias), s1,
                 ws.data());
  conv2d_forward(h2.data(), h1.data(), arena.param(down2.weight), arena.param(down2.bias), s2,
                 ws.data());
  conv_transpose2d_forward(h3.data(), h2.data(), arena.param(up1.weight), arena.param(up1.bias), s3,
                           ws.data());
  conv_transpose2d_forward(y.data(), h3.data(), arena.param(up2.weight), arena.param(up2.bias), s4,
                           ws.data());
  for (float v : y) ASSERT_TRUE(std::isfinite(v));
}

// Names and PyTorch shapes in the arena; init fills U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
TEST(Conv, LayerStructsRegisterAndInit) {
  ParamArena arena;
  Conv2d conv;
  ConvTranspose2d tconv;
  conv.add_to(arena, "enc.0", 3, 5, 4, 2, 1);
  tconv.add_to(arena, "dec.0", 5, 2, 3, 1, 1);
  arena.finalize();
  ASSERT_EQ(arena.find("enc.0.weight"), conv.weight);
  ASSERT_EQ(arena.find("enc.0.bias"), conv.bias);
  ASSERT_EQ(arena.find("dec.0.weight"), tconv.weight);
  ASSERT_EQ(arena.find("dec.0.bias"), tconv.bias);
  EXPECT_EQ(arena.slots()[conv.weight].shape, (std::vector<int64_t>{5, 3, 4, 4}));
  EXPECT_EQ(arena.slots()[conv.bias].shape, (std::vector<int64_t>{5}));
  EXPECT_EQ(arena.slots()[tconv.weight].shape, (std::vector<int64_t>{5, 2, 3, 3}));
  EXPECT_EQ(arena.slots()[tconv.bias].shape, (std::vector<int64_t>{2}));

  Rng rng(81);
  conv.init(arena, rng);
  tconv.init(arena, rng);
  struct Check {
    int id;
    double bound;
  };
  for (const Check& c : {Check{conv.weight, 1.0 / std::sqrt(3.0 * 16)},
                         Check{conv.bias, 1.0 / std::sqrt(3.0 * 16)},
                         Check{tconv.weight, 1.0 / std::sqrt(2.0 * 9)},
                         Check{tconv.bias, 1.0 / std::sqrt(2.0 * 9)}}) {
    const TensorSlot& slot = arena.slots()[c.id];
    const float* p = arena.param(c.id);
    double max_abs = 0.0;
    for (size_t i = 0; i < slot.size; i++) max_abs = std::max(max_abs, std::fabs(double(p[i])));
    EXPECT_LE(max_abs, c.bound) << slot.name;
    // Weights (45 and 90 draws) must reach near the bound: catches a wrong fan_in.
    if (slot.size > 20) {
      EXPECT_GT(max_abs, 0.8 * c.bound) << slot.name;
    }
  }

  ConvShape s = tconv.shape(3, 7, 9);
  EXPECT_EQ(s.B, 3);
  EXPECT_EQ(s.C, 5);
  EXPECT_EQ(s.OC, 2);
  EXPECT_EQ(s.H, 7);
  EXPECT_EQ(s.W, 9);
  EXPECT_EQ(s.KH, 3);
  EXPECT_EQ(s.KW, 3);
  EXPECT_EQ(s.stride, 1);
  EXPECT_EQ(s.pad, 1);
}

// ---------------------------------------------------------------------------------------------
// Golden file from PyTorch (tests/golden/make_conv_golden.py): forward and autograd backward.

std::vector<float> floats(const JsonValue& case_, const char* key) {
  std::vector<float> v;
  const JsonValue* a = case_.get(key);
  EXPECT_TRUE(a && a->type == JsonValue::Type::kArray) << key;
  if (!a) return v;
  for (const JsonValue& x : a->array) v.push_back(static_cast<float>(x.number));
  return v;
}

int integer(const JsonValue& case_, const char* key) {
  const JsonValue* x = case_.get(key);
  EXPECT_TRUE(x && x->type == JsonValue::Type::kNumber) << key;
  return x ? static_cast<int>(x->number) : 0;
}

TEST(Conv, MatchesPyTorchGolden) {
  CloseReport report("PyTorch golden");
  const std::string path = std::string(LATENTLAB_SOURCE_DIR) + "/tests/golden/conv_golden.json";
  std::ifstream f(path, std::ios::binary);
  ASSERT_TRUE(f) << "cannot open " << path;
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  JsonValue doc;
  Status st = parse_json(text.data(), text.size(), &doc);
  ASSERT_TRUE(st.ok()) << st.message();
  const JsonValue* cases = doc.get("cases");
  ASSERT_TRUE(cases && cases->type == JsonValue::Type::kArray);
  ASSERT_GE(cases->array.size(), 4u);
  int seen[2] = {0, 0};
  for (const JsonValue& c : cases->array) {
    const JsonValue* kind_v = c.get("kind");
    ASSERT_TRUE(kind_v && kind_v->type == JsonValue::Type::kString);
    ASSERT_TRUE(kind_v->string == "conv2d" || kind_v->string == "conv_transpose2d");
    Kind kind = kind_v->string == "conv2d" ? Kind::kConv : Kind::kTConv;
    seen[static_cast<int>(kind)]++;
    int K = integer(c, "K");
    ConvShape s = make_shape(integer(c, "B"), integer(c, "C"), integer(c, "H"), integer(c, "W"),
                             integer(c, "OC"), K, K, integer(c, "stride"), integer(c, "pad"));
    SCOPED_TRACE(describe(kind, s));
    ASSERT_EQ(out_h(kind, s), integer(c, "OH"));
    ASSERT_EQ(out_w(kind, s), integer(c, "OW"));
    Rng unused(0);
    Problem p(kind, s, unused);
    p.inp = floats(c, "inp");
    p.weight = floats(c, "weight");
    p.bias = floats(c, "bias");
    p.dout = floats(c, "dout");
    ASSERT_EQ(p.inp.size(), inp_size(s));
    ASSERT_EQ(p.weight.size(), weight_size(s));
    ASSERT_EQ(p.bias.size(), static_cast<size_t>(s.OC));
    ASSERT_EQ(p.dout.size(), out_size(kind, s));
    const std::vector<float> want_out = floats(c, "out"), want_dinp = floats(c, "dinp"),
                             want_dw = floats(c, "dweight"), want_db = floats(c, "dbias");

    // PyTorch's float32 results, printed to 9 significant digits: the rounding bound of two float32
    // evaluations in different orders, plus 1e-8 of each value for the printing.
    Problem ap = p.absolute();
    const int n = p.max_terms();
    std::vector<float> aout(want_out.size()), ainp(p.inp.size(), 0.0f), aw(p.weight.size(), 0.0f), ab(s.OC, 0.0f);
    ap.forward_scalar(aout.data(), ap.bias.data());
    ap.backward_scalar(ainp.data(), aw.data(), ab.data());
    auto bound = [&](const std::vector<float>& abs_sum, const std::vector<float>& want) {
      std::vector<double> b = rounding_bound(abs_sum, n);
      for (size_t i = 0; i < b.size(); i++) b[i] += 1e-8 * std::fabs(want[i]);
      return b;
    };
    for (bool scalar : {false, true}) {
      SCOPED_TRACE(scalar ? "scalar" : "fast");
      std::vector<float> out(out_size(kind, s));
      std::vector<float> dinp(p.inp.size(), 0.0f), dw(p.weight.size(), 0.0f), db(s.OC, 0.0f);
      if (scalar) {
        p.forward_scalar(out.data(), p.bias.data());
        p.backward_scalar(dinp.data(), dw.data(), db.data());
      } else {
        p.forward(out.data(), p.bias.data());
        p.backward(dinp.data(), dw.data(), db.data());
      }
      EXPECT_TRUE(within(out, want_out, bound(aout, want_out), "out"));
      EXPECT_TRUE(within(dinp, want_dinp, bound(ainp, want_dinp), "dinp"));
      EXPECT_TRUE(within(dw, want_dw, bound(aw, want_dw), "dweight"));
      EXPECT_TRUE(within(db, want_db, bound(ab, want_db), "dbias"));
    }
  }
  EXPECT_GT(seen[0], 0);
  EXPECT_GT(seen[1], 0);
}

}  // namespace
}  // namespace ll
