#include "cdc/core/capture.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace {

cdc::CaptureRecord parse_ok(std::string_view line) {
  cdc::CaptureRecord record;
  std::string error;
  INFO(line);
  REQUIRE(cdc::parse_capture_line(line, record, error));
  CHECK(error.empty());
  return record;
}

std::string parse_error(std::string_view line) {
  cdc::CaptureRecord record;
  std::string error;
  INFO(line);
  CHECK_FALSE(cdc::parse_capture_line(line, record, error));
  CHECK_FALSE(error.empty());
  return error;
}

cdc::CaptureRecord round_trip(const cdc::CaptureRecord& record) { return parse_ok(cdc::format_capture_line(record)); }

void check_equal(const cdc::CaptureRecord& a, const cdc::CaptureRecord& b) {
  CHECK(a.subject == b.subject);
  CHECK(a.headers == b.headers);
  CHECK(a.data == b.data);
  CHECK(a.stream_seq == b.stream_seq);
  CHECK(a.time == b.time);
}

}  // namespace

TEST_CASE("capture: parses the contract's line", "[capture]") {
  const auto record =
      parse_ok(R"({"subject":"cdc.co1.messages","headers":{"Nats-Msg-Id":"MTAxOjA="},"data":"{\"a\":1}"})");
  CHECK(record.subject == "cdc.co1.messages");
  REQUIRE(record.headers.size() == 1);
  CHECK(record.header("Nats-Msg-Id") == "MTAxOjA=");
  CHECK(record.header("nats-msg-id").empty());  // case-sensitive
  CHECK(record.header("Other").empty());
  CHECK(record.data == R"({"a":1})");
  CHECK_FALSE(record.stream_seq);
  CHECK_FALSE(record.time);
}

TEST_CASE("capture: optional fields, key order and unknown keys", "[capture]") {
  const auto record = parse_ok(
      R"( { "time" : "2026-11-22T10:00:01.5Z", "extra": [1, {"x": null}], "stream_seq": 18446744073709551615,
            "data": "x", "headers": {"A": "1", "B": ["2", "3"], "C": []}, "subject": "s.t" } )");
  CHECK(record.subject == "s.t");
  CHECK(record.data == "x");
  REQUIRE(record.stream_seq);
  CHECK(*record.stream_seq == 18446744073709551615ULL);
  REQUIRE(record.time);
  CHECK(*record.time == "2026-11-22T10:00:01.5Z");
  const std::vector<std::pair<std::string, std::string>> expected{{"A", "1"}, {"B", "2"}, {"B", "3"}};
  CHECK(record.headers == expected);
  CHECK(record.header("B") == "2");

  SECTION("missing headers, null headers, null stream_seq and time are accepted") {
    const auto bare = parse_ok(R"({"subject":"a","data":""})");
    CHECK(bare.headers.empty());
    CHECK(bare.data.empty());
    const auto nulls = parse_ok(R"({"subject":"a","headers":null,"data":"","stream_seq":null,"time":null})");
    CHECK(nulls.headers.empty());
    CHECK_FALSE(nulls.stream_seq);
    CHECK_FALSE(nulls.time);
  }
}

TEST_CASE("capture: data is unescaped, data_base64 decoded", "[capture]") {
  CHECK(parse_ok(R"({"subject":"a","data":"q\"b\\s\/n\nt\tu\u00e9\ud83d\udc4d\u0000z"})").data ==
        std::string("q\"b\\s/n\nt\tu\xc3\xa9\xf0\x9f\x91\x8d\0z", 19));
  CHECK(parse_ok(R"({"subject":"a","data_base64":""})").data.empty());
  CHECK(parse_ok(R"({"subject":"a","data_base64":"Zg=="})").data == "f");
  CHECK(parse_ok(R"({"subject":"a","data_base64":"Zm8="})").data == "fo");
  CHECK(parse_ok(R"({"subject":"a","data_base64":"Zm9v"})").data == "foo");
  CHECK(parse_ok(R"({"subject":"a","data_base64":"/+8A"})").data == std::string("\xff\xef\x00", 3));
  // The body of bad-examples.jsonl's last line: a JSON prefix with a 0xff byte inside.
  CHECK(parse_ok(R"({"subject":"a","data_base64":"eyJyZWNvcmQiOnsiYWdlbnRfaWQiOiJh/yJ9fQ=="})").data ==
        "{\"record\":{\"agent_id\":\"a\xff\"}}");
}

