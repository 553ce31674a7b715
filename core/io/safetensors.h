// Safetensors: the model file format PyTorch users already have
// (https://github.com/huggingface/safetensors): 8-byte little-endian header length N, N bytes of
// JSON header {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
// "__metadata__": {"key": "string value"}}, then the data buffer (offsets relative to its start).
// Parsing works on a byte buffer (the browser has no files), validates everything, and never reads
// out of bounds. Nothing here prints or throws.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/base/status.h"

namespace ll {

enum class DType { kF32, kF16, kBF16, kF64 };
const char* dtype_name(DType d);  // "F32", ...
size_t dtype_size(DType d);

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  size_t begin = 0, end = 0;  // byte offsets into the data buffer (validated)
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;  // "__metadata__": string -> string only
  std::vector<SafetensorsTensor> tensors;       // in data-offset order
  const uint8_t* data = nullptr;                // data buffer start (points INTO the parsed bytes)
  size_t data_size = 0;

  const SafetensorsTensor* find(const std::string& name) const;
  // Copy a tensor out as float32 (converting F16/BF16/F64). `count` must equal its element count.
  Status read_f32(const SafetensorsTensor& t, float* out, size_t count) const;
  // The same as float64 (F64 exactly, the others widened exactly): for a resume file's counters.
  Status read_f64(const SafetensorsTensor& t, double* out, size_t count) const;
};

// Parse and validate. `bytes` must outlive `out` (tensor data is not copied).
// Rejects, each with a message saying what and where: a file shorter than 8 bytes or than its header
// length; a header length beyond the file or absurdly large; malformed JSON (with the byte position);
// a non-object entry; unknown dtype; shape not a list of non-negative integers; data_offsets not two
// integers, begin > end, end beyond the data buffer; byte size not equal to shape product * dtype size;
// overlapping tensors; duplicate names; non-string metadata values; data buffer not fully covered.
Status parse_safetensors(const uint8_t* bytes, size_t size, SafetensorsFile* out);

// One tensor to write: float32 source data, stored as `dtype` (F32 or F16); or, with data64 set
// instead, float64 source data stored as F64 whatever `dtype` is (a resume file's counters and
// integer state, exact up to 2^53).
struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
  const double* data64 = nullptr;
};
// Serialise. Header padded with spaces to a multiple of 8 bytes, tensors stored in the given order.
std::vector<uint8_t> write_safetensors(const std::vector<TensorToWrite>& tensors,
                                       const std::map<std::string, std::string>& metadata,
                                       DType dtype = DType::kF32);

// IEEE half <-> float (round to nearest even), used by the F16 path.
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);

}  // namespace ll
