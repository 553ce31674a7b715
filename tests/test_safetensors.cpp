// Tests for safetensors reading/writing (core/io/safetensors.h): a hand-built file from the spec, exact
// round trips, half-precision conversion (exhaustive), one test per malformed case checking the
// message names what and where, and a mutation fuzz run. Parsed buffers are exact-size heap copies so
// AddressSanitizer catches any read past the end.
#include "core/io/safetensors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/base/rng.h"

#ifndef LATENTLAB_SOURCE_DIR
#define LATENTLAB_SOURCE_DIR "."
#endif

namespace ll {
namespace {

// An exact-size heap copy of a byte string, so reads past the end are caught by ASan. `shift` places
// the file at an odd address to exercise unaligned loads.
struct Buffer {
  explicit Buffer(const std::vector<uint8_t>& v, size_t shift = 0)
      : mem(new uint8_t[v.size() + shift + (v.empty() && shift == 0)]), size(v.size()) {
    bytes = mem.get() + shift;
    if (!v.empty()) std::memcpy(mem.get() + shift, v.data(), v.size());
  }
  std::unique_ptr<uint8_t[]> mem;
  const uint8_t* bytes = nullptr;
  size_t size = 0;
};

void put_u64(std::vector<uint8_t>* out, uint64_t v) {
  for (int k = 0; k < 8; k++) out->push_back(static_cast<uint8_t>(v >> (8 * k)));
}

// 8-byte length + header + data, no padding.
std::vector<uint8_t> build(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  put_u64(&out, header.size());
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<uint8_t> build(const std::string& header, size_t data_size) {
  std::vector<uint8_t> data(data_size);
  for (size_t i = 0; i < data_size; i++) data[i] = static_cast<uint8_t>(i * 7 + 1);
  return build(header, data);
}

Status parse_bytes(const std::vector<uint8_t>& file, SafetensorsFile* out) {
  Buffer b(file);  // freed on return: callers use the status, not out->data
  return parse_safetensors(b.bytes, b.size, out);
}

Status parse_header(const std::string& header, size_t data_size) {
  SafetensorsFile f;
  return parse_bytes(build(header, data_size), &f);
}

// Asserts failure and that every word appears in the message.
void expect_error(const Status& s, std::initializer_list<const char*> words) {
  ASSERT_FALSE(s.ok()) << "expected an error containing '" << *words.begin() << "'";
  for (const char* w : words) {
    EXPECT_NE(s.message().find(w), std::string::npos) << "message: " << s.message() << "\nmissing: " << w;
  }
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<float> read_all(const SafetensorsFile& f, const std::string& name) {
  const SafetensorsTensor* t = f.find(name);
  EXPECT_NE(t, nullptr) << name;
  if (!t) return {};
  size_t n = (t->end - t->begin) / dtype_size(t->dtype);
  std::vector<float> v(n);
  Status s = f.read_f32(*t, v.data(), n);
  EXPECT_TRUE(s.ok()) << s.message();
  return v;
}

// ---------------------------------------------------------------------------------------------------
// Valid files

TEST(Safetensors, HandBuiltFileFromSpec) {
  // Header exactly as the spec describes; lengths and data written out by hand.
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("h":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]},)"
      R"("b":{"dtype":"BF16","shape":[1],"data_offsets":[12,14]},)"
      R"("d":{"dtype":"F64","shape":[],"data_offsets":[14,22]}})";
  ASSERT_EQ(header.size(), 251u);
  std::vector<uint8_t> file = {251, 0, 0, 0, 0, 0, 0, 0};
  file.insert(file.end(), header.begin(), header.end());
  const uint8_t data[] = {
      0x00, 0x00, 0x80, 0x3F,  // F32 1.0
      0x00, 0x00, 0x00, 0xC0,  // F32 -2.0
      0x00, 0x3C,              // F16 1.0
      0x01, 0x80,              // F16 -2^-24 (smallest subnormal)
      0x49, 0x40,              // BF16 3.140625
      0, 0, 0, 0, 0, 0, 0x04, 0xC0,  // F64 -2.5
  };
  file.insert(file.end(), data, data + sizeof data);

  Buffer b(file);
  SafetensorsFile f;
  Status s = parse_safetensors(b.bytes, b.size, &f);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(f.metadata.size(), 1u);
  EXPECT_EQ(f.metadata.at("format"), "pt");
  EXPECT_EQ(f.data, b.bytes + 8 + 251);
  EXPECT_EQ(f.data_size, 22u);
  ASSERT_EQ(f.tensors.size(), 4u);
  EXPECT_EQ(f.tensors[0].name, "w");
  EXPECT_EQ(f.tensors[1].name, "h");
  EXPECT_EQ(f.tensors[1].dtype, DType::kF16);
  EXPECT_EQ(f.tensors[1].shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(f.tensors[3].shape.size(), 0u);  // scalar
  EXPECT_EQ(read_all(f, "w"), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(read_all(f, "h"), (std::vector<float>{1.0f, -std::ldexp(1.0f, -24)}));
  EXPECT_EQ(read_all(f, "b"), (std::vector<float>{3.140625f}));
  EXPECT_EQ(read_all(f, "d"), (std::vector<float>{-2.5f}));
  EXPECT_EQ(f.find("nope"), nullptr);
}

TEST(Safetensors, EmptyFileAndPaddedHeaderParse) {
  SafetensorsFile f;
  EXPECT_TRUE(parse_bytes(build("{}      ", 0), &f).ok());
  EXPECT_TRUE(f.tensors.empty());
  EXPECT_TRUE(parse_bytes(build("{\"__metadata__\":{}}", 0), &f).ok());
  // Zero-size tensors take no bytes and may sit anywhere contiguous.
  Status s = parse_header(R"({"e":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]},)"
                          R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}  )",
                          4);
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(Safetensors, TensorsSortedByOffset) {
  auto file = build(R"({"c":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
                    R"("a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"F64","shape":[1],"data_offsets":[12,20]}})",
                    20);
  Buffer b(file);
  SafetensorsFile f;
  ASSERT_TRUE(parse_safetensors(b.bytes, b.size, &f).ok());
  ASSERT_EQ(f.tensors.size(), 3u);
  EXPECT_EQ(f.tensors[0].name, "a");
  EXPECT_EQ(f.tensors[1].name, "c");
  EXPECT_EQ(f.tensors[2].name, "b");
  for (size_t i = 0; i + 1 < f.tensors.size(); i++) EXPECT_EQ(f.tensors[i].end, f.tensors[i + 1].begin);
}

