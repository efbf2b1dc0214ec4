// Unit tests of dead-letter records (CONTRACT.md section 6).

#include "cdc/core/dead_letter.hpp"

#include <catch2/catch.hpp>
#include <simdjson.h>

#include <ctime>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr std::int64_t kNs = 1'000'000'000;
constexpr std::int64_t k20261122T100001 = 1795341601;  // 2026-11-22T10:00:01Z

std::string rfc3339(std::int64_t unix_ns) {
  std::string out = "x";
  cdc::append_rfc3339(unix_ns, out);
  REQUIRE(out.front() == 'x');
  return out.substr(1);
}

std::string base64(std::string_view data) {
  std::string out = "x";
  cdc::append_base64(data, out);
  REQUIRE(out.front() == 'x');
  return out.substr(1);
}

std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

}  // namespace

TEST_CASE("dead letter payload: the contract's example, byte for byte", "[dead_letter]") {
  const std::vector<std::pair<std::string, std::string>> headers{{"Nats-Msg-Id", "MTAxOjA="}};
  cdc::DeadLetter letter;
  letter.source_subject = "cdc.co1.messages";
  letter.source_stream = "cdc_events_stream";
  letter.source_seq = 1234;
  letter.delivery_attempts = 1;
  letter.error_kind = cdc::ErrorKind::kInvalidToken;
  letter.error = "agent_id contains '.'";
  letter.failed_at_unix_ns = k20261122T100001 * kNs + 500'000'000;
  letter.headers = &headers;
  letter.data = R"({"record":{}})";
  std::string out = "leftover";
  cdc::build_dead_letter_payload(letter, out);
  CHECK(out == R"({"source_subject":"cdc.co1.messages","source_stream":"cdc_events_stream","source_seq":1234,)"
               R"("delivery_attempts":1,"error_kind":"invalid_token","error":"agent_id contains '.'",)"
               R"("event_id":null,"failed_at":"2026-11-22T10:00:01.5Z","headers":{"Nats-Msg-Id":"MTAxOjA="},)"
               R"("data_base64":"eyJyZWNvcmQiOnt9fQ=="})");
}

TEST_CASE("dead letter payload: key order, values and escaping survive a parser", "[dead_letter]") {
  const std::vector<std::pair<std::string, std::string>> headers{
      {"Nats-Msg-Id", "first"}, {"X-Other", "q\"\\\n"}, {"Nats-Msg-Id", "second"}, {"k\x01", "v"}};
  const std::string data = all_bytes();
  cdc::DeadLetter letter;
  letter.source_subject = "cdc.co\"1.messages";
  letter.source_stream = "cdc_events_stream";
  letter.source_seq = std::numeric_limits<std::uint64_t>::max();
  letter.delivery_attempts = std::numeric_limits<std::uint32_t>::max();
  letter.error_kind = cdc::ErrorKind::kMaxDeliveries;
  letter.error = "bad \"value\" \\ with\tcontrol\x02";
  letter.has_event_id = true;
  letter.event_id = "1.0:co1:messages:m\"1";
  letter.failed_at_unix_ns = 0;
  letter.headers = &headers;
  letter.data = data;
  std::string out;
  cdc::build_dead_letter_payload(letter, out);

  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  REQUIRE(parser.parse(out).get(obj) == simdjson::SUCCESS);
  std::vector<std::string> keys;
  for (auto [key, value] : obj) keys.emplace_back(key);
  CHECK(keys == std::vector<std::string>{"source_subject", "source_stream", "source_seq", "delivery_attempts",
                                         "error_kind", "error", "event_id", "failed_at", "headers", "data_base64"});
  CHECK(std::string_view(obj["source_subject"]) == "cdc.co\"1.messages");
  CHECK(std::uint64_t(obj["source_seq"]) == std::numeric_limits<std::uint64_t>::max());
  CHECK(std::uint64_t(obj["delivery_attempts"]) == std::numeric_limits<std::uint32_t>::max());
  CHECK(std::string_view(obj["error_kind"]) == "max_deliveries");
  CHECK(std::string_view(obj["error"]) == letter.error);
  CHECK(std::string_view(obj["event_id"]) == "1.0:co1:messages:m\"1");
  CHECK(std::string_view(obj["failed_at"]) == "1970-01-01T00:00:00Z");
  // headers: first value of a repeated key, in order.
  simdjson::dom::object h = obj["headers"];
  std::vector<std::pair<std::string, std::string>> seen;
  for (auto [key, value] : h) seen.emplace_back(key, std::string_view(value));
  CHECK(seen == std::vector<std::pair<std::string, std::string>>{
                    {"Nats-Msg-Id", "first"}, {"X-Other", "q\"\\\n"}, {"k\x01", "v"}});
  std::string decoded;
  REQUIRE(cdc::decode_base64(std::string_view(obj["data_base64"]), decoded));
  CHECK(decoded == data);
}

