// Safetensors reading, validation and writing from byte buffers; see safetensors.h. Goes into the wasm
// build: no files, no printing, no exceptions. Every offset is checked in 64-bit arithmetic before a
// byte is read (size_t is 32 bits in wasm32), and multi-byte values are assembled byte by byte, so
// unaligned data and big-endian hosts are fine. Validation follows huggingface/safetensors: tensors
// sorted by offset must tile the data buffer exactly (no overlaps, holes or trailing bytes).
#include "core/io/safetensors.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "core/io/json.h"

namespace ll {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100000000;  // the reference implementation's limit
constexpr char kMetadataKey[] = "__metadata__";
constexpr char kSupported[] = "F32, F16, BF16, F64";

std::string u64s(uint64_t v) { return std::to_string(v); }

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::string offsets_string(uint64_t begin, uint64_t end) {
  return "[" + u64s(begin) + ", " + u64s(end) + "]";
}

const char* type_name(const JsonValue& v) {
  switch (v.type) {
    case JsonValue::Type::kNull: return "null";
    case JsonValue::Type::kBool: return "a boolean";
    case JsonValue::Type::kNumber: return v.is_integer ? "an integer" : "a non-integer number";
    case JsonValue::Type::kString: return "a string";
    case JsonValue::Type::kArray: return "an array";
    case JsonValue::Type::kObject: return "an object";
  }
  return "?";
}

// What a bad list element was, e.g. "-3", "2.5", "a string".
std::string describe(const JsonValue& v) {
  if (v.type == JsonValue::Type::kNumber) {
    if (v.is_integer) return std::to_string(v.integer);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v.number);
    return buf;
  }
  return type_name(v);
}

bool parse_dtype(const std::string& s, DType* out) {
  static const DType kAll[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF64};
  for (DType d : kAll) {
    if (s == dtype_name(d)) {
      *out = d;
      return true;
    }
  }
  return false;
}

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t load_u32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
uint64_t load_u64(const uint8_t* p) { return uint64_t(load_u32(p)) | (uint64_t(load_u32(p + 4)) << 32); }
void store_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void store_u32(uint8_t* p, uint32_t v) {
  for (int k = 0; k < 4; k++) p[k] = static_cast<uint8_t>(v >> (8 * k));
}
void store_u64(uint8_t* p, uint64_t v) {
  for (int k = 0; k < 8; k++) p[k] = static_cast<uint8_t>(v >> (8 * k));
}
uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// double -> float without the undefined behaviour of converting an out-of-range finite value:
// magnitudes at or above FLT_MAX + half an ulp (2^128 - 2^103) round to infinity under IEEE rules.
float double_to_float(double d) {
  if (std::isfinite(d) && std::fabs(d) >= 0x1.ffffffp127) return d > 0 ? INFINITY : -INFINITY;
  return static_cast<float>(d);
}