TEST(Safetensors, WriterLayout) {
  const float a[3] = {1, 2, 3};
  const float c[2] = {4, 5};
  std::vector<TensorToWrite> ts = {{"zeta", {3}, a}, {"alpha", {1, 2}, c}};
  std::vector<uint8_t> out = write_safetensors(ts, {{"k", "v\"q"}}, DType::kF32);
  ASSERT_GE(out.size(), 8u);
  uint64_t n = 0;
  for (int k = 0; k < 8; k++) n |= uint64_t(out[k]) << (8 * k);
  EXPECT_EQ((8 + n) % 8, 0u);
  EXPECT_EQ(out.size(), 8 + n + 20);
  std::string header(out.begin() + 8, out.begin() + 8 + n);
  EXPECT_EQ(header.find_first_not_of(' ', header.rfind('}') + 1), std::string::npos);  // space pad
  // Tensors in the given order with contiguous offsets; metadata present.
  size_t pz = header.find("\"zeta\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0, 12]}");
  size_t pa = header.find("\"alpha\":{\"dtype\":\"F32\",\"shape\":[1, 2],\"data_offsets\":[12, 20]}");
  EXPECT_NE(pz, std::string::npos) << header;
  EXPECT_NE(pa, std::string::npos) << header;
  EXPECT_LT(pz, pa);
  EXPECT_NE(header.find("\"__metadata__\":{\"k\":\"v\\\"q\"}"), std::string::npos) << header;

  // Without metadata the key is omitted.
  std::vector<uint8_t> bare = write_safetensors(ts, {}, DType::kF32);
  std::string bare_s(bare.begin(), bare.end());
  EXPECT_EQ(bare_s.find("__metadata__"), std::string::npos);

  // Data is little-endian F32: 1.0f = 00 00 80 3F.
  const uint8_t one[4] = {0x00, 0x00, 0x80, 0x3F};
  EXPECT_EQ(std::memcmp(out.data() + 8 + n, one, 4), 0);

  // Nothing at all still makes a valid, aligned file.
  std::vector<uint8_t> none = write_safetensors({}, {}, DType::kF32);
  EXPECT_EQ(none.size() % 8, 0u);
  SafetensorsFile f;
  EXPECT_TRUE(parse_bytes(none, &f).ok());
}