TEST_CASE("dead letter payload: no headers and no event id", "[dead_letter]") {
  cdc::DeadLetter letter;
  letter.error_kind = cdc::ErrorKind::kInvalidJson;
  std::string out;
  cdc::build_dead_letter_payload(letter, out);
  CHECK(out == R"({"source_subject":"","source_stream":"","source_seq":0,"delivery_attempts":0,)"
               R"("error_kind":"invalid_json","error":"","event_id":null,"failed_at":"1970-01-01T00:00:00Z",)"
               R"("headers":{},"data_base64":""})");
  const std::vector<std::pair<std::string, std::string>> none;
  letter.headers = &none;
  std::string again;
  cdc::build_dead_letter_payload(letter, again);
  CHECK(again == out);
  // has_event_id decides, not the view's content.
  letter.event_id = "ignored";
  cdc::build_dead_letter_payload(letter, again);
  CHECK(again.find(R"("event_id":null)") != std::string::npos);
  letter.has_event_id = true;
  letter.event_id = "";
  cdc::build_dead_letter_payload(letter, again);
  CHECK(again.find(R"("event_id":"")") != std::string::npos);
}

TEST_CASE("dead letter subject: tokens sanitised", "[dead_letter]") {
  std::string out = "leftover";
  cdc::build_dead_letter_subject("cdc_dlq", "co1", "messages", out);
  CHECK(out == "cdc_dlq.co1.messages");
  cdc::build_dead_letter_subject("cdc_dlq", "", "", out);
  CHECK(out == "cdc_dlq._._");
  cdc::build_dead_letter_subject("cdc_dlq", "a.b*c>d e", "t\x01", out);
  CHECK(out == "cdc_dlq.a_b_c_d_e.t_");
  cdc::build_dead_letter_subject("dlq.v1", std::string(300, 'c'), "chats", out);
  CHECK(out == "dlq.v1." + std::string(128, 'c') + ".chats");
}

