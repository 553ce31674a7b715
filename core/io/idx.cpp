// IDX parsing from byte buffers and the labelled Dataset; see idx.h. Goes into the wasm build: no files,
// no printing, no exceptions. Every length is checked before a byte is read; sizes use 64-bit arithmetic.
#include "core/io/idx.h"

#include <cassert>
#include <cstdio>

namespace ll {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // ubyte, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // ubyte, 1 dimension
constexpr uint32_t kMaxSide = 4096;
constexpr uint32_t kMaxCount = 100000000;

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", static_cast<unsigned>(v));
  return buf;
}

std::string hex8(uint8_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", static_cast<unsigned>(v));
  return buf;
}

std::string num(uint64_t v) { return std::to_string(static_cast<unsigned long long>(v)); }

const char* type_name(uint8_t t) {
  switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown type";
  }
}

// Checks the 4-byte magic. `what` is "images" or "labels"; `other` is the magic of the other kind.
Status check_magic(const uint8_t* bytes, size_t size, uint32_t expected, uint32_t other,
                   const char* what, const char* other_what, size_t header_size) {
  if (size < 4) {
    return Status::error("too short for an IDX " + std::string(what) + " header: " + num(size) +
                         " bytes, need at least " + num(header_size));
  }
  uint32_t magic = read_be32(bytes);
  if (magic == expected) return Status();
  std::string expect = "expected " + hex32(expected) + " (IDX " + what + ")";
  if (magic == other) {
    return Status::error("wrong magic " + hex32(magic) + " (IDX " + other_what + "), " + expect +
                         ": images and labels look swapped");
  }
  uint8_t type = bytes[2], ndims = bytes[3];
  if (bytes[0] == 0 && bytes[1] == 0 && type != 0x08 && ndims == (expected & 0xFF)) {
    return Status::error("wrong data type byte " + hex8(type) + " (" +
                         type_name(type) + "), expected 0x08 (unsigned byte)");
  }
  if (bytes[0] == 0 && bytes[1] == 0 && type == 0x08) {
    return Status::error("wrong magic " + hex32(magic) + ", " + expect + ": this file has " +
                         num(ndims) + " dimensions, expected " + num(expected & 0xFF));
  }
  return Status::error("wrong magic " + hex32(magic) + ", " + expect + "; not an IDX file?");
}

// Compares the header's implied length with the buffer's.
Status check_length(uint64_t expected, size_t size, const std::string& says) {
  if (size < expected) {
    return Status::error("truncated: header says " + says + " (" + num(expected) +
                         " bytes) but the file has " + num(size) + " bytes");
  }
  if (size > expected) {
    return Status::error("trailing bytes: header says " + says + " (" + num(expected) +
                         " bytes) but the file has " + num(size) + " bytes (" +
                         num(size - expected) + " extra)");
  }
  return Status();
}

}  // namespace

Status parse_idx_images(const uint8_t* bytes, size_t size, ImageSet* out) {
  constexpr size_t kHeader = 16;
  if (!bytes && size > 0) return Status::error("null buffer");
  Status st = check_magic(bytes, size, kImagesMagic, kLabelsMagic, "images", "labels", kHeader);
  if (!st.ok()) return st;
  if (size < kHeader) {
    return Status::error("too short for an IDX images header: " + num(size) +
                         " bytes, need at least " + num(kHeader));
  }
  uint32_t count = read_be32(bytes + 4), rows = read_be32(bytes + 8), cols = read_be32(bytes + 12);
  std::string says = num(count) + " images of " + num(rows) + "x" + num(cols);
  if (count == 0 || rows == 0 || cols == 0) return Status::error("zero dimension: header says " + says);
  if (rows > kMaxSide || cols > kMaxSide) {
    return Status::error("absurd image size: header says " + says + ", rows and cols must be at most " +
                         num(kMaxSide));
  }
  if (count > kMaxCount) {
    return Status::error("absurd image count: header says " + says + ", at most " + num(kMaxCount) +
                         " allowed");
  }
  uint64_t expected = kHeader + uint64_t(count) * rows * cols;  // <= 1.7e15: no overflow
  st = check_length(expected, size, says);
  if (!st.ok()) return st;
  ImageSet s;
  s.count = static_cast<int>(count);
  s.rows = static_cast<int>(rows);
  s.cols = static_cast<int>(cols);
  s.pixels.assign(bytes + kHeader, bytes + size);
  *out = std::move(s);
  return Status();
}

Status parse_idx_labels(const uint8_t* bytes, size_t size, LabelSet* out) {
  constexpr size_t kHeader = 8;
  if (!bytes && size > 0) return Status::error("null buffer");
  Status st = check_magic(bytes, size, kLabelsMagic, kImagesMagic, "labels", "images", kHeader);
  if (!st.ok()) return st;
  if (size < kHeader) {
    return Status::error("too short for an IDX labels header: " + num(size) +
                         " bytes, need at least " + num(kHeader));
  }
  uint32_t count = read_be32(bytes + 4);
  std::string says = num(count) + " labels";
  if (count == 0) return Status::error("zero dimension: header says 0 labels");
  if (count > kMaxCount) {
    return Status::error("absurd label count: header says " + says + ", at most " + num(kMaxCount) +
                         " allowed");
  }
  st = check_length(kHeader + uint64_t(count), size, says);
  if (!st.ok()) return st;
  LabelSet s;
  s.count = static_cast<int>(count);
  s.labels.assign(bytes + kHeader, bytes + size);
  *out = std::move(s);
  return Status();
}

Status make_dataset(ImageSet images, LabelSet labels, Dataset* out) {
  if (images.count != labels.count) {
    return Status::error("counts disagree: " + std::to_string(images.count) + " images but " +
                         std::to_string(labels.count) + " labels");
  }
  assert(images.pixels.size() == size_t(images.count) * size_t(images.pixels_per_image()));
  assert(labels.labels.size() == size_t(labels.count));
  for (size_t i = 0; i < labels.labels.size(); i++) {
    if (labels.labels[i] > 9) {
      return Status::error("label " + std::to_string(labels.labels[i]) + " at index " +
                           std::to_string(i) + " is outside 0..9");
    }
  }
  out->images = std::move(images);
  out->labels = std::move(labels);
  return Status();
}

void Dataset::to_float(const uint32_t* idx, int first, int n, float* out) const {
  assert(first >= 0 && n >= 0);
  const size_t P = static_cast<size_t>(images.pixels_per_image());
  for (int i = 0; i < n; i++) {
    size_t k = idx ? idx[first + i] : static_cast<size_t>(first + i);
    assert(k < static_cast<size_t>(images.count));
    const uint8_t* src = images.pixels.data() + k * P;
    float* dst = out + static_cast<size_t>(i) * P;
    if (categorical) {
      for (size_t p = 0; p < P; p++) dst[p] = src[p];
      continue;
    }
    for (size_t p = 0; p < P; p++) dst[p] = src[p] / 255.0f;
  }
}

}  // namespace ll