TEST(Safetensors, F32RoundTripBitExact) {
  Rng rng(7);
  std::vector<float> a(1000);
  rng.fill_normal(a.data(), a.size(), 0.0f, 3.0f);
  const float special[] = {0.0f,
                           -0.0f,
                           std::numeric_limits<float>::denorm_min(),
                           -std::numeric_limits<float>::denorm_min(),
                           from_bits(0x007FFFFF),  // largest subnormal
                           std::numeric_limits<float>::min(),
                           std::numeric_limits<float>::max(),
                           -std::numeric_limits<float>::max(),
                           std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity(),
                           from_bits(0x7FC00001),  // NaN with payload
                           from_bits(0xFF800123)};
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) a[i * 37] = special[i];
  for (size_t i = 500; i < 600; i++) a[i] = from_bits(rng.next_u32() & 0x807FFFFFu);  // subnormals
  std::vector<float> b = {42.0f};

  std::vector<TensorToWrite> ts = {{"enc.w", {10, 100}, a.data()}, {"s", {}, b.data()}};
  std::map<std::string, std::string> meta = {{"model", "vae"}, {"z", "16"}};
  std::vector<uint8_t> file = write_safetensors(ts, meta, DType::kF32);
  Buffer buf(file);
  SafetensorsFile f;
  Status s = parse_safetensors(buf.bytes, buf.size, &f);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].name, "enc.w");
  EXPECT_EQ(f.tensors[0].shape, (std::vector<int64_t>{10, 100}));
  EXPECT_EQ(f.tensors[1].shape.size(), 0u);
  std::vector<float> back = read_all(f, "enc.w");
  ASSERT_EQ(back.size(), a.size());
  for (size_t i = 0; i < a.size(); i++) ASSERT_EQ(bits(back[i]), bits(a[i])) << "index " << i;
  EXPECT_EQ(read_all(f, "s"), b);
}

TEST(Safetensors, F16RoundTrip) {
  Rng rng(11);
  std::vector<float> a(4096);
  rng.fill_uniform(a.data(), a.size(), -100.0f, 100.0f);
  std::vector<float> exact(65536);  // every half value, as float
  for (uint32_t h = 0; h < 65536; h++) exact[h] = half_to_float(static_cast<uint16_t>(h));
  std::vector<TensorToWrite> ts = {{"a", {64, 64}, a.data()}, {"exact", {65536}, exact.data()}};
  std::vector<uint8_t> file = write_safetensors(ts, {}, DType::kF16);
  Buffer buf(file);
  SafetensorsFile f;
  Status s = parse_safetensors(buf.bytes, buf.size, &f);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(f.tensors[0].dtype, DType::kF16);
  EXPECT_EQ(f.tensors[0].end - f.tensors[0].begin, 4096u * 2);
  std::vector<float> back = read_all(f, "a");
  for (size_t i = 0; i < a.size(); i++) {
    // Round to nearest: relative error at most 2^-11 for normal halves, 2^-25 absolute near zero.
    ASSERT_LE(std::fabs(back[i] - a[i]), std::max(std::fabs(a[i]) * 0x1p-11f, 0x1p-25f)) << a[i];
  }
  std::vector<float> eback = read_all(f, "exact");
  for (size_t i = 0; i < exact.size(); i++) {
    if (std::isnan(exact[i])) {
      ASSERT_TRUE(std::isnan(eback[i]));
    } else {
      ASSERT_EQ(bits(eback[i]), bits(exact[i])) << "half 0x" << std::hex << i;
    }
  }
}

TEST(Safetensors, Bf16AndF64Write) {
  const float a[5] = {1.0f, -3.140625f, 1.0f + 0x1p-8f, 0.0f, -0.0f};  // 1+2^-8 is a tie: to 1.0
  for (DType d : {DType::kBF16, DType::kF64}) {
    std::vector<uint8_t> file = write_safetensors({{"t", {5}, a}}, {}, d);
    Buffer buf(file);
    SafetensorsFile f;
    ASSERT_TRUE(parse_safetensors(buf.bytes, buf.size, &f).ok());
    std::vector<float> back = read_all(f, "t");
    ASSERT_EQ(back.size(), 5u);
    EXPECT_EQ(back[0], 1.0f);
    EXPECT_EQ(back[1], -3.140625f);
    EXPECT_EQ(back[2], d == DType::kF64 ? a[2] : 1.0f);
    EXPECT_EQ(bits(back[4]), bits(-0.0f));
  }
}

TEST(Safetensors, ReadsUnalignedData) {
  // Header length 61 puts the data at byte 69, and the buffer itself starts at an odd address.
  std::string header = R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})";
  header.resize(61, ' ');
  std::vector<uint8_t> data(12);
  const float v[3] = {1.5f, -0.0f, 1e-40f};
  for (int i = 0; i < 3; i++) {
    uint32_t u = bits(v[i]);
    for (int k = 0; k < 4; k++) data[4 * i + k] = static_cast<uint8_t>(u >> (8 * k));
  }
  std::vector<uint8_t> file = build(header, data);
  Buffer buf(file, 1);
  SafetensorsFile f;
  Status s = parse_safetensors(buf.bytes, buf.size, &f);
  ASSERT_TRUE(s.ok()) << s.message();
  std::vector<float> back = read_all(f, "x");
  ASSERT_EQ(back.size(), 3u);
  for (int i = 0; i < 3; i++) EXPECT_EQ(bits(back[i]), bits(v[i]));
}

