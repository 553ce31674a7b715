// XNNPACK (Debian's libxnnpack-dev, the 2022 operator API) as a native inference backend: forward-only
// reconstruction of a trained model through XNNPACK's fully-connected, convolution and deconvolution
// operators, built once from the model's weights.
// The backend reaches models only through the protocol (core/models/model.h): a model that exports an
// InferenceGraph (Model::inference_graph) is built layer by layer from it, whatever its kind; today
//   vae, beta_vae  fc1 + ReLU -> fc21 (the posterior mean; fc22 is not needed) -> fc3 + ReLU -> fc4 ->
//                  sigmoid: what Model::forward with ZMode::kMean reconstructs
//   ae, dae        encoder.0 + ReLU -> encoder.2 -> decoder.0 + ReLU -> decoder.2 -> sigmoid
//   vqvae          the encoder convolutions in NHWC -> nearest codes (the model's own search on the NHWC
//                  rows, which are exactly the [B*G, D] cells) -> decoder.0 + ReLU -> two deconvolutions
//                  -> sigmoid (with sigmoid_output = 1, the default; files made before it have the raw
//                  output)
// ReLUs are fused into the operators (output_min = 0); the sigmoid is the core's (sigmoid_forward).
// Models without a graph, or with layers it cannot lay out (convolutions over several input channels
// after a flattening, more than one quantisation), are refused with a message. The core stays the
// specification: tests/test_xnnpack.cpp holds each supported kind to the core's reconstruction.
//
// This header is included everywhere (wasm too): the backend choice below is always defined, the
// XnnpackInference class only when the build found XNNPACK (LATENTLAB_HAVE_XNNPACK; never in wasm, where
// XNNPACK cannot be built from Debian). It never includes xnnpack.h. Like all of core/, nothing here
// prints, exits or throws. Of the models' room it includes only core/models/model.h
// (scripts/check_layout.sh holds it to that).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/models/model.h"
#include "core/base/status.h"

struct xnn_operator;
struct pthreadpool;

namespace ll {

// Which code runs a forward-only reconstruction: the core's model (Model::forward, ZMode::kMean) or
// XNNPACK's operators.
enum class InferenceBackend { kCore, kXnnpack };

inline const char* inference_backend_name(InferenceBackend b) {
  return b == InferenceBackend::kXnnpack ? "xnnpack" : "core";
}

// Whether this build has the XNNPACK backend, and whether it takes models of this kind.
inline bool xnnpack_built() {
#if defined(LATENTLAB_HAVE_XNNPACK)
  return true;
#else
  return false;
#endif
}
// Whether the model exports an inference graph (XnnpackInference::setup may still refuse a graph it
// cannot lay out, with a message).
inline bool xnnpack_supports(const Model& model) { return model.inference_graph(nullptr); }
// The same for a kind, asked of a shapes-only model of its default config (nothing allocated); false for
// an unknown kind.
inline bool xnnpack_supports_kind(const std::string& kind) {
  ModelConfig config;
  config.kind = kind;
  std::unique_ptr<Model> model;
  ShapesOnly shapes_only;
  return create_model(config, &model).ok() && xnnpack_supports(*model);
}

// The backend used when none is asked for is chosen by measurement, not by a table: which of the two is
// faster depends on the CPU, the core's GEMM (chosen by measurement itself, core/kernels/kernels.h), the batch and
// the threads, and a table written on one machine was wrong on the next (XNNPACK had been 1.17-1.69x
// faster on batches of 128 on an AMD EPYC with OpenBLAS; on a Xeon with the core's AVX-512 GEMM the core
// was 1.3-1.4x faster). choose_inference_backend() times both on the caller's own model and images.
//
// The rule, on measured times: XNNPACK when the median over alternating rounds of (XNNPACK's time / the
// core's) is below 1, the core otherwise (ties go to the core, the specification).
inline InferenceBackend faster_inference_backend(double xnnpack_over_core) {
  return xnnpack_over_core < 1.0 ? InferenceBackend::kXnnpack : InferenceBackend::kCore;
}

// Times both backends reconstructing x[B, P] with `model` on `threads` threads (warm-up, then 7
// alternating rounds of about 2 ms of the slower side each, so a burst from another process hits both
// alike; at most about 40 ms in all) and returns faster_inference_backend(median ratio). The core, with
// no measurement, where this build has no XNNPACK or XNNPACK refuses the model. `ratio` (optional) gets
// the measured median (0 when nothing was measured). Leaves the model reserved for B images; its
// weights are not changed.
#if defined(LATENTLAB_HAVE_XNNPACK)
InferenceBackend choose_inference_backend(Model& model, const float* x, int B, int threads,
                                          double* ratio = nullptr);
#else
inline InferenceBackend choose_inference_backend(Model&, const float*, int, int, double* ratio = nullptr) {
  if (ratio) *ratio = 0.0;
  return InferenceBackend::kCore;
}
#endif

#if defined(LATENTLAB_HAVE_XNNPACK)

// PyTorch's conv weight [OC, C, KH, KW] -> XNNPACK's convolution kernel [OC, KH, KW, C].
void conv_weight_to_ohwi(float* out, const float* weight, int OC, int C, int KH, int KW);
// PyTorch's transposed-conv weight [C, OC, KH, KW] -> XNNPACK's deconvolution kernel [OC, KH, KW, C].
void conv_transpose_weight_to_ohwi(float* out, const float* weight, int C, int OC, int KH, int KW);

// Forward-only reconstruction of one model through XNNPACK operators.
// Life cycle: setup(model, B) packs the weights into operators (XNNPACK copies them: the model may change
// or go away afterwards, and a retrained model needs setup again), then run(x, B) any number of times;
// a run with another B re-sets the operators up for it (buffers grow, never shrink). Not thread-safe: one
// object per thread.
class XnnpackInference {
 public:
  XnnpackInference() = default;
  ~XnnpackInference();
  XnnpackInference(const XnnpackInference&) = delete;
  XnnpackInference& operator=(const XnnpackInference&) = delete;

