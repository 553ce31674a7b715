// libFuzzer target: the gzip reader (core/io/gzip.cpp, zlib underneath): truncated, corrupt and
// multi-member streams, and the output limit (16 MiB here, so a small bomb hits it quickly).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/io/gzip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kLimit = size_t(16) << 20;
  std::vector<uint8_t> out;
  const ll::Status st = ll::gunzip(data, size, &out, kLimit);
  if (st.ok() && out.size() > kLimit) __builtin_trap();
  return 0;
}