TEST(Safetensors, ReadF32Errors) {
  const float a[4] = {1, 2, 3, 4};
  std::vector<uint8_t> file = write_safetensors({{"t", {2, 2}, a}}, {}, DType::kF32);
  Buffer buf(file);
  SafetensorsFile f;
  ASSERT_TRUE(parse_safetensors(buf.bytes, buf.size, &f).ok());
  float out[8];
  expect_error(f.read_f32(f.tensors[0], out, 3), {"tensor 't'", "4 elements", "3"});
  SafetensorsTensor foreign = f.tensors[0];
  foreign.name = "other";
  foreign.end = 1000;
  expect_error(f.read_f32(foreign, out, 8), {"tensor 'other'", "[0, 1000]", "16 bytes"});
  EXPECT_TRUE(f.read_f32(f.tensors[0], out, 4).ok());
  EXPECT_EQ(out[3], 4.0f);
}

TEST(Safetensors, F64OutOfFloatRangeBecomesInf) {
  std::string header = R"({"d":{"dtype":"F64","shape":[3],"data_offsets":[0,24]}})";
  std::vector<uint8_t> data;
  for (double d : {1e300, -1e300, 1e-300}) {
    uint64_t u;
    std::memcpy(&u, &d, 8);
    put_u64(&data, u);
  }
  std::vector<uint8_t> file = build(header, data);
  Buffer buf(file);
  SafetensorsFile f;
  ASSERT_TRUE(parse_safetensors(buf.bytes, buf.size, &f).ok());
  std::vector<float> back = read_all(f, "d");
  EXPECT_EQ(back[0], std::numeric_limits<float>::infinity());
  EXPECT_EQ(back[1], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(back[2], 0.0f);
}

// ---------------------------------------------------------------------------------------------------
// Half precision

TEST(Half, KnownValues) {
  EXPECT_EQ(half_to_float(0x3C00), 1.0f);
  EXPECT_EQ(half_to_float(0xC000), -2.0f);
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(half_to_float(0x03FF), 1023 * std::ldexp(1.0f, -24));
  EXPECT_EQ(half_to_float(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(half_to_float(0x7BFF), 65504.0f);
  EXPECT_EQ(half_to_float(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(half_to_float(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(bits(half_to_float(0x8000)), bits(-0.0f));
  EXPECT_TRUE(std::isnan(half_to_float(0x7E00)));
  EXPECT_TRUE(std::isnan(half_to_float(0x7C01)));

  EXPECT_EQ(float_to_half(1.0f), 0x3C00);
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
  EXPECT_EQ(float_to_half(65504.0f), 0x7BFF);
  EXPECT_EQ(float_to_half(65519.99f), 0x7BFF);
  EXPECT_EQ(float_to_half(65520.0f), 0x7C00);  // tie between 65504 and 65536 goes to even (inf)
  EXPECT_EQ(float_to_half(1e10f), 0x7C00);
  EXPECT_EQ(float_to_half(-1e10f), 0xFC00);
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);                    // tie to even (0)
  EXPECT_EQ(float_to_half(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(float_to_half(3 * std::ldexp(1.0f, -25)), 0x0002);               // tie to even (2)
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(float_to_half(1.0f + 0x1p-11f), 0x3C00);  // tie to even
  EXPECT_EQ(float_to_half(1.0f + 3 * 0x1p-11f), 0x3C02);
  // A float NaN whose payload lives only in the low 13 bits must stay a NaN.
  EXPECT_EQ(float_to_half(from_bits(0x7F800001)) & 0x7C00, 0x7C00);
  EXPECT_NE(float_to_half(from_bits(0x7F800001)) & 0x03FF, 0);
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(std::nanf("")))));
}

TEST(Half, ExhaustiveRoundTrip) {
  for (uint32_t h = 0; h < 65536; h++) {
    float f = half_to_float(static_cast<uint16_t>(h));
    uint16_t back = float_to_half(f);
    if (std::isnan(f)) {
      ASSERT_EQ(back & 0x7C00, 0x7C00) << std::hex << h;
      ASSERT_NE(back & 0x03FF, 0) << std::hex << h;
      ASSERT_EQ(back, h) << "NaN payload kept, half 0x" << std::hex << h;
    } else {
      ASSERT_EQ(back, h) << "half 0x" << std::hex << h;
    }
  }
}

TEST(Half, ExhaustiveRoundToNearestEven) {
  // Between every pair of adjacent finite halves (and 65504 -> inf), the exact midpoint goes to the
  // even one and the floats just either side go to the nearer one. Midpoints are exact in float.
  for (uint32_t h = 0; h < 0x7C00; h++) {
    for (uint32_t sign : {0u, 0x8000u}) {
      const uint16_t lo = static_cast<uint16_t>(h | sign), hi = static_cast<uint16_t>((h + 1) | sign);
      const double a = half_to_float(lo);
      const double b = h + 1 == 0x7C00 ? (sign ? -65536.0 : 65536.0) : half_to_float(hi);
      const float mid = static_cast<float>((a + b) / 2);
      ASSERT_EQ(static_cast<double>(mid), (a + b) / 2);
      const uint16_t even = (h & 1) ? hi : lo;
      ASSERT_EQ(float_to_half(mid), even) << "midpoint after half 0x" << std::hex << lo;
      const float toward_lo = std::nextafter(mid, static_cast<float>(a));
      const float toward_hi = std::nextafter(mid, static_cast<float>(b));
      ASSERT_EQ(float_to_half(toward_lo), lo) << std::hex << lo;
      ASSERT_EQ(float_to_half(toward_hi), hi) << std::hex << lo;
    }
  }
}

#if defined(__FLT16_MAX__) && defined(__GNUC__) && !defined(__clang__)
// Independent oracle: the compiler's own float -> _Float16 conversion (IEEE round to nearest even).
TEST(Half, MatchesCompilerFloat16) {
  Rng rng(3);
  for (int i = 0; i < 2000000; i++) {
    float f = from_bits(rng.next_u32());
    if (std::isnan(f)) continue;
    _Float16 h = static_cast<_Float16>(f);
    uint16_t hb;
    std::memcpy(&hb, &h, 2);
    ASSERT_EQ(float_to_half(f), hb) << f;
  }
}
#endif

// ---------------------------------------------------------------------------------------------------
// Malformed files: one test per case, each checking the message says what and where.

const char kTwo[] = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"F32","shape":[3],"data_offsets":[8,20]}})";

TEST(SafetensorsMalformed, BaselineIsValid) { EXPECT_TRUE(parse_header(kTwo, 20).ok()); }

TEST(SafetensorsMalformed, FileShorterThanLengthField) {
  SafetensorsFile f;
  for (size_t n : {0, 1, 7}) {
    std::vector<uint8_t> file(n, 0);
    expect_error(parse_bytes(file, &f), {"file is too small", std::to_string(n).c_str(), "8-byte"});
  }
  expect_error(parse_safetensors(nullptr, 0, &f), {"too small"});
}

TEST(SafetensorsMalformed, HeaderLengthBeyondFile) {
  std::vector<uint8_t> file;
  put_u64(&file, 1200);
  file.resize(8 + 900, ' ');
  SafetensorsFile f;
  Status s = parse_bytes(file, &f);
  expect_error(s, {"file is truncated"});
  EXPECT_EQ(s.message(),
            "file is truncated: header says 1200 bytes of JSON but only 900 bytes follow the 8-byte "
            "length");
  // Off by one: the header would end one byte past the file.
  std::vector<uint8_t> valid = build(kTwo, 20);
  std::vector<uint8_t> cut(valid.begin(), valid.begin() + 8 + (valid.size() - 8 - 20) - 1);
  expect_error(parse_bytes(cut, &f), {"file is truncated", "bytes follow"});
}

TEST(SafetensorsMalformed, HeaderLengthAbsurd) {
  SafetensorsFile f;
  for (uint64_t n : {uint64_t(100000001), uint64_t(1) << 63, ~uint64_t(0)}) {
    std::vector<uint8_t> file;
    put_u64(&file, n);
    file.resize(64, ' ');
    expect_error(parse_bytes(file, &f), {"header length", std::to_string(n).c_str(), "limit"});
  }
}

TEST(SafetensorsMalformed, MalformedJsonWithPosition) {
  Status s = parse_header(R"({"a":{"dtype" "F32"}})", 0);
  expect_error(s, {"malformed header JSON at byte 14", "expected ':' after object key"});
  expect_error(parse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},})", 8),
               {"malformed header JSON", "expected a string object key"});
  expect_error(parse_header(std::string("{}\0\0\0\0\0\0", 8), 0),  // NUL padding is not whitespace
               {"malformed header JSON at byte 2", "0x00"});
  expect_error(parse_header("{\"\xFF\":1}", 0), {"malformed header JSON", "UTF-8"});
  expect_error(parse_header("", 0), {"malformed header JSON at byte 0", "end of input"});
}

