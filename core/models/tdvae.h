// The temporal-difference VAE (Gregor et al., "Temporal Difference Variational Auto-Encoder", ICLR
// 2019) at the scale of the public reimplementations (xqding/TD-VAE, whose module and tensor names
// are kept): a state-space model of binary frame sequences that keeps a belief b_t over the frames
// seen so far and predicts the latent state several steps ahead in one jump.
//   pre-process   p_t = relu(fc2(relu(fc1(x_t))))                    process_x.fc1, .fc2: X -> P -> P
//   belief        b_t = LSTM(b_{t-1}, p_t)                              lstm (nn.LSTM, P -> Hb)
//   D block       D(in) = (mu, logsigma) of a diagonal Gaussian: t = tanh(fc1(in)) * sigmoid(fc2(in)),
//                 mu = fc_mu(t), logsigma = fc_logsigma(t)              (the "D" of the paper's appendix)
//   p_B(z | b)    layer 2 first: z^2 ~ D(b) (l2_b_to_z), then z^1 ~ D([b, z^2]) (l1_b_to_z)
//   q_S(z_t1 | z_t2, b_t1)  z^2 ~ D([b_t1, z_t2]) (l2_infer_z), z^1 ~ D([b_t1, z_t2, z^2]) (l1_infer_z)
//   p_T(z_t2 | z_t1, dt)    z^2 ~ D([z_t1, e_dt]) (l2_transition_z), z^1 ~ D([z_t1, z^2, e_dt])
//                 (l1_transition_z), e_dt the one-hot jump size in 1..max_jump (the reimplementation
//                 has no jump input; with jumps of 1 to 4 steps mixed in training the transition
//                 could then not know how far to move, and the page's jump selector needs it)
//   p_D(x | z)    Bernoulli logits of z_to_x: [z^1, z^2] -> tanh(fc1) -> tanh(fc2) -> fc3, 2Z -> D -> D -> X
// A state z is [z^1, z^2] (2Z). Loss of one pair (t1, t2), t2 - t1 = dt in 1..max_jump, with z_t2
// sampled from p_B(. | b_t2) and z_t1 from q_S (the paper's equation 8, negated, one sample):
//   bce   = -log p_D(x_t2 | z_t2)
//   kl_t1 = log q_S(z_t1 | z_t2, b_t1) - log p_B(z_t1 | b_t1)
//   kl_t2 = log p_B(z_t2 | b_t2) - log p_T(z_t2 | z_t1, dt)
// (Gaussian log-densities in full; the 2 pi constants cancel within each difference.) Each sequence
// draws `pairs` pairs (dt uniform in 1..max_jump, then t1 uniform in 0..frames-1-dt) and its loss is
// the mean over them. TdVae takes sequences [B, frames, X]; TdVaeModel below is the registry kind
// "tdvae", which takes digit images and makes each a moving-MNIST sequence (core/io/binary_data.h).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/base/rng.h"
#include "core/base/status.h"
#include "core/models/model.h"
#include "core/nn/arena.h"
#include "core/nn/layers.h"
#include "core/nn/lstm.h"

namespace ll {

struct TdVaeConfig {
  int frames = 20;           // frames per sequence
  int pixels = 784;          // X: pixels per frame
  int processed = 200;       // P: the pre-processing layers' width
  int belief = 50;           // Hb: LSTM units
  int z = 8;                 // Z: units per stochastic layer (two layers)
  int block_hidden = 50;     // the D blocks' hidden width
  int decoder_hidden = 200;  // D: the decoder's hidden width
  int pairs = 4;             // (t1, t2) pairs per sequence and step
  int max_jump = 4;          // t2 - t1 in 1..max_jump
  Status validate() const;
};

// The D operation: a diagonal Gaussian from its input.
struct DBlock {
  Linear fc1, fc2, fc_mu, fc_logsigma;
  void add_to(ParamArena& arena, const std::string& name, int in, int hidden, int out);
  void init(ParamArena& arena, Rng& rng) const;
  int in() const { return fc1.C; }
  int hidden() const { return fc1.OC; }
  int out() const { return fc_mu.OC; }
};

// One use of a D block on N rows: its input, activations, outputs and their gradients.
struct DBlockUse {
  std::vector<float> in, a, s, t, mu, ls;  // [N, in], [N, hidden] x3, [N, out] x2
  std::vector<float> dmu, dls, dt, da, ds, din;
  void reserve(const DBlock& d, int N);
  void forward(const DBlock& d, ParamArena& arena, int N);
  // Accumulates the weight gradients from dmu, dls; din = d loss / d in (overwritten).
  void backward(const DBlock& d, ParamArena& arena, int N);
  void zero_grads(int N, int out);
};

class TdVae {
 public:
  explicit TdVae(const TdVaeConfig& config) : TdVae(config, nullptr) {}
  // Registers its tensors in `arena` (a Model's; finalised here) instead of an arena of its own.
  TdVae(const TdVaeConfig& config, ParamArena* arena);
  TdVae(const TdVae&) = delete;
  TdVae& operator=(const TdVae&) = delete;
  const TdVaeConfig& config() const { return config_; }
  ParamArena& params() { return params_; }
  const ParamArena& params() const { return params_; }
  void reserve(int max_batch);
  int max_batch() const { return max_batch_; }
  // PyTorch's default init of every layer (Linear and LSTM).
  void init(Rng& rng);

