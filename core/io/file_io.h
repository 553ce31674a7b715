// Native-only helpers: read a whole file (gunzipping `.gz` files, or any file that starts with the gzip
// magic) and write one. Not compiled into the wasm build. Errors name the path.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/base/status.h"

namespace ll {

// Files larger than this are refused before reading (1 GiB: a model within the memory budget of
// model.h is at most 256 MiB as F32; MNIST's training images are 47 MB).
constexpr uint64_t kMaxFileBytes = uint64_t(1) << 30;

// Reads a whole regular file of at most max_bytes. Anything else (a directory, a device such as
// /dev/zero, a pipe) or a larger file is refused with a message before it is read.
Status read_file(const std::string& path, std::vector<uint8_t>* out, uint64_t max_bytes = kMaxFileBytes);
// Reads and, if gzip-compressed, decompresses. An IDX file's decompressed size is bounded by what its
// header declares (read from the first decompressed bytes), so a gzip bomb stops early.
Status read_file_maybe_gzip(const std::string& path, std::vector<uint8_t>* out);
// Atomic: a temp file beside `path`, then rename; on error the old file (if any) is untouched.
Status write_file(const std::string& path, const std::vector<uint8_t>& bytes);
// Whether `path` can be written now (not empty, not a directory, its directory takes a new file),
// tried by creating and removing a temp file beside it: for checking an output before long work.
Status check_writable(const std::string& path);

// Load an MNIST-layout data set: `<dir>/<prefix>-images-idx3-ubyte[.gz]` and
// `<dir>/<prefix>-labels-idx1-ubyte[.gz]`, prefix "train" or "t10k". Errors name the file.
struct Dataset;
Status load_idx_dataset(const std::string& dir, const std::string& prefix, Dataset* out);

}  // namespace ll
