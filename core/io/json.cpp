// Strict RFC 8259 JSON reader and string quoting; see json.h. Goes into the wasm build: no exceptions,
// no printing, and no byte is read at or past `size` (the text need not be NUL-terminated). Errors name
// the 0-based byte offset. Duplicate object keys are kept in order (RFC 8259 allows them); callers that
// care (safetensors) reject them with their own message.
#include "core/io/json.h"

#include <cerrno>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace ll {
namespace {

constexpr int kMaxDepth = 64;
// At most this many values per document: a 100 MB safetensors header of "[0,0,0,...]" would otherwise
// build 50 million JsonValues (gigabytes) before any check could reject it. 262144 values is about
// 30,000 tensor entries, far beyond any model here, and bounds the parser's memory to tens of MB.
constexpr size_t kMaxValues = size_t(1) << 18;

class Parser {
 public:
  Parser(const char* text, size_t size) : p_(reinterpret_cast<const unsigned char*>(text)), n_(size) {}

  Status parse(JsonValue* out) {
    skip_ws();
    if (!parse_value(out, 0)) return fail_status();
    skip_ws();
    if (i_ < n_) {
      fail_at(i_, "unexpected " + describe(i_) + " after the JSON value");
      return fail_status();
    }
    return Status();
  }

 private:
  const unsigned char* p_;
  size_t n_;
  size_t i_ = 0;
  size_t values_ = 0;  // values begun so far, bounded by kMaxValues
  size_t err_pos_ = 0;
  std::string err_;

  bool fail_at(size_t pos, const std::string& msg) {
    err_pos_ = pos;
    err_ = msg;
    return false;
  }
  Status fail_status() const {
    return Status::error("malformed JSON at byte " + std::to_string(err_pos_) + ": " + err_);
  }
  // "character 'x'", "byte 0x01" or "end of input" for position `pos`.
  std::string describe(size_t pos) const {
    if (pos >= n_) return "end of input";
    unsigned char c = p_[pos];
    char buf[32];
    if (c >= 0x20 && c < 0x7F) {
      std::snprintf(buf, sizeof buf, "character '%c'", c);
    } else {
      std::snprintf(buf, sizeof buf, "byte 0x%02X", static_cast<unsigned>(c));
    }
    return buf;
  }
  void skip_ws() {
    while (i_ < n_ && (p_[i_] == ' ' || p_[i_] == '\t' || p_[i_] == '\n' || p_[i_] == '\r')) i_++;
  }
  bool match_literal(const char* lit) {
    for (size_t k = 0; lit[k]; k++) {
      if (i_ >= n_ || p_[i_] != static_cast<unsigned char>(lit[k])) {
        return fail_at(i_, std::string("invalid literal (expected '") + lit + "')");
      }
      i_++;
    }
    return true;
  }

  bool parse_value(JsonValue* v, int depth) {
    *v = JsonValue();
    if (++values_ > kMaxValues)
      return fail_at(i_, "more than " + std::to_string(kMaxValues) + " values in one document");
    if (i_ >= n_) return fail_at(i_, "unexpected end of input, expected a value");
    unsigned char c = p_[i_];
    switch (c) {
      case '{': return parse_object(v, depth + 1);
      case '[': return parse_array(v, depth + 1);
      case '"': v->type = JsonValue::Type::kString; return parse_string(&v->string);
      case 't': v->type = JsonValue::Type::kBool; v->boolean = true; return match_literal("true");
      case 'f': v->type = JsonValue::Type::kBool; return match_literal("false");
      case 'n': return match_literal("null");
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(v);
        return fail_at(i_, "unexpected " + describe(i_) + ", expected a value");
    }
  }

