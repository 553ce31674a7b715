// Per-image squared error of a reconstruction; see image_figures.h.
#include "core/eval/image_figures.h"

#include <cstddef>

namespace ll {

void image_squared_errors(const float* recon, const float* x, int B, int P, double* out) {
  for (int b = 0; b < B; b++) {
    const float* p = recon + static_cast<size_t>(b) * P;  // [P]
    const float* t = x + static_cast<size_t>(b) * P;      // [P]
    double se = 0.0;
    for (int i = 0; i < P; i++) {
      const double d = static_cast<double>(p[i]) - t[i];
      se += d * d;
    }
    out[b] = se;
  }
}

}  // namespace ll