  // x [B, frames, X] in [0, 1] (binary frames). Draws the pairs and, with kSample, the noise from rng
  // (kMean: every z is its distribution's mean).
  void forward(const float* x, int B, Rng& rng, ZMode mode);
  // The same with given pairs t1, t2 [B * pairs] (row n = b * pairs + p) and noise eps [B * pairs, 4, Z]
  // (the four Gaussian draws in order: z_t2 layer 2, z_t2 layer 1, z_t1 layer 2, z_t1 layer 1).
  void forward_with(const float* x, int B, const int32_t* t1, const int32_t* t2, const float* eps);
  // Accumulates scale * d(sum_b loss_b)/d(params).
  void backward(float scale);
  // Per sequence [B]: the loss (bce + kl_t1 + kl_t2) and its terms, each the mean over its pairs.
  const float* loss() const { return loss_.data(); }
  const float* bce() const { return bce_.data(); }
  const float* kl_t1() const { return kl1_.data(); }
  const float* kl_t2() const { return kl2_.data(); }

  // Rollouts: the belief over `context` frames of x [B, frames, X] (only the first `context` read),
  // a state drawn from p_B at the last one, then `steps` transitions of `jump` frames each, each state
  // decoded: out [B, steps, X] pixel probabilities. eps from rng (temperature 1).
  void rollout(const float* x, int B, int context, int steps, int jump, Rng& rng, float* out);
  // One frame at a time (the page's belief, the SequenceStepper capability): reset_state(B) starts B
  // sequences, step() reads one frame [B, X] of each, state() is [B, 2 Hb] (the LSTM's h, then c, of
  // each sequence), rollout_from_state() draws `steps` states `jump` frames apart from the belief and
  // decodes them: out [B, steps, X]. These use their own buffers for the belief and the training
  // forward's for the rest (a rollout between forward and backward would spoil the backward).
  void reset_state(int B);
  void step(const float* frames, int B);
  const float* state() const { return state_.data(); }
  int state_batch() const { return B_step_; }
  // The belief b [frames, B, Hb] of the last forward.
  const float* belief() const { return bel_.data(); }
  void rollout_from_state(int steps, int jump, Rng& rng, float* out);

  // After a forward of B sequences: the mean state of p_B given the belief after frame t (layer 2's mean,
  // then layer 1's given it), z [B, 2Z], and its decoded frame probs [B, X]. Its own buffers: the
  // forward's stay as backward needs them.
  void belief_mean(int t, float* z, float* probs);
  // Decoder probabilities of states z [B, 2Z] (B <= max_batch; its own buffers).
  void decode(const float* z, int B, float* probs);

 private:
  int rows() const { return B_ * config_.pairs; }
  void forward_core(const float* x, int B);  // after t1_, t2_, eps_ are set
  // The belief b [frames, B, Hb] of x [B, frames, X] over its first `T` frames.
  void belief(const float* x, int B, int T);

