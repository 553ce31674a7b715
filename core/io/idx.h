// IDX files (the MNIST format, http://yann.lecun.com/exdb/mnist/): big-endian magic 0x00000803 for
// images [N, rows, cols] uint8, 0x00000801 for labels [N] uint8. Parsed from byte buffers (the browser
// has no files); images stay uint8 (a 60k-image training set is 47 MB as bytes, 188 MB as floats).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/base/status.h"

namespace ll {

struct ImageSet {
  int count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols, row-major, 0..255
  int pixels_per_image() const { return rows * cols; }
};

struct LabelSet {
  int count = 0;
  std::vector<uint8_t> labels;
};

// Each rejects, with a message: too short for the header; wrong magic (saying which was found and,
// if it is the other IDX kind, that images and labels look swapped); zero or absurd dimensions;
// a file length that disagrees with the header (truncated or trailing bytes, with both numbers).
Status parse_idx_images(const uint8_t* bytes, size_t size, ImageSet* out);
Status parse_idx_labels(const uint8_t* bytes, size_t size, LabelSet* out);

// A labelled data set: images and labels whose counts must agree (checked), labels 0..9 (checked).
struct Dataset {
  ImageSet images;
  LabelSet labels;
  // Categorical data: each byte is a category index (a code grid's cell, 0..255), not an intensity;
  // to_float then gives the indices themselves (the PixelCNN's inputs, Model::categorical_input).
  bool categorical = false;
  int size() const { return images.count; }
  // Convert images [first, first+n) given by index list (or contiguous if idx is null) to float
  // in [0, 1] (categorical: the byte values): out[n, rows*cols].
  void to_float(const uint32_t* idx, int first, int n, float* out) const;
};
Status make_dataset(ImageSet images, LabelSet labels, Dataset* out);

}  // namespace ll
