// gzip decompression with zlib; see gzip.h. Native only (the browser has DecompressionStream). Never
// trusts the stream: truncation, corruption and oversized output are answered with a Status.
// Built without zlib (LATENTLAB_HAVE_ZLIB unset: the wasm test build), gunzip answers with an error.
#include "core/io/gzip.h"

#if LATENTLAB_HAVE_ZLIB
#include <zlib.h>
#endif

#include <algorithm>
#include <climits>
#include <string>

namespace ll {

bool is_gzip(const uint8_t* bytes, size_t size) {
  return bytes && size >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B;
}

#if !LATENTLAB_HAVE_ZLIB

Status gunzip(const uint8_t* bytes, size_t size, std::vector<uint8_t>* out, size_t max_output) {
  out->clear();
  if (!is_gzip(bytes, size)) return Status::error("gzip: not a gzip stream (no 1f 8b magic)");
  return Status::error("gzip: decompression is not available in this build (compiled without zlib); "
                       "decompress the file first");
}

Status gunzip_prefix(const uint8_t* bytes, size_t size, size_t n, std::vector<uint8_t>* out) {
  return gunzip(bytes, size, out, n);
}

#else

Status gunzip(const uint8_t* bytes, size_t size, std::vector<uint8_t>* out, size_t max_output) {
  out->clear();
  if (!is_gzip(bytes, size)) return Status::error("gzip: not a gzip stream (no 1f 8b magic)");

  z_stream zs{};
  // 16 + MAX_WBITS: expect a gzip header and trailer (CRC-32 and length are checked by zlib).
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return Status::error("gzip: inflateInit2 failed");

  constexpr size_t kChunk = size_t(1) << 20;
  // Allow one byte past max_output so that "exactly max_output" and "more than that" differ.
  const size_t limit = max_output == SIZE_MAX ? SIZE_MAX : max_output + 1;
  std::vector<uint8_t> buf;
  size_t in_pos = 0, produced = 0, members = 0;
  Status st;
  for (;;) {
    // One member per iteration of this loop.
    int ret = Z_OK;
    while (ret != Z_STREAM_END) {
      if (zs.avail_in == 0 && in_pos < size) {
        size_t n = std::min<size_t>(size - in_pos, UINT_MAX);
        zs.next_in = const_cast<Bytef*>(bytes + in_pos);
        zs.avail_in = static_cast<uInt>(n);
        in_pos += n;
      }
      if (produced == limit) break;
      size_t room = std::min({kChunk, limit - produced, size_t(UINT_MAX)});
      if (buf.size() < produced + room) buf.resize(produced + room);
      zs.next_out = buf.data() + produced;
      zs.avail_out = static_cast<uInt>(room);
      ret = inflate(&zs, Z_NO_FLUSH);
      produced += room - zs.avail_out;
      if (ret == Z_OK || ret == Z_STREAM_END) continue;
      // Z_BUF_ERROR: no progress possible. There is always output room here, so input ran out.
      if (ret == Z_BUF_ERROR) {
        st = Status::error("gzip: truncated stream (input ended after " + std::to_string(produced) +
                           " decompressed bytes, in member " + std::to_string(members + 1) + ")");
      } else if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT) {
        st = Status::error(std::string("gzip: corrupt data in member ") + std::to_string(members + 1) +
                           ": " + (zs.msg ? zs.msg : "invalid stream"));
      } else if (ret == Z_MEM_ERROR) {
        st = Status::error("gzip: out of memory");
      } else {
        st = Status::error("gzip: inflate failed with code " + std::to_string(ret));
      }
      break;
    }
    if (!st.ok()) break;
    if (ret != Z_STREAM_END) {  // stopped at the output limit
      st = Status::error("gzip: decompressed data exceeds the limit of " + std::to_string(max_output) +
                         " bytes");
      break;
    }
    members++;
    // Bytes left over: another member, or garbage.
    size_t remaining = zs.avail_in + (size - in_pos);
    if (remaining == 0) break;
    const uint8_t* next = bytes + (size - remaining);
    if (!is_gzip(next, remaining)) {
      st = Status::error("gzip: " + std::to_string(remaining) + " bytes of trailing garbage after member " +
                         std::to_string(members));
      break;
    }
    if (inflateReset(&zs) != Z_OK) {
      st = Status::error("gzip: inflateReset failed");
      break;
    }
  }
  inflateEnd(&zs);
  if (!st.ok()) return st;
  if (produced > max_output) {
    return Status::error("gzip: decompressed data exceeds the limit of " + std::to_string(max_output) +
                         " bytes");
  }
  buf.resize(produced);
  *out = std::move(buf);
  return Status();
}

Status gunzip_prefix(const uint8_t* bytes, size_t size, size_t n, std::vector<uint8_t>* out) {
  out->clear();
  if (!is_gzip(bytes, size)) return Status::error("gzip: not a gzip stream (no 1f 8b magic)");
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return Status::error("gzip: inflateInit2 failed");
  std::vector<uint8_t> buf(n);
  zs.next_in = const_cast<Bytef*>(bytes);
  zs.avail_in = static_cast<uInt>(std::min<size_t>(size, UINT_MAX));
  zs.next_out = buf.data();
  zs.avail_out = static_cast<uInt>(std::min<size_t>(n, UINT_MAX));
  int ret = Z_OK;
  while (ret == Z_OK && zs.avail_out > 0) ret = inflate(&zs, Z_NO_FLUSH);
  const size_t produced = static_cast<size_t>(zs.next_out - buf.data());
  inflateEnd(&zs);
  if (ret != Z_OK && ret != Z_STREAM_END && !(ret == Z_BUF_ERROR && produced > 0))
    return Status::error("gzip: corrupt or truncated stream at its start");
  buf.resize(produced);
  *out = std::move(buf);
  return Status();
}

#endif  // LATENTLAB_HAVE_ZLIB

}  // namespace ll