  TdVaeConfig config_;
  ParamArena own_;
  ParamArena& params_;  // own_ or the arena given to the constructor
  Linear pre1_, pre2_;
  Lstm lstm_;
  DBlock pb2_, pb1_, qs2_, qs1_, pt2_, pt1_;  // p_B, q_S, p_T: layer 2, layer 1
  Linear dec1_, dec2_, dec3_;
  int max_batch_ = 0, B_ = 0;
  const float* x_ = nullptr;
  // Belief path, B * frames rows: pre-activations and activations (batch-major rows b * frames + t),
  // the LSTM's input and output (time-major [frames, B, *]), its tape and scratch.
  std::vector<float> p1_, p2_, xp_, bel_, tape_, scratch_;
  std::vector<float> dp1_, dp2_, dxp_, dbel_;
  // Pairs and noise, N = B * pairs rows.
  std::vector<int32_t> t1_, t2_, jump_;
  std::vector<float> eps_;  // [N, 4, Z]
  // D-block uses: p_B at t2 (layers 2, 1), q_S (2, 1), p_B at t1 (2, 1), p_T (2, 1).
  DBlockUse ub2_, ub1_, us2_, us1_, ub2t1_, ub1t1_, ut2_, ut1_;
  std::vector<float> z2_, z1_;  // [N, 2Z] each: [z^1, z^2] at t2 and t1
  std::vector<float> dz2_, dz1_;
  std::vector<float> h1_, h2_, logits_, probs_, target_;  // decoder [N, D], [N, D], [N, X] x3
  std::vector<float> dh1_, dh2_, dlogits_;
  std::vector<float> pair_bce_, pair_kl1_, pair_kl2_;  // [N]
  std::vector<float> loss_, bce_, kl1_, kl2_;          // [B]
  // Stepping: B_step_ sequences, their h and c [B, Hb], state() [B, 2 Hb], one frame's activations.
  int B_step_ = 0;
  std::vector<float> sh_, sc_, state_, sp1_, sp2_, stape_, sh_next_;
  // belief_mean() and decode(): max_batch rows.
  DBlockUse mb2_, mb1_;
  std::vector<float> rh1_, rh2_, rlogits_;
};

// The registry kind "tdvae": images in, as every kind. Each example is one digit [input = side x side];
// forward turns it into a moving sequence (direction and each frame's bits drawn from the caller's
// generator, as moving_sequence() does for moving MNIST), so the trainer's MNIST batches train the TD-VAE
// on moving MNIST. Loss terms per sequence: bce, kl_t1, kl_t2 (means over its pairs). The
// reconstruction is the frame decoded from p_B's mean state after the first frame (the digit
// unshifted), compared with the input digit; code() is that state [2 z_size]; decode() maps states to
// frames. Hyperparameters: frames, processed, belief, z_size, block_hidden, decoder_hidden, pairs,
// max_jump (--hidden and --latent are unused).
class TdVaeModel : public Model, public SequenceStepper {
 public:
  explicit TdVaeModel(const ModelConfig& config);
  static TdVaeConfig net_config(const ModelConfig& config);
  // Recognises a file by the reimplementation's tensor names and reads the sizes from their shapes.
  static bool infer(const std::map<std::string, std::vector<int64_t>>& shapes, ModelConfig* out);
  void reserve(int max_batch) override;
  uint64_t activation_floats(int B) const override;
  void init(Rng& rng) override { net_.init(rng); }
  void forward(const float* input, const float* target, int B, Rng& rng, ZMode mode) override;
  void backward(float scale) override { net_.backward(scale); }
  std::vector<std::string> loss_terms() const override { return {"bce", "kl_t1", "kl_t2"}; }
  const float* term(int index) const override {
    return index == 0 ? net_.bce() : index == 1 ? net_.kl_t1() : net_.kl_t2();
  }
  const float* reconstruction() const override { return recon_.data(); }
  const float* code() const override { return code_.data(); }
  int code_size() const override { return 2 * net_.config().z; }
  void decode(const float* z, int B, float* out) override { net_.decode(z, B, out); }
  SequenceStepper* sequence() override { return this; }
  int state_size() const override { return 2 * net_.config().belief; }
  void reset_state(int B) override { net_.reset_state(B); }
  void step(const float* x, int B) override { net_.step(x, B); }
  const float* state() const override { return net_.state(); }
  int max_jump() const override { return net_.config().max_jump; }
  void rollout(int steps, int jump, float* out, int B, Rng& rng) override;
  TdVae& net() { return net_; }
  // The sequences of the last forward [B, frames, input] and each one's direction (+1 right, -1 left).
  const float* sequences() const { return seq_.data(); }
  const int* directions() const { return dir_.data(); }

 private:
  int side_ = 0;
  TdVae net_;
  std::vector<float> seq_, recon_, code_;
  std::vector<int> dir_;
};

}  // namespace ll
