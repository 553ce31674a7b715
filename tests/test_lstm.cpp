// The LSTM layer (core/nn/lstm.h): every gradient (weights, inputs, initial state) against central
// differences of an independent double-precision reference, the forward and the gradients against
// PyTorch's nn.LSTM (tests/golden/lstm_golden.safetensors), continuing a sequence from a tape, and the
// zero initial state.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/base/rng.h"
#include "core/nn/arena.h"
#include "core/nn/lstm.h"
#include "tests/test_util.h"

namespace ll {
namespace {

constexpr double kU = 0x1p-24;

// The reference: the same equations in double, written from PyTorch's documentation of nn.LSTM (gate
// order i, f, g, o), not from lstm.cpp. Returns L = sum r h + sum rc c_last.
struct RefLstm {
  int T, B, C, H;
  std::vector<double> w_ih, w_hh, b_ih, b_hh;  // [4H, C], [4H, H], [4H], [4H]
  double loss(const std::vector<double>& x, const std::vector<double>& h0, const std::vector<double>& c0,
              const std::vector<double>& r, const std::vector<double>& rc) const {
    std::vector<double> h = h0, c = c0, a(4 * H);
    double L = 0.0;
    auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
    for (int t = 0; t < T; t++) {
      std::vector<double> hn(B * H), cn(B * H);
      for (int b = 0; b < B; b++) {
        for (int k = 0; k < 4 * H; k++) {
          double s = b_ih[k] + b_hh[k];
          for (int j = 0; j < C; j++) s += w_ih[k * C + j] * x[(t * B + b) * C + j];
          for (int j = 0; j < H; j++) s += w_hh[k * H + j] * h[b * H + j];
          a[k] = s;
        }
        for (int j = 0; j < H; j++) {
          const double i = sig(a[j]), f = sig(a[H + j]), g = std::tanh(a[2 * H + j]), o = sig(a[3 * H + j]);
          cn[b * H + j] = f * c[b * H + j] + i * g;
          hn[b * H + j] = o * std::tanh(cn[b * H + j]);
          L += r[(t * B + b) * H + j] * hn[b * H + j];
        }
      }
      h = hn;
      c = cn;
    }
    for (int k = 0; k < B * H; k++) L += rc[k] * c[k];
    return L;
  }
};

std::vector<double> to_double(const float* v, size_t n) { return std::vector<double>(v, v + n); }

// Central difference in double at step 1e-6: truncation ~1e-12 |L'''|, rounding ~1e-16 |L| / 1e-6, both
// far below the float32 analytic gradient's own rounding (~1e-7 relative).
template <typename F>
std::vector<double> numeric_gradient(std::vector<double>& v, F loss) {
  std::vector<double> g(v.size());
  const double h = 1e-6;
  for (size_t i = 0; i < v.size(); i++) {
    const double saved = v[i];
    v[i] = saved + h;
    const double up = loss();
    v[i] = saved - h;
    const double down = loss();
    v[i] = saved;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

// ||a - n|| / (||a|| + ||n||).
double norm_rel(const float* a, const std::vector<double>& n) {
  double d = 0.0, sa = 0.0, sn = 0.0;
  for (size_t i = 0; i < n.size(); i++) {
    d += (a[i] - n[i]) * (a[i] - n[i]);
    sa += double(a[i]) * a[i];
    sn += n[i] * n[i];
  }
  const double den = std::sqrt(sa) + std::sqrt(sn);
  return den > 0 ? std::sqrt(d) / den : 0.0;
}

struct Case {
  int T = 5, B = 3, C = 4, H = 6;
  ParamArena arena;
  Lstm lstm;
  std::vector<float> x, h0, c0, r, rc, h, tape, scratch, dx, dh0, dc0;
  explicit Case(uint64_t seed) {
    lstm.add_to(arena, "rnn", C, H);
    arena.finalize();
    Rng rng(seed);
    lstm.init(arena, rng);
    x = test::random_vector(rng, T * B * C);
    h0 = test::random_vector(rng, B * H, -0.5f, 0.5f);
    c0 = test::random_vector(rng, B * H, -0.5f, 0.5f);
    r = test::random_vector(rng, T * B * H);
    rc = test::random_vector(rng, B * H);
    h.resize(T * B * H);
    tape.resize(Lstm::tape_floats(T, B, H));
    scratch.resize(Lstm::scratch_floats(T, B, H));
    dx.assign(T * B * C, 0.0f);
    dh0.assign(B * H, 0.0f);
    dc0.assign(B * H, 0.0f);
  }
  void run(bool with_state = true) {
    lstm.forward(arena, h.data(), tape.data(), x.data(), with_state ? h0.data() : nullptr,
                 with_state ? c0.data() : nullptr, T, B);
    arena.zero_grad();
    lstm.backward(arena, dx.data(), with_state ? dh0.data() : nullptr, with_state ? dc0.data() : nullptr,
                  scratch.data(), r.data(), rc.data(), h.data(), tape.data(), x.data(),
                  with_state ? h0.data() : nullptr, with_state ? c0.data() : nullptr, T, B);
  }
  RefLstm reference() const {
    RefLstm ref{T, B, C, H, to_double(arena.param(lstm.weight_ih), 4 * H * C),
                to_double(arena.param(lstm.weight_hh), 4 * H * H), to_double(arena.param(lstm.bias_ih), 4 * H),
                to_double(arena.param(lstm.bias_hh), 4 * H)};
    return ref;
  }
};

// The analytic float32 gradients carry rounding of about u sqrt(K) per chained reduction (K <= 4H = 24
// terms, L = 2T + 2 = 12 reductions forward and back): 6 u sqrt(24) 12 = 2.1e-5 norm-wise; a dropped
// factor, a wrong sign or a gate in the wrong place gives 0.1 to 1.
constexpr double kGradTol = 6 * kU * 4.9 * 12;

TEST(Lstm, GradientsMatchDoublePrecisionDifferences) {
  for (uint64_t seed : {1, 2}) {
    Case k(seed);
    k.run();
    RefLstm ref = k.reference();
    std::vector<double> x = to_double(k.x.data(), k.x.size()), h0 = to_double(k.h0.data(), k.h0.size()),
                        c0 = to_double(k.c0.data(), k.c0.size()), r = to_double(k.r.data(), k.r.size()),
                        rc = to_double(k.rc.data(), k.rc.size());
    auto loss = [&] { return ref.loss(x, h0, c0, r, rc); };
    const std::string s = "seed " + std::to_string(seed) + " ";
    test::expect_within(s + "weight_ih", norm_rel(k.arena.grad(k.lstm.weight_ih), numeric_gradient(ref.w_ih, loss)),
                        kGradTol, "gradcheck");
    test::expect_within(s + "weight_hh", norm_rel(k.arena.grad(k.lstm.weight_hh), numeric_gradient(ref.w_hh, loss)),
                        kGradTol, "gradcheck");
    test::expect_within(s + "bias_ih", norm_rel(k.arena.grad(k.lstm.bias_ih), numeric_gradient(ref.b_ih, loss)),
                        kGradTol, "gradcheck");
    test::expect_within(s + "bias_hh", norm_rel(k.arena.grad(k.lstm.bias_hh), numeric_gradient(ref.b_hh, loss)),
                        kGradTol, "gradcheck");
    test::expect_within(s + "x", norm_rel(k.dx.data(), numeric_gradient(x, loss)), kGradTol, "gradcheck");
    test::expect_within(s + "h0", norm_rel(k.dh0.data(), numeric_gradient(h0, loss)), kGradTol, "gradcheck");
    test::expect_within(s + "c0", norm_rel(k.dc0.data(), numeric_gradient(c0, loss)), kGradTol, "gradcheck");
  }
}

// Against PyTorch's nn.LSTM in float64 (tests/golden/make_lstm_golden.py): h entry by entry within the
// script's first-order float32 error bound (plus u |h| for storing the reference as float), the last
// cell state and every gradient norm-wise within kGradTol's reasoning at the golden's sizes (K <= 4H =
// 28, T = 6: 6 u sqrt(28) 14 = 2.6e-5).
TEST(Lstm, MatchesPyTorchGolden) {
  test::GoldenFile g;
  ASSERT_TRUE(g.load("lstm_golden.safetensors"));
  const int T = std::stoi(g.meta("T")), B = std::stoi(g.meta("batch")), C = std::stoi(g.meta("input_size")),
            H = std::stoi(g.meta("hidden_size"));
  ParamArena arena;
  Lstm lstm;
  lstm.add_to(arena, "lstm", C, H);
  arena.finalize();
  for (const TensorSlot& slot : arena.slots()) {
    const std::vector<float> w = g.tensor("w." + slot.name.substr(5));
    ASSERT_EQ(w.size(), slot.size) << slot.name;
    std::copy(w.begin(), w.end(), arena.params.begin() + slot.offset);
  }
  std::vector<float> x = g.tensor("x"), h0 = g.tensor("h0"), c0 = g.tensor("c0"), r = g.tensor("r"),
                     rc = g.tensor("rc");
  std::vector<float> h(static_cast<size_t>(T) * B * H), tape(Lstm::tape_floats(T, B, H)),
      scratch(Lstm::scratch_floats(T, B, H)), dx(x.size(), 0.0f), dh0(h0.size(), 0.0f), dc0(c0.size(), 0.0f);
  lstm.forward(arena, h.data(), tape.data(), x.data(), h0.data(), c0.data(), T, B);
  const std::vector<float> ref_h = g.tensor("h"), bound = g.tensor("bound.h");
  ASSERT_EQ(ref_h.size(), h.size());
  double worst = 0.0;
  for (size_t i = 0; i < h.size(); i++)
    worst = std::max(worst, std::fabs(h[i] - ref_h[i]) / (bound[i] + kU * std::fabs(ref_h[i])));
  test::expect_within("h, each entry / first-order float32 bound", worst, 1.0);
  constexpr double kTol = 6 * kU * 5.3 * 14;
  const float* c_last = lstm.cell(tape.data(), T, B, T - 1);
  test::expect_within("c_last, ||v - r|| / (tol ||r||)", test::golden_norm_ratio(c_last, g.tensor("c_last"), kTol), 1.0);
  arena.zero_grad();
  lstm.backward(arena, dx.data(), dh0.data(), dc0.data(), scratch.data(), r.data(), rc.data(), h.data(),
                tape.data(), x.data(), h0.data(), c0.data(), T, B);
  double grads = 0.0;
  for (const TensorSlot& slot : arena.slots())
    grads = std::max(grads, test::golden_norm_ratio(arena.grads.data() + slot.offset,
                                                    g.tensor("grad." + slot.name.substr(5)), kTol));
  grads = std::max(grads, test::golden_norm_ratio(dx.data(), g.tensor("grad.x"), kTol));
  grads = std::max(grads, test::golden_norm_ratio(dh0.data(), g.tensor("grad.h0"), kTol));
  grads = std::max(grads, test::golden_norm_ratio(dc0.data(), g.tensor("grad.c0"), kTol));
  test::expect_within("every gradient, ||v - r|| / (tol ||r||)", grads, 1.0);
}

// Running T steps at once equals running the first T1, then the rest from the tape's last (h, c): the
// TD-VAE's page steps its belief one frame at a time.
TEST(Lstm, ContinuesASequenceFromItsLastState) {
  Case k(3);
  k.lstm.forward(k.arena, k.h.data(), k.tape.data(), k.x.data(), k.h0.data(), k.c0.data(), k.T, k.B);
  const int T1 = 2, T2 = k.T - T1, BH = k.B * k.H;
  std::vector<float> h1(T1 * BH), tape1(Lstm::tape_floats(T1, k.B, k.H)), h2(T2 * BH),
      tape2(Lstm::tape_floats(T2, k.B, k.H));
  k.lstm.forward(k.arena, h1.data(), tape1.data(), k.x.data(), k.h0.data(), k.c0.data(), T1, k.B);
  k.lstm.forward(k.arena, h2.data(), tape2.data(), k.x.data() + T1 * k.B * k.C, h1.data() + (T1 - 1) * BH,
                 k.lstm.cell(tape1.data(), T1, k.B, T1 - 1), T2, k.B);
  // The GEMM may split the input projection differently for T and T1 rows: rounding only.
  for (int i = 0; i < T1 * BH; i++) EXPECT_NEAR(h1[i], k.h[i], 1e-6) << i;
  for (int i = 0; i < T2 * BH; i++) EXPECT_NEAR(h2[i], k.h[T1 * BH + i], 1e-6) << i;
  const float* c_all = k.lstm.cell(k.tape.data(), k.T, k.B, k.T - 1);
  const float* c_two = k.lstm.cell(tape2.data(), T2, k.B, T2 - 1);
  for (int i = 0; i < BH; i++) EXPECT_NEAR(c_two[i], c_all[i], 1e-6) << i;
}

// A null initial state is PyTorch's default, zeros: the same outputs and weight gradients as explicit
// zeros.
TEST(Lstm, NullInitialStateIsZero) {
  Case k(4);
  std::fill(k.h0.begin(), k.h0.end(), 0.0f);
  std::fill(k.c0.begin(), k.c0.end(), 0.0f);
  k.run(true);
  const std::vector<float> h = k.h, grads = k.arena.grads;
  k.run(false);
  for (size_t i = 0; i < h.size(); i++) EXPECT_FLOAT_EQ(k.h[i], h[i]) << i;
  for (size_t i = 0; i < grads.size(); i++) EXPECT_NEAR(k.arena.grads[i], grads[i], 1e-6 * (1 + std::fabs(grads[i]))) << i;
}

}  // namespace
}  // namespace ll