TEST_CASE("rfc3339: UTC with microseconds, trailing zeros dropped", "[dead_letter][time]") {
  const std::int64_t s = k20261122T100001;
  CHECK(rfc3339(s * kNs) == "2026-11-22T10:00:01Z");
  CHECK(rfc3339(s * kNs + 500'000'000) == "2026-11-22T10:00:01.5Z");
  CHECK(rfc3339(s * kNs + 120'000'000) == "2026-11-22T10:00:01.12Z");
  CHECK(rfc3339(s * kNs + 125'001'000) == "2026-11-22T10:00:01.125001Z");
  CHECK(rfc3339(s * kNs + 1'000) == "2026-11-22T10:00:01.000001Z");
  CHECK(rfc3339(s * kNs + 999) == "2026-11-22T10:00:01Z");                 // below a microsecond
  CHECK(rfc3339(s * kNs + 999'999'999) == "2026-11-22T10:00:01.999999Z");  // truncated, never rounded up
  CHECK(rfc3339(0) == "1970-01-01T00:00:00Z");
  CHECK(rfc3339(1709251199 * kNs) == "2024-02-29T23:59:59Z");
  CHECK(rfc3339(1798761599 * kNs + 999'999'000) == "2026-12-31T23:59:59.999999Z");
  CHECK(rfc3339(951868800 * kNs) == "2000-03-01T00:00:00Z");
  CHECK(rfc3339(-1) == "1969-12-31T23:59:59.999999Z");
  CHECK(rfc3339(-kNs) == "1969-12-31T23:59:59Z");
  CHECK(rfc3339(std::numeric_limits<std::int64_t>::max()) == "2262-04-11T23:47:16.854775Z");
  CHECK(rfc3339(std::numeric_limits<std::int64_t>::min()) == "1677-09-21T00:12:43.145224Z");
}

TEST_CASE("rfc3339 agrees with gmtime_r", "[dead_letter][time]") {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::int64_t> seconds(0, 9'000'000'000LL / 4);  // up to ~2255
  for (int i = 0; i < 2000; ++i) {
    const std::int64_t s = seconds(rng);
    const std::time_t t = static_cast<std::time_t>(s);
    std::tm tm{};
    REQUIRE(gmtime_r(&t, &tm) != nullptr);
    char expected[64];
    REQUIRE(std::strftime(expected, sizeof(expected), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0);
    INFO(s);
    CHECK(rfc3339(s * kNs) == expected);
  }
}

TEST_CASE("base64: RFC 4648 vectors and round trips", "[dead_letter][base64]") {
  const std::vector<std::pair<std::string, std::string>> vectors{{"", ""},
                                                                 {"f", "Zg=="},
                                                                 {"fo", "Zm8="},
                                                                 {"foo", "Zm9v"},
                                                                 {"foob", "Zm9vYg=="},
                                                                 {"fooba", "Zm9vYmE="},
                                                                 {"foobar", "Zm9vYmFy"},
                                                                 {"\xff\xfe\xfd", "//79"},
                                                                 {"\xfb\xff", "+/8="}};
  for (const auto& [plain, encoded] : vectors) {
    INFO(encoded);
    CHECK(base64(plain) == encoded);
    std::string decoded = "leftover";
    REQUIRE(cdc::decode_base64(encoded, decoded));
    CHECK(decoded == plain);
  }
  const std::string bytes = all_bytes();
  for (std::size_t n = 0; n <= bytes.size(); n += 7) {
    std::string decoded;
    REQUIRE(cdc::decode_base64(base64(bytes.substr(0, n)), decoded));
    CHECK(decoded == bytes.substr(0, n));
  }
  // The non-UTF-8 body of samples/bad-examples.jsonl.
  std::string body;
  REQUIRE(cdc::decode_base64("eyJyZWNvcmQiOnsiYWdlbnRfaWQiOiJh/yJ9fQ==", body));
  CHECK(body == "{\"record\":{\"agent_id\":\"a\xff\"}}");
}

TEST_CASE("base64: decoding rejects what is not base64", "[dead_letter][base64]") {
  for (const char* bad :
       {"Z", "Zg=", "Zm9v!", "Zm 9v", "Zm9v\n", "Zg==Zg==", "=Zg=", "Zg===", "====", "Z===", "Zm9-", "Zm9_"}) {
    INFO(bad);
    std::string out = "x";
    CHECK_FALSE(cdc::decode_base64(bad, out));
  }
  // Padding may be left out.
  std::string out;
  REQUIRE(cdc::decode_base64("Zg", out));
  CHECK(out == "f");
  REQUIRE(cdc::decode_base64("Zm8", out));
  CHECK(out == "fo");
}

TEST_CASE("dead letter payload: max_bytes cuts data_base64 to fit and says so", "[dead_letter]") {
  const std::vector<std::pair<std::string, std::string>> headers{{"Nats-Msg-Id", "MTAxOjA="}};
  std::string body(100'000, 'b');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  cdc::DeadLetter letter;
  letter.source_subject = "cdc.co1.messages";
  letter.source_stream = "cdc_events_stream";
  letter.source_seq = 7;
  letter.delivery_attempts = 1;
  letter.error_kind = cdc::ErrorKind::kPublishRejected;
  letter.error = "payload of 100250 bytes exceeds the server's max_payload of 65536";
  letter.headers = &headers;
  letter.data = body;

  std::string whole;
  cdc::build_dead_letter_payload(letter, whole);
  letter.max_bytes = whole.size();  // fits exactly: unchanged
  std::string same;
  cdc::build_dead_letter_payload(letter, same);
  CHECK(same == whole);

  simdjson::dom::parser parser;
  for (const std::size_t limit : {std::size_t{65536}, std::size_t{1000}, whole.size() - 1, std::size_t{10}}) {
    INFO("max_bytes " << limit);
    letter.max_bytes = limit;
    std::string out;
    cdc::build_dead_letter_payload(letter, out);
    simdjson::dom::element doc;
    REQUIRE(parser.parse(out).get(doc) == simdjson::SUCCESS);
    CHECK(bool(doc["data_truncated"]) == true);
    CHECK(std::uint64_t(doc["data_bytes"]) == body.size());
    std::string data;
    REQUIRE(cdc::decode_base64(std::string_view(doc["data_base64"]), data));
    CHECK(body.compare(0, data.size(), data) == 0);  // a prefix of the body
    if (limit >= 1000) {
      CHECK(out.size() <= limit);
      CHECK(out.size() + 4 > limit);  // the longest prefix that fits, in whole base64 quads
    } else {
      CHECK(data.empty());  // not even the record without a body fits: no body at all
    }
    CHECK(out.compare(0, 20, whole, 0, 20) == 0);  // the other fields as before
  }
}
