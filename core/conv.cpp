// Convolutions (NCHW, PyTorch semantics); see conv.h for the contract. The fast path is im2col /
// col2im around gemm_f32, one image at a time through the caller's workspace; the direct loops at the
// bottom are the specification. No allocation, no printing.
#include "core/conv.h"

#include <cassert>
#include <cmath>

#include "core/kernels.h"

namespace ll {

namespace {

// The output columns pw in [0, PW) whose input column pw * stride + off lies inside [0, IW), as
// [*lo, *hi): im2col and col2im loop over exactly these, without a test per element.
void in_image_range(int PW, int IW, int stride, int off, int* lo, int* hi) {
  const int first = off >= 0 ? 0 : (-off + stride - 1) / stride;
  const int end = IW - 1 - off < 0 ? 0 : (IW - 1 - off) / stride + 1;
  *lo = first < PW ? first : PW;
  *hi = end < *lo ? *lo : (end < PW ? end : PW);
}

// One image's patch matrix. A conv with input [CH, IH, IW] and output positions [PH, PW] reads
// col[(ch*KH + kh)*KW + kw, ph*PW + pw] = img[ch, ph*stride - pad + kh, pw*stride - pad + kw]
// (zero outside the image).
// col [CH*KH*KW, PH*PW], img [CH, IH, IW]
void im2col(float* col, const float* img, int CH, int IH, int IW, int PH, int PW, int KH, int KW,
            int stride, int pad) {
  for (int ch = 0; ch < CH; ch++) {
    const float* im = img + static_cast<size_t>(ch) * IH * IW;
    for (int kh = 0; kh < KH; kh++) {
      for (int kw = 0; kw < KW; kw++) {
        int lo, hi;
        in_image_range(PW, IW, stride, kw - pad, &lo, &hi);
        float* row = col + (static_cast<size_t>(ch * KH + kh) * KW + kw) * PH * PW;
        for (int ph = 0; ph < PH; ph++) {
          int ih = ph * stride - pad + kh;
          float* r = row + static_cast<size_t>(ph) * PW;
          if (ih < 0 || ih >= IH) {
            for (int pw = 0; pw < PW; pw++) r[pw] = 0.0f;
            continue;
          }
          // Branch-free: zeros, the in-image run (a plain copy at stride 1), zeros.
          const float* src = im + static_cast<size_t>(ih) * IW;
          const int off = kw - pad;
          for (int pw = 0; pw < lo; pw++) r[pw] = 0.0f;
          if (stride == 1) {
            for (int pw = lo; pw < hi; pw++) r[pw] = src[pw + off];
          } else {
            for (int pw = lo; pw < hi; pw++) r[pw] = src[pw * stride + off];
          }
          for (int pw = hi; pw < PW; pw++) r[pw] = 0.0f;
        }
      }
    }
  }
}

// The adjoint of im2col: img[ch, ih, iw] += every col entry that im2col read from there.
// img [CH, IH, IW], col [CH*KH*KW, PH*PW]
void col2im(float* img, const float* col, int CH, int IH, int IW, int PH, int PW, int KH, int KW,
            int stride, int pad) {
  for (int ch = 0; ch < CH; ch++) {
    float* im = img + static_cast<size_t>(ch) * IH * IW;
    for (int kh = 0; kh < KH; kh++) {
      for (int kw = 0; kw < KW; kw++) {
        int lo, hi;
        in_image_range(PW, IW, stride, kw - pad, &lo, &hi);
        const float* row = col + (static_cast<size_t>(ch * KH + kh) * KW + kw) * PH * PW;
        for (int ph = 0; ph < PH; ph++) {
          int ih = ph * stride - pad + kh;
          if (ih < 0 || ih >= IH) continue;
          const float* r = row + static_cast<size_t>(ph) * PW;
          float* dst = im + static_cast<size_t>(ih) * IW;
          const int off = kw - pad;
          if (stride == 1) {
            for (int pw = lo; pw < hi; pw++) dst[pw + off] += r[pw];
          } else {
            for (int pw = lo; pw < hi; pw++) dst[pw * stride + off] += r[pw];
          }
        }
      }
    }
  }
}

// x [B, CH, N] += bias[CH] per channel
void add_bias(float* x, const float* bias, int B, int CH, int N) {
  for (int b = 0; b < B; b++) {
    for (int ch = 0; ch < CH; ch++) {
      float* p = x + (static_cast<size_t>(b) * CH + ch) * N;
      for (int i = 0; i < N; i++) p[i] += bias[ch];
    }
  }
}

// dbias[CH] += sum over b and positions of dout [B, CH, N]
void sum_bias(float* dbias, const float* dout, int B, int CH, int N) {
  for (int b = 0; b < B; b++) {
    for (int ch = 0; ch < CH; ch++) {
      const float* p = dout + (static_cast<size_t>(b) * CH + ch) * N;
      float acc = 0.0f;
      for (int i = 0; i < N; i++) acc += p[i];
      dbias[ch] += acc;
    }
  }
}

void check_conv(const ConvShape& s) {
  (void)s;
  assert(s.B > 0 && s.C > 0 && s.OC > 0 && s.KH > 0 && s.KW > 0 && s.stride > 0 && s.pad >= 0);
  assert(s.H + 2 * s.pad >= s.KH && s.W + 2 * s.pad >= s.KW);  // else OH, OW < 1
}

void check_tconv(const ConvShape& s) {
  (void)s;
  assert(s.B > 0 && s.C > 0 && s.OC > 0 && s.KH > 0 && s.KW > 0 && s.stride > 0 && s.pad >= 0);
  assert(s.H > 0 && s.W > 0 && s.tconv_oh() > 0 && s.tconv_ow() > 0);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Conv2d, fast path. Per image b, with CKK = C*KH*KW and P = OH*OW:
//   out_b[OC, P] = weight[OC, CKK] * col_b[CKK, P] (+ bias)

size_t conv2d_workspace_floats(const ConvShape& s) {
  return static_cast<size_t>(s.C) * s.KH * s.KW * s.conv_oh() * s.conv_ow();
}

void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const ConvShape& s, float* workspace) {
  check_conv(s);
  const int OH = s.conv_oh(), OW = s.conv_ow(), P = OH * OW, CKK = s.C * s.KH * s.KW;
  for (int b = 0; b < s.B; b++) {
    const float* x = inp + static_cast<size_t>(b) * s.C * s.H * s.W;  // [C, H, W]
    float* y = out + static_cast<size_t>(b) * s.OC * P;                // [OC, OH*OW]
    im2col(workspace, x, s.C, s.H, s.W, OH, OW, s.KH, s.KW, s.stride, s.pad);
    gemm_f32(false, false, s.OC, P, CKK, 1.0f, weight, CKK, workspace, P, 0.0f, y, P);
  }
  if (bias) add_bias(out, bias, s.B, s.OC, P);
}

void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const ConvShape& s, float* workspace) {
  check_conv(s);
  const int OH = s.conv_oh(), OW = s.conv_ow(), P = OH * OW, CKK = s.C * s.KH * s.KW;
  for (int b = 0; b < s.B; b++) {
    const float* x = inp + static_cast<size_t>(b) * s.C * s.H * s.W;  // [C, H, W]
    const float* dy = dout + static_cast<size_t>(b) * s.OC * P;        // [OC, OH*OW]
    if (dweight) {
      // dW[OC, CKK] += dy[OC, P] * col[CKK, P]^T     (y = W col, so dL/dW = dy col^T)
      im2col(workspace, x, s.C, s.H, s.W, OH, OW, s.KH, s.KW, s.stride, s.pad);
      gemm_f32(false, true, s.OC, CKK, P, 1.0f, dy, P, workspace, P, 1.0f, dweight, CKK);
    }
    if (dinp) {
      // dcol[CKK, P] = W[OC, CKK]^T * dy[OC, P]; dx = col2im(dcol)   (col2im is im2col's adjoint)
      gemm_f32(true, false, CKK, P, s.OC, 1.0f, weight, CKK, dy, P, 0.0f, workspace, P);
      col2im(dinp + static_cast<size_t>(b) * s.C * s.H * s.W, workspace, s.C, s.H, s.W, OH, OW,
             s.KH, s.KW, s.stride, s.pad);
    }
  }
  // db[OC] += sum over b, oh, ow of dy   (the bias is added at every position)
  if (dbias) sum_bias(dbias, dout, s.B, s.OC, P);
}

// ---------------------------------------------------------------------------------------------
// ConvTranspose2d, fast path. It is Conv2d's input gradient: a Conv2d from [OC, OH, OW] to
// [C, H, W] with weight [C, OC*KH*KW]. Per image b, with OKK = OC*KH*KW and N = H*W:
//   col_b[OKK, N] = weight[C, OKK]^T * inp_b[C, N];  out_b = col2im(col_b) (+ bias)

size_t conv_transpose2d_workspace_floats(const ConvShape& s) {
  return static_cast<size_t>(s.OC) * s.KH * s.KW * s.H * s.W;
}

void conv_transpose2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                              const ConvShape& s, float* workspace) {
  check_tconv(s);
  const int OH = s.tconv_oh(), OW = s.tconv_ow(), N = s.H * s.W, OKK = s.OC * s.KH * s.KW;
  const size_t out_per_image = static_cast<size_t>(s.OC) * OH * OW;
  for (size_t i = 0; i < out_per_image * s.B; i++) out[i] = 0.0f;
  for (int b = 0; b < s.B; b++) {
    const float* x = inp + static_cast<size_t>(b) * s.C * N;  // [C, H*W]
    gemm_f32(true, false, OKK, N, s.C, 1.0f, weight, OKK, x, N, 0.0f, workspace, N);
    col2im(out + b * out_per_image, workspace, s.OC, OH, OW, s.H, s.W, s.KH, s.KW, s.stride, s.pad);
  }
  if (bias) add_bias(out, bias, s.B, s.OC, OH * OW);
}