  // Builds the operators from the model's current weights for batches of B images, running on
  // `threads` threads (1: the calling thread only; more: a pthreadpool of that many). Errors: XNNPACK
  // failing to initialise (e.g. a CPU without SSE2), a kind it does not take, B or threads below 1, an
  // operator XNNPACK refuses. After an error the object is empty (ready() false).
  Status setup(const Model& model, int B, int threads = 1);
  // Reconstructs x[B, P] (P = model.config().input, pixels in [0, 1]; read only, no padding needed).
  Status run(const float* x, int B);

  bool ready() const { return !ops_.empty(); }
  int batch() const { return B_; }
  int threads() const { return threads_; }
  const std::string& kind() const { return kind_; }
  // From the last run: [B, P] pixel probabilities (vae, ae families), pixel values (vqvae; raw values
  // with sigmoid_output = 0); null before a setup.
  const float* reconstruction() const { return ready() ? buf(out_) : nullptr; }
  // From the last run of a model with a quantisation (a VQ-VAE): code indices [B, G] (raster order, as
  // CodeGrids::indices); null for other models.
  const int32_t* indices() const { return ready() && code_ >= 0 ? idx_.data() : nullptr; }
  // From the last run of a model with a quantisation: its input z_e as NHWC rows [B*G, D].
  const float* z_e_rows() const { return ready() && code_ >= 0 ? buf(code_) : nullptr; }

 private:
  // One operator and what it reads and writes (buffer ids); convolutions also need the input size.
  enum class OpType { kFullyConnected, kConvolution, kDeconvolution };
  struct Op {
    xnn_operator* op = nullptr;
    OpType type = OpType::kFullyConnected;
    int in = 0, out = 0;     // buffer ids
    int in_h = 0, in_w = 0;  // convolutions: input height and width
  };

  void reset();
  // A buffer of `per_image` floats per image (sized by resize(B), plus XNN_EXTRA_BYTES: XNNPACK reads
  // up to that far past its inputs, never writes there); returns its id.
  int add_buffer(size_t per_image);
  Status add_fully_connected(const std::string& name, const float* weight, const float* bias, int C, int OC,
                             bool relu, int in, int out);
  Status add_convolution(const std::string& name, const float* weight, const float* bias, int C, int OC,
                         int K, int stride, int pad, int H, int W, bool relu, int in, int out);
  Status add_deconvolution(const std::string& name, const float* weight, const float* bias, int C, int OC,
                           int K, int stride, int pad, int H, int W, bool relu, int in, int out);
  // Operators and buffers for the graph's layers, in order (input_ -> ... -> logits_ or out_).
  Status build(const InferenceGraph& graph);
  Status resize(int B);  // buffers for B images and every operator set up on them
  Status run_ops(int first, int last);
  float* buf(int id) { return bufs_[id].data(); }
  const float* buf(int id) const { return bufs_[id].data(); }

  std::string kind_;
  int B_ = 0, threads_ = 1, P_ = 0;
  bool initialized_ = false;  // xnn_initialize succeeded (paired with xnn_deinitialize)
  pthreadpool* pool_ = nullptr;
  std::vector<Op> ops_;
  std::vector<size_t> per_image_;        // floats per image of each buffer
  std::vector<std::vector<float>> bufs_;
  int input_ = -1, logits_ = -1, out_ = -1;  // buffer ids (logits_: before the graph's output sigmoid)
  bool sigmoid_ = false;                     // the graph ends in a sigmoid
  // With a quantisation: ops_[0, encoder_ops_) are the encoder, the rest the decoder; quantisation in
  // between reads code_ ([B*G, D] rows) and writes zq_ (the same shape).
  int encoder_ops_ = 0, code_ = -1, zq_ = -1;
  int G_ = 0, K_ = 0, D_ = 0;
  std::vector<float> codebook_;  // [K, D]
  void (*nearest_)(int32_t*, const float*, const float*, int, int, int, float*) = nullptr;
  std::vector<int32_t> idx_;     // [B*G]
  std::vector<float> dist_;      // vq_nearest's scratch
};

#endif  // LATENTLAB_HAVE_XNNPACK

}  // namespace ll
