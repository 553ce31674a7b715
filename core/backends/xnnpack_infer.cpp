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
  sigmoid_ = false;
  nearest_ = nullptr;
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

// The graph's layers in order: a buffer per layer output (NHWC for images), one XNNPACK operator per
// layer, and the quantisation between the encoder's and the decoder's operators. An image enters and
// leaves with one channel, where NCHW and NHWC agree; inside, convolutions keep NHWC throughout.
Status XnnpackInference::build(const InferenceGraph& graph) {
  using T = InferenceLayer::Type;
  if (graph.layers.empty()) return Status::error("XNNPACK inference: the model's inference graph is empty");
  sigmoid_ = graph.sigmoid_output;
  int prev = input_;
  size_t prev_size = static_cast<size_t>(P_);  // floats per image of prev
  bool images = false;                          // prev holds conv activations (NHWC)
  for (size_t i = 0; i < graph.layers.size(); i++) {
    const InferenceLayer& l = graph.layers[i];
    const bool last = i + 1 == graph.layers.size();
    const std::string where = "XNNPACK inference: layer " + l.name + ": ";
    size_t size = 0;
    int out_h = 0, out_w = 0;
    switch (l.type) {
      case T::kLinear:
        if (images) return Status::error(where + "a fully-connected layer after convolutions is not supported");
        if (static_cast<size_t>(l.C) != prev_size)
          return Status::error(where + "takes " + std::to_string(l.C) + " inputs, the layer before gives " +
                               std::to_string(prev_size));
        size = static_cast<size_t>(l.OC);
        break;
      case T::kConv2d:
      case T::kConvTranspose2d:
      case T::kQuantise:
        if (static_cast<size_t>(l.C) * l.H * l.W != prev_size || (prev == input_ && l.C != 1))
          return Status::error(where + "its input of " + std::to_string(l.C) + "x" + std::to_string(l.H) + "x" +
                               std::to_string(l.W) + " does not follow the layer before (" +
                               std::to_string(prev_size) + " floats per image, one channel at the input)");
        if (l.type == T::kConv2d) {
          out_h = (l.H + 2 * l.pad - l.kernel) / l.stride + 1, out_w = (l.W + 2 * l.pad - l.kernel) / l.stride + 1;
        } else if (l.type == T::kConvTranspose2d) {
          out_h = (l.H - 1) * l.stride - 2 * l.pad + l.kernel, out_w = (l.W - 1) * l.stride - 2 * l.pad + l.kernel;
        } else {
          out_h = l.H, out_w = l.W;
        }
        size = static_cast<size_t>(l.OC) * out_h * out_w;
        break;
    }
    if (last && (size != static_cast<size_t>(P_) || (l.type != T::kLinear && l.OC != 1)))
      return Status::error(where + "the graph ends in " + std::to_string(size) + " floats per image, not the " +
                           std::to_string(P_) + " one-channel pixels of the model's input");
    if (l.type == T::kQuantise) {
      if (code_ >= 0) return Status::error(where + "more than one quantisation is not supported");
      if (!l.nearest || l.codes < 1 || l.C != l.OC)
        return Status::error(where + "a quantisation needs a codebook and its nearest-code search");
      code_ = prev;
      zq_ = add_buffer(size);
      G_ = l.H * l.W, K_ = l.codes, D_ = l.C;
      codebook_.assign(l.weight, l.weight + static_cast<size_t>(K_) * D_);
      nearest_ = l.nearest;
      encoder_ops_ = static_cast<int>(ops_.size());
      prev = zq_, prev_size = size, images = true;
      continue;
    }
    const int next = !last ? add_buffer(size) : sigmoid_ ? logits_ = add_buffer(size) : out_;
    Status s;
    if (l.type == T::kLinear)
      s = add_fully_connected(l.name, l.weight, l.bias, l.C, l.OC, l.relu, prev, next);
    else if (l.type == T::kConv2d)
      s = add_convolution(l.name, l.weight, l.bias, l.C, l.OC, l.kernel, l.stride, l.pad, l.H, l.W, l.relu, prev, next);
    else
      s = add_deconvolution(l.name, l.weight, l.bias, l.C, l.OC, l.kernel, l.stride, l.pad, l.H, l.W, l.relu, prev,
                            next);
    if (!s.ok()) return s;
    prev = next, prev_size = size, images = l.type != T::kLinear;
  }
  return Status();
}

Status XnnpackInference::setup(const Model& model, int B, int threads) {
  reset();
  const std::string& kind = model.config().kind;
  InferenceGraph graph;
  if (!model.inference_graph(&graph)) {
    // The kinds whose models export an inference graph, from the registry.
    std::string kinds;
    std::vector<std::string> names;
    for (const ModelKind& k : model_kinds())
      if (xnnpack_supports_kind(k.name)) names.push_back(k.name);
    for (size_t i = 0; i < names.size(); i++)
      kinds += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + names[i];
    return Status::error("XNNPACK inference takes the kinds " + kinds + ", not '" + kind +
                         "' (it takes models that export an inference graph; use the core backend)");
  }
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
  Status s = build(graph);
  if (s.ok()) s = resize(B);
  if (!s.ok()) reset();
  return s;
}

Status XnnpackInference::resize(int B) {
  for (size_t i = 0; i < bufs_.size(); i++) {
    const size_t n = static_cast<size_t>(B) * per_image_[i] + kExtraFloats;
    if (bufs_[i].size() < n) bufs_[i].assign(n, 0.0f);
  }
  if (code_ >= 0) {
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
  if (code_ >= 0) {
    if (!(s = run_ops(0, encoder_ops_)).ok()) return s;
    const int N = B * G_;
    nearest_(idx_.data(), buf(code_), codebook_.data(), N, K_, D_, dist_.data());
    float* zq = buf(zq_);
    for (int r = 0; r < N; r++)
      std::memcpy(zq + static_cast<size_t>(r) * D_, codebook_.data() + static_cast<size_t>(idx_[r]) * D_,
                  sizeof(float) * D_);
    if (!(s = run_ops(encoder_ops_, static_cast<int>(ops_.size()))).ok()) return s;
  } else if (!(s = run_ops(0, static_cast<int>(ops_.size()))).ok()) {
    return s;
  }
  if (sigmoid_) sigmoid_forward(buf(out_), buf(logits_), n);
  return Status();
}

InferenceBackend choose_inference_backend(Model& model, const float* x, int B, int threads, double* ratio) {
  if (ratio) *ratio = 0.0;
  if (B < 1 || threads < 1 || !xnnpack_supports(model)) return InferenceBackend::kCore;
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