TEST(SafetensorsMalformed, TopLevelNotObject) {
  expect_error(parse_header("[]", 0), {"header JSON must be an object", "an array"});
  expect_error(parse_header("\"x\"", 0), {"header JSON must be an object", "a string"});
}

TEST(SafetensorsMalformed, EntryNotObject) {
  expect_error(parse_header(R"({"fc1.weight":[1,2]})", 0),
               {"tensor 'fc1.weight'", "must be an object", "an array"});
  expect_error(parse_header(R"({"x":null})", 0), {"tensor 'x'", "must be an object", "null"});
}

TEST(SafetensorsMalformed, MissingKeys) {
  expect_error(parse_header(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", 8),
               {"tensor 't'", "missing", "dtype"});
  expect_error(parse_header(R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", 8),
               {"tensor 't'", "missing", "shape"});
  expect_error(parse_header(R"({"t":{"dtype":"F32","shape":[2]}})", 8),
               {"tensor 't'", "missing", "data_offsets"});
}

TEST(SafetensorsMalformed, ExtraKey) {
  expect_error(
      parse_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"offsets":[0,8]}})", 8),
      {"tensor 't'", "unexpected key 'offsets'"});
}

TEST(SafetensorsMalformed, DuplicateKeyInEntry) {
  expect_error(
      parse_header(R"({"t":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})", 8),
      {"tensor 't'", "duplicate key 'dtype'"});
}

