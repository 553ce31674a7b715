// XNNPACK inference backend; see xnnpack_infer.h. Compiled only when CMake found Debian's
// libxnnpack-dev and libpthreadpool-dev (LATENTLAB_HAVE_XNNPACK), never in the wasm build.
// Layouts: activations are NHWC (for the MLPs [B, features]); XNNPACK's fully-connected kernel is
// [OC, C] like nn.Linear's, its convolution and deconvolution kernels are [OC, KH, KW, C] (xnnpack.h,
// xnn_define_convolution_2d / xnn_define_deconvolution_2d), so the conv weights are transposed once here.
// With one channel an image [P] is the same in NCHW and NHWC, so the VQ-VAE's input and output need no
// transposition.
#include "core/backends/xnnpack_infer.h"

#include <xnnpack.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>

#include "core/kernels/kernels.h"
#include "core/nn/layers.h"
#include "core/models/mlp_ae.h"
#include "core/models/mlp_vae.h"
#include "core/models/vqvae.h"

namespace ll {

namespace {

constexpr size_t kExtraFloats = (XNN_EXTRA_BYTES + sizeof(float) - 1) / sizeof(float);
constexpr float kInf = std::numeric_limits<float>::infinity();

const char* status_name(xnn_status s) {
  switch (s) {
    case xnn_status_success: return "success";
    case xnn_status_uninitialized: return "XNNPACK is not initialised";
    case xnn_status_invalid_parameter: return "invalid parameter";
    case xnn_status_invalid_state: return "invalid state";
    case xnn_status_unsupported_parameter: return "unsupported parameter";
    case xnn_status_unsupported_hardware: return "unsupported hardware";
    case xnn_status_out_of_memory: return "out of memory";
  }
  return "unknown status";
}

Status xnn_error(const std::string& what, xnn_status s) {
  return Status::error("XNNPACK: " + what + " failed: " + status_name(s));
}

std::string conv_desc(const std::string& name, int C, int OC, int K, int stride, int pad, int H, int W) {
  return name + " (" + std::to_string(C) + "->" + std::to_string(OC) + ", k" + std::to_string(K) + " s" +
         std::to_string(stride) + " p" + std::to_string(pad) + ", input " + std::to_string(H) + "x" +
         std::to_string(W) + ")";
}

}  // namespace

void conv_weight_to_ohwi(float* out, const float* weight, int OC, int C, int KH, int KW) {
  for (int o = 0; o < OC; o++)
    for (int c = 0; c < C; c++)
      for (int y = 0; y < KH; y++)
        for (int x = 0; x < KW; x++)
          out[((static_cast<size_t>(o) * KH + y) * KW + x) * C + c] =
              weight[((static_cast<size_t>(o) * C + c) * KH + y) * KW + x];
}

void conv_transpose_weight_to_ohwi(float* out, const float* weight, int C, int OC, int KH, int KW) {
  for (int c = 0; c < C; c++)
    for (int o = 0; o < OC; o++)
      for (int y = 0; y < KH; y++)
        for (int x = 0; x < KW; x++)
          out[((static_cast<size_t>(o) * KH + y) * KW + x) * C + c] =
              weight[((static_cast<size_t>(c) * OC + o) * KH + y) * KW + x];
}

XnnpackInference::~XnnpackInference() { reset(); }

void XnnpackInference::reset() {
  for (Op& o : ops_) xnn_delete_operator(o.op);
  ops_.clear();
  per_image_.clear();
  bufs_.clear();
  if (pool_) pthreadpool_destroy(pool_);
  pool_ = nullptr;
  if (initialized_) xnn_deinitialize();
  initialized_ = false;
  kind_.clear();
  B_ = 0, threads_ = 1, P_ = 0;
  input_ = logits_ = out_ = code_ = zq_ = -1;
  vq_sigmoid_ = false;
  encoder_ops_ = 0, G_ = K_ = D_ = 0;
  codebook_.clear();
  idx_.clear();
  dist_.clear();
}

int XnnpackInference::add_buffer(size_t per_image) {
  per_image_.push_back(per_image);
  bufs_.emplace_back();
  return static_cast<int>(bufs_.size()) - 1;
}

Status XnnpackInference::add_fully_connected(const std::string& name, const float* weight, const float* bias,
                                             int C, int OC, bool relu, int in, int out) {
  Op o;
  o.type = OpType::kFullyConnected;
  o.in = in, o.out = out;
  const xnn_status s = xnn_create_fully_connected_nc_f32(C, OC, C, OC, weight, bias, relu ? 0.0f : -kInf, kInf,
                                                         0, &o.op);
  if (s != xnn_status_success)
    return xnn_error("creating the fully-connected operator " + name + " (" + std::to_string(C) + "->" +
                         std::to_string(OC) + ")",
                     s);
  ops_.push_back(o);
  return Status();
}

Status XnnpackInference::add_convolution(const std::string& name, const float* weight, const float* bias, int C,
                                         int OC, int K, int stride, int pad, int H, int W, bool relu, int in,
                                         int out) {
  std::vector<float> kernel(static_cast<size_t>(OC) * K * K * C);
  conv_weight_to_ohwi(kernel.data(), weight, OC, C, K, K);
  Op o;
  o.type = OpType::kConvolution;
  o.in = in, o.out = out, o.in_h = H, o.in_w = W;
  const xnn_status s = xnn_create_convolution2d_nhwc_f32(
      pad, pad, pad, pad, K, K, stride, stride, /*dilation*/ 1, 1, /*groups*/ 1, C, OC, /*input stride*/ C,
      /*output stride*/ OC, kernel.data(), bias, relu ? 0.0f : -kInf, kInf, 0, &o.op);
  if (s != xnn_status_success)
    return xnn_error("creating the convolution operator " + conv_desc(name, C, OC, K, stride, pad, H, W), s);
  ops_.push_back(o);
  return Status();
}

Status XnnpackInference::add_deconvolution(const std::string& name, const float* weight, const float* bias, int C,
                                           int OC, int K, int stride, int pad, int H, int W, bool relu, int in,
                                           int out) {
  std::vector<float> kernel(static_cast<size_t>(OC) * K * K * C);
  conv_transpose_weight_to_ohwi(kernel.data(), weight, C, OC, K, K);
  Op o;
  o.type = OpType::kDeconvolution;
  o.in = in, o.out = out, o.in_h = H, o.in_w = W;
  // Output padding `pad` on every side and no adjustment: OH = (H - 1) * stride - 2 * pad + K, as
  // ConvTranspose2d with output_padding 0.
  const xnn_status s = xnn_create_deconvolution2d_nhwc_f32(
      pad, pad, pad, pad, K, K, stride, stride, /*dilation*/ 1, 1, /*groups*/ 1, C, OC, /*input stride*/ C,
      /*output stride*/ OC, kernel.data(), bias, relu ? 0.0f : -kInf, kInf, 0, &o.op);
  if (s != xnn_status_success)
    return xnn_error("creating the deconvolution operator " + conv_desc(name, C, OC, K, stride, pad, H, W), s);
  ops_.push_back(o);
  return Status();
}

// vae / beta_vae: x -> fc1 + ReLU -> mu = fc21 -> fc3 + ReLU -> fc4 = logits; ae / dae the same with
// encoder.0, encoder.2, decoder.0, decoder.2.
Status XnnpackInference::build_mlp(const Model& model) {
  const Linear* layers[4] = {nullptr, nullptr, nullptr, nullptr};
  const std::string* names = nullptr;
  static const std::string kVaeNames[4] = {"fc1", "fc21", "fc3", "fc4"};
  static const std::string kAeNames[4] = {"encoder.0", "encoder.2", "decoder.0", "decoder.2"};
  if (const auto* vae = dynamic_cast<const MlpVae*>(&model)) {
    layers[0] = &vae->fc1, layers[1] = &vae->fc21, layers[2] = &vae->fc3, layers[3] = &vae->fc4;
    names = kVaeNames;
  } else if (const auto* ae = dynamic_cast<const MlpAutoencoder*>(&model)) {
    layers[0] = &ae->enc0, layers[1] = &ae->enc2, layers[2] = &ae->dec0, layers[3] = &ae->dec2;
    names = kAeNames;
  } else {
    return Status::error("XNNPACK inference: a '" + model.config().kind + "' model is not an MLP VAE or AE");
  }
  const ParamArena& a = model.params();
  int prev = input_;
  for (int i = 0; i < 4; i++) {
    const Linear& l = *layers[i];
    const int next = i == 3 ? logits_ : add_buffer(l.OC);
    Status s = add_fully_connected(names[i], a.param(l.weight), a.param(l.bias), l.C, l.OC,
                                   /*relu*/ i == 0 || i == 2, prev, next);
    if (!s.ok()) return s;
    prev = next;
  }
  return Status();
}

// vqvae: x [B,S,S,1] -> encoder.0 + ReLU [B,S/2,S/2,32] -> encoder.2 + ReLU [B,g,g,64] -> encoder.4 =
// z_e [B,g,g,D] = rows [B*G, D] | nearest codes -> z_q rows | decoder.0 + ReLU [B,g,g,64] -> decoder.2 +
// ReLU [B,S/2,S/2,32] -> decoder.4 [B,S,S,1].
Status XnnpackInference::build_vqvae(const Model& model) {
  const auto* vq = dynamic_cast<const VqVae*>(&model);
  if (!vq) return Status::error("XNNPACK inference: a '" + model.config().kind + "' model is not a VQ-VAE");
  const ParamArena& a = model.params();
  const int S = vq->side(), g = vq->grid(), h = S / 2;
  G_ = g * g, K_ = vq->K(), D_ = vq->D();
  codebook_.assign(vq->codebook(), vq->codebook() + static_cast<size_t>(K_) * D_);
  const int h1 = add_buffer(static_cast<size_t>(h) * h * vq->enc0.OC);
  const int h2 = add_buffer(static_cast<size_t>(G_) * vq->enc2.OC);
  code_ = add_buffer(static_cast<size_t>(G_) * D_);
  zq_ = add_buffer(static_cast<size_t>(G_) * D_);
  const int d0 = add_buffer(static_cast<size_t>(G_) * vq->dec0.OC);
  const int d2 = add_buffer(static_cast<size_t>(h) * h * vq->dec2.OC);
  auto conv = [&](const char* name, const Conv2d& c, int H, bool relu, int in, int out) {
    return add_convolution(name, a.param(c.weight), a.param(c.bias), c.C, c.OC, c.K, c.stride, c.pad, H, H,
                           relu, in, out);
  };
  auto deconv = [&](const char* name, const ConvTranspose2d& c, int H, bool relu, int in, int out) {
    return add_deconvolution(name, a.param(c.weight), a.param(c.bias), c.C, c.OC, c.K, c.stride, c.pad, H,
                             H, relu, in, out);
  };
  Status s;
  if (!(s = conv("encoder.0", vq->enc0, S, true, input_, h1)).ok()) return s;
  if (!(s = conv("encoder.2", vq->enc2, h, true, h1, h2)).ok()) return s;
  if (!(s = conv("encoder.4", vq->enc4, g, false, h2, code_)).ok()) return s;
  encoder_ops_ = static_cast<int>(ops_.size());
  if (!(s = conv("decoder.0", vq->dec0, g, true, zq_, d0)).ok()) return s;
  if (!(s = deconv("decoder.2", vq->dec2, g, true, d0, d2)).ok()) return s;
  // With a sigmoid output (the default) decoder.4 writes logits and run() applies the core's sigmoid.
  vq_sigmoid_ = model.config().get("sigmoid_output") != 0.0;
  if (vq_sigmoid_) logits_ = add_buffer(static_cast<size_t>(P_));
  return deconv("decoder.4", vq->dec4, h, false, d2, vq_sigmoid_ ? logits_ : out_);
}

Status XnnpackInference::setup(const Model& model, int B, int threads) {
  reset();
  const std::string& kind = model.config().kind;
  if (!xnnpack_supports_kind(kind))
    return Status::error("XNNPACK inference takes the kinds vae, beta_vae, ae, dae and vqvae, not '" + kind +
                         "' (use the core backend)");
  if (B < 1) return Status::error("XNNPACK inference: the batch size must be at least 1, not " + std::to_string(B));
  if (threads < 1)
    return Status::error("XNNPACK inference: the thread count must be at least 1, not " + std::to_string(threads));
  const xnn_status init = xnn_initialize(nullptr);
  if (init != xnn_status_success) return xnn_error("initialising the library", init);
  initialized_ = true;
  if (threads > 1) {
    pool_ = pthreadpool_create(static_cast<size_t>(threads));
    if (!pool_) {
      reset();
      return Status::error("XNNPACK inference: could not create a pool of " + std::to_string(threads) +
                           " threads");
    }
  }
  threads_ = threads;
  kind_ = kind;
  P_ = model.config().input;
  input_ = add_buffer(static_cast<size_t>(P_));
  out_ = add_buffer(static_cast<size_t>(P_));
  Status s;
  if (kind == "vqvae") {
    s = build_vqvae(model);
  } else {
    logits_ = add_buffer(static_cast<size_t>(P_));
    s = build_mlp(model);
  }
  if (s.ok()) s = resize(B);
  if (!s.ok()) reset();
  return s;
}

Status XnnpackInference::resize(int B) {
  for (size_t i = 0; i < bufs_.size(); i++) {
    const size_t n = static_cast<size_t>(B) * per_image_[i] + kExtraFloats;
    if (bufs_[i].size() < n) bufs_[i].assign(n, 0.0f);
  }
  if (kind_ == "vqvae") {
    idx_.resize(static_cast<size_t>(B) * G_);
    dist_.resize(static_cast<size_t>(std::min(B * G_, 256)) * K_);
  }
  for (const Op& o : ops_) {
    const float* in = buf(o.in);
    float* out = buf(o.out);
    xnn_status s = xnn_status_success;
    switch (o.type) {
      case OpType::kFullyConnected:
        s = xnn_setup_fully_connected_nc_f32(o.op, B, in, out, pool_);
        break;
      case OpType::kConvolution:
        s = xnn_setup_convolution2d_nhwc_f32(o.op, B, o.in_h, o.in_w, in, out, pool_);
        break;
      case OpType::kDeconvolution:
        s = xnn_setup_deconvolution2d_nhwc_f32(o.op, B, o.in_h, o.in_w, 0, 0, in, out, pool_);
        break;
    }
    if (s != xnn_status_success) {
      B_ = 0;  // the operators are in an unknown state: the next run sets them all up again
      return xnn_error("setting up an operator for a batch of " + std::to_string(B), s);
    }
  }
  B_ = B;
  return Status();
}

Status XnnpackInference::run_ops(int first, int last) {
  for (int i = first; i < last; i++) {
    const xnn_status s = xnn_run_operator(ops_[i].op, pool_);
    if (s != xnn_status_success) return xnn_error("running operator " + std::to_string(i), s);
  }
  return Status();
}

Status XnnpackInference::run(const float* x, int B) {
  if (!ready()) return Status::error("XNNPACK inference: run before a successful setup");
  if (B < 1) return Status::error("XNNPACK inference: the batch size must be at least 1, not " + std::to_string(B));
  Status s;
  if (B != B_ && !(s = resize(B)).ok()) return s;
  const size_t n = static_cast<size_t>(B) * P_;
  std::memcpy(buf(input_), x, sizeof(float) * n);
  if (kind_ == "vqvae") {
    if (!(s = run_ops(0, encoder_ops_)).ok()) return s;
    const int N = B * G_;
    vq_nearest(idx_.data(), buf(code_), codebook_.data(), N, K_, D_, dist_.data());
    float* zq = buf(zq_);
    for (int r = 0; r < N; r++)
      std::memcpy(zq + static_cast<size_t>(r) * D_, codebook_.data() + static_cast<size_t>(idx_[r]) * D_,
                  sizeof(float) * D_);
    if (!(s = run_ops(encoder_ops_, static_cast<int>(ops_.size()))).ok()) return s;
    if (vq_sigmoid_) sigmoid_forward(buf(out_), buf(logits_), n);
    return Status();
  }
  if (!(s = run_ops(0, static_cast<int>(ops_.size()))).ok()) return s;
  sigmoid_forward(buf(out_), buf(logits_), n);
  return Status();
}

InferenceBackend choose_inference_backend(Model& model, const float* x, int B, int threads, double* ratio) {
  if (ratio) *ratio = 0.0;
  if (B < 1 || threads < 1 || !xnnpack_supports_kind(model.config().kind)) return InferenceBackend::kCore;
  XnnpackInference xnn;
  if (!xnn.setup(model, B, threads).ok()) return InferenceBackend::kCore;
  model.reserve(B);
  const int saved_threads = num_threads();
  set_num_threads(threads);
  Rng rng(1);
  bool xnn_ok = true;
  auto run_core = [&] { model.forward(x, x, B, rng, ZMode::kMean); };
  auto run_xnn = [&] { xnn_ok = xnn_ok && xnn.run(x, B).ok(); };
  using clock = std::chrono::steady_clock;
  auto time_reps = [](auto&& fn, int reps) {
    const auto t0 = clock::now();
    for (int r = 0; r < reps; r++) fn();
    return std::chrono::duration<double>(clock::now() - t0).count();
  };
  run_core();  // warm-up: first touch of the buffers, the GEMM's own choice of kernels, packing
  run_xnn();
  const double one = std::max(time_reps(run_core, 1), time_reps(run_xnn, 1));
  const int reps = std::max(1, std::min(1000, static_cast<int>(0.002 / std::max(one, 1e-7))));
  constexpr int kRounds = 7;
  double ratios[kRounds];
  for (int round = 0; round < kRounds && xnn_ok; round++) {
    double core_s = 0.0, xnn_s = 0.0;
    if (round % 2 == 0) core_s = time_reps(run_core, reps);
    xnn_s = time_reps(run_xnn, reps);
    if (round % 2 == 1) core_s = time_reps(run_core, reps);
    ratios[round] = xnn_s / std::max(core_s, 1e-12);
  }
  set_num_threads(saved_threads);
  if (!xnn_ok) return InferenceBackend::kCore;
  std::nth_element(ratios, ratios + kRounds / 2, ratios + kRounds);
  if (ratio) *ratio = ratios[kRounds / 2];
  return faster_inference_backend(ratios[kRounds / 2]);
}

}  // namespace ll
