// Convolutions (NCHW, PyTorch semantics); see conv.h for the contract. The fast path is patch rows
// (im2row / row2im) around gemm_f32, image by image (over threads when set_num_threads > 1) through
// the caller's workspace; the direct loops at the bottom are the specification. No allocation, no
// printing.
#include "core/nn/conv.h"

#include <cassert>
#include <cmath>

#include "core/kernels/kernels.h"

#if defined(LATENTLAB_HAVE_OPENMP)
#include <omp.h>
#endif

namespace ll {

namespace {

// Patch rows (the transpose of the classic im2col): a conv with the zero-padded input pimg [CH, IHp, IWp]
// and output positions [PH, PW] reads
//   rows[ph*PW + pw, (ch*KH + kh)*KW + kw] = pimg[ch, ph*stride + kh, pw*stride + kw]
// so every (ch, kh) is a run of KW neighbouring input pixels (one 16-byte copy for the models' 4x4
// kernels), with no bounds test: the padding is in pimg. Row stride CH*KH*KW.
template <int kKW>  // kKW > 0: KW known at compile time; 0: read kw_rt
void im2row_k(float* rows, const float* pimg, int CH, int IHp, int IWp, int PH, int PW, int KH,
              int kw_rt, int stride) {
  const int KW = kKW > 0 ? kKW : kw_rt;
  const size_t plane = static_cast<size_t>(IHp) * IWp;
  float* r = rows;
  for (int ph = 0; ph < PH; ph++) {
    for (int pw = 0; pw < PW; pw++) {
      const float* base = pimg + static_cast<size_t>(ph * stride) * IWp + pw * stride;
      for (int ch = 0; ch < CH; ch++) {
        const float* t = base + ch * plane;
        for (int kh = 0; kh < KH; kh++, t += IWp, r += KW) {
          for (int kw = 0; kw < KW; kw++) r[kw] = t[kw];
        }
      }
    }
  }
}

// The adjoint: pimg[ch, ph*stride + kh, pw*stride + kw] += rows[...] (pimg is the padded image).
template <int kKW>
void row2im_k(float* pimg, const float* rows, int CH, int IHp, int IWp, int PH, int PW, int KH,
              int kw_rt, int stride) {
  const int KW = kKW > 0 ? kKW : kw_rt;
  const size_t plane = static_cast<size_t>(IHp) * IWp;
  const float* r = rows;
  for (int ph = 0; ph < PH; ph++) {
    for (int pw = 0; pw < PW; pw++) {
      float* base = pimg + static_cast<size_t>(ph * stride) * IWp + pw * stride;
      for (int ch = 0; ch < CH; ch++) {
        float* t = base + ch * plane;
        for (int kh = 0; kh < KH; kh++, t += IWp, r += KW) {
          for (int kw = 0; kw < KW; kw++) t[kw] += r[kw];
        }
      }
    }
  }
}

void im2row(float* rows, const float* pimg, int CH, int IHp, int IWp, int PH, int PW, int KH, int KW,
            int stride) {
  switch (KW) {
    case 3: return im2row_k<3>(rows, pimg, CH, IHp, IWp, PH, PW, KH, KW, stride);
    case 4: return im2row_k<4>(rows, pimg, CH, IHp, IWp, PH, PW, KH, KW, stride);
    default: return im2row_k<0>(rows, pimg, CH, IHp, IWp, PH, PW, KH, KW, stride);
  }
}

void row2im(float* pimg, const float* rows, int CH, int IHp, int IWp, int PH, int PW, int KH, int KW,
            int stride) {
  switch (KW) {
    case 3: return row2im_k<3>(pimg, rows, CH, IHp, IWp, PH, PW, KH, KW, stride);
    case 4: return row2im_k<4>(pimg, rows, CH, IHp, IWp, PH, PW, KH, KW, stride);
    default: return row2im_k<0>(pimg, rows, CH, IHp, IWp, PH, PW, KH, KW, stride);
  }
}

// dst [CH, IH + 2*pad, IW + 2*pad] = src [CH, IH, IW] with a zero border of width pad.
void pad_image(float* dst, const float* src, int CH, int IH, int IW, int pad) {
  const int IWp = IW + 2 * pad;
  for (int ch = 0; ch < CH; ch++) {
    float* d = dst + static_cast<size_t>(ch) * (IH + 2 * pad) * IWp;
    const float* a = src + static_cast<size_t>(ch) * IH * IW;
    for (int i = 0; i < pad * IWp; i++) *d++ = 0.0f;
    for (int ih = 0; ih < IH; ih++) {
      for (int i = 0; i < pad; i++) *d++ = 0.0f;
      for (int iw = 0; iw < IW; iw++) *d++ = a[ih * IW + iw];
      for (int i = 0; i < pad; i++) *d++ = 0.0f;
    }
    for (int i = 0; i < pad * IWp; i++) *d++ = 0.0f;
  }
}

// The interior of a padded image back: dst [CH, IH, IW] += (accumulate) or = (plus bias[ch] when
// given) src [CH, IH + 2*pad, IW + 2*pad] without its border.
void unpad_image(float* dst, const float* src, const float* bias, bool accumulate, int CH, int IH,
                 int IW, int pad) {
  const int IWp = IW + 2 * pad;
  for (int ch = 0; ch < CH; ch++) {
    const float* a = src + (static_cast<size_t>(ch) * (IH + 2 * pad) + pad) * IWp + pad;
    float* d = dst + static_cast<size_t>(ch) * IH * IW;
    const float b = bias ? bias[ch] : 0.0f;
    for (int ih = 0; ih < IH; ih++, a += IWp, d += IW) {
      if (accumulate) {
        for (int iw = 0; iw < IW; iw++) d[iw] += a[iw];
      } else {
        for (int iw = 0; iw < IW; iw++) d[iw] = a[iw] + b;
      }
    }
  }
}

void zero(float* x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = 0.0f;
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
// Threads. With set_num_threads(n > 1) the images of a batch are shared out among n OpenMP threads
// (static schedule), each with its own slice of the workspace and single-threaded GEMMs: the models'
// per-image GEMMs are too small for a threaded GEMM to gain (measured: the VQ-VAE trained slower on two
// threads that way than on one). Weight gradients go to per-thread partial sums, added to dweight in
// thread order after the images, so a given thread count always gives the same result.

namespace {
// The threads a workspace is sized for: the processors, fixed for the process (at most 16).
int thread_capacity() {
#if defined(LATENTLAB_HAVE_OPENMP)
  static const int procs = omp_get_num_procs() < 1 ? 1 : (omp_get_num_procs() > 16 ? 16 : omp_get_num_procs());
  return procs;
#else
  return 1;
#endif
}

int conv_threads(int B) {
  int t = num_threads() < thread_capacity() ? num_threads() : thread_capacity();
  return t < B ? t : B;
}

// Per-thread slices [image workspace, weight-gradient partial] when threads are possible.
size_t threaded_workspace(size_t image_ws, size_t dweight_size) {
  return thread_capacity() > 1 ? thread_capacity() * (image_ws + dweight_size) : image_ws;
}

// body(b, thread workspace, thread index) for every image b, on T threads.
template <typename Body>
void for_each_image(int B, int T, float* workspace, size_t per_thread, const Body& body) {
#if defined(LATENTLAB_HAVE_OPENMP)
  if (T > 1) {
    SerialGemmScope serial;
#pragma omp parallel for num_threads(T) schedule(static)
    for (int b = 0; b < B; b++) {
      const int t = omp_get_thread_num();
      body(b, workspace + t * per_thread, t);
    }
    return;
  }
#endif
  (void)T, (void)per_thread;
  for (int b = 0; b < B; b++) body(b, workspace, 0);
}

// Thread t > 0 accumulates its weight gradient at partial(t) (zeroed first); thread 0 into dweight.
struct WeightGrad {
  float* dweight;
  float* workspace;
  size_t per_thread, offset, size;  // partial(t) = workspace + t * per_thread + offset
  int T;
  float* partial(int t) const { return workspace + t * per_thread + offset; }
  float* for_thread(int t) const { return !dweight ? nullptr : (t == 0 ? dweight : partial(t)); }
  void begin() const {
    if (dweight) for (int t = 1; t < T; t++) zero(partial(t), size);
  }
  void end() const {
    if (!dweight) return;
    for (int t = 1; t < T; t++) {
      const float* p = partial(t);
      for (size_t i = 0; i < size; i++) dweight[i] += p[i];
    }
  }
};
}  // namespace

// ---------------------------------------------------------------------------------------------
// Conv2d, fast path, image by image. With CKK = C*KH*KW and P = OH*OW:
//   rows[P, CKK] = the image's patch rows (from the image zero-padded);
//   out_b[OC, P] = weight[OC, CKK] * rows^T (+ bias)
// A 1x1 convolution at stride 1 without padding needs no patches: the image [C, P] is rows^T.
// Workspace per thread: rows (P*CKK), one padded image (C*(H+2p)*(W+2p)) and, with threads, a weight
// gradient partial. (Stacking the patch rows of many images into one GEMM was measured too, natively
// and in wasm: 2-5% slower on one thread, for the copies to and from channel-major order.)

namespace {
bool pointwise(const ConvShape& s) { return s.KH == 1 && s.KW == 1 && s.stride == 1 && s.pad == 0; }
size_t padded_floats(int CH, int H, int W, int pad) {
  return pad > 0 ? static_cast<size_t>(CH) * (H + 2 * pad) * (W + 2 * pad) : 0;
}
size_t conv2d_image_floats(const ConvShape& s) {
  if (pointwise(s)) return 0;
  return static_cast<size_t>(s.C) * s.KH * s.KW * s.conv_oh() * s.conv_ow() + padded_floats(s.C, s.H, s.W, s.pad);
}
size_t tconv_image_floats(const ConvShape& s) {
  return static_cast<size_t>(s.OC) * s.KH * s.KW * s.H * s.W + padded_floats(s.OC, s.tconv_oh(), s.tconv_ow(), s.pad);
}
size_t weight_floats(const ConvShape& s) { return static_cast<size_t>(s.OC) * s.C * s.KH * s.KW; }
}  // namespace

size_t conv2d_workspace_floats(const ConvShape& s) {
  return threaded_workspace(conv2d_image_floats(s), weight_floats(s));
}

void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const ConvShape& s, float* workspace) {
  check_conv(s);
  const int OH = s.conv_oh(), OW = s.conv_ow(), P = OH * OW, CKK = s.C * s.KH * s.KW;
  const int Hp = s.H + 2 * s.pad, Wp = s.W + 2 * s.pad;
  const size_t in_image = static_cast<size_t>(s.C) * s.H * s.W, out_image = static_cast<size_t>(s.OC) * P;
  const size_t npad = padded_floats(s.C, s.H, s.W, s.pad);
  const int T = conv_threads(s.B);
  for_each_image(s.B, T, workspace, conv2d_image_floats(s) + weight_floats(s), [&](int b, float* ws, int) {
    const float* x = inp + b * in_image;
    float* y = out + b * out_image;
    if (pointwise(s)) {
      gemm_f32(false, false, s.OC, P, s.C, 1.0f, weight, s.C, x, P, 0.0f, y, P);
      return;
    }
    float* padded = ws;        // [C, Hp, Wp] when pad > 0
    float* rows = ws + npad;   // [P, CKK]
    if (s.pad > 0) pad_image(padded, x, s.C, s.H, s.W, s.pad);
    im2row(rows, s.pad > 0 ? padded : x, s.C, Hp, Wp, OH, OW, s.KH, s.KW, s.stride);
    gemm_f32(false, true, s.OC, P, CKK, 1.0f, weight, CKK, rows, CKK, 0.0f, y, P);
  });
  if (bias) add_bias(out, bias, s.B, s.OC, P);
}

void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const ConvShape& s, float* workspace) {
  check_conv(s);
  const int OH = s.conv_oh(), OW = s.conv_ow(), P = OH * OW, CKK = s.C * s.KH * s.KW;
  const int Hp = s.H + 2 * s.pad, Wp = s.W + 2 * s.pad;
  const size_t in_image = static_cast<size_t>(s.C) * s.H * s.W, out_image = static_cast<size_t>(s.OC) * P;
  const size_t npad = padded_floats(s.C, s.H, s.W, s.pad);
  const size_t per_thread = conv2d_image_floats(s) + weight_floats(s);
  const int T = conv_threads(s.B);
  if (dinp || dweight) {
    const WeightGrad dw{dweight, workspace, per_thread, conv2d_image_floats(s), weight_floats(s), T};
    dw.begin();
    for_each_image(s.B, T, workspace, per_thread, [&](int b, float* ws, int t) {
      const float* x = inp + b * in_image;
      const float* dy = dout + b * out_image;  // [OC, P]
      float* dx = dinp ? dinp + b * in_image : nullptr;
      float* dW = dw.for_thread(t);
      if (pointwise(s)) {
        // dW[OC, C] += dy[OC, P] * x[C, P]^T;  dx[C, P] += W[OC, C]^T * dy[OC, P]
        if (dW) gemm_f32(false, true, s.OC, s.C, P, 1.0f, dy, P, x, P, 1.0f, dW, s.C);
        if (dx) gemm_f32(true, false, s.C, P, s.OC, 1.0f, weight, s.C, dy, P, 1.0f, dx, P);
        return;
      }
      float* padded = ws;        // [C, Hp, Wp] when pad > 0
      float* rows = ws + npad;   // [P, CKK]
      if (dW) {
        // dW[OC, CKK] += dy[OC, P] * rows[P, CKK]     (y = W rows^T, so dL/dW = dy rows)
        if (s.pad > 0) pad_image(padded, x, s.C, s.H, s.W, s.pad);
        im2row(rows, s.pad > 0 ? padded : x, s.C, Hp, Wp, OH, OW, s.KH, s.KW, s.stride);
        gemm_f32(false, false, s.OC, CKK, P, 1.0f, dy, P, rows, CKK, 1.0f, dW, CKK);
      }
      if (dx) {
        // drows[P, CKK] = dy[OC, P]^T * W[OC, CKK]; dx = row2im(drows)   (row2im is im2row's adjoint)
        gemm_f32(true, false, P, CKK, s.OC, 1.0f, dy, P, weight, CKK, 0.0f, rows, CKK);
        if (s.pad > 0) {
          zero(padded, npad);
          row2im(padded, rows, s.C, Hp, Wp, OH, OW, s.KH, s.KW, s.stride);
          unpad_image(dx, padded, nullptr, true, s.C, s.H, s.W, s.pad);
        } else {
          row2im(dx, rows, s.C, Hp, Wp, OH, OW, s.KH, s.KW, s.stride);
        }
      }
    });
    dw.end();
  }
  // db[OC] += sum over b, oh, ow of dy   (the bias is added at every position)
  if (dbias) sum_bias(dbias, dout, s.B, s.OC, P);
}

// ---------------------------------------------------------------------------------------------
// ConvTranspose2d, fast path. It is Conv2d's input gradient: a Conv2d from [OC, OH, OW] to
// [C, H, W] with weight [C, OC*KH*KW]. Per image b, with OKK = OC*KH*KW and N = H*W:
//   rows[N, OKK] = inp_b[C, N]^T * weight[C, OKK];  out_b = row2im(rows) (+ bias), through a
//   zero-padded output
// Workspace per thread: rows (N*OKK), one padded output (OC*(OH+2p)*(OW+2p)) and, with threads, a
// weight-gradient partial.

size_t conv_transpose2d_workspace_floats(const ConvShape& s) {
  return threaded_workspace(tconv_image_floats(s), weight_floats(s));
}

void conv_transpose2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                              const ConvShape& s, float* workspace) {
  check_tconv(s);
  const int OH = s.tconv_oh(), OW = s.tconv_ow(), N = s.H * s.W, OKK = s.OC * s.KH * s.KW;
  const int OHp = OH + 2 * s.pad, OWp = OW + 2 * s.pad;
  const size_t in_image = static_cast<size_t>(s.C) * N, out_image = static_cast<size_t>(s.OC) * OH * OW;
  const size_t npad = padded_floats(s.OC, OH, OW, s.pad);
  const int T = conv_threads(s.B);
  for_each_image(s.B, T, workspace, tconv_image_floats(s) + weight_floats(s), [&](int b, float* ws, int) {
    float* y = out + b * out_image;
    float* padded = ws;        // [OC, OHp, OWp] when pad > 0
    float* rows = ws + npad;   // [N, OKK]
    gemm_f32(true, false, N, OKK, s.C, 1.0f, inp + b * in_image, N, weight, OKK, 0.0f, rows, OKK);
    if (s.pad > 0) {
      zero(padded, npad);
      row2im(padded, rows, s.OC, OHp, OWp, s.H, s.W, s.KH, s.KW, s.stride);
      unpad_image(y, padded, bias, false, s.OC, OH, OW, s.pad);
    } else {
      zero(y, out_image);
      row2im(y, rows, s.OC, OHp, OWp, s.H, s.W, s.KH, s.KW, s.stride);
      if (bias) add_bias(y, bias, 1, s.OC, OH * OW);
    }
  });
}