void conv_transpose2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, const ConvShape& s,
                               float* workspace) {
  check_tconv(s);
  const int OH = s.tconv_oh(), OW = s.tconv_ow(), N = s.H * s.W, OKK = s.OC * s.KH * s.KW;
  const size_t out_per_image = static_cast<size_t>(s.OC) * OH * OW;
  for (int b = 0; b < s.B; b++) {
    if (!dinp && !dweight) break;
    const float* x = inp + static_cast<size_t>(b) * s.C * N;  // [C, H*W]
    // dcol[OKK, N] = im2col(dy)   (out = col2im(col), and im2col is col2im's adjoint)
    im2col(workspace, dout + b * out_per_image, s.OC, OH, OW, s.H, s.W, s.KH, s.KW, s.stride,
           s.pad);
    // dx[C, N] += W[C, OKK] * dcol[OKK, N]   (col = W^T x, so dL/dx = W dcol: a Conv2d of dy)
    if (dinp) {
      gemm_f32(false, false, s.C, N, OKK, 1.0f, weight, OKK, workspace, N, 1.0f,
               dinp + static_cast<size_t>(b) * s.C * N, N);
    }
    // dW[C, OKK] += x[C, N] * dcol[OKK, N]^T   (col = W^T x, so dL/dW = x dcol^T)
    if (dweight) gemm_f32(false, true, s.C, OKK, N, 1.0f, x, N, workspace, N, 1.0f, dweight, OKK);
  }
  // db[OC] += sum over b, oh, ow of dy
  if (dbias) sum_bias(dbias, dout, s.B, s.OC, OH * OW);
}

