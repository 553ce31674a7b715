// Binarised MNIST and moving MNIST (binary_data.h).
#include "core/io/binary_data.h"


namespace ll {

void binarize(const float* p, size_t n, Rng& rng, float* out) {
  for (size_t i = 0; i < n; i++) out[i] = rng.uniform() < p[i] ? 1.0f : 0.0f;
}

void binarized_images(const Dataset& data, int first, int count, uint64_t seed, float* out) {
  const size_t pixels = static_cast<size_t>(data.images.rows) * data.images.cols;
  for (int k = 0; k < count; k++) {
    const uint8_t* img = data.images.pixels.data() + static_cast<size_t>(first + k) * pixels;
    Rng rng(seed, static_cast<uint64_t>(first + k));
    float* o = out + static_cast<size_t>(k) * pixels;
    // uniform() < v / 255 for every pixel, as binarize() of the float image.
    for (size_t i = 0; i < pixels; i++) o[i] = rng.uniform() < img[i] / 255.0f ? 1.0f : 0.0f;
  }
}

namespace {
// Frame t shows at column c the digit's column c - direction * t (mod cols), each pixel on with the
// probability prob(digit pixel).
template <typename Pixel, typename Prob>
void shifted_frames(const Pixel* digit, int rows, int cols, int frames, int direction, Rng& rng, float* out,
                    Prob prob) {
  const size_t pixels = static_cast<size_t>(rows) * cols;
  for (int t = 0; t < frames; t++) {
    int shift = (direction * t) % cols;
    if (shift < 0) shift += cols;
    float* o = out + static_cast<size_t>(t) * pixels;
    for (int r = 0; r < rows; r++)
      for (int c = 0; c < cols; c++) {
        int src = c - shift;
        if (src < 0) src += cols;
        o[r * cols + c] = rng.uniform() < prob(digit[r * cols + src]) ? 1.0f : 0.0f;
      }
  }
}
}  // namespace

void moving_mnist_sequence(const uint8_t* digit, int rows, int cols, int frames, int direction, Rng& rng,
                           float* out) {
  // v / 255.0f, as Dataset::to_float: the same bits as moving_sequence() of the float image.
  shifted_frames(digit, rows, cols, frames, direction, rng, out, [](uint8_t v) { return v / 255.0f; });
}

void moving_sequence(const float* digit, int rows, int cols, int frames, int direction, Rng& rng, float* out) {
  shifted_frames(digit, rows, cols, frames, direction, rng, out, [](float p) { return p; });
}

namespace {
const uint8_t* digit_of(const Dataset& data, int i) {
  return data.images.pixels.data() + static_cast<size_t>(i) * data.images.rows * data.images.cols;
}
}  // namespace

void moving_mnist_fixed_sequence(const Dataset& data, int i, int frames, uint64_t seed, float* out,
                                 int* direction) {
  Rng rng(seed, static_cast<uint64_t>(i));
  moving_mnist_random_sequence(data, i, frames, rng, out, direction);
}

void moving_mnist_random_sequence(const Dataset& data, int i, int frames, Rng& rng, float* out, int* direction) {
  const int d = rng.below(2) == 0 ? -1 : 1;
  if (direction) *direction = d;
  moving_mnist_sequence(digit_of(data, i), data.images.rows, data.images.cols, frames, d, rng, out);
}

}  // namespace ll
