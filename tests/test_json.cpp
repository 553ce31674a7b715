// Tests for the strict JSON reader (core/io/json.h): RFC 8259 acceptance, rejection with the right byte
// position and reason, depth limit, \u escapes to UTF-8, and no reads past the given size (inputs are
// copied into exact-size heap buffers so AddressSanitizer sees any over-read).
#include "core/io/json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "core/base/rng.h"

namespace ll {
namespace {

Status parse(const std::string& text, JsonValue* v) {
  std::unique_ptr<char[]> buf(new char[text.size() ? text.size() : 1]);
  std::memcpy(buf.get(), text.data(), text.size());
  return parse_json(buf.get(), text.size(), v);
}

JsonValue parse_ok(const std::string& text) {
  JsonValue v;
  Status s = parse(text, &v);
  EXPECT_TRUE(s.ok()) << text << " -> " << s.message();
  return v;
}

TEST(Json, Scalars) {
  EXPECT_EQ(parse_ok("null").type, JsonValue::Type::kNull);
  JsonValue t = parse_ok("true");
  EXPECT_EQ(t.type, JsonValue::Type::kBool);
  EXPECT_TRUE(t.boolean);
  JsonValue f = parse_ok(" \t\r\nfalse \n");
  EXPECT_EQ(f.type, JsonValue::Type::kBool);
  EXPECT_FALSE(f.boolean);
  JsonValue s = parse_ok("\"hi\"");
  EXPECT_EQ(s.type, JsonValue::Type::kString);
  EXPECT_EQ(s.string, "hi");
}

TEST(Json, Numbers) {
  struct Case {
    const char* text;
    double number;
    bool is_integer;
    int64_t integer;
  } cases[] = {
      {"0", 0.0, true, 0},
      {"-0", -0.0, true, 0},
      {"123", 123.0, true, 123},
      {"-45", -45.0, true, -45},
      {"9223372036854775807", 9223372036854775807.0, true, INT64_MAX},
      {"-9223372036854775808", -9223372036854775808.0, true, INT64_MIN},
      {"9223372036854775808", 9223372036854775808.0, false, 0},
      {"-9223372036854775809", -9223372036854775809.0, false, 0},
      {"100000000000000000000000", 1e23, false, 0},
      {"1.5", 1.5, false, 0},
      {"1.0", 1.0, false, 0},
      {"1e3", 1000.0, false, 0},
      {"1E+2", 100.0, false, 0},
      {"-2.5e-3", -2.5e-3, false, 0},
      {"0.1", 0.1, false, 0},
      {"4e-320", 4e-320, false, 0},
  };
  for (const Case& c : cases) {
    JsonValue v = parse_ok(c.text);
    EXPECT_EQ(v.type, JsonValue::Type::kNumber) << c.text;
    EXPECT_EQ(v.number, c.number) << c.text;
    EXPECT_EQ(std::signbit(v.number), std::signbit(c.number)) << c.text;
    EXPECT_EQ(v.is_integer, c.is_integer) << c.text;
    if (c.is_integer) {
      EXPECT_EQ(v.integer, c.integer) << c.text;
    }
  }
}

TEST(Json, NestedKeepsOrderAndGet) {
  JsonValue v = parse_ok(R"( { "b" : [1, {"x": null}, []], "a": {}, "c": "z" } )");
  ASSERT_EQ(v.type, JsonValue::Type::kObject);
  ASSERT_EQ(v.object.size(), 3u);
  EXPECT_EQ(v.object[0].first, "b");
  EXPECT_EQ(v.object[1].first, "a");
  EXPECT_EQ(v.object[2].first, "c");
  const JsonValue* b = v.get("b");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->array.size(), 3u);
  EXPECT_EQ(b->array[0].integer, 1);
  ASSERT_NE(b->array[1].get("x"), nullptr);
  EXPECT_EQ(b->array[1].get("x")->type, JsonValue::Type::kNull);
  EXPECT_EQ(b->array[2].type, JsonValue::Type::kArray);
  EXPECT_EQ(v.get("missing"), nullptr);
  EXPECT_EQ(b->get("b"), nullptr);  // not an object
}

TEST(Json, DuplicateKeysKeptInOrder) {
  JsonValue v = parse_ok(R"({"k":1,"k":2})");
  ASSERT_EQ(v.object.size(), 2u);
  EXPECT_EQ(v.object[1].second.integer, 2);
}

TEST(Json, StringEscapesToUtf8) {
  EXPECT_EQ(parse_ok(R"("\"\\\/\b\f\n\r\t")").string, "\"\\/\b\f\n\r\t");
  EXPECT_EQ(parse_ok(R"("\u0041\u00e9\u20AC")").string, "A\xC3\xA9\xE2\x82\xAC");
  EXPECT_EQ(parse_ok(R"("\uD83D\uDE00")").string, "\xF0\x9F\x98\x80");  // U+1F600
  EXPECT_EQ(parse_ok(R"("\uDBFF\uDFFF")").string, "\xF4\x8F\xBF\xBF");  // U+10FFFF
  EXPECT_EQ(parse_ok(R"("a\u0000b")").string, std::string("a\0b", 3));
  EXPECT_EQ(parse_ok("\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"").string,
            "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");  // raw UTF-8 passes through
}

struct BadCase {
  std::string text;
  size_t byte;
  const char* words;
};

TEST(Json, RejectsWithPositionAndReason) {
  const BadCase cases[] = {
      {"", 0, "unexpected end of input"},
      {"   ", 3, "unexpected end of input"},
      {R"({"a" 1})", 5, "expected ':' after object key"},
      {R"({"a":1,})", 7, "expected a string object key"},
      {R"({1:2})", 1, "expected a string object key"},
      {R"({'a':1})", 1, "expected a string object key"},
      {R"({"a":1 "b":2})", 7, "expected ',' or '}' after object member"},
      {R"({"a":1)", 6, "expected ',' or '}'"},
      {"[1,]", 3, "expected a value"},
      {"[1 2]", 3, "expected ',' or ']' after array element"},
      {"[", 1, "unexpected end of input"},
      {"01", 0, "leading zeros"},
      {"-012", 1, "leading zeros"},
      {"-", 1, "expected a digit after '-'"},
      {"-a", 1, "expected a digit after '-'"},
      {"1.", 2, "expected a digit after the decimal point"},
      {"1.e5", 2, "expected a digit after the decimal point"},
      {".5", 0, "unexpected character '.'"},
      {"+1", 0, "unexpected character '+'"},
      {"1e", 2, "expected a digit in the exponent"},
      {"1e+", 3, "expected a digit in the exponent"},
      {"1e400", 0, "out of range"},
      {"-1e400", 0, "out of range"},
      {"0x10", 1, "after the JSON value"},
      {"1 2", 2, "after the JSON value"},
      {"{} x", 3, "unexpected character 'x' after the JSON value"},
      {std::string("[1]\0", 4), 3, "byte 0x00 after the JSON value"},
      {"tru", 3, "invalid literal"},
      {"nulL", 3, "invalid literal"},
      {"True", 0, "unexpected character 'T'"},
      {"NaN", 0, "unexpected character 'N'"},
      {"Infinity", 0, "unexpected character 'I'"},
      {"\"abc", 4, "unterminated string"},
      {"\"a\nb\"", 2, "control character 0x0A"},
      {"\"a\tb\"", 2, "control character 0x09"},
      {std::string("\"a\0\"", 4), 2, "control character 0x00"},
      {R"("\x")", 1, "invalid escape \\x"},
      {R"("\U0041")", 1, "invalid escape \\U"},
      {R"("\u12G4")", 5, "invalid hex digit"},
      {R"("\u12")", 3, "truncated \\u escape"},
      {R"("\uD800")", 1, "high surrogate"},
      {R"("\uD800\u0041")", 1, "high surrogate"},
      {R"("\uD800x")", 1, "high surrogate"},
      {R"("\uDC00")", 1, "unpaired low surrogate"},
      {"\"\xC3\"", 1, "invalid UTF-8"},
      {"\"\xC0\xAF\"", 1, "invalid UTF-8"},          // overlong '/'
      {"\"\xE0\x80\xAF\"", 1, "invalid UTF-8"},      // overlong
      {"\"\xED\xA0\x80\"", 1, "invalid UTF-8"},      // encoded surrogate
      {"\"\xF4\x90\x80\x80\"", 1, "invalid UTF-8"},  // above U+10FFFF
      {"\"\xFF\"", 1, "invalid UTF-8"},
      {"\xEF\xBB\xBF{}", 0, "byte 0xEF"},  // a byte-order mark is not JSON
      {"{\"a\":1}\xC2\xA0", 7, "after the JSON value"},
  };
  for (const BadCase& c : cases) {
    JsonValue v;
    v.type = JsonValue::Type::kString;
    v.string = "untouched";
    Status s = parse(c.text, &v);
    ASSERT_FALSE(s.ok()) << "accepted: " << c.text;
    const std::string expect_pos = "malformed JSON at byte " + std::to_string(c.byte) + ": ";
    EXPECT_EQ(s.message().rfind(expect_pos, 0), 0u) << c.text << " -> " << s.message();
    EXPECT_NE(s.message().find(c.words), std::string::npos) << c.text << " -> " << s.message();
    EXPECT_EQ(v.string, "untouched") << "output written on failure: " << c.text;
  }
}

TEST(Json, DepthLimit) {
  std::string ok64 = std::string(64, '[') + std::string(64, ']');
  parse_ok(ok64);
  std::string obj64;
  for (int i = 0; i < 64; i++) obj64 += "{\"k\":";
  obj64 += "1" + std::string(64, '}');
  parse_ok(obj64);

  JsonValue v;
  Status s = parse(std::string(65, '[') + std::string(65, ']'), &v);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("byte 64: nesting deeper than 64"), std::string::npos) << s.message();
  // Far deeper input must fail cleanly, not overflow the stack.
  s = parse(std::string(1000000, '['), &v);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("nesting deeper than 64"), std::string::npos);
}

