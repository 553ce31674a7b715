// libFuzzer target: the JSON parser (core/io/json.cpp) and the two config readers built on it
// (ModelConfig::from_json, PixelCnnConfig::from_json: a model file's "latentlab.config"). A value that
// parses is walked to the bottom and its strings re-quoted; a quoted string must parse back to itself.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/io/json.h"
#include "core/models/model.h"
#include "core/models/pixelcnn.h"

namespace {
void walk(const ll::JsonValue& v, int depth) {
  if (depth > 65) __builtin_trap();  // the parser promises a nesting limit of 64
  if (v.type == ll::JsonValue::Type::kString) {
    const std::string quoted = ll::json_quote(v.string);
    ll::JsonValue back;
    if (!ll::parse_json(quoted.data(), quoted.size(), &back).ok() || back.string != v.string) __builtin_trap();
  }
  for (const ll::JsonValue& e : v.array) walk(e, depth + 1);
  for (const auto& kv : v.object) {
    if (v.get(kv.first) == nullptr) __builtin_trap();
    walk(kv.second, depth + 1);
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* text = reinterpret_cast<const char*>(data);
  ll::JsonValue value;
  if (ll::parse_json(text, size, &value).ok()) walk(value, 0);
  const std::string s(text, size);
  ll::ModelConfig model_config;
  if (ll::ModelConfig::from_json(s, &model_config).ok()) (void)model_config.validate();
  ll::PixelCnnConfig prior_config;
  if (ll::PixelCnnConfig::from_json(s, &prior_config).ok()) (void)prior_config.validate();
  return 0;
}
