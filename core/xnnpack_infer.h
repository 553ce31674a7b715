// XNNPACK (Debian's libxnnpack-dev, the 2022 operator API) as a native inference backend: forward-only
// reconstruction of a trained model through XNNPACK's fully-connected, convolution and deconvolution
// operators, built once from the model's weights.
//   vae, beta_vae  fc1 + ReLU -> fc21 (the posterior mean; fc22 is not needed) -> fc3 + ReLU -> fc4 ->
//                  sigmoid: what Model::forward with ZMode::kMean reconstructs
//   ae, dae        encoder.0 + ReLU -> encoder.2 -> decoder.0 + ReLU -> decoder.2 -> sigmoid
//   vqvae          the encoder convolutions in NHWC -> nearest codes (vq_nearest on the NHWC rows, which
//                  are exactly the [B*G, D] cells) -> decoder.0 + ReLU -> two deconvolutions -> sigmoid
//                  (with sigmoid_output = 1, the default; files made before it have the raw output)
// ReLUs are fused into the operators (output_min = 0); the sigmoid is the core's (sigmoid_forward).
// Other kinds are refused with a message. The core stays the specification: tests/test_xnnpack.cpp holds
// each supported kind to the core's reconstruction.
//
// This header is included everywhere (wasm too): the backend choice below is always defined, the
// XnnpackInference class only when the build found XNNPACK (LATENTLAB_HAVE_XNNPACK; never in wasm, where
// XNNPACK cannot be built from Debian). It never includes xnnpack.h. Like all of core/, nothing here
// prints, exits or throws.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/status.h"

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
inline bool xnnpack_supports_kind(const std::string& kind) {
  return kind == "vae" || kind == "beta_vae" || kind == "ae" || kind == "dae" || kind == "vqvae";
}

// The backend used when none is asked for: XNNPACK only where `latentlab bench` measured it faster than
// the core, per model kind and case: B = 1 (single-image latency) or B > 1 (batch throughput), on
// `threads` threads. Measured with `latentlab bench --model M --threads T --seconds 1` at commit bc5edd2
// (the core: OpenBLAS 0.3.21 and the patch-row convolutions), the two backends in turns within each
// run, 5 runs per row, medians (min-max) of the in-run ratios, this 2-core machine, 2026-12-02:
//   kind   T  single image: core / XNNPACK ms, ratio   batch 128: XNNPACK / core images/s, ratio
//   vae    1  0.220 / 0.051  4.28x (4.04-4.33)         68,864 /  57,274  1.21x (1.18-1.37)
//   ae     1  0.212 / 0.050  4.21x (3.95-4.30)         71,723 /  62,420  1.17x (1.15-1.34)
//   vqvae  1  0.139 / 0.081  1.75x (1.64-1.85)         10,533 /   6,246  1.69x (1.63-1.81)
//   vae    2  0.227 / 0.037  6.01x (3.36-7.97)        121,371 /  80,459  1.55x (0.34-1.67)
//   ae     2  0.211 / 0.036  5.92x (3.34-6.86)         68,910 /  83,973  0.70x (0.07-1.49)
//   vqvae  2  0.164 / 0.070  2.29x (1.89-2.88)         21,991 /  10,178  2.09x (2.04-2.21)
// (T = 1 with another single-threaded job on the other core throughout; T = 2 on an idle machine at the
// start of each run, though other jobs started during some.) XNNPACK wins every single-image case and
// every one-thread batch. The exception is the MLPs' batches on more than one thread: on the idle
// machine XNNPACK was 1.35-1.48x faster (5 runs each at bbd4265), but whenever another process took a
// core its 2-thread pool fell to 4,000-17,000 images/s (its workers wait for a core) while the core's
// OpenBLAS stayed at 40,000-80,000, so the core keeps those. Re-measure when the core's kernels change.
inline InferenceBackend default_inference_backend(const std::string& kind, int B, int threads = 1) {
  if (!xnnpack_built() || !xnnpack_supports_kind(kind)) return InferenceBackend::kCore;
  if (B > 1 && threads > 1 && kind != "vqvae") return InferenceBackend::kCore;
  return InferenceBackend::kXnnpack;
}

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
  // From the last run of a VQ-VAE: code indices [B, G] (raster order, as VqVae::indices()); null for
  // other kinds.
  const int32_t* indices() const { return ready() && kind_ == "vqvae" ? idx_.data() : nullptr; }
  // From the last run of a VQ-VAE: the encoder output z_e as NHWC rows [B*G, D].
  const float* z_e_rows() const { return ready() && kind_ == "vqvae" ? buf(code_) : nullptr; }

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
  Status build_mlp(const Model& model);
  Status build_vqvae(const Model& model);
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
  int input_ = -1, logits_ = -1, out_ = -1;  // buffer ids (logits_: the Bernoulli models and a VQ-VAE's sigmoid output)
  bool vq_sigmoid_ = false;                  // the VQ-VAE's decoder.4 is followed by a sigmoid
  // VQ-VAE: ops_[0, encoder_ops_) are the encoder, the rest the decoder; quantisation in between reads
  // code_ ([B*G, D] rows) and writes zq_ (the same shape).
  int encoder_ops_ = 0, code_ = -1, zq_ = -1;
  int G_ = 0, K_ = 0, D_ = 0;
  std::vector<float> codebook_;  // [K, D]
  std::vector<int32_t> idx_;     // [B*G]
  std::vector<float> dist_;      // vq_nearest's scratch
};

#endif  // LATENTLAB_HAVE_XNNPACK

}  // namespace ll