TEST(SafetensorsMalformed, UnsupportedDtype) {
  for (const char* d : {"I64", "F8_E4M3", "Q4", "f32", "U8", "BOOL"}) {
    std::string h = std::string(R"({"w":{"dtype":")") + d + R"(","shape":[1],"data_offsets":[0,8]}})";
    expect_error(parse_header(h, 8), {"tensor 'w'", "unsupported dtype", d, "F32, F16, BF16, F64"});
  }
  expect_error(parse_header(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4),
               {"tensor 'w'", "dtype must be a string"});
}

TEST(SafetensorsMalformed, ShapeNotListOfNonNegativeIntegers) {
  expect_error(parse_header(R"({"s":{"dtype":"F32","shape":4,"data_offsets":[0,16]}})", 16),
               {"tensor 's'", "shape must be a list of non-negative integers", "an integer"});
  expect_error(parse_header(R"({"s":{"dtype":"F32","shape":[2,-2],"data_offsets":[0,16]}})", 16),
               {"tensor 's'", "shape", "element 1 is -2"});
  expect_error(parse_header(R"({"s":{"dtype":"F32","shape":[2.5],"data_offsets":[0,16]}})", 16),
               {"tensor 's'", "shape", "element 0 is 2.5"});
  expect_error(parse_header(R"({"s":{"dtype":"F32","shape":[4.0],"data_offsets":[0,16]}})", 16),
               {"tensor 's'", "shape", "element 0 is 4"});
  expect_error(parse_header(R"({"s":{"dtype":"F32","shape":["4"],"data_offsets":[0,16]}})", 16),
               {"tensor 's'", "shape", "element 0 is a string"});
  expect_error(
      parse_header(R"({"s":{"dtype":"F32","shape":[1e30],"data_offsets":[0,16]}})", 16),
      {"tensor 's'", "shape", "element 0 is 1"});
  expect_error(parse_header(
                   R"({"s":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,16]}})",
                   16),
               {"tensor 's'", "shape", "element 0"});
}

TEST(SafetensorsMalformed, OffsetsNotTwoNonNegativeIntegers) {
  expect_error(parse_header(R"({"o":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}})", 8),
               {"tensor 'o'", "data_offsets must be two non-negative integers", "a list of 3"});
  expect_error(parse_header(R"({"o":{"dtype":"F32","shape":[2],"data_offsets":[8]}})", 8),
               {"tensor 'o'", "data_offsets must be two", "a list of 1"});
  expect_error(parse_header(R"({"o":{"dtype":"F32","shape":[2],"data_offsets":{"a":1}}})", 8),
               {"tensor 'o'", "data_offsets must be two", "an object"});
  expect_error(parse_header(R"({"o":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8),
               {"tensor 'o'", "data_offsets", "begin is -8"});
  expect_error(parse_header(R"({"o":{"dtype":"F32","shape":[2],"data_offsets":[0,8.5]}})", 8),
               {"tensor 'o'", "data_offsets", "end is 8.5"});
}

TEST(SafetensorsMalformed, BeginAfterEnd) {
  expect_error(parse_header(R"({"o":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8),
               {"tensor 'o'", "data_offsets [8, 0]", "begin > end"});
}

TEST(SafetensorsMalformed, EndBeyondDataBuffer) {
  expect_error(parse_header(R"({"o":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", 8),
               {"tensor 'o'", "data_offsets [0, 12]", "beyond the data buffer of 8 bytes"});
  // Huge offsets (beyond 32 bits) must not wrap on 32-bit size_t.
  expect_error(
      parse_header(
          R"({"o":{"dtype":"F32","shape":[1],"data_offsets":[4294967296,4294967300]}})", 8),
      {"tensor 'o'", "beyond the data buffer"});
}

TEST(SafetensorsMalformed, ByteSizeMismatch) {
  Status s = parse_header(R"({"fc1.weight":{"dtype":"F32","shape":[400,784],"data_offsets":[0,400]}})",
                          400);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "tensor 'fc1.weight': data_offsets [0, 400] hold 400 bytes but shape [400, 784] of F32 "
            "needs 1254400 bytes");
  expect_error(parse_header(R"({"h":{"dtype":"F16","shape":[3],"data_offsets":[0,12]}})", 12),
               {"tensor 'h'", "hold 12 bytes", "of F16 needs 6 bytes"});
}

TEST(SafetensorsMalformed, ShapeProductOverflow) {
  // Each of these would pass a wrapping size check: 2^62+2 floats wrap to 8 bytes, 2^33 * 2^31
  // elements wrap to 0, and 2^32 * 2^32 * 2 wraps too.
  expect_error(
      parse_header(R"({"v":{"dtype":"F32","shape":[4611686018427387906],"data_offsets":[0,8]}})",
                   8),
      {"tensor 'v'", "overflows"});
  expect_error(
      parse_header(R"({"v":{"dtype":"F32","shape":[8589934592,2147483648],"data_offsets":[0,0]}})",
                   0),
      {"tensor 'v'", "overflows"});
  expect_error(parse_header(R"({"v":{"dtype":"F16","shape":[4294967296,4294967296,2],)"
                            R"("data_offsets":[0,0]}})",
                            0),
               {"tensor 'v'", "shape [4294967296, 4294967296, 2]", "overflows"});
  // A zero dimension makes any shape empty, whatever the other dimensions.
  EXPECT_TRUE(
      parse_header(
          R"({"v":{"dtype":"F32","shape":[9223372036854775807,0,9223372036854775807],"data_offsets":[0,0]}})",
          0)
          .ok());
}

TEST(SafetensorsMalformed, OverlappingTensors) {
  expect_error(parse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                            12),
               {"tensor 'b'", "[4, 12]", "overlap", "'a'", "[0, 8]"});
  // Identical ranges (aliasing) overlap too.
  expect_error(parse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                            8),
               {"overlap"});
}