TEST(Json, SizeBoundsTheInput) {
  // Only the first `size` bytes count: "[1, 2]" cut to 4 bytes is incomplete.
  const char text[] = "[1, 2]";
  JsonValue v;
  Status s = parse_json(text, 4, &v);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("byte 4: unexpected end of input"), std::string::npos) << s.message();
  EXPECT_TRUE(parse_json(text, 6, &v).ok());
  EXPECT_FALSE(parse_json(nullptr, 0, &v).ok());
}

TEST(Json, QuoteRoundTrips) {
  const std::string cases[] = {"",
                               "plain",
                               "quote \" backslash \\ slash /",
                               "\b\f\n\r\t",
                               std::string("nul \0 and \x01\x1f\x7f", 13),
                               "caf\xC3\xA9 \xF0\x9F\x98\x80"};
  for (const std::string& c : cases) {
    std::string q = json_quote(c);
    for (unsigned char ch : q) EXPECT_GE(ch, 0x20) << "raw control char in " << q;
    JsonValue v = parse_ok(q);
    EXPECT_EQ(v.type, JsonValue::Type::kString);
    EXPECT_EQ(v.string, c);
  }
  EXPECT_EQ(json_quote("a\"b\n"), "\"a\\\"b\\n\"");
}

// Random mutations of a valid document: the parser must never crash or over-read (ASan), and its
// verdict must not depend on bytes beyond `size`.
TEST(Json, MutationFuzzNeverCrashes) {
  const std::string base =
      R"({"a": [1, -2.5e3, true, false, null], "b": {"c": "x\u00e9\uD83D\uDE00\n"}, "d": []})";
  const char alphabet[] = "{}[]\":,-+.eE0123456789\\u tfn\x00\xC3\xFF";
  Rng rng(20240601);
  int accepted = 0;
  for (int it = 0; it < 20000; it++) {
    std::string t = base;
    int edits = 1 + static_cast<int>(rng.below(3));
    for (int e = 0; e < edits && !t.empty(); e++) {
      size_t pos = rng.below(static_cast<uint32_t>(t.size()));
      switch (rng.below(4)) {
        case 0: t[pos] = alphabet[rng.below(sizeof alphabet - 1)]; break;
        case 1: t[pos] = static_cast<char>(rng.below(256)); break;
        case 2: t.erase(pos, 1); break;
        case 3: t.resize(pos); break;
      }
    }
    JsonValue v;
    if (parse(t, &v).ok()) accepted++;
  }
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, 20000);
}

}  // namespace
}  // namespace ll

namespace ll {
namespace {

TEST(JsonLimits, HugeFlatArrayIsRejectedNotBuilt) {
  // Two bytes per value: a 1 MB document of zeros would be half a million values.
  std::string doc = "[0";
  for (int i = 0; i < 500000; i++) doc += ",0";
  doc += "]";
  JsonValue v;
  Status s = parse_json(doc.data(), doc.size(), &v);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("values in one document"), std::string::npos) << s.message();
  // Just under the limit still parses.
  std::string ok = "[0";
  for (int i = 0; i < 200000; i++) ok += ",0";
  ok += "]";
  EXPECT_TRUE(parse_json(ok.data(), ok.size(), &v).ok());
  EXPECT_EQ(v.array.size(), 200001u);
}

}  // namespace
}  // namespace ll
