// A small, strict JSON reader for safetensors headers and model metadata, with no exceptions and
// byte positions in its error messages. Values: null, bool, number (kept as double plus the exact
// integer when it is one), string (with \uXXXX escapes, UTF-8 out), array, object (key order kept).
// Also a writer for the few objects LatentLab emits.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/base/status.h"

namespace ll {

struct JsonValue {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  double number = 0.0;
  bool is_integer = false;  // number written without fraction/exponent and fits in int64
  int64_t integer = 0;
  std::string string;
  std::vector<JsonValue> array;
  std::vector<std::pair<std::string, JsonValue>> object;

  const JsonValue* get(const std::string& key) const;  // objects only; null if absent
};

// Parses exactly one JSON value (surrounding whitespace allowed). Nesting deeper than 64 is an error.
Status parse_json(const char* text, size_t size, JsonValue* out);

// Escape a string for JSON output (quotes included).
std::string json_quote(const std::string& s);
// A finite double as the shortest of %.15g / %.17g that reads back to the same value ("0.001", "128");
// non-finite values as null (JSON has no NaN or infinity).
std::string json_number(double v);

}  // namespace ll