// float -> bfloat16 bits, round to nearest even, NaN stays NaN.
uint16_t float_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// Reads a tensor entry {"dtype", "shape", "data_offsets"} into *t (offsets unchecked against the buffer).
Status parse_entry(const std::string& name, const JsonValue& v, SafetensorsTensor* t, uint64_t* begin,
                   uint64_t* end) {
  const std::string where = "tensor '" + name + "': ";
  if (v.type != JsonValue::Type::kObject) {
    return Status::error(where + "entry must be an object with dtype, shape and data_offsets, got " +
                         type_name(v));
  }
  const JsonValue* dtype = nullptr;
  const JsonValue* shape = nullptr;
  const JsonValue* offsets = nullptr;
  for (const auto& kv : v.object) {
    const JsonValue** slot = kv.first == "dtype"          ? &dtype
                             : kv.first == "shape"        ? &shape
                             : kv.first == "data_offsets" ? &offsets
                                                          : nullptr;
    if (!slot) {
      return Status::error(where + "unexpected key '" + kv.first +
                           "' (an entry has exactly dtype, shape and data_offsets)");
    }
    if (*slot) return Status::error(where + "duplicate key '" + kv.first + "'");
    *slot = &kv.second;
  }
  if (!dtype) return Status::error(where + "missing key 'dtype'");
  if (!shape) return Status::error(where + "missing key 'shape'");
  if (!offsets) return Status::error(where + "missing key 'data_offsets'");

  if (dtype->type != JsonValue::Type::kString) {
    return Status::error(where + "dtype must be a string, got " + type_name(*dtype));
  }
  if (!parse_dtype(dtype->string, &t->dtype)) {
    return Status::error(where + "unsupported dtype '" + dtype->string + "' (supported: " + kSupported +
                         ")");
  }

  if (shape->type != JsonValue::Type::kArray) {
    return Status::error(where + "shape must be a list of non-negative integers, got " +
                         type_name(*shape));
  }
  t->shape.clear();
  for (size_t i = 0; i < shape->array.size(); i++) {
    const JsonValue& d = shape->array[i];
    if (d.type != JsonValue::Type::kNumber || !d.is_integer || d.integer < 0) {
      return Status::error(where + "shape must be a list of non-negative integers, but element " +
                           std::to_string(i) + " is " + describe(d));
    }
    t->shape.push_back(d.integer);
  }

  if (offsets->type != JsonValue::Type::kArray || offsets->array.size() != 2) {
    std::string got = offsets->type == JsonValue::Type::kArray
                          ? "a list of " + std::to_string(offsets->array.size())
                          : std::string(type_name(*offsets));
    return Status::error(where + "data_offsets must be two non-negative integers [begin, end], got " +
                         got);
  }
  for (size_t i = 0; i < 2; i++) {
    const JsonValue& o = offsets->array[i];
    if (o.type != JsonValue::Type::kNumber || !o.is_integer || o.integer < 0) {
      return Status::error(where + "data_offsets must be two non-negative integers [begin, end], but " +
                           (i == 0 ? "begin" : "end") + " is " + describe(o));
    }
  }
  *begin = static_cast<uint64_t>(offsets->array[0].integer);
  *end = static_cast<uint64_t>(offsets->array[1].integer);
  if (*begin > *end) {
    return Status::error(where + "data_offsets " + offsets_string(*begin, *end) + " have begin > end");
  }

  // Element count and byte size with overflow checks (a zero dimension makes the tensor empty).
  uint64_t count = 1;
  bool overflow = false;
  for (int64_t d : t->shape) {
    if (d == 0) {
      count = 0;
      overflow = false;
      break;
    }
    if (!overflow && count > UINT64_MAX / static_cast<uint64_t>(d)) overflow = true;
    if (!overflow) count *= static_cast<uint64_t>(d);
  }
  const uint64_t elem = dtype_size(t->dtype);
  if (!overflow && count > UINT64_MAX / elem) overflow = true;
  if (overflow) {
    return Status::error(where + "shape " + shape_string(t->shape) + " of " + dtype->string +
                         " has a byte size that overflows 64 bits");
  }
  if (*end - *begin != count * elem) {
    return Status::error(where + "data_offsets " + offsets_string(*begin, *end) + " hold " +
                         u64s(*end - *begin) + " bytes but shape " + shape_string(t->shape) + " of " +
                         dtype->string + " needs " + u64s(count * elem) + " bytes");
  }
  return Status();
}

}  // namespace

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kF64: return "F64";
  }
  return "?";
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kBF16: return 2;
    case DType::kF64: return 8;
  }
  return 1;
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Status SafetensorsFile::read_f32(const SafetensorsTensor& t, float* out, size_t count) const {
  const size_t elem = dtype_size(t.dtype);
  // Re-check bounds: `t` may not come from this file.
  if (t.begin > t.end || t.end > data_size || (t.end - t.begin) % elem != 0) {
    return Status::error("tensor '" + t.name + "': data_offsets " + offsets_string(t.begin, t.end) +
                         " do not fit this file's data buffer of " + u64s(data_size) + " bytes");
  }
  const size_t n = (t.end - t.begin) / elem;
  if (count != n) {
    return Status::error("tensor '" + t.name + "' has " + u64s(n) + " elements but " + u64s(count) +
                         " were requested");
  }
  if (n > 0 && !out) return Status::error("tensor '" + t.name + "': null output buffer");
  const uint8_t* p = data + t.begin;
  switch (t.dtype) {
    case DType::kF32:
      for (size_t i = 0; i < n; i++) out[i] = bits_float(load_u32(p + 4 * i));
      break;
    case DType::kF16:
      for (size_t i = 0; i < n; i++) out[i] = half_to_float(load_u16(p + 2 * i));
      break;
    case DType::kBF16:
      for (size_t i = 0; i < n; i++) out[i] = bits_float(uint32_t(load_u16(p + 2 * i)) << 16);
      break;
    case DType::kF64:
      for (size_t i = 0; i < n; i++) {
        uint64_t u = load_u64(p + 8 * i);
        double d;
        std::memcpy(&d, &u, 8);
        out[i] = double_to_float(d);
      }
      break;
  }
  return Status();
}

