// TD-VAE forward, backward and rollouts; see tdvae.h. The backward visits the graph in reverse: the
// decoder and the two KL estimates, then the D blocks from the last sampled state to the first, each
// state's gradient complete before the block that drew it, then the belief scattered back to its
// steps, the LSTM through time and the pre-processing layers.
#include "core/models/tdvae.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <string>

#include "core/io/binary_data.h"
#include "core/nn/losses.h"

namespace ll {

Status TdVaeConfig::validate() const {
  auto in = [](const char* name, int v, int lo, int hi) -> Status {
    if (v < lo || v > hi)
      return Status::error(std::string("tdvae: ") + name + " = " + std::to_string(v) + " is out of range [" +
                           std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return Status();
  };
  for (Status s :
       {in("frames", frames, 2, 1000), in("pixels", pixels, 1, 1 << 16), in("processed", processed, 1, 4096),
        in("belief", belief, 1, 4096), in("z", z, 1, 1024), in("block_hidden", block_hidden, 1, 4096),
        in("decoder_hidden", decoder_hidden, 1, 4096), in("pairs", pairs, 1, 64), in("max_jump", max_jump, 1, 64)})
    if (!s.ok()) return s;
  if (max_jump >= frames)
    return Status::error("tdvae: max_jump = " + std::to_string(max_jump) +
                         " must be below frames = " + std::to_string(frames));
  return Status();
}

void DBlock::add_to(ParamArena& arena, const std::string& name, int in, int hidden, int out) {
  fc1.add_to(arena, name + ".fc1", in, hidden);
  fc2.add_to(arena, name + ".fc2", in, hidden);
  fc_mu.add_to(arena, name + ".fc_mu", hidden, out);
  fc_logsigma.add_to(arena, name + ".fc_logsigma", hidden, out);
}

void DBlock::init(ParamArena& arena, Rng& rng) const {
  for (const Linear* l : {&fc1, &fc2, &fc_mu, &fc_logsigma}) l->init(arena, rng);
}

void DBlockUse::reserve(const DBlock& d, int N) {
  const size_t n = static_cast<size_t>(N);
  for (auto* v : {&in, &din}) v->assign(n * d.in(), 0.0f);
  for (auto* v : {&a, &s, &t, &dt, &da, &ds}) v->assign(n * d.hidden(), 0.0f);
  for (auto* v : {&mu, &ls, &dmu, &dls}) v->assign(n * d.out(), 0.0f);
}

void DBlockUse::forward(const DBlock& d, ParamArena& arena, int N) {
  const size_t nh = static_cast<size_t>(N) * d.hidden();
  d.fc1.forward(arena, a.data(), in.data(), N);
  d.fc2.forward(arena, s.data(), in.data(), N);
  for (size_t i = 0; i < nh; i++) {
    a[i] = std::tanh(a[i]);
    s[i] = stable_sigmoid(s[i]);
    t[i] = a[i] * s[i];
  }
  d.fc_mu.forward(arena, mu.data(), t.data(), N);
  d.fc_logsigma.forward(arena, ls.data(), t.data(), N);
}

void DBlockUse::zero_grads(int N, int out) {
  std::fill(dmu.begin(), dmu.begin() + static_cast<size_t>(N) * out, 0.0f);
  std::fill(dls.begin(), dls.begin() + static_cast<size_t>(N) * out, 0.0f);
}

void DBlockUse::backward(const DBlock& d, ParamArena& arena, int N) {
  const size_t nh = static_cast<size_t>(N) * d.hidden();
  std::fill(dt.begin(), dt.begin() + nh, 0.0f);
  d.fc_mu.backward(arena, dt.data(), dmu.data(), t.data(), N);
  d.fc_logsigma.backward(arena, dt.data(), dls.data(), t.data(), N);
  for (size_t i = 0; i < nh; i++) {
    da[i] = dt[i] * s[i] * (1.0f - a[i] * a[i]);
    ds[i] = dt[i] * a[i] * s[i] * (1.0f - s[i]);
  }
  std::fill(din.begin(), din.begin() + static_cast<size_t>(N) * d.in(), 0.0f);
  d.fc1.backward(arena, din.data(), da.data(), in.data(), N);
  d.fc2.backward(arena, din.data(), ds.data(), in.data(), N);
}

TdVae::TdVae(const TdVaeConfig& config, ParamArena* arena) : config_(config), params_(arena ? *arena : own_) {
  const int X = config.pixels, P = config.processed, Hb = config.belief, Z = config.z, Hd = config.block_hidden,
            J = config.max_jump, D = config.decoder_hidden;
  pre1_.add_to(params_, "process_x.fc1", X, P);
  pre2_.add_to(params_, "process_x.fc2", P, P);
  lstm_.add_to(params_, "lstm", P, Hb);
  pb2_.add_to(params_, "l2_b_to_z", Hb, Hd, Z);
  pb1_.add_to(params_, "l1_b_to_z", Hb + Z, Hd, Z);
  qs2_.add_to(params_, "l2_infer_z", Hb + 2 * Z, Hd, Z);
  qs1_.add_to(params_, "l1_infer_z", Hb + 3 * Z, Hd, Z);
  pt2_.add_to(params_, "l2_transition_z", 2 * Z + J, Hd, Z);
  pt1_.add_to(params_, "l1_transition_z", 3 * Z + J, Hd, Z);
  dec1_.add_to(params_, "z_to_x.fc1", 2 * Z, D);
  dec2_.add_to(params_, "z_to_x.fc2", D, D);
  dec3_.add_to(params_, "z_to_x.fc3", D, X);
  params_.finalize();
}

void TdVae::init(Rng& rng) {
  pre1_.init(params_, rng);
  pre2_.init(params_, rng);
  lstm_.init(params_, rng);
  for (const DBlock* d : {&pb2_, &pb1_, &qs2_, &qs1_, &pt2_, &pt1_}) d->init(params_, rng);
  for (const Linear* l : {&dec1_, &dec2_, &dec3_}) l->init(params_, rng);
}

void TdVae::reserve(int max_batch) {
  if (max_batch <= max_batch_) return;
  max_batch_ = max_batch;
  const size_t B = static_cast<size_t>(max_batch), T = static_cast<size_t>(config_.frames);
  const size_t N = B * config_.pairs, P = config_.processed, Hb = config_.belief, Z = config_.z,
               X = config_.pixels, D = config_.decoder_hidden;
  for (auto* v : {&p1_, &p2_, &xp_, &dp1_, &dp2_, &dxp_}) v->assign(B * T * P, 0.0f);
  for (auto* v : {&bel_, &dbel_}) v->assign(B * T * Hb, 0.0f);
  tape_.assign(Lstm::tape_floats(config_.frames, max_batch, config_.belief), 0.0f);
  scratch_.assign(Lstm::scratch_floats(config_.frames, max_batch, config_.belief), 0.0f);
  t1_.assign(N, 0);
  t2_.assign(N, 0);
  jump_.assign(N, 0);
  eps_.assign(N * 4 * Z, 0.0f);
  ub2_.reserve(pb2_, N);
  ub1_.reserve(pb1_, N);
  us2_.reserve(qs2_, N);
  us1_.reserve(qs1_, N);
  ub2t1_.reserve(pb2_, N);
  ub1t1_.reserve(pb1_, N);
  ut2_.reserve(pt2_, N);
  ut1_.reserve(pt1_, N);
  for (auto* v : {&z2_, &z1_, &dz2_, &dz1_}) v->assign(N * 2 * Z, 0.0f);
  for (auto* v : {&h1_, &h2_, &dh1_, &dh2_}) v->assign(N * D, 0.0f);
  for (auto* v : {&logits_, &probs_, &target_, &dlogits_}) v->assign(N * X, 0.0f);
  for (auto* v : {&pair_bce_, &pair_kl1_, &pair_kl2_}) v->assign(N, 0.0f);
  for (auto* v : {&loss_, &bce_, &kl1_, &kl2_}) v->assign(B, 0.0f);
  for (auto* v : {&sh_, &sc_, &sh_next_}) v->assign(B * Hb, 0.0f);
  state_.assign(B * 2 * Hb, 0.0f);
  for (auto* v : {&sp1_, &sp2_}) v->assign(B * P, 0.0f);
  stape_.assign(Lstm::tape_floats(1, max_batch, config_.belief), 0.0f);
  mb2_.reserve(pb2_, max_batch);
  mb1_.reserve(pb1_, max_batch);
  for (auto* v : {&rh1_, &rh2_}) v->assign(B * D, 0.0f);
  rlogits_.assign(B * X, 0.0f);
}

void TdVae::decode(const float* z, int B, float* probs) {
  assert(B <= max_batch_);
  const size_t nd = static_cast<size_t>(B) * config_.decoder_hidden;
  dec1_.forward(params_, rh1_.data(), z, B);
  tanh_forward(rh1_.data(), rh1_.data(), nd);
  dec2_.forward(params_, rh2_.data(), rh1_.data(), B);
  tanh_forward(rh2_.data(), rh2_.data(), nd);
  dec3_.forward(params_, rlogits_.data(), rh2_.data(), B);
  const size_t n = static_cast<size_t>(B) * config_.pixels;
  for (size_t i = 0; i < n; i++) probs[i] = stable_sigmoid(rlogits_[i]);
}

void TdVae::belief_mean(int t, float* z, float* probs) {
  const int B = B_, Hb = config_.belief, Z = config_.z;
  const float* b = bel_.data() + static_cast<size_t>(t) * B * Hb;
  std::copy_n(b, static_cast<size_t>(B) * Hb, mb2_.in.data());
  mb2_.forward(pb2_, params_, B);
  for (int n = 0; n < B; n++) {
    float* row = mb1_.in.data() + static_cast<size_t>(n) * (Hb + Z);
    std::copy_n(b + static_cast<size_t>(n) * Hb, Hb, row);
    std::copy_n(mb2_.mu.data() + static_cast<size_t>(n) * Z, Z, row + Hb);
  }
  mb1_.forward(pb1_, params_, B);
  for (int n = 0; n < B; n++) {
    std::copy_n(mb1_.mu.data() + static_cast<size_t>(n) * Z, Z, z + static_cast<size_t>(n) * 2 * Z);
    std::copy_n(mb2_.mu.data() + static_cast<size_t>(n) * Z, Z, z + static_cast<size_t>(n) * 2 * Z + Z);
  }
  decode(z, B, probs);
}

void TdVae::belief(const float* x, int B, int T) {
  const int X = config_.pixels, P = config_.processed;
  const size_t rows = static_cast<size_t>(B) * T;
  // Pre-processing of each sequence's first T frames: rows b * T + t.
  for (int b = 0; b < B; b++)
    pre1_.forward(params_, p1_.data() + static_cast<size_t>(b) * T * P,
                  x + static_cast<size_t>(b) * config_.frames * X, T);
  relu_forward(p1_.data(), p1_.data(), rows * P);
  pre2_.forward(params_, p2_.data(), p1_.data(), static_cast<int>(rows));
  relu_forward(p2_.data(), p2_.data(), rows * P);
  // To the LSTM's time-major layout [T, B, P].
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      std::copy_n(p2_.data() + (static_cast<size_t>(b) * T + t) * P, P,
                  xp_.data() + (static_cast<size_t>(t) * B + b) * P);
  lstm_.forward(params_, bel_.data(), tape_.data(), xp_.data(), nullptr, nullptr, T, B);
}

namespace {
// z = mu + exp(logsigma) * eps, written into column `col` of rows of width `width`.
void sample_into(float* z, int width, int col, const DBlockUse& u, const float* eps, int eps_stride, int N,
                 int Z) {
  for (int n = 0; n < N; n++)
    for (int j = 0; j < Z; j++) {
      const size_t k = static_cast<size_t>(n) * Z + j;
      z[static_cast<size_t>(n) * width + col + j] =
          u.mu[k] + std::exp(u.ls[k]) * eps[static_cast<size_t>(n) * eps_stride + j];
    }
}
// Copies src [N, w] into columns [col, col + w) of dst rows of width `width`.
void put(std::vector<float>& dst, int width, int col, const float* src, int w, int N) {
  for (int n = 0; n < N; n++)
    std::copy_n(src + static_cast<size_t>(n) * w, w, dst.data() + static_cast<size_t>(n) * width + col);
}
void put_one_hot(std::vector<float>& dst, int width, int col, const int32_t* jump, int J, int N) {
  for (int n = 0; n < N; n++) {
    float* row = dst.data() + static_cast<size_t>(n) * width + col;
    std::fill(row, row + J, 0.0f);
    row[jump[n] - 1] = 1.0f;
  }
}
// Adds columns [col, col + w) of src rows of width `width` into dst [N, w].
void take(float* dst, int w, const std::vector<float>& src, int width, int col, int N) {
  for (int n = 0; n < N; n++)
    for (int j = 0; j < w; j++)
      dst[static_cast<size_t>(n) * w + j] += src[static_cast<size_t>(n) * width + col + j];
}
}  // namespace

void TdVae::forward(const float* x, int B, Rng& rng, ZMode mode) {
  assert(B <= max_batch_);
  const int N = B * config_.pairs, Z = config_.z;
  for (int n = 0; n < N; n++) {
    const int dt = 1 + static_cast<int>(rng.below(static_cast<uint32_t>(config_.max_jump)));
    t1_[n] = static_cast<int32_t>(rng.below(static_cast<uint32_t>(config_.frames - dt)));
    t2_[n] = t1_[n] + dt;
  }
  const size_t ne = static_cast<size_t>(N) * 4 * Z;
  if (mode == ZMode::kSample)
    for (size_t i = 0; i < ne; i++) eps_[i] = rng.normal();
  else
    std::fill(eps_.begin(), eps_.begin() + ne, 0.0f);
  B_ = B;
  forward_core(x, B);
}

void TdVae::forward_with(const float* x, int B, const int32_t* t1, const int32_t* t2, const float* eps) {
  assert(B <= max_batch_);
  const int N = B * config_.pairs;
  std::copy_n(t1, N, t1_.data());
  std::copy_n(t2, N, t2_.data());
  std::copy_n(eps, static_cast<size_t>(N) * 4 * config_.z, eps_.data());
  B_ = B;
  forward_core(x, B);
}

void TdVae::forward_core(const float* x, int B) {
  x_ = x;
  const int T = config_.frames, X = config_.pixels, Hb = config_.belief, Z = config_.z, J = config_.max_jump,
            P = config_.pairs, N = B * P, D = config_.decoder_hidden;
  belief(x, B, T);
  int32_t* jump = jump_.data();  // the pairs' jump sizes
  for (int n = 0; n < N; n++) jump[n] = t2_[n] - t1_[n];
  auto bel_at = [&](int t, int n) { return bel_.data() + (static_cast<size_t>(t) * B + n / P) * Hb; };
  const float* eps = eps_.data();
  // z_t2 from p_B(. | b_t2): layer 2, then layer 1 given it.
  for (int n = 0; n < N; n++) std::copy_n(bel_at(t2_[n], n), Hb, ub2_.in.data() + static_cast<size_t>(n) * Hb);
  ub2_.forward(pb2_, params_, N);
  sample_into(z2_.data(), 2 * Z, Z, ub2_, eps + 0 * Z, 4 * Z, N, Z);
  for (int n = 0; n < N; n++) {
    float* row = ub1_.in.data() + static_cast<size_t>(n) * (Hb + Z);
    std::copy_n(bel_at(t2_[n], n), Hb, row);
    std::copy_n(z2_.data() + static_cast<size_t>(n) * 2 * Z + Z, Z, row + Hb);
  }
  ub1_.forward(pb1_, params_, N);
  sample_into(z2_.data(), 2 * Z, 0, ub1_, eps + 1 * Z, 4 * Z, N, Z);
  // z_t1 from q_S(. | z_t2, b_t1).
  for (int n = 0; n < N; n++)
    std::copy_n(bel_at(t1_[n], n), Hb, us2_.in.data() + static_cast<size_t>(n) * (Hb + 2 * Z));
  put(us2_.in, Hb + 2 * Z, Hb, z2_.data(), 2 * Z, N);
  us2_.forward(qs2_, params_, N);
  sample_into(z1_.data(), 2 * Z, Z, us2_, eps + 2 * Z, 4 * Z, N, Z);
  for (int n = 0; n < N; n++) {
    float* row = us1_.in.data() + static_cast<size_t>(n) * (Hb + 3 * Z);
    std::copy_n(bel_at(t1_[n], n), Hb, row);
    std::copy_n(z2_.data() + static_cast<size_t>(n) * 2 * Z, 2 * Z, row + Hb);
    std::copy_n(z1_.data() + static_cast<size_t>(n) * 2 * Z + Z, Z, row + Hb + 2 * Z);
  }
  us1_.forward(qs1_, params_, N);
  sample_into(z1_.data(), 2 * Z, 0, us1_, eps + 3 * Z, 4 * Z, N, Z);
  // p_B(. | b_t1) at z_t1.
  for (int n = 0; n < N; n++) std::copy_n(bel_at(t1_[n], n), Hb, ub2t1_.in.data() + static_cast<size_t>(n) * Hb);
  ub2t1_.forward(pb2_, params_, N);
  for (int n = 0; n < N; n++) {
    float* row = ub1t1_.in.data() + static_cast<size_t>(n) * (Hb + Z);
    std::copy_n(bel_at(t1_[n], n), Hb, row);
    std::copy_n(z1_.data() + static_cast<size_t>(n) * 2 * Z + Z, Z, row + Hb);
  }
  ub1t1_.forward(pb1_, params_, N);
  // p_T(. | z_t1, dt) at z_t2.
  put(ut2_.in, 2 * Z + J, 0, z1_.data(), 2 * Z, N);
  put_one_hot(ut2_.in, 2 * Z + J, 2 * Z, jump, J, N);
  ut2_.forward(pt2_, params_, N);
  put(ut1_.in, 3 * Z + J, 0, z1_.data(), 2 * Z, N);
  for (int n = 0; n < N; n++)
    std::copy_n(z2_.data() + static_cast<size_t>(n) * 2 * Z + Z, Z,
                ut1_.in.data() + static_cast<size_t>(n) * (3 * Z + J) + 2 * Z);
  put_one_hot(ut1_.in, 3 * Z + J, 3 * Z, jump, J, N);
  ut1_.forward(pt1_, params_, N);
  // p_D(x_t2 | z_t2).
  dec1_.forward(params_, h1_.data(), z2_.data(), N);
  tanh_forward(h1_.data(), h1_.data(), static_cast<size_t>(N) * D);
  dec2_.forward(params_, h2_.data(), h1_.data(), N);
  tanh_forward(h2_.data(), h2_.data(), static_cast<size_t>(N) * D);
  dec3_.forward(params_, logits_.data(), h2_.data(), N);
  for (int n = 0; n < N; n++)
    std::copy_n(x + (static_cast<size_t>(n / P) * T + t2_[n]) * X, X, target_.data() + static_cast<size_t>(n) * X);
  bce_logits_forward(pair_bce_.data(), probs_.data(), logits_.data(), target_.data(), N, X);
  // The two KL estimates: log q - log p at the sampled states, layer by layer; (z - mu_q) / sigma_q is
  // eps by construction.
  auto log_ratio = [&](const DBlockUse& q, const DBlockUse& p, const float* z, int col, int e, int n) {
    double sum = 0.0;
    for (int j = 0; j < Z; j++) {
      const size_t k = static_cast<size_t>(n) * Z + j;
      const double ej = eps[static_cast<size_t>(n) * 4 * Z + e * Z + j];
      const double r = (z[static_cast<size_t>(n) * 2 * Z + col + j] - static_cast<double>(p.mu[k])) /
                       std::exp(static_cast<double>(p.ls[k]));
      sum += -0.5 * ej * ej - q.ls[k] + 0.5 * r * r + p.ls[k];
    }
    return sum;
  };
  for (int n = 0; n < N; n++) {
    pair_kl1_[n] = static_cast<float>(log_ratio(us2_, ub2t1_, z1_.data(), Z, 2, n) +
                                      log_ratio(us1_, ub1t1_, z1_.data(), 0, 3, n));
    pair_kl2_[n] = static_cast<float>(log_ratio(ub2_, ut2_, z2_.data(), Z, 0, n) +
                                      log_ratio(ub1_, ut1_, z2_.data(), 0, 1, n));
  }
  for (int b = 0; b < B; b++) {
    double sb = 0.0, s1 = 0.0, s2 = 0.0;
    for (int p = 0; p < P; p++) {
      sb += pair_bce_[b * P + p];
      s1 += pair_kl1_[b * P + p];
      s2 += pair_kl2_[b * P + p];
    }
    bce_[b] = static_cast<float>(sb / P);
    kl1_[b] = static_cast<float>(s1 / P);
    kl2_[b] = static_cast<float>(s2 / P);
    loss_[b] = static_cast<float>((sb + s1 + s2) / P);
  }
}

void TdVae::backward(float scale) {
  const int B = B_, T = config_.frames, X = config_.pixels, Hb = config_.belief, Z = config_.z, P = config_.pairs,
            N = B * P, D = config_.decoder_hidden, PP = config_.processed;
  const float w = scale / static_cast<float>(P);  // each pair's share of its sequence's loss
  const float* eps = eps_.data();
  std::fill(dz2_.begin(), dz2_.begin() + static_cast<size_t>(N) * 2 * Z, 0.0f);
  std::fill(dz1_.begin(), dz1_.begin() + static_cast<size_t>(N) * 2 * Z, 0.0f);
  for (DBlockUse* u : {&ub2_, &ub1_, &us2_, &us1_, &ub2t1_, &ub1t1_, &ut2_, &ut1_}) u->zero_grads(N, Z);
  // Decoder.
  const size_t nd = static_cast<size_t>(N) * D;
  std::fill(dlogits_.begin(), dlogits_.begin() + static_cast<size_t>(N) * X, 0.0f);
  bce_logits_backward(dlogits_.data(), probs_.data(), target_.data(), w, N, X);
  std::fill(dh2_.begin(), dh2_.begin() + nd, 0.0f);
  dec3_.backward(params_, dh2_.data(), dlogits_.data(), h2_.data(), N);
  for (size_t i = 0; i < nd; i++) dh2_[i] *= 1.0f - h2_[i] * h2_[i];
  std::fill(dh1_.begin(), dh1_.begin() + nd, 0.0f);
  dec2_.backward(params_, dh1_.data(), dh2_.data(), h1_.data(), N);
  for (size_t i = 0; i < nd; i++) dh1_[i] *= 1.0f - h1_[i] * h1_[i];
  dec1_.backward(params_, dz2_.data(), dh1_.data(), z2_.data(), N);
  // The KL estimates: 0.5 r^2 + ls_p - ls_q (- eps^2 / 2), r = (z - mu_p) / sigma_p.
  auto ratio_grad = [&](DBlockUse& q, DBlockUse& p, const std::vector<float>& z, std::vector<float>& dz, int col,
                        int n) {
    for (int j = 0; j < Z; j++) {
      const size_t k = static_cast<size_t>(n) * Z + j, zk = static_cast<size_t>(n) * 2 * Z + col + j;
      const float inv = std::exp(-p.ls[k]);
      const float r = (z[zk] - p.mu[k]) * inv;
      dz[zk] += w * r * inv;
      p.dmu[k] -= w * r * inv;
      p.dls[k] += w * (1.0f - r * r);
      q.dls[k] -= w;
    }
  };
  for (int n = 0; n < N; n++) {
    ratio_grad(us2_, ub2t1_, z1_, dz1_, Z, n);
    ratio_grad(us1_, ub1t1_, z1_, dz1_, 0, n);
    ratio_grad(ub2_, ut2_, z2_, dz2_, Z, n);
    ratio_grad(ub1_, ut1_, z2_, dz2_, 0, n);
  }
  // dbel_ collects the belief's gradient at every step.
  std::fill(dbel_.begin(), dbel_.begin() + static_cast<size_t>(T) * B * Hb, 0.0f);
  auto dbel_at = [&](int t, int n) { return dbel_.data() + (static_cast<size_t>(t) * B + n / P) * Hb; };
  auto add_belief = [&](const DBlockUse& u, int width, const std::vector<int32_t>& steps) {
    for (int n = 0; n < N; n++) {
      float* d = dbel_at(steps[n], n);
      const float* s = u.din.data() + static_cast<size_t>(n) * width;
      for (int j = 0; j < Hb; j++) d[j] += s[j];
    }
  };
  // A sampled state's gradient reaches its block: dmu += dz, dls += dz * sigma * eps.
  auto through_sample = [&](DBlockUse& u, const std::vector<float>& dz, int col, int e) {
    for (int n = 0; n < N; n++)
      for (int j = 0; j < Z; j++) {
        const size_t k = static_cast<size_t>(n) * Z + j;
        const float g = dz[static_cast<size_t>(n) * 2 * Z + col + j];
        u.dmu[k] += g;
        u.dls[k] += g * std::exp(u.ls[k]) * eps[static_cast<size_t>(n) * 4 * Z + e * Z + j];
      }
  };
  // p_T: inputs [z_t1, z_t2^2, e_dt] and [z_t1, e_dt].
  ut1_.backward(pt1_, params_, N);
  take(dz1_.data(), 2 * Z, ut1_.din, 3 * Z + config_.max_jump, 0, N);
  for (int n = 0; n < N; n++)
    for (int j = 0; j < Z; j++)
      dz2_[static_cast<size_t>(n) * 2 * Z + Z + j] +=
          ut1_.din[static_cast<size_t>(n) * (3 * Z + config_.max_jump) + 2 * Z + j];
  ut2_.backward(pt2_, params_, N);
  take(dz1_.data(), 2 * Z, ut2_.din, 2 * Z + config_.max_jump, 0, N);
  // p_B at t1: inputs [b_t1, z_t1^2] and b_t1.
  ub1t1_.backward(pb1_, params_, N);
  add_belief(ub1t1_, Hb + Z, t1_);
  for (int n = 0; n < N; n++)
    for (int j = 0; j < Z; j++)
      dz1_[static_cast<size_t>(n) * 2 * Z + Z + j] += ub1t1_.din[static_cast<size_t>(n) * (Hb + Z) + Hb + j];
  ub2t1_.backward(pb2_, params_, N);
  add_belief(ub2t1_, Hb, t1_);
  // q_S layer 1 drew z_t1^1 from [b_t1, z_t2, z_t1^2].
  through_sample(us1_, dz1_, 0, 3);
  us1_.backward(qs1_, params_, N);
  add_belief(us1_, Hb + 3 * Z, t1_);
  take(dz2_.data(), 2 * Z, us1_.din, Hb + 3 * Z, Hb, N);
  for (int n = 0; n < N; n++)
    for (int j = 0; j < Z; j++)
      dz1_[static_cast<size_t>(n) * 2 * Z + Z + j] +=
          us1_.din[static_cast<size_t>(n) * (Hb + 3 * Z) + Hb + 2 * Z + j];
  // q_S layer 2 drew z_t1^2 from [b_t1, z_t2].
  through_sample(us2_, dz1_, Z, 2);
  us2_.backward(qs2_, params_, N);
  add_belief(us2_, Hb + 2 * Z, t1_);
  take(dz2_.data(), 2 * Z, us2_.din, Hb + 2 * Z, Hb, N);
  // p_B layer 1 drew z_t2^1 from [b_t2, z_t2^2].
  through_sample(ub1_, dz2_, 0, 1);
  ub1_.backward(pb1_, params_, N);
  add_belief(ub1_, Hb + Z, t2_);
  for (int n = 0; n < N; n++)
    for (int j = 0; j < Z; j++)
      dz2_[static_cast<size_t>(n) * 2 * Z + Z + j] += ub1_.din[static_cast<size_t>(n) * (Hb + Z) + Hb + j];
  // p_B layer 2 drew z_t2^2 from b_t2.
  through_sample(ub2_, dz2_, Z, 0);
  ub2_.backward(pb2_, params_, N);
  add_belief(ub2_, Hb, t2_);
  // The belief through time, then the pre-processing.
  const size_t rows = static_cast<size_t>(B) * T;
  std::fill(dxp_.begin(), dxp_.begin() + rows * PP, 0.0f);
  lstm_.backward(params_, dxp_.data(), nullptr, nullptr, scratch_.data(), dbel_.data(), nullptr, bel_.data(),
                 tape_.data(), xp_.data(), nullptr, nullptr, T, B);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      std::copy_n(dxp_.data() + (static_cast<size_t>(t) * B + b) * PP, PP,
                  dp2_.data() + (static_cast<size_t>(b) * T + t) * PP);
  for (size_t i = 0; i < rows * PP; i++)
    if (p2_[i] <= 0.0f) dp2_[i] = 0.0f;
  std::fill(dp1_.begin(), dp1_.begin() + rows * PP, 0.0f);
  pre2_.backward(params_, dp1_.data(), dp2_.data(), p1_.data(), static_cast<int>(rows));
  for (size_t i = 0; i < rows * PP; i++)
    if (p1_[i] <= 0.0f) dp1_[i] = 0.0f;
  for (int b = 0; b < B; b++)
    pre1_.backward(params_, nullptr, dp1_.data() + static_cast<size_t>(b) * T * PP,
                   x_ + static_cast<size_t>(b) * T * X, T);
}

void TdVae::reset_state(int B) {
  assert(B <= max_batch_);
  B_step_ = B;
  const size_t n = static_cast<size_t>(B) * config_.belief;
  std::fill(sh_.begin(), sh_.begin() + n, 0.0f);
  std::fill(sc_.begin(), sc_.begin() + n, 0.0f);
  std::fill(state_.begin(), state_.begin() + 2 * n, 0.0f);
}

void TdVae::step(const float* frames, int B) {
  assert(B == B_step_);
  const int Hb = config_.belief;
  const size_t np = static_cast<size_t>(B) * config_.processed;
  pre1_.forward(params_, sp1_.data(), frames, B);
  relu_forward(sp1_.data(), sp1_.data(), np);
  pre2_.forward(params_, sp2_.data(), sp1_.data(), B);
  relu_forward(sp2_.data(), sp2_.data(), np);
  lstm_.forward(params_, sh_next_.data(), stape_.data(), sp2_.data(), sh_.data(), sc_.data(), 1, B);
  const size_t n = static_cast<size_t>(B) * Hb;
  std::copy_n(sh_next_.data(), n, sh_.data());
  std::copy_n(lstm_.cell(stape_.data(), 1, B, 0), n, sc_.data());
  for (int b = 0; b < B; b++) {
    std::copy_n(sh_.data() + static_cast<size_t>(b) * Hb, Hb, state_.data() + static_cast<size_t>(b) * 2 * Hb);
    std::copy_n(sc_.data() + static_cast<size_t>(b) * Hb, Hb,
                state_.data() + static_cast<size_t>(b) * 2 * Hb + Hb);
  }
}

void TdVae::rollout_from_state(int steps, int jump, Rng& rng, float* out) {
  const int B = B_step_, Hb = config_.belief, Z = config_.z, J = config_.max_jump, X = config_.pixels;
  assert(jump >= 1 && jump <= J);
  // Rows [0, B) of the training forward's buffers; eps, z and next are [B, Z], [B, 2Z], [B, 2Z].
  float* eps = eps_.data();
  float* z = z2_.data();
  float* next = z1_.data();
  auto draw = [&](const DBlockUse& u, float* dst, int col) {
    for (int i = 0; i < B * Z; i++) eps[i] = rng.normal();
    sample_into(dst, 2 * Z, col, u, eps, Z, B, Z);
  };
  std::copy_n(sh_.data(), static_cast<size_t>(B) * Hb, ub2_.in.data());
  ub2_.forward(pb2_, params_, B);
  draw(ub2_, z, Z);
  for (int b = 0; b < B; b++) {
    float* row = ub1_.in.data() + static_cast<size_t>(b) * (Hb + Z);
    std::copy_n(sh_.data() + static_cast<size_t>(b) * Hb, Hb, row);
    std::copy_n(z + static_cast<size_t>(b) * 2 * Z + Z, Z, row + Hb);
  }
  ub1_.forward(pb1_, params_, B);
  draw(ub1_, z, 0);
  for (int b = 0; b < B; b++) jump_[b] = jump;
  for (int s = 0; s < steps; s++) {
    put(ut2_.in, 2 * Z + J, 0, z, 2 * Z, B);
    put_one_hot(ut2_.in, 2 * Z + J, 2 * Z, jump_.data(), J, B);
    ut2_.forward(pt2_, params_, B);
    draw(ut2_, next, Z);
    put(ut1_.in, 3 * Z + J, 0, z, 2 * Z, B);
    for (int b = 0; b < B; b++)
      std::copy_n(next + static_cast<size_t>(b) * 2 * Z + Z, Z,
                  ut1_.in.data() + static_cast<size_t>(b) * (3 * Z + J) + 2 * Z);
    put_one_hot(ut1_.in, 3 * Z + J, 3 * Z, jump_.data(), J, B);
    ut1_.forward(pt1_, params_, B);
    draw(ut1_, next, 0);
    std::copy_n(next, static_cast<size_t>(B) * 2 * Z, z);
    decode(z, B, probs_.data());
    for (int b = 0; b < B; b++)
      std::copy_n(probs_.data() + static_cast<size_t>(b) * X, X, out + (static_cast<size_t>(b) * steps + s) * X);
  }
}

void TdVae::rollout(const float* x, int B, int context, int steps, int jump, Rng& rng, float* out) {
  assert(B <= max_batch_ && context >= 1 && context <= config_.frames);
  reset_state(B);
  const size_t X = static_cast<size_t>(config_.pixels);
  for (int t = 0; t < context; t++) {
    for (int b = 0; b < B; b++)
      std::copy_n(x + (static_cast<size_t>(b) * config_.frames + t) * X, X, target_.data() + b * X);
    step(target_.data(), B);
  }
  rollout_from_state(steps, jump, rng, out);
}

TdVaeConfig TdVaeModel::net_config(const ModelConfig& c) {
  TdVaeConfig t;
  t.frames = static_cast<int>(c.get("frames"));
  t.pixels = c.input;
  t.processed = static_cast<int>(c.get("processed"));
  t.belief = static_cast<int>(c.get("belief"));
  t.z = static_cast<int>(c.get("z_size"));
  t.block_hidden = static_cast<int>(c.get("block_hidden"));
  t.decoder_hidden = static_cast<int>(c.get("decoder_hidden"));
  t.pairs = static_cast<int>(c.get("pairs"));
  t.max_jump = static_cast<int>(c.get("max_jump"));
  return t;
}

TdVaeModel::TdVaeModel(const ModelConfig& config) : net_(net_config(config), &params_) {
  config_ = config;
  while ((side_ + 1) * (side_ + 1) <= config.input) side_++;
}

bool TdVaeModel::infer(const std::map<std::string, std::vector<int64_t>>& shapes, ModelConfig* out) {
  auto get = [&](const char* name, size_t dims) -> const std::vector<int64_t>* {
    auto it = shapes.find(name);
    return it != shapes.end() && it->second.size() == dims ? &it->second : nullptr;
  };
  const auto* pre = get("process_x.fc1.weight", 2);       // [P, X]
  const auto* hh = get("lstm.weight_hh_l0", 2);           // [4 Hb, Hb]
  const auto* mu = get("l2_b_to_z.fc_mu.weight", 2);      // [Z, Hd]
  const auto* tr = get("l2_transition_z.fc1.weight", 2);  // [Hd, 2 Z + J]
  const auto* dec = get("z_to_x.fc1.weight", 2);          // [D, 2 Z]
  if (!pre || !hh || !mu || !tr || !dec) return false;
  out->kind = "tdvae";
  out->input = static_cast<int>((*pre)[1]);
  out->hyper["processed"] = static_cast<double>((*pre)[0]);
  out->hyper["belief"] = static_cast<double>((*hh)[1]);
  out->hyper["z_size"] = static_cast<double>((*mu)[0]);
  out->hyper["block_hidden"] = static_cast<double>((*mu)[1]);
  out->hyper["max_jump"] = static_cast<double>((*tr)[1] - 2 * (*mu)[0]);
  out->hyper["decoder_hidden"] = static_cast<double>((*dec)[0]);
  return true;
}

void TdVaeModel::reserve(int max_batch) {
  if (max_batch <= max_batch_) return;
  max_batch_ = max_batch;
  net_.reserve(max_batch);
  const size_t B = static_cast<size_t>(max_batch), X = static_cast<size_t>(config_.input);
  seq_.assign(B * net_.config().frames * X, 0.0f);
  recon_.assign(B * X, 0.0f);
  code_.assign(B * 2 * net_.config().z, 0.0f);
  dir_.assign(B, 0);
}

uint64_t TdVaeModel::activation_floats(int Bi) const {
  const TdVaeConfig& c = net_.config();
  const uint64_t B = static_cast<uint64_t>(Bi), T = c.frames, P = c.processed, Hb = c.belief, Z = c.z,
                 Hd = c.block_hidden, D = c.decoder_hidden, X = c.pixels, N = B * c.pairs, J = c.max_jump;
  // Each D block use: input and its gradient (at most Hb + 3Z + J wide), 6 hidden-wide, 4 Z-wide.
  const uint64_t use = 2 * (Hb + 3 * Z + J) + 6 * Hd + 4 * Z;
  return 6 * B * T * P + 2 * B * T * Hb + 10 * T * B * Hb + 2 * B * Hb  // belief path, LSTM tape, scratch
         + 3 * N + 4 * N * Z + 8 * N * use + 8 * N * Z                  // pairs, noise, D blocks, states
         + 4 * N * D + 4 * N * X + 3 * N + 4 * B                        // decoder, losses
         + 2 * B * use + 2 * B * D + B * X                              // belief_mean, decode
         + B * T * X + B * X + 2 * B * Z + B;                           // this kind's buffers
}

void TdVaeModel::rollout(int steps, int jump, float* out, int B, Rng& rng) {
  assert(B == net_.state_batch());
  net_.rollout_from_state(steps, jump, rng, out);
}

void TdVaeModel::forward(const float* input, const float*, int B, Rng& rng, ZMode mode) {
  assert(B <= max_batch_);
  const TdVaeConfig& c = net_.config();
  const size_t X = static_cast<size_t>(config_.input);
  for (int b = 0; b < B; b++) {
    dir_[b] = rng.below(2) == 0 ? -1 : 1;
    moving_sequence(input + b * X, side_, side_, c.frames, dir_[b], rng, seq_.data() + b * c.frames * X);
  }
  net_.forward(seq_.data(), B, rng, mode);
  net_.belief_mean(0, code_.data(), recon_.data());
}

}  // namespace ll