void conv_transpose2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, const ConvShape& s,
                               float* workspace) {
  check_tconv(s);
  const int OH = s.tconv_oh(), OW = s.tconv_ow(), N = s.H * s.W, OKK = s.OC * s.KH * s.KW;
  const int OHp = OH + 2 * s.pad, OWp = OW + 2 * s.pad;
  const size_t in_image = static_cast<size_t>(s.C) * N, out_image = static_cast<size_t>(s.OC) * OH * OW;
  const size_t npad = padded_floats(s.OC, OH, OW, s.pad);
  const size_t per_thread = tconv_image_floats(s) + weight_floats(s);
  const int T = conv_threads(s.B);
  if (dinp || dweight) {
    const WeightGrad dw{dweight, workspace, per_thread, tconv_image_floats(s), weight_floats(s), T};
    dw.begin();
    for_each_image(s.B, T, workspace, per_thread, [&](int b, float* ws, int t) {
      float* padded = ws;        // [OC, OHp, OWp] when pad > 0
      float* rows = ws + npad;   // [N, OKK]
      float* dW = dw.for_thread(t);
      // drows[N, OKK] = im2row(dy)   (out = row2im(rows), and im2row is row2im's adjoint)
      const float* dy = dout + b * out_image;
      if (s.pad > 0) pad_image(padded, dy, s.OC, OH, OW, s.pad);
      im2row(rows, s.pad > 0 ? padded : dy, s.OC, OHp, OWp, s.H, s.W, s.KH, s.KW, s.stride);
      // dW[C, OKK] += x[C, N] * drows[N, OKK]   (rows = x^T W, so dL/dW = x drows)
      if (dW) gemm_f32(false, false, s.C, OKK, N, 1.0f, inp + b * in_image, N, rows, OKK, 1.0f, dW, OKK);
      // dx[C, N] += W[C, OKK] * drows[N, OKK]^T   (rows = x^T W, so dL/dx = W drows^T)
      if (dinp) gemm_f32(false, true, s.C, N, OKK, 1.0f, weight, OKK, rows, OKK, 1.0f, dinp + b * in_image, N);
    });
    dw.end();
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
