// libFuzzer target: the IDX readers (core/io/idx.cpp). The same bytes go to the image and the label
// parser; what parses is paired into a data set (counts and label range checked) and its first
// images converted to float, which reads every pixel the header promised.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/io/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ll::ImageSet images;
  ll::LabelSet labels;
  const bool images_ok = ll::parse_idx_images(data, size, &images).ok();
  const bool labels_ok = ll::parse_idx_labels(data, size, &labels).ok();
  if (images_ok) {
    const size_t expected = static_cast<size_t>(images.count) * images.pixels_per_image();
    if (images.pixels.size() != expected) __builtin_trap();
    // A label set of the same count (all zero) pairs with it; the first images go through to_float.
    ll::LabelSet zeros;
    zeros.count = images.count;
    zeros.labels.assign(static_cast<size_t>(images.count), 0);
    ll::Dataset set;
    if (ll::make_dataset(images, zeros, &set).ok()) {
      const int n = std::min(set.size(), 4);
      std::vector<float> out(static_cast<size_t>(n) * set.images.pixels_per_image());
      set.to_float(nullptr, 0, n, out.data());
      for (float v : out) if (!(v >= 0.0f && v <= 1.0f)) __builtin_trap();
    }
  }
  if (labels_ok && labels.labels.size() != static_cast<size_t>(labels.count)) __builtin_trap();
  return 0;
}
