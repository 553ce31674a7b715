// Strict RFC 8259 JSON reader and string quoting; see json.h. The parsing is nlohmann-json's (Debian's
// nlohmann-json3-dev, header-only, used without exceptions: its SAX interface reports errors through a
// callback, and JSON_NOEXCEPTION turns any throw it would do into an abort, which the SAX path never
// reaches). What is LatentLab's own here: the tree it builds (JsonValue, keys in order, duplicates kept,
// integers exact), the limits (nesting depth 64, at most 2^18 values), and the error messages: nlohmann's
// report (a token, a position counted in characters read, a message) is turned into one line naming the
// 0-based byte where the input went wrong and what was expected there. Goes into the wasm build: no
// printing, and no byte is read at or past `size` (the text need not be NUL-terminated).
#include "core/io/json.h"

#define JSON_NOEXCEPTION 1
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <vector>

namespace ll {
namespace {

constexpr int kMaxDepth = 64;
// At most this many values per document: a 100 MB safetensors header of "[0,0,0,...]" would otherwise
// build 50 million JsonValues (gigabytes) before any check could reject it. 262144 values is about
// 30,000 tensor entries, far beyond any model here, and bounds the parser's memory to tens of MB.
constexpr size_t kMaxValues = size_t(1) << 18;

using Json = nlohmann::json;

// A pointer into the text that records how far nlohmann has read (it reads one character at a time
// through its iterator adapter), so that the builder's own errors (depth, count) and the sign of "-0"
// can be placed in the text.
struct CountingIterator {
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;
  const char* p = nullptr;
  const char** furthest = nullptr;
  reference operator*() const { return *p; }
  CountingIterator& operator++() {
    ++p;
    if (p > *furthest) *furthest = p;
    return *this;
  }
  CountingIterator operator++(int) {
    CountingIterator old = *this;
    ++*this;
    return old;
  }
  bool operator==(const CountingIterator& o) const { return p == o.p; }
  bool operator!=(const CountingIterator& o) const { return p != o.p; }
};

// "character 'x'", "byte 0x01" or "end of input" for position `pos` of text[0, n).
std::string describe(const unsigned char* t, size_t n, size_t pos) {
  if (pos >= n) return "end of input";
  char buf[32];
  if (t[pos] >= 0x20 && t[pos] < 0x7F) {
    std::snprintf(buf, sizeof buf, "character '%c'", t[pos]);
  } else {
    std::snprintf(buf, sizeof buf, "byte 0x%02X", static_cast<unsigned>(t[pos]));
  }
  return buf;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }
bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }
bool is_hex(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Builds the JsonValue tree from nlohmann's SAX events, enforcing the depth and count limits; on an
// error keeps the byte and the message.
class Builder : public nlohmann::json_sax<Json> {
 public:
  Builder(const unsigned char* text, size_t n, const char** furthest)
      : t_(text), n_(n), base_(reinterpret_cast<const char*>(text)), furthest_(furthest) {}

  bool null() override { return leaf() != nullptr; }
  bool boolean(bool v) override {
    JsonValue* x = leaf();
    if (!x) return false;
    x->type = JsonValue::Type::kBool;
    x->boolean = v;
    return true;
  }
  bool number_integer(number_integer_t v) override {
    JsonValue* x = number();
    if (!x) return false;
    x->is_integer = true;
    x->integer = v;
    x->number = static_cast<double>(v);
    // nlohmann reads "-0" as the integer 0: the sign is in the text, just before the 0 it read last
    // (the character after the number may have been read too).
    if (v == 0) {
      size_t end = read();
      size_t zero = end >= 1 && t_[end - 1] == '0' ? end - 1 : end - 2;
      if (zero >= 1 && zero < n_ && t_[zero - 1] == '-') x->number = -0.0;
    }
    return true;
  }
  bool number_unsigned(number_unsigned_t v) override {
    JsonValue* x = number();
    if (!x) return false;
    x->number = static_cast<double>(v);
    if (v <= static_cast<uint64_t>(INT64_MAX)) {
      x->is_integer = true;
      x->integer = static_cast<int64_t>(v);
    }
    return true;
  }
  bool number_float(number_float_t v, const string_t&) override {
    JsonValue* x = number();
    if (!x) return false;
    x->number = v;
    return true;
  }
  bool string(string_t& v) override {
    JsonValue* x = leaf();
    if (!x) return false;
    x->type = JsonValue::Type::kString;
    x->string = std::move(v);
    return true;
  }
  bool binary(binary_t&) override { return false; }  // never from JSON text
  bool start_object(std::size_t) override { return open(JsonValue::Type::kObject); }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return open(JsonValue::Type::kArray); }
  bool end_array() override {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string& last_token,
                   const nlohmann::detail::exception& ex) override {
    translate(position, last_token, ex.id, ex.what());
    return false;
  }

  JsonValue& root() { return root_; }
  bool failed() const { return !err_.empty(); }
  size_t err_pos() const { return err_pos_; }
  const std::string& err() const { return err_; }

 private:
  const unsigned char* t_;
  size_t n_;
  const char* base_;
  const char** furthest_;
  JsonValue root_;
  bool have_root_ = false;
  std::vector<JsonValue*> stack_;  // open containers; each lives in its parent, which does not grow meanwhile
  std::string key_;
  size_t values_ = 0;
  size_t err_pos_ = 0;
  std::string err_;

  size_t read() const { return static_cast<size_t>(*furthest_ - base_); }
  bool fail(size_t pos, std::string msg) {
    err_pos_ = pos;
    err_ = std::move(msg);
    return false;
  }
  // The slot of the next value: the root, the next array element, or the object member of the last key.
  JsonValue* leaf() {
    if (++values_ > kMaxValues) {
      fail(read() ? read() - 1 : 0, "more than " + std::to_string(kMaxValues) + " values in one document");
      return nullptr;
    }
    if (stack_.empty()) {
      have_root_ = true;
      return &root_;
    }
    JsonValue* top = stack_.back();
    if (top->type == JsonValue::Type::kArray) {
      top->array.emplace_back();
      return &top->array.back();
    }
    top->object.emplace_back(std::move(key_), JsonValue());
    return &top->object.back().second;
  }
  JsonValue* number() {
    JsonValue* x = leaf();
    if (x) x->type = JsonValue::Type::kNumber;
    return x;
  }
  bool open(JsonValue::Type type) {
    // The '[' or '{' was the last character read.
    if (static_cast<int>(stack_.size()) >= kMaxDepth)
      return fail(read() - 1, "nesting deeper than " + std::to_string(kMaxDepth));
    JsonValue* x = leaf();
    if (!x) return false;
    x->type = type;
    stack_.push_back(x);
    return true;
  }

  // nlohmann's report -> the byte where the input went wrong and what was expected there. `position` is
  // the count of characters read, the end of input counting as one; `token` what it read of the last
  // token (for strings and literals from their first character).
  void translate(size_t position, const std::string& token, int id, const std::string& what) {
    const size_t last = position ? position - 1 : 0;  // the last character read
    size_t begin = position >= token.size() ? position - token.size() : 0;  // the token's first byte
    std::string context, detail;
    const size_t wp = what.find("while parsing "), dash = what.find(" - ");
    if (wp != std::string::npos && dash != std::string::npos && dash > wp) {
      context = what.substr(wp + 14, dash - wp - 14);
      detail = what.substr(dash + 3);
    } else {
      detail = what.substr(what.find("] ") == std::string::npos ? 0 : what.find("] ") + 2);
    }
    const bool want_end = contains(detail, "expected end of input");
    auto got = [&](size_t at) { return describe(t_, n_, at); };
    // The structural messages, by what nlohmann was parsing.
    auto structural = [&](size_t at) {
      if (context == "object key") return fail(at, "expected a string object key, got " + got(at));
      if (context == "object separator") return fail(at, "expected ':' after object key");
      if (context == "object") return fail(at, "expected ',' or '}' after object member, got " + got(at));
      if (context == "array") return fail(at, "expected ',' or ']' after array element, got " + got(at));
      if (want_end) return fail(at, "unexpected " + got(at) + " after the JSON value");
      if (at >= n_) return fail(at, "unexpected end of input, expected a value");
      return fail(at, "unexpected " + got(at) + ", expected a value");
    };
    if (id == 406) {  // out_of_range: a number beyond a double
      fail(begin, "number out of range for a double");
    } else if (starts_with(detail, "unexpected end of input")) {
      structural(n_);
    } else if (starts_with(detail, "unexpected ")) {  // a whole token in the wrong place
      const bool literal = contains(detail, "literal;");  // string, number, true, false, null
      size_t at = literal ? begin : last;
      // "01", "-012": nlohmann reads "0" as a number and then meets the next digits.
      if (contains(detail, "unexpected number literal") && at >= 1 && t_[at - 1] == '0' &&
          (at == 1 || !(std::isdigit(t_[at - 2]) || t_[at - 2] == '.' || t_[at - 2] == 'e' || t_[at - 2] == 'E')))
        fail(at - 1, "leading zeros are not allowed in numbers");
      else
        structural(at);
    } else if (starts_with(detail, "invalid literal")) {
      // The literal's first character already wrong ("True", ".5", "'a'"): an unexpected character;
      // later ("tru", "nulL"): a misspelt true / false / null.
      const bool first = last == 0 || !std::isalpha(t_[last - 1]) || want_end;
      if (first) structural(last);
      else fail(last, "invalid literal (expected 'true', 'false' or 'null')");
    } else if (starts_with(detail, "invalid number")) {
      if (contains(detail, "after '-'")) fail(last, "expected a digit after '-'");
      else if (contains(detail, "after '.'")) fail(last, "expected a digit after the decimal point");
      else if (contains(detail, "exponent")) fail(last, "expected a digit in the exponent");
      else fail(last, detail);
    } else if (starts_with(detail, "invalid string")) {
      string_error(detail, last);
    } else {
      fail(std::min(last, n_), detail);
    }
  }

  void string_error(const std::string& detail, size_t last) {
    // The nearest "\u" escape before `last` whose first hex digit and second match `pred`.
    auto escape_before = [&](bool (*pred)(unsigned char, unsigned char)) {
      for (size_t k = std::min(last, n_ - (n_ ? 1 : 0)) + 1; k-- > 0;)
        if (k + 3 < n_ && t_[k] == '\\' && t_[k + 1] == 'u' && pred(t_[k + 2], t_[k + 3])) return k;
      return last;
    };
    if (contains(detail, "missing closing quote")) {
      fail(n_, "unterminated string");
    } else if (contains(detail, "control character")) {
      char buf[80];
      std::snprintf(buf, sizeof buf, "control character 0x%02X in a string must be escaped",
                    static_cast<unsigned>(last < n_ ? t_[last] : 0));
      fail(last, buf);
    } else if (contains(detail, "after backslash")) {
      if (last >= n_) fail(last, "unterminated escape in string");
      else fail(last - 1, std::string("invalid escape \\") + static_cast<char>(t_[last]) + " in string");
    } else if (contains(detail, "hex digits")) {
      size_t hex = last;  // the first hex digit of the escape
      while (hex >= 2 && !(t_[hex - 2] == '\\' && t_[hex - 1] == 'u')) hex--;
      if (n_ - hex < 4) fail(hex, "truncated \\u escape (needs 4 hex digits)");
      else fail(last, "invalid hex digit in \\u escape: " + describe(t_, n_, last));
    } else if (contains(detail, "must be followed by")) {
      fail(escape_before([](unsigned char a, unsigned char b) {
             return (a == 'd' || a == 'D') && ((b >= '8' && b <= '9') || (b >= 'a' && b <= 'b') || (b >= 'A' && b <= 'B'));
           }),
           "high surrogate in \\u escape not followed by a low surrogate");
    } else if (contains(detail, "must follow")) {
      fail(escape_before([](unsigned char a, unsigned char b) {
             return (a == 'd' || a == 'D') && ((b >= 'c' && b <= 'f') || (b >= 'C' && b <= 'F'));
           }),
           "unpaired low surrogate in \\u escape");
    } else if (contains(detail, "UTF-8")) {
      // The start of the ill-formed sequence: its lead byte, when the bad byte was a later one.
      size_t at = last;
      if (at < n_ && t_[at] < 0xC0) {
        size_t k = at;
        while (k > 0 && t_[k - 1] >= 0x80 && t_[k - 1] < 0xC0) k--;
        if (k > 0 && t_[k - 1] >= 0xC0) at = k - 1;
      }
      fail(at, "invalid UTF-8 in string");
    } else {
      fail(last, detail);
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
  if (!text) text = kEmpty;
  const unsigned char* t = reinterpret_cast<const unsigned char*>(text);
  auto error = [](size_t pos, const std::string& msg) {
    return Status::error("malformed JSON at byte " + std::to_string(pos) + ": " + msg);
  };
  // nlohmann skips a UTF-8 byte-order mark, which RFC 8259 does not allow a parser to require or JSON
  // text to need; LatentLab's files never have one.
  if (size >= 3 && t[0] == 0xEF && t[1] == 0xBB && t[2] == 0xBF)
    return error(0, "unexpected byte 0xEF, expected a value (a byte-order mark is not JSON)");
  // nlohmann reads a NUL byte as the end of the input; a raw NUL is never valid JSON (outside strings it
  // is no token, inside them an unescaped control character), so the text ends at the first one and a
  // parse that needed more is placed there.
  const char* nul = static_cast<const char*>(std::memchr(text, 0, size));
  const size_t n = nul ? static_cast<size_t>(nul - text) : size;
  const char* furthest = text;
  Builder builder(t, n, &furthest);
  CountingIterator first{text, &furthest}, last{text + n, &furthest};
  const bool ok = Json::sax_parse(first, last, &builder, nlohmann::detail::input_format_t::json, /*strict=*/true);
  if (ok && !builder.failed()) {
    if (n < size) return error(n, "unexpected byte 0x00 after the JSON value");
    *out = std::move(builder.root());
    return Status();
  }
  if (n < size && builder.err_pos() >= n) {  // it went wrong at the NUL byte
    if (builder.err() == "unterminated string")
      return error(n, "control character 0x00 in a string must be escaped");
    std::string msg = builder.err();
    const size_t at = msg.find("end of input");
    if (at != std::string::npos) msg.replace(at, 12, "byte 0x00");
    return error(n, msg);
  }
  return error(builder.err_pos(), builder.failed() ? builder.err() : "not valid JSON");
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

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  if (std::strtod(buf, nullptr) != v) std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace ll