// ---------------------------------------------------------------------------------------------
// Direct references, straight from the definitions:
//   Conv2d:          out[b,oc,oh,ow] = bias[oc] + sum_{c,kh,kw} inp[b,c,ih,iw] * w[oc,c,kh,kw]
//   ConvTranspose2d: out[b,oc,oh,ow] = bias[oc] + sum_{c,kh,kw} inp[b,c,ih,iw] * w[c,oc,kh,kw]
// with ih = oh*stride - pad + kh, iw = ow*stride - pad + kw (only in-bounds terms) for Conv2d, and
// oh = ih*stride - pad + kh, ow = iw*stride - pad + kw for ConvTranspose2d. Sums in double.

void conv2d_forward__scalar(float* out, const float* inp, const float* weight, const float* bias,
                            const ConvShape& s) {
  check_conv(s);
  const int OH = s.conv_oh(), OW = s.conv_ow();
  for (int b = 0; b < s.B; b++)
    for (int oc = 0; oc < s.OC; oc++)
      for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
          double acc = bias ? bias[oc] : 0.0;
          for (int c = 0; c < s.C; c++)
            for (int kh = 0; kh < s.KH; kh++)
              for (int kw = 0; kw < s.KW; kw++) {
                int ih = oh * s.stride - s.pad + kh, iw = ow * s.stride - s.pad + kw;
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                acc += static_cast<double>(inp[((b * s.C + c) * s.H + ih) * s.W + iw]) *
                       weight[((oc * s.C + c) * s.KH + kh) * s.KW + kw];
              }
          out[((b * s.OC + oc) * OH + oh) * OW + ow] = static_cast<float>(acc);
        }
}

void conv2d_backward__scalar(float* dinp, float* dweight, float* dbias, const float* dout,
                             const float* inp, const float* weight, const ConvShape& s) {
  check_conv(s);
  const int OH = s.conv_oh(), OW = s.conv_ow();
  for (int b = 0; b < s.B; b++)
    for (int oc = 0; oc < s.OC; oc++)
      for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
          float dy = dout[((b * s.OC + oc) * OH + oh) * OW + ow];
          if (dbias) dbias[oc] += dy;  // d out / d bias[oc] = 1
          for (int c = 0; c < s.C; c++)
            for (int kh = 0; kh < s.KH; kh++)
              for (int kw = 0; kw < s.KW; kw++) {
                int ih = oh * s.stride - s.pad + kh, iw = ow * s.stride - s.pad + kw;
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                int xi = ((b * s.C + c) * s.H + ih) * s.W + iw;
                int wi = ((oc * s.C + c) * s.KH + kh) * s.KW + kw;
                if (dinp) dinp[xi] += dy * weight[wi];   // d out / d inp = w
                if (dweight) dweight[wi] += dy * inp[xi];  // d out / d w = inp
              }
        }
}