TEST_CASE("capture: errors name the problem", "[capture]") {
  CHECK(parse_error(R"({"headers":{},"data":"x"})") == "missing \"subject\"");
  CHECK(parse_error(R"({"subject":"a","headers":{}})") == "missing \"data\" (or \"data_base64\")");
  CHECK(parse_error(R"({"subject":"a","data":"x","data_base64":"eA=="})") ==
        "both \"data\" and \"data_base64\" are present");
  CHECK(parse_error(R"({"subject":"a","data_base64":"Zm9v!"})") == "data_base64 is not valid base64");
  CHECK(parse_error(R"({"subject":"a","data_base64":"Zm9"})") == "data_base64 is not valid base64");
  CHECK(parse_error(R"({"subject":"a","data_base64":"Z==="})") == "data_base64 is not valid base64");
  CHECK(parse_error(R"({"subject":"a","data_base64":"Zg==Zg=="})") == "data_base64 is not valid base64");
  CHECK(parse_error(R"({"subject":"a","data_base64":"Zm 9v"})") == "data_base64 is not valid base64");
  CHECK(parse_error(R"({"subject":7,"data":"x"})") == "\"subject\" is not a string");
  CHECK(parse_error(R"({"subject":"","data":"x"})") == "\"subject\" is empty");
  CHECK(parse_error(R"({"subject":"a","data":{"x":1}})") == "\"data\" is not a string");
  CHECK(parse_error(R"({"subject":"a","data":"x","headers":[]})") == "\"headers\" is not an object");
  CHECK(parse_error(R"({"subject":"a","data":"x","headers":{"A":1}})") ==
        "header \"A\" is not a string or an array of strings");
  CHECK(parse_error(R"({"subject":"a","data":"x","headers":{"A":["1",2]}})") ==
        "header \"A\" has a value that is not a string");
  CHECK(parse_error(R"({"subject":"a","data":"x","stream_seq":-1})") == "\"stream_seq\" is not an unsigned integer");
  CHECK(parse_error(R"({"subject":"a","data":"x","stream_seq":1.5})") == "\"stream_seq\" is not an unsigned integer");
  CHECK(parse_error(R"({"subject":"a","data":"x","stream_seq":"1"})") == "\"stream_seq\" is not an unsigned integer");
  CHECK(parse_error(R"({"subject":"a","data":"x","time":1})") == "\"time\" is not a string");
  CHECK(parse_error(R"({"subject":"a","subject":"b","data":"x"})") == "duplicate \"subject\"");
  CHECK(parse_error(R"(["subject","a"])") == "line is not a JSON object");
  CHECK(parse_error("").rfind("not valid JSON", 0) == 0);
  CHECK(parse_error(R"({"subject":"a","data":"x")").rfind("not valid JSON", 0) == 0);
  CHECK(parse_error("{\"subject\":\"a\",\"data\":\"\xff\"}").rfind("not valid JSON", 0) == 0);
}

TEST_CASE("capture: format writes the contract's compact form", "[capture]") {
  cdc::CaptureRecord record;
  record.subject = "cdc.co1.messages";
  record.headers = {{"Nats-Msg-Id", "MTAxOjA="}};
  record.data = R"({"a":"b"})";
  CHECK(cdc::format_capture_line(record) ==
        R"({"subject":"cdc.co1.messages","headers":{"Nats-Msg-Id":"MTAxOjA="},"data":"{\"a\":\"b\"}"})");

  record.headers.clear();
  record.stream_seq = 42;
  record.time = "2026-11-22T10:00:01.5Z";
  CHECK(
      cdc::format_capture_line(record) ==
      R"({"subject":"cdc.co1.messages","headers":{},"data":"{\"a\":\"b\"}","stream_seq":42,"time":"2026-11-22T10:00:01.5Z"})");

  record = {};
  record.subject = std::string(1, 'a');  // not = "a": GCC 12 -O3 warns (-Wrestrict, GCC bug 105329)
  record.data = std::string("\x01\x1f\x7f\"\\/\b\f\n\r\t\xc3\xa9", 13);
  CHECK(cdc::format_capture_line(record) ==
        "{\"subject\":\"a\",\"headers\":{},\"data\":\"\\u0001\\u001f\x7f\\\"\\\\/\\b\\f\\n\\r\\t\xc3\xa9\"}");
}