TEST(SafetensorsMalformed, HoleInDataBuffer) {
  expect_error(parse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
                            20),
               {"hole", "[8, 12)", "'b'"});
  expect_error(parse_header(R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
               {"hole", "[0, 4)"});
}

TEST(SafetensorsMalformed, TrailingUnreferencedBytes) {
  expect_error(parse_header(kTwo, 21), {"1 trailing bytes", "ends at byte 20"});
  expect_error(parse_header("{}", 4), {"4 trailing bytes"});
}

TEST(SafetensorsMalformed, DuplicateTensorName) {
  expect_error(parse_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                            R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                            8),
               {"duplicate tensor name 'a'"});
  expect_error(parse_header(R"({"__metadata__":{},"__metadata__":{}})", 0),
               {"duplicate __metadata__"});
}

TEST(SafetensorsMalformed, MetadataNotStrings) {
  expect_error(parse_header(R"({"__metadata__":{"epochs":10}})", 0),
               {"__metadata__", "'epochs'", "must be a string", "an integer"});
  expect_error(parse_header(R"({"__metadata__":{"a":"x","b":["y"]}})", 0),
               {"__metadata__", "'b'", "must be a string", "an array"});
  expect_error(parse_header(R"({"__metadata__":"x"})", 0), {"__metadata__", "must be an object"});
  expect_error(parse_header(R"({"__metadata__":{"k":"1","k":"2"}})", 0),
               {"duplicate __metadata__ key 'k'"});
}

TEST(SafetensorsMalformed, OutputUntouchedOnError) {
  const float a[1] = {1};
  std::vector<uint8_t> good = write_safetensors({{"keep", {1}, a}}, {}, DType::kF32);
  Buffer b(good);
  SafetensorsFile f;
  ASSERT_TRUE(parse_safetensors(b.bytes, b.size, &f).ok());
  SafetensorsFile g = f;
  EXPECT_FALSE(parse_bytes(build(kTwo, 21), &g).ok());
  ASSERT_EQ(g.tensors.size(), 1u);
  EXPECT_EQ(g.tensors[0].name, "keep");
}

// ---------------------------------------------------------------------------------------------------
// Mutation fuzzing

