// gzip decompression (native only, zlib). The browser uses DecompressionStream instead.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/base/status.h"

namespace ll {

bool is_gzip(const uint8_t* bytes, size_t size);
// Decompresses a complete gzip stream (multiple members allowed). Rejects truncated or corrupt
// streams with a message; refuses to inflate beyond `max_output` bytes.
Status gunzip(const uint8_t* bytes, size_t size, std::vector<uint8_t>* out,
              size_t max_output = size_t(1) << 31);
// The first `n` decompressed bytes of a gzip stream (fewer if the stream is shorter), inflating no more
// than that: enough to read a header (e.g. IDX's) and bound what a full gunzip may produce.
Status gunzip_prefix(const uint8_t* bytes, size_t size, size_t n, std::vector<uint8_t>* out);

}  // namespace ll
