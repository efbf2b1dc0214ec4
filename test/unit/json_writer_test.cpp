// Unit tests of the JSON writing helpers every writer shares (include/cdc/core/json_writer.hpp).
// Base64 and RFC 3339 are covered by dead_letter_test.cpp, their first users.

#include "cdc/core/json_writer.hpp"

#include <catch2/catch.hpp>
#include <simdjson.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>

namespace {

std::string json(std::string_view s) {
  std::string out = "x";
  cdc::append_json_string(s, out);
  REQUIRE(out.front() == 'x');  // appends, never overwrites
  return out.substr(1);
}

std::string latin1(std::string_view s) {
  std::string out = "x";
  cdc::append_json_string_latin1(s, out);
  REQUIRE(out.front() == 'x');
  return out.substr(1);
}

/// The string a JSON parser reads back from `literal`; fails the test when it is not valid JSON.
std::string parse_back(const std::string& literal) {
  simdjson::dom::parser parser;
  std::string_view value;
  INFO(literal);
  REQUIRE(parser.parse(literal).get_string().get(value) == simdjson::SUCCESS);
  return std::string(value);
}

/// The definition needs_json_escape speeds up: one byte at a time.
bool needs_escape_reference(std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == '"' || c == '\\') return true;
  }
  return false;
}

}  // namespace

TEST_CASE("json writer: escapes quotes, backslashes and control characters", "[json_writer]") {
  CHECK(json("") == R"("")");
  CHECK(json("plain") == R"("plain")");
  CHECK(json("a\"b\\c/d") == R"("a\"b\\c/d")");
  CHECK(json("\b\f\n\r\t") == R"("\b\f\n\r\t")");
  CHECK(json(std::string_view("\0\x01\x1f", 3)) == R"("\u0000\u0001\u001f")");
  CHECK(json("\x7f") == "\"\x7f\"");  // DEL is valid in a JSON string as it is
}

TEST_CASE("json writer: valid UTF-8 is copied, a stray byte becomes U+FFFD", "[json_writer]") {
  CHECK(json("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x91\x8d") == "\"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x91\x8d\"");
  CHECK(json("a\xff") == R"("a\ufffd")");
  CHECK(json("\xc3") == R"("\ufffd")");                                // cut sequence
  CHECK(json("\xc0\xaf") == R"("\ufffd\ufffd")");                      // overlong
  CHECK(json("\xed\xa0\x80") == R"("\ufffd\ufffd\ufffd")");            // a surrogate
  CHECK(json("\xf4\x90\x80\x80") == R"("\ufffd\ufffd\ufffd\ufffd")");  // above U+10FFFF
}

TEST_CASE("json writer: the Latin-1 reading escapes every high byte as a code point below 256", "[json_writer]") {
  CHECK(latin1("a\xe9\xff") == R"("a\u00e9\u00ff")");
  CHECK(latin1("\"\\\n\x01") == R"("\"\\\n\u0001")");
  CHECK(parse_back(latin1("\xe9")) == "\xc3\xa9");  // read back as U+00E9
}

TEST_CASE("json writer: any bytes give valid JSON, valid UTF-8 reads back unchanged", "[json_writer]") {
  std::mt19937_64 rng(20261203);
  for (int round = 0; round < 2000; ++round) {
    std::string s(rng() % 40, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : rng() % 128);
    const std::string literal = json(s);
    const std::string back = parse_back(literal);
    if (simdjson::validate_utf8(s.data(), s.size())) {
      CHECK(back == s);
    }
    CHECK(parse_back(latin1(s)).size() >= s.size());
  }
}

TEST_CASE("json writer: needs_json_escape agrees with the byte-at-a-time definition", "[json_writer]") {
  std::mt19937_64 rng(7);
  const std::string_view interesting = "\"\\\x1f\x20\x7f\x80\xff\x00a";
  for (int round = 0; round < 20000; ++round) {
    std::string s(rng() % 33, 'a');
    // Mostly plain, with one or two interesting bytes at every position of the 8-byte blocks.
    for (int k = 0; k < 2; ++k) {
      if (!s.empty() && rng() % 2 == 0) s[rng() % s.size()] = interesting[rng() % (interesting.size() + 1)];
    }
    INFO(s.size());
    CHECK(cdc::needs_json_escape(s) == needs_escape_reference(s));
  }
  CHECK_FALSE(cdc::needs_json_escape(""));
  CHECK_FALSE(cdc::needs_json_escape("0123456789abcdef\xc3\xa9"));
  CHECK(cdc::needs_json_escape("0123456789abcdef\""));
  CHECK(cdc::needs_json_escape("01234567\\"));
}

TEST_CASE("json writer: numbers and hex bytes", "[json_writer]") {
  std::string out;
  cdc::append_uint(0, out);
  out.push_back(' ');
  cdc::append_uint(std::numeric_limits<std::uint64_t>::max(), out);
  out.push_back(' ');
  cdc::append_int(std::numeric_limits<std::int64_t>::min(), out);
  out.push_back(' ');
  cdc::append_int(42, out);
  out.push_back(' ');
  cdc::append_hex_byte(0x00, out);
  cdc::append_hex_byte(0x1f, out);
  cdc::append_hex_byte(0xff, out);
  CHECK(out == "0 18446744073709551615 -9223372036854775808 42 0x000x1f0xff");
}

TEST_CASE("json writer: headers become one object, the first value of a repeated name wins", "[json_writer]") {
  std::string out;
  cdc::append_json_headers({}, out);
  CHECK(out == "{}");
  out.clear();
  cdc::append_json_headers({{"Nats-Msg-Id", "a"}, {"X-Tag", "1"}, {"Nats-Msg-Id", "b"}, {"X-\"q\"", "\n"}}, out);
  CHECK(out == R"({"Nats-Msg-Id":"a","X-Tag":"1","X-\"q\"":"\n"})");
}