void conv_transpose2d_forward__scalar(float* out, const float* inp, const float* weight,
                                      const float* bias, const ConvShape& s) {
  check_tconv(s);
  const int OH = s.tconv_oh(), OW = s.tconv_ow();
  for (int b = 0; b < s.B; b++)
    for (int oc = 0; oc < s.OC; oc++)
      for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
          double acc = bias ? bias[oc] : 0.0;
          for (int c = 0; c < s.C; c++)
            for (int ih = 0; ih < s.H; ih++)
              for (int iw = 0; iw < s.W; iw++) {
                int kh = oh - ih * s.stride + s.pad, kw = ow - iw * s.stride + s.pad;
                if (kh < 0 || kh >= s.KH || kw < 0 || kw >= s.KW) continue;
                acc += static_cast<double>(inp[((b * s.C + c) * s.H + ih) * s.W + iw]) *
                       weight[((c * s.OC + oc) * s.KH + kh) * s.KW + kw];
              }
          out[((b * s.OC + oc) * OH + oh) * OW + ow] = static_cast<float>(acc);
        }
}

void conv_transpose2d_backward__scalar(float* dinp, float* dweight, float* dbias, const float* dout,
                                       const float* inp, const float* weight, const ConvShape& s) {
  check_tconv(s);
  const int OH = s.tconv_oh(), OW = s.tconv_ow();
  for (int b = 0; b < s.B; b++)
    for (int oc = 0; oc < s.OC; oc++)
      for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
          float dy = dout[((b * s.OC + oc) * OH + oh) * OW + ow];
          if (dbias) dbias[oc] += dy;  // d out / d bias[oc] = 1
          for (int c = 0; c < s.C; c++)
            for (int ih = 0; ih < s.H; ih++)
              for (int iw = 0; iw < s.W; iw++) {
                int kh = oh - ih * s.stride + s.pad, kw = ow - iw * s.stride + s.pad;
                if (kh < 0 || kh >= s.KH || kw < 0 || kw >= s.KW) continue;
                int xi = ((b * s.C + c) * s.H + ih) * s.W + iw;
                int wi = ((c * s.OC + oc) * s.KH + kh) * s.KW + kw;
                if (dinp) dinp[xi] += dy * weight[wi];   // d out / d inp = w
                if (dweight) dweight[wi] += dy * inp[xi];  // d out / d w = inp
              }
        }
}

// ---------------------------------------------------------------------------------------------
// Layer structs.

void Conv2d::add_to(ParamArena& arena, const std::string& name, int in_ch, int out_ch, int kernel,
                    int stride_, int pad_) {
  C = in_ch;
  OC = out_ch;
  K = kernel;
  stride = stride_;
  pad = pad_;
  weight = arena.add(name + ".weight", {OC, C, K, K});
  bias = arena.add(name + ".bias", {OC});
}

void Conv2d::init(ParamArena& arena, Rng& rng) const {
  float bound = 1.0f / std::sqrt(static_cast<float>(C * K * K));
  rng.fill_uniform(arena.param(weight), static_cast<size_t>(OC) * C * K * K, -bound, bound);
  rng.fill_uniform(arena.param(bias), static_cast<size_t>(OC), -bound, bound);
}

ConvShape Conv2d::shape(int B, int H, int W) const {
  ConvShape s;
  s.B = B, s.C = C, s.H = H, s.W = W, s.OC = OC, s.KH = K, s.KW = K, s.stride = stride, s.pad = pad;
  return s;
}

void ConvTranspose2d::add_to(ParamArena& arena, const std::string& name, int in_ch, int out_ch,
                             int kernel, int stride_, int pad_) {
  C = in_ch;
  OC = out_ch;
  K = kernel;
  stride = stride_;
  pad = pad_;
  weight = arena.add(name + ".weight", {C, OC, K, K});
  bias = arena.add(name + ".bias", {OC});
}

void ConvTranspose2d::init(ParamArena& arena, Rng& rng) const {
  float bound = 1.0f / std::sqrt(static_cast<float>(OC * K * K));
  rng.fill_uniform(arena.param(weight), static_cast<size_t>(C) * OC * K * K, -bound, bound);
  rng.fill_uniform(arena.param(bias), static_cast<size_t>(OC), -bound, bound);
}

ConvShape ConvTranspose2d::shape(int B, int H, int W) const {
  ConvShape s;
  s.B = B, s.C = C, s.H = H, s.W = W, s.OC = OC, s.KH = K, s.KW = K, s.stride = stride, s.pad = pad;
  return s;
}

}  // namespace ll
