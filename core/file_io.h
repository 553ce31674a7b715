// Native-only helpers: read a whole file (gunzipping `.gz` files, or any file that starts with the gzip
// magic) and write one. Not compiled into the wasm build. Errors name the path.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace ll {

Status read_file(const std::string& path, std::vector<uint8_t>* out);
// Reads and, if gzip-compressed, decompresses.
Status read_file_maybe_gzip(const std::string& path, std::vector<uint8_t>* out);
Status write_file(const std::string& path, const std::vector<uint8_t>& bytes);

// Load an MNIST-layout data set: `<dir>/<prefix>-images-idx3-ubyte[.gz]` and
// `<dir>/<prefix>-labels-idx1-ubyte[.gz]`, prefix "train" or "t10k". Errors name the file.
struct Dataset;
Status load_idx_dataset(const std::string& dir, const std::string& prefix, Dataset* out);

}  // namespace ll
