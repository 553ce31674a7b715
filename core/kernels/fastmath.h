// Branch-free float exp and log1p that the compiler can vectorise (libm's cannot be, without
// fast-math). Used by the BCE-from-logits loss, whose exp/log1p per pixel otherwise costs as much as a
// layer's GEMM. Accuracy (tested against libm in test_fastmath.cpp): exp_f32 within 2 ulp on
// [-87, 88]; log1p_unit_f32 within 2 ulp on [0, 1]. Cephes-style range reduction + polynomials
// (S. Moshier, Cephes Math Library), the classic choice of SIMD math libraries.
#pragma once
#include <cstdint>
#include <cstring>

namespace ll {

// e^x for x in [-87.3, 88.7] (inputs outside are clamped: the result saturates near 0 or FLT_MAX).
inline float exp_f32(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
  // x = n ln2 + r, |r| <= ln2/2; ln2 split in two for an exact n*ln2.
  float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  // Multiply by 2^n through the exponent bits (n in [-126, 128) here, 2^128 handled by halves).
  // NaN in gives NaN out (p is NaN); n is replaced by 0 for the conversion alone, since converting NaN
  // to an integer is undefined behaviour (UBSan reports it; a model file with NaN weights reaches here).
  int32_t ni = static_cast<int32_t>(n == n ? n : 0.0f);
  int32_t half = ni / 2;
  uint32_t b1 = static_cast<uint32_t>(half + 127) << 23, b2 = static_cast<uint32_t>(ni - half + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  return p * s1 * s2;
}

// log(1 + e) for e in [0, 1]: u = 1 + e in [1, 2], log u by Cephes logf, corrected for the rounding of
// 1 + e by the factor e / (u - 1) (Goldberg 1991), so tiny e keep full relative accuracy.
inline float log1p_unit_f32(float e) {
  float u = 1.0f + e;
  float d = u - 1.0f;
  // log u = k ln2 + log m with m in [sqrt(1/2), sqrt(2)): here u in [1,2], so k is 0 or 1.
  bool big = u > 1.41421356f;
  float m = big ? 0.5f * u : u;
  float k = big ? 1.0f : 0.0f;
  float x = m - 1.0f;
  float z = x * x;
  float y = 7.0376836292e-2f;
  y = y * x - 1.1514610310e-1f;
  y = y * x + 1.1676998740e-1f;
  y = y * x - 1.2420140846e-1f;
  y = y * x + 1.4249322787e-1f;
  y = y * x - 1.6668057665e-1f;
  y = y * x + 2.0000714765e-1f;
  y = y * x - 2.4999993993e-1f;
  y = y * x + 3.3333331174e-1f;
  y = y * x * z;
  y += k * -2.12194440e-4f;
  y += -0.5f * z;
  float logu = x + y + k * 0.693359375f;
  // When 1 + e rounds to 1, log1p(e) = e to float precision. The divisor is made safe before dividing
  // so the division is unconditional (a conditional, possibly trapping division blocks vectorising).
  const float d_safe = d == 0.0f ? 1.0f : d;
  const float corrected = logu * (e / d_safe);
  return d == 0.0f ? e : corrected;
}

}  // namespace ll