  bool parse_object(JsonValue* v, int depth) {
    if (depth > kMaxDepth) return fail_at(i_, "nesting deeper than " + std::to_string(kMaxDepth));
    v->type = JsonValue::Type::kObject;
    i_++;  // '{'
    skip_ws();
    if (i_ < n_ && p_[i_] == '}') {
      i_++;
      return true;
    }
    for (;;) {
      if (i_ >= n_ || p_[i_] != '"') {
        return fail_at(i_, "expected a string object key, got " + describe(i_));
      }
      std::string key;
      if (!parse_string(&key)) return false;
      skip_ws();
      if (i_ >= n_ || p_[i_] != ':') return fail_at(i_, "expected ':' after object key");
      i_++;
      skip_ws();
      v->object.emplace_back(std::move(key), JsonValue());
      if (!parse_value(&v->object.back().second, depth)) return false;
      skip_ws();
      if (i_ < n_ && p_[i_] == ',') {
        i_++;
        skip_ws();
        continue;
      }
      if (i_ < n_ && p_[i_] == '}') {
        i_++;
        return true;
      }
      return fail_at(i_, "expected ',' or '}' after object member, got " + describe(i_));
    }
  }

  bool parse_array(JsonValue* v, int depth) {
    if (depth > kMaxDepth) return fail_at(i_, "nesting deeper than " + std::to_string(kMaxDepth));
    v->type = JsonValue::Type::kArray;
    i_++;  // '['
    skip_ws();
    if (i_ < n_ && p_[i_] == ']') {
      i_++;
      return true;
    }
    for (;;) {
      v->array.emplace_back();
      if (!parse_value(&v->array.back(), depth)) return false;
      skip_ws();
      if (i_ < n_ && p_[i_] == ',') {
        i_++;
        skip_ws();
        continue;
      }
      if (i_ < n_ && p_[i_] == ']') {
        i_++;
        return true;
      }
      return fail_at(i_, "expected ',' or ']' after array element, got " + describe(i_));
    }
  }

  bool is_digit(size_t pos) const { return pos < n_ && p_[pos] >= '0' && p_[pos] <= '9'; }

  // number = [ "-" ] int [ frac ] [ exp ]; int = "0" / digit1-9 *digit
  bool parse_number(JsonValue* v) {
    size_t start = i_;
    bool negative = false;
    if (p_[i_] == '-') {
      negative = true;
      i_++;
    }
    if (!is_digit(i_)) return fail_at(i_, "expected a digit after '-'");
    if (p_[i_] == '0' && is_digit(i_ + 1)) return fail_at(i_, "leading zeros are not allowed in numbers");
    // Exact integer accumulation as a negative value (the int64 range is wider on that side).
    bool fits = true;
    int64_t acc = 0;
    while (is_digit(i_)) {
      int d = p_[i_] - '0';
      if (acc < (INT64_MIN + d) / 10) fits = false;
      if (fits) acc = acc * 10 - d;
      i_++;
    }
    bool integral = true;
    if (i_ < n_ && p_[i_] == '.') {
      integral = false;
      i_++;
      if (!is_digit(i_)) return fail_at(i_, "expected a digit after the decimal point");
      while (is_digit(i_)) i_++;
    }
    if (i_ < n_ && (p_[i_] == 'e' || p_[i_] == 'E')) {
      integral = false;
      i_++;
      if (i_ < n_ && (p_[i_] == '+' || p_[i_] == '-')) i_++;
      if (!is_digit(i_)) return fail_at(i_, "expected a digit in the exponent");
      while (is_digit(i_)) i_++;
    }
    v->type = JsonValue::Type::kNumber;
    if (integral && fits && (negative || acc != INT64_MIN)) {
      v->is_integer = true;
      v->integer = negative ? acc : -acc;
    }
    // strtod needs a NUL-terminated copy and the C locale's decimal point.
    std::string tok(reinterpret_cast<const char*>(p_ + start), i_ - start);
    const char* point = std::localeconv()->decimal_point;
    if (point && point[0] && point[0] != '.' && !point[1]) {
      for (char& ch : tok) {
        if (ch == '.') ch = point[0];
      }
    }
    char* end = nullptr;
    double d = std::strtod(tok.c_str(), &end);
    if (end != tok.c_str() + tok.size()) return fail_at(start, "could not convert number");
    if (std::isinf(d)) return fail_at(start, "number out of range for a double");
    v->number = d;
    return true;
  }

