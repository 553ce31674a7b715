// libFuzzer target: the safetensors reader (core/io/safetensors.cpp) on arbitrary bytes. A parse that
// succeeds must describe tensors inside the data buffer; each is then read out as float32 (the F16,
// BF16 and F64 conversions included), so an offset the parser let through that points outside the
// file is an AddressSanitizer report here. Built by the `fuzz` preset (tests/fuzz/README.md).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ll::SafetensorsFile file;
  if (!ll::parse_safetensors(data, size, &file).ok()) return 0;
  std::vector<float> values;
  for (const ll::SafetensorsTensor& t : file.tensors) {
    size_t count = 1;
    for (int64_t d : t.shape) count *= static_cast<size_t>(d);
    // The parser checked byte size == count * dtype size <= the file, so this is bounded by the input.
    if (count * ll::dtype_size(t.dtype) != t.end - t.begin) __builtin_trap();
    values.resize(count);
    (void)file.read_f32(t, values.data(), count);
    if (file.find(t.name) != &t) __builtin_trap();
  }
  return 0;
}