TEST_CASE("capture: round trips", "[capture]") {
  cdc::CaptureRecord record;
  record.subject = "cdc.Zeta-9.messages";

  SECTION("plain UTF-8 body with escapes and unicode") {
    record.headers = {{"Nats-Msg-Id", "OTAwMDAwMzM1Mzow"}};
    record.data = "{\"message_text\":\"line1\\nline2\\t\\\"quoted\\\" \\\\u0000 ok \xf0\x9f\x91\x8d \xe6\x97\xa5\"}";
    check_equal(round_trip(record), record);
  }
  SECTION("control characters and NUL bytes are valid UTF-8 and stay in data") {
    record.data = std::string("a\0b\x01\x7f\n", 6);
    const auto line = cdc::format_capture_line(record);
    CHECK(line.find("\"data\":") != std::string::npos);
    check_equal(round_trip(record), record);
  }
  SECTION("non-UTF-8 bodies use data_base64") {
    for (const std::string& body : {std::string("\xff"), std::string("{\"a\":\"\xc3\"}"),
                                    std::string("\xed\xa0\x80"),  // encoded surrogate
                                    std::string("\xc0\xaf"),      // overlong '/'
                                    std::string("ab\xf8\x88\x80\x80\x80")}) {
      record.data = body;
      const auto line = cdc::format_capture_line(record);
      INFO(line);
      CHECK(line.find("\"data_base64\":") != std::string::npos);
      CHECK(line.find("\"data\":") == std::string::npos);
      check_equal(round_trip(record), record);
    }
  }
  SECTION("every base64 padding length") {
    for (std::size_t n = 0; n < 12; ++n) {
      record.data = std::string(n, '\xfe');
      check_equal(round_trip(record), record);
    }
  }
  SECTION("all byte values") {
    for (int c = 0; c < 256; ++c) record.data += static_cast<char>(c);
    check_equal(round_trip(record), record);
  }
  SECTION("headers: repeated names become an array at the first occurrence") {
    record.headers = {{"A", "1"}, {"B", "x\"y"}, {"A", "2"}};
    record.stream_seq = 0;
    record.time = "2026-11-22T10:00:00Z";
    const auto line = cdc::format_capture_line(record);
    CHECK(line.find(R"("headers":{"A":["1","2"],"B":"x\"y"})") != std::string::npos);
    const auto back = parse_ok(line);
    const std::vector<std::pair<std::string, std::string>> grouped{{"A", "1"}, {"A", "2"}, {"B", "x\"y"}};
    CHECK(back.headers == grouped);
    CHECK(back.stream_seq == std::optional<std::uint64_t>(0));
    CHECK(back.time == record.time);
  }
  SECTION("non-UTF-8 subject or header stays a parseable line") {
    record.subject = "cdc.\xff.t";
    record.headers = {{"K", "v\xfe"}};
    const auto back = round_trip(record);
    CHECK(back.subject == "cdc.\xc3\xbf.t");  // Latin-1 reading of the byte
    CHECK(back.header("K") == "v\xc3\xbe");
  }
}

TEST_CASE("capture: every sample line parses and round-trips", "[capture]") {
  // The repository's copies of the shared samples: present in every checkout (a missing
  // directory fails the test instead of skipping it).
  const std::filesystem::path dir = std::filesystem::path(CDC_SOURCE_DIR) / "tools" / "samples";
  INFO("samples directory " << dir);
  REQUIRE(std::filesystem::is_directory(dir));
  std::size_t files = 0;
  std::size_t lines = 0;
  std::size_t base64_bodies = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".jsonl") continue;
    ++files;
    std::ifstream in(entry.path(), std::ios::binary);
    REQUIRE(in);
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (line.empty()) continue;
      ++lines;
      INFO(entry.path().filename().string() << ":" << number);
      cdc::CaptureRecord record;
      std::string error;
      REQUIRE(cdc::parse_capture_line(line, record, error));
      CHECK(record.subject.rfind("cdc.", 0) == 0);
      if (line.find("\"data_base64\"") != std::string::npos) ++base64_bodies;
      check_equal(round_trip(record), record);
    }
  }
  CHECK(files >= 2);     // sequin-mixed-2k.jsonl and bad-examples.jsonl
  CHECK(lines >= 2080);  // 2075 + 5
  CHECK(base64_bodies >= 1);
}

TEST_CASE("capture: a subject or header that is not UTF-8 is written as Latin-1", "[capture]") {
  cdc::CaptureRecord record;
  record.subject = "cdc.caf\xe9.messages";
  record.headers = {{"X-Raw", "\xff\x01"}, {"X-Ok", "caf\xc3\xa9"}};
  record.data = "{}";
  CHECK(cdc::format_capture_line(record) ==
        R"({"subject":"cdc.caf\u00e9.messages","headers":{"X-Raw":"\u00ff\u0001","X-Ok":")"
        "caf\xc3\xa9"
        R"("},"data":"{}"})");
}

TEST_CASE("capture: data_base64 must be padded", "[capture]") {
  CHECK(parse_ok(R"({"subject":"a","data_base64":"eA=="})").data == "x");
  CHECK(parse_error(R"({"subject":"a","data_base64":"eA"})") == "data_base64 is not valid base64");
  CHECK(parse_error(R"({"subject":"a","data_base64":"eA="})") == "data_base64 is not valid base64");
}