  bool parse_hex4(uint32_t* out) {
    if (n_ - i_ < 4) return fail_at(i_, "truncated \\u escape (needs 4 hex digits)");
    uint32_t value = 0;
    for (int k = 0; k < 4; k++) {
      unsigned char c = p_[i_ + k];
      uint32_t d;
      if (c >= '0' && c <= '9') {
        d = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        d = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        d = c - 'A' + 10;
      } else {
        return fail_at(i_ + k, "invalid hex digit in \\u escape: " + describe(i_ + k));
      }
      value = value * 16 + d;
    }
    i_ += 4;
    *out = value;
    return true;
  }

  static void append_utf8(std::string* s, uint32_t cp) {
    if (cp < 0x80) {
      s->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      s->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      s->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      s->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      s->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // Length of the well-formed UTF-8 sequence at i_ (RFC 3629: no overlongs, no surrogates, at most
  // U+10FFFF), or 0.
  size_t utf8_length() const {
    unsigned char c = p_[i_];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return 0;
    }
    if (n_ - i_ < len) return 0;
    if (p_[i_ + 1] < lo || p_[i_ + 1] > hi) return 0;
    for (size_t k = 2; k < len; k++) {
      if (p_[i_ + k] < 0x80 || p_[i_ + k] > 0xBF) return 0;
    }
    return len;
  }

  bool parse_string(std::string* out) {
    i_++;  // opening quote
    for (;;) {
      if (i_ >= n_) return fail_at(i_, "unterminated string");
      unsigned char c = p_[i_];
      if (c == '"') {
        i_++;
        return true;
      }
      if (c < 0x20) {
        char buf[80];
        std::snprintf(buf, sizeof buf, "control character 0x%02X in a string must be escaped",
                      static_cast<unsigned>(c));
        return fail_at(i_, buf);
      }
      if (c >= 0x80) {
        size_t len = utf8_length();
        if (len == 0) return fail_at(i_, "invalid UTF-8 in string");
        out->append(reinterpret_cast<const char*>(p_ + i_), len);
        i_ += len;
        continue;
      }
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        i_++;
        continue;
      }
      size_t esc = i_;
      i_++;
      if (i_ >= n_) return fail_at(i_, "unterminated escape in string");
      switch (p_[i_]) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          i_++;
          uint32_t cp;
          if (!parse_hex4(&cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail_at(esc, "unpaired low surrogate in \\u escape");
          }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (n_ - i_ < 2 || p_[i_] != '\\' || p_[i_ + 1] != 'u') {
              return fail_at(esc, "high surrogate in \\u escape not followed by a low surrogate");
            }
            i_ += 2;
            uint32_t low;
            if (!parse_hex4(&low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) {
              return fail_at(esc, "high surrogate in \\u escape not followed by a low surrogate");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          continue;  // i_ already past the escape
        }
        default:
          return fail_at(esc, "invalid escape \\" + std::string(1, static_cast<char>(p_[i_])) +
                                  " in string");
      }
      i_++;
    }
  }
};

}  // namespace

const JsonValue* JsonValue::get(const std::string& key) const {
  if (type != Type::kObject) return nullptr;
  for (const auto& kv : object) {
    if (kv.first == key) return &kv.second;
  }
  return nullptr;
}

Status parse_json(const char* text, size_t size, JsonValue* out) {
  if (!text && size > 0) return Status::error("malformed JSON at byte 0: null text");
  static const char kEmpty[1] = {0};
  Parser parser(text ? text : kEmpty, size);
  JsonValue v;
  Status s = parser.parse(&v);
  if (s.ok()) *out = std::move(v);
  return s;
}

std::string json_quote(const std::string& s) {
  std::string r;
  r.reserve(s.size() + 2);
  r.push_back('"');
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': r += "\\\""; break;
      case '\\': r += "\\\\"; break;
      case '\b': r += "\\b"; break;
      case '\f': r += "\\f"; break;
      case '\n': r += "\\n"; break;
      case '\r': r += "\\r"; break;
      case '\t': r += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned>(c));
          r += buf;
        } else {
          r.push_back(ch);
        }
    }
  }
  r.push_back('"');
  return r;
}

}  // namespace ll
