// Convolutions, NCHW, PyTorch semantics and weight layouts; forward and backward side by side, as free
// kernels and as layer structs (below) shaped like Linear.
// Backward ACCUMULATES (+=) into dinp, dweight, dbias (any may be null to skip). No allocation: callers
// pass a workspace of at least `workspace_floats(s)` floats for the same shape s (per thread: one
// image's patch rows, one zero-padded image and a weight-gradient partial; it does not grow with the
// batch). With set_num_threads(n > 1), natively, the images are shared out among n threads.
// Letters: B batch, C input channels, OC output channels, H W input size, OH OW output size,
// KH KW kernel size.
#pragma once
#include <cstddef>
#include <string>

#include "core/nn/arena.h"
#include "core/base/rng.h"

namespace ll {

struct ConvShape {
  int B = 0, C = 0, H = 0, W = 0;  // input [B, C, H, W]
  int OC = 0, KH = 0, KW = 0;
  int stride = 1, pad = 0;
  // Conv2d:          OH = (H + 2*pad - KH) / stride + 1
  // ConvTranspose2d: OH = (H - 1) * stride - 2*pad + KH
  int conv_oh() const { return (H + 2 * pad - KH) / stride + 1; }
  int conv_ow() const { return (W + 2 * pad - KW) / stride + 1; }
  int tconv_oh() const { return (H - 1) * stride - 2 * pad + KH; }
  int tconv_ow() const { return (W - 1) * stride - 2 * pad + KW; }
};

// Conv2d: inp [B,C,H,W], weight [OC,C,KH,KW], bias [OC] (may be null), out [B,OC,OH,OW].
size_t conv2d_workspace_floats(const ConvShape& s);
void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const ConvShape& s, float* workspace);
void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const ConvShape& s, float* workspace);

// ConvTranspose2d: inp [B,C,H,W], weight [C,OC,KH,KW] (PyTorch's layout for transposed conv),
// bias [OC] (may be null), out [B,OC,OH,OW] with OH = tconv_oh(). It is the adjoint of Conv2d with
// the same weight seen as [C(out of that conv), OC(in), KH, KW].
size_t conv_transpose2d_workspace_floats(const ConvShape& s);
void conv_transpose2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                              const ConvShape& s, float* workspace);
void conv_transpose2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, const ConvShape& s,
                               float* workspace);

// Direct seven-loop scalar references: the specification and test oracle for the above.
void conv2d_forward__scalar(float* out, const float* inp, const float* weight, const float* bias,
                            const ConvShape& s);
void conv2d_backward__scalar(float* dinp, float* dweight, float* dbias, const float* dout,
                             const float* inp, const float* weight, const ConvShape& s);
void conv_transpose2d_forward__scalar(float* out, const float* inp, const float* weight,
                                      const float* bias, const ConvShape& s);
void conv_transpose2d_backward__scalar(float* dinp, float* dweight, float* dbias, const float* dout,
                                       const float* inp, const float* weight, const ConvShape& s);

// Layer structs: config plus arena slices, PyTorch names ("<name>.weight", "<name>.bias"), with
// forward/backward shaped like Linear's (layers.h) plus the input's spatial size:
//   forward(arena, out, inp, B, H, W)            out [B,OC,OH,OW] from inp [B,C,H,W]
//   backward(arena, dinp, dout, inp, B, H, W)    dinp (may be null) += ..., the weight and bias
//                                                gradients += ... in the arena
// Their scratch is `workspace`, which the model points into its ActivationArena at reserve(), at least
// workspace_floats(H, W) floats for the largest input the layer sees (layers of one model may share it:
// they run one after the other).
// Init as PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, where fan_in is
// C*KH*KW for Conv2d and weight.size(1)*KH*KW = OC*KH*KW for ConvTranspose2d.
struct Conv2d {
  int C = 0, OC = 0, K = 0, stride = 1, pad = 0;
  int weight = -1, bias = -1;
  float* workspace = nullptr;
  void add_to(ParamArena& arena, const std::string& name, int in_ch, int out_ch, int kernel,
              int stride_, int pad_);
  void init(ParamArena& arena, Rng& rng) const;
  ConvShape shape(int B, int H, int W) const;
  size_t workspace_floats(int H, int W) const { return conv2d_workspace_floats(shape(1, H, W)); }
  void forward(const ParamArena& arena, float* out, const float* inp, int B, int H, int W) const {
    conv2d_forward(out, inp, arena.param(weight), arena.param(bias), shape(B, H, W), workspace);
  }
  void backward(ParamArena& arena, float* dinp, const float* dout, const float* inp, int B, int H,
                int W) const {
    conv2d_backward(dinp, arena.grad(weight), arena.grad(bias), dout, inp, arena.param(weight),
                    shape(B, H, W), workspace);
  }
};

struct ConvTranspose2d {
  int C = 0, OC = 0, K = 0, stride = 1, pad = 0;
  int weight = -1, bias = -1;
  float* workspace = nullptr;
  void add_to(ParamArena& arena, const std::string& name, int in_ch, int out_ch, int kernel,
              int stride_, int pad_);
  void init(ParamArena& arena, Rng& rng) const;
  ConvShape shape(int B, int H, int W) const;
  size_t workspace_floats(int H, int W) const { return conv_transpose2d_workspace_floats(shape(1, H, W)); }
  void forward(const ParamArena& arena, float* out, const float* inp, int B, int H, int W) const {
    conv_transpose2d_forward(out, inp, arena.param(weight), arena.param(bias), shape(B, H, W), workspace);
  }
  void backward(ParamArena& arena, float* dinp, const float* dout, const float* inp, int B, int H,
                int W) const {
    conv_transpose2d_backward(dinp, arena.grad(weight), arena.grad(bias), dout, inp, arena.param(weight),
                              shape(B, H, W), workspace);
  }
};

}  // namespace ll