Status SafetensorsFile::read_f64(const SafetensorsTensor& t, double* out, size_t count) const {
  if (t.dtype != DType::kF64) {
    // Widen through the float reader (every F32/F16/BF16 value is exact as a double).
    std::vector<float> f(count);
    Status s = read_f32(t, f.data(), count);
    if (!s.ok()) return s;
    for (size_t i = 0; i < count; i++) out[i] = f[i];
    return Status();
  }
  if (t.begin > t.end || t.end > data_size || (t.end - t.begin) % 8 != 0) {
    return Status::error("tensor '" + t.name + "': data_offsets " + offsets_string(t.begin, t.end) +
                         " do not fit this file's data buffer of " + u64s(data_size) + " bytes");
  }
  const size_t n = (t.end - t.begin) / 8;
  if (count != n) {
    return Status::error("tensor '" + t.name + "' has " + u64s(n) + " elements but " + u64s(count) +
                         " were requested");
  }
  if (n > 0 && !out) return Status::error("tensor '" + t.name + "': null output buffer");
  for (size_t i = 0; i < n; i++) {
    const uint64_t u = load_u64(data + t.begin + 8 * i);
    std::memcpy(&out[i], &u, 8);
  }
  return Status();
}

Status parse_safetensors(const uint8_t* bytes, size_t size, SafetensorsFile* out) {
  if (size < 8 || !bytes) {
    return Status::error("file is too small: " + u64s(bytes ? size : 0) +
                         " bytes, but a safetensors file starts with an 8-byte header length");
  }
  const uint64_t header_len = load_u64(bytes);
  const uint64_t rest = size - 8;
  if (header_len > kMaxHeaderBytes) {
    return Status::error("header length " + u64s(header_len) + " is larger than the " +
                         u64s(kMaxHeaderBytes) + "-byte limit (not a safetensors file?)");
  }
  if (header_len > rest) {
    return Status::error("file is truncated: header says " + u64s(header_len) +
                         " bytes of JSON but only " + u64s(rest) +
                         " bytes follow the 8-byte length");
  }
  JsonValue root;
  Status s = parse_json(reinterpret_cast<const char*>(bytes + 8), static_cast<size_t>(header_len), &root);
  if (!s.ok()) {
    const std::string prefix = "malformed JSON";
    std::string m = s.message();
    if (m.compare(0, prefix.size(), prefix) == 0) m = m.substr(prefix.size());
    return Status::error("malformed header JSON" + m);
  }
  if (root.type != JsonValue::Type::kObject) {
    return Status::error(std::string("header JSON must be an object of tensors, got ") +
                         type_name(root));
  }

  SafetensorsFile f;
  f.data = bytes + 8 + header_len;
  f.data_size = static_cast<size_t>(rest - header_len);
  struct Span {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Span> spans;
  std::set<std::string> seen;
  for (const auto& kv : root.object) {
    const std::string& name = kv.first;
    if (!seen.insert(name).second) {
      return Status::error("duplicate " +
                           (name == kMetadataKey ? std::string(kMetadataKey) : "tensor name '" + name + "'") +
                           " in header");
    }
    if (name == kMetadataKey) {
      if (kv.second.type != JsonValue::Type::kObject) {
        return Status::error(std::string(kMetadataKey) + " must be an object of strings, got " +
                             type_name(kv.second));
      }
      for (const auto& m : kv.second.object) {
        if (m.second.type != JsonValue::Type::kString) {
          return Status::error(std::string(kMetadataKey) + " value for key '" + m.first +
                               "' must be a string, got " + type_name(m.second));
        }
        if (!f.metadata.emplace(m.first, m.second.string).second) {
          return Status::error("duplicate " + std::string(kMetadataKey) + " key '" + m.first + "'");
        }
      }
      continue;
    }
    SafetensorsTensor t;
    t.name = name;
    uint64_t begin = 0, end = 0;
    Status es = parse_entry(name, kv.second, &t, &begin, &end);
    if (!es.ok()) return es;
    if (end > f.data_size) {
      return Status::error("tensor '" + name + "': data_offsets " + offsets_string(begin, end) +
                           " reach beyond the data buffer of " + u64s(f.data_size) +
                           " bytes (file truncated?)");
    }
    t.begin = static_cast<size_t>(begin);
    t.end = static_cast<size_t>(end);
    spans.push_back({begin, end, f.tensors.size()});
    f.tensors.push_back(std::move(t));
  }

  // Sorted by (begin, end), the tensors must tile [0, data_size) exactly.
  std::stable_sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const SafetensorsTensor* prev = nullptr;
  std::vector<SafetensorsTensor> sorted;
  sorted.reserve(spans.size());
  for (const Span& sp : spans) {
    SafetensorsTensor& t = f.tensors[sp.index];
    if (sp.begin < covered) {
      return Status::error("tensor '" + t.name + "': data_offsets " + offsets_string(sp.begin, sp.end) +
                           " overlap tensor '" + prev->name + "' at " +
                           offsets_string(prev->begin, prev->end));
    }
    if (sp.begin > covered) {
      return Status::error("data buffer has a hole: bytes [" + u64s(covered) + ", " + u64s(sp.begin) +
                           ") before tensor '" + t.name +
                           "' belong to no tensor (tensors must cover the buffer contiguously)");
    }
    covered = sp.end;
    prev = &t;
  }
  if (covered != f.data_size) {
    return Status::error("data buffer has " + u64s(f.data_size - covered) +
                         " trailing bytes after the last tensor ends at byte " + u64s(covered) +
                         " (tensors must cover the buffer exactly)");
  }
  for (const Span& sp : spans) sorted.push_back(std::move(f.tensors[sp.index]));
  f.tensors = std::move(sorted);
  *out = std::move(f);
  return Status();
}

std::vector<uint8_t> write_safetensors(const std::vector<TensorToWrite>& tensors,
                                       const std::map<std::string, std::string>& metadata,
                                       DType dtype) {
  const uint64_t elem = dtype_size(dtype);
  std::vector<uint64_t> counts;
  std::string header = "{";
  if (!metadata.empty()) {
    header += json_quote(kMetadataKey) + ":{";
    bool first = true;
    for (const auto& kv : metadata) {
      if (!first) header += ",";
      first = false;
      header += json_quote(kv.first) + ":" + json_quote(kv.second);
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    assert(t.name != kMetadataKey);
    uint64_t count = 1;
    for (int64_t d : t.shape) {
      assert(d >= 0);
      count *= static_cast<uint64_t>(d);
    }
    assert(count == 0 || t.data || t.data64);
    counts.push_back(count);
    const DType d = t.data64 ? DType::kF64 : dtype;
    const uint64_t size = dtype_size(d);
    if (header.size() > 1) header += ",";
    header += json_quote(t.name) + ":{\"dtype\":\"" + dtype_name(d) + "\",\"shape\":" +
              shape_string(t.shape) + ",\"data_offsets\":" +
              offsets_string(offset, offset + count * size) + "}";
    offset += count * size;
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';

  std::vector<uint8_t> out(8 + header.size() + static_cast<size_t>(offset));
  store_u64(out.data(), header.size());
  std::memcpy(out.data() + 8, header.data(), header.size());
  uint8_t* p = out.data() + 8 + header.size();
  for (size_t k = 0; k < tensors.size(); k++) {
    if (const double* src64 = tensors[k].data64) {
      for (uint64_t i = 0; i < counts[k]; i++, p += 8) {
        uint64_t u;
        std::memcpy(&u, &src64[i], 8);
        store_u64(p, u);
      }
      continue;
    }
    const float* src = tensors[k].data;
    for (uint64_t i = 0; i < counts[k]; i++, p += elem) {
      switch (dtype) {
        case DType::kF32: store_u32(p, float_bits(src[i])); break;
        case DType::kF16: store_u16(p, float_to_half(src[i])); break;
        case DType::kBF16: store_u16(p, float_to_bf16(src[i])); break;
        case DType::kF64: {
          double d = src[i];
          uint64_t u;
          std::memcpy(&u, &d, 8);
          store_u64(p, u);
          break;
        }
      }
    }
  }
  return out;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    float mag = static_cast<float>(mant) * 0x1p-24f;
    return bits_float(float_bits(mag) | sign);
  }
  if (exp == 31) return bits_float(sign | 0x7F800000u | (mant << 13));  // inf, NaN (payload kept)
  return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t float_to_half(float f) {
  uint32_t x = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7FFFFFFFu;
  if (x > 0x7F800000u) {  // NaN: keep the top payload bits; if they are all zero, set one
    const uint32_t m = (x >> 13) & 0x3FFu;
    return static_cast<uint16_t>(sign | 0x7C00u | (m ? m : 0x200u));
  }
  if (x >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520 rounds to inf
  if (x >= 0x38800000u) {
    // Normal half: rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even;
    // a carry out of the mantissa correctly bumps the exponent.
    x += 0xC8000FFFu + ((x >> 13) & 1u);
    return static_cast<uint16_t>(sign | (x >> 13));
  }
  // Subnormal half (or zero): units of 2^-24. |f| = m * 2^(e - 150), so units = m >> (126 - e).
  const uint32_t e = x >> 23;
  if (e < 102) return sign;  // below 2^-25: rounds to zero
  const uint32_t m = (x & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126 - e;  // 14..24
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) q++;  // may carry into the smallest normal: correct
  return static_cast<uint16_t>(sign | q);
}

}  // namespace ll