TEST(SafetensorsFuzz, MutationsNeverCrashAndStayInBounds) {
  const std::string header =
      R"({"__metadata__":{"format":"pt","note":"\u00e9"},)"
      R"("enc.w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("enc.b":{"dtype":"F16","shape":[3],"data_offsets":[24,30]},)"
      R"("dec.w":{"dtype":"BF16","shape":[1,1,1],"data_offsets":[30,32]},)"
      R"("empty":{"dtype":"F32","shape":[0],"data_offsets":[32,32]},)"
      R"("dec.b":{"dtype":"F64","shape":[2],"data_offsets":[32,48]}}   )";
  const std::vector<uint8_t> base = build(header, 48);
  {
    SafetensorsFile f;
    Status s = parse_bytes(base, &f);
    ASSERT_TRUE(s.ok()) << s.message();
  }
  const char json_chars[] = "{}[]\":,-.0123456789e ";
  Rng rng(12345);
  int accepted = 0, rejected = 0;
  for (int it = 0; it < 20000; it++) {
    std::vector<uint8_t> m = base;
    int edits = 1 + static_cast<int>(rng.below(3));
    for (int e = 0; e < edits && !m.empty(); e++) {
      uint32_t pos = rng.below(static_cast<uint32_t>(m.size()));
      switch (rng.below(6)) {
        case 0: m[pos] = static_cast<uint8_t>(rng.below(256)); break;  // random byte
        case 1: m[pos] ^= static_cast<uint8_t>(1u << rng.below(8)); break;  // bit flip
        case 2: m[pos] = static_cast<uint8_t>(json_chars[rng.below(sizeof json_chars - 1)]); break;
        case 3: m.resize(pos); break;  // truncation
        case 4: {  // length field edit: small delta, or an arbitrary value
          uint64_t n = 0;
          if (m.size() >= 8) {
            for (int k = 0; k < 8; k++) n |= uint64_t(m[k]) << (8 * k);
          }
          n = rng.below(2) ? n + rng.below(17) - 8 : (uint64_t(rng.next_u32()) << 32) | rng.next_u32();
          for (int k = 0; k < 8 && k < static_cast<int>(m.size()); k++) m[k] = static_cast<uint8_t>(n >> (8 * k));
          break;
        }
        case 5: m.erase(m.begin() + pos); break;  // deletion shifts everything after
      }
    }
    Buffer b(m);
    SafetensorsFile f;
    Status s = parse_safetensors(b.bytes, b.size, &f);
    if (!s.ok()) {
      ASSERT_FALSE(s.message().empty());
      rejected++;
      continue;
    }
    accepted++;
    ASSERT_GE(f.data, b.bytes + 8);
    ASSERT_EQ(f.data + f.data_size, b.bytes + b.size);
    size_t covered = 0;
    for (const SafetensorsTensor& t : f.tensors) {
      ASSERT_EQ(t.begin, covered);
      ASSERT_LE(t.begin, t.end);
      ASSERT_LE(t.end, f.data_size);
      size_t n = (t.end - t.begin) / dtype_size(t.dtype);
      ASSERT_EQ(n * dtype_size(t.dtype), t.end - t.begin);
      std::vector<float> out(n + 1);
      ASSERT_TRUE(f.read_f32(t, out.data(), n).ok());  // ASan checks every byte read
      covered = t.end;
    }
    ASSERT_EQ(covered, f.data_size);
  }
  // Both outcomes must occur, or the test is not exercising anything.
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, 100);
}

// ---------------------------------------------------------------------------------------------------
// Optional golden files written by PyTorch's safetensors (tests/golden/*.safetensors).

TEST(SafetensorsGolden, PyTorchFilesParse) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(LATENTLAB_SOURCE_DIR) / "tests" / "golden";
  std::error_code ec;
  int found = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() != ".safetensors") continue;
    found++;
    std::ifstream in(it->path(), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Buffer b(bytes);
    SafetensorsFile f;
    Status s = parse_safetensors(b.bytes, b.size, &f);
    ASSERT_TRUE(s.ok()) << it->path() << ": " << s.message();
    EXPECT_FALSE(f.tensors.empty()) << it->path();
    for (const SafetensorsTensor& t : f.tensors) {
      size_t n = (t.end - t.begin) / dtype_size(t.dtype);
      std::vector<float> v(n);
      ASSERT_TRUE(f.read_f32(t, v.data(), n).ok()) << t.name;
      for (float x : v) ASSERT_TRUE(std::isfinite(x)) << t.name;  // trained weights decode sanely
    }
  }
  ASSERT_GT(found, 0) << "no tests/golden/*.safetensors (they are committed; is the checkout complete?)";
}

}  // namespace
}  // namespace ll
