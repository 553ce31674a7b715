// Per-image figures of a model's last forward, as `latentlab eval` reports their means: the loss terms
// are Model::term(t) [B] themselves; this adds the squared error of the reconstruction probabilities per
// image (unclamped, summed in double in the same order as accumulate_totals in core/train), so that for
// a single image the figures equal what an evaluation of that image alone reports, to the last digit.
// The page's Draw panel shows these instead of computing its own.
#pragma once

namespace ll {

// out[b] = sum_p (recon[b, p] - x[b, p])^2, in double. recon, x [B, P].
void image_squared_errors(const float* recon, const float* x, int B, int P, double* out);

}  // namespace ll
