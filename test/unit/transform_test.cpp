// Unit tests of the pure transform (CONTRACT.md sections 1-4 and 6).

#include "cdc/core/transform.hpp"
#include "cdc/core/json_writer.hpp"

#include <catch2/catch.hpp>
#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using cdc::Disposition;
using cdc::ErrorKind;
using cdc::Transformer;
using cdc::TransformOutput;
using cdc::TransformRules;

constexpr std::string_view kRecord = R"({"message_id":"m1","chat_id":"c1","agent_id":"a1","text":"hi"})";
constexpr std::string_view kMetadata =
    R"({"table_schema":"public","table_name":"messages","commit_timestamp":"2026-11-22T10:00:00.125001Z",)"
    R"("commit_lsn":27635224,"commit_idx":0,"record_pks":["m1"],"idempotency_key":"Mjc2MzUyMjQ6MA=="})";

/// {"record":R,"changes":null,"action":A,"metadata":M}
std::string body(std::string_view record = kRecord, std::string_view metadata = kMetadata,
                 std::string_view action = R"("insert")") {
  std::string b = R"({"record":)";
  b.append(record).append(R"(,"changes":null,"action":)").append(action);
  b.append(R"(,"metadata":)").append(metadata).append("}");
  return b;
}

/// A metadata object for `table` with the given commit_lsn / commit_idx JSON tokens
/// (empty = key left out).
std::string meta(std::string_view table, std::string_view lsn, std::string_view idx = "0",
                 std::string_view extra = "") {
  std::string m = R"({"table_name":")";
  m.append(table).append(R"(","commit_timestamp":"2026-11-22T10:00:00Z")");
  if (!lsn.empty()) m.append(R"(,"commit_lsn":)").append(lsn);
  if (!idx.empty()) m.append(R"(,"commit_idx":)").append(idx);
  if (!extra.empty()) m.append(",").append(extra);
  m.append("}");
  return m;
}

struct Result {
  Disposition disposition;
  ErrorKind kind;
  std::string error;
  bool has_event_id;
  std::string event_id;
  std::string subject;
  std::string payload;
  std::string action;
  std::string company;
  std::string table;

  bool operator==(const Result&) const = default;
};

Result run(Transformer& t, std::string_view subject, std::string_view b, std::string_view msg_id = "") {
  TransformOutput out;
  const Disposition d = t.transform(subject, b, msg_id, out);
  REQUIRE(d == out.disposition);
  return {d,
          out.error_kind,
          out.error,
          out.has_event_id,
          out.event_id,
          out.subject,
          out.payload,
          std::string(out.action),
          std::string(out.company),
          std::string(out.table)};
}

Result run(std::string_view subject, std::string_view b, std::string_view msg_id = "") {
  Transformer t{TransformRules{}};
  return run(t, subject, b, msg_id);
}

Result published(std::string_view subject, std::string_view b, std::string_view msg_id = "") {
  Result r = run(subject, b, msg_id);
  INFO(b);
  INFO(r.error);
  REQUIRE(r.disposition == Disposition::kPublish);
  CHECK(r.kind == ErrorKind::kNone);
  CHECK(r.error.empty());
  CHECK(r.has_event_id);
  return r;
}

ErrorKind dead(std::string_view subject, std::string_view b, std::string_view msg_id = "") {
  const Result r = run(subject, b, msg_id);
  INFO(b);
  INFO(r.error);
  REQUIRE(r.disposition == Disposition::kDeadLetter);
  CHECK(!r.error.empty());
  CHECK(r.subject.empty());
  CHECK(r.payload.empty());
  return r.kind;
}

std::string dead_error(std::string_view subject, std::string_view b) {
  const Result r = run(subject, b);
  REQUIRE(r.disposition == Disposition::kDeadLetter);
  return r.error;
}

/// A field of the payload, parsed independently with simdjson DOM.
std::string payload_field(const std::string& payload, const char* key) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE(parser.parse(payload).get(doc) == simdjson::SUCCESS);
  simdjson::dom::element v;
  REQUIRE(doc[key].get(v) == simdjson::SUCCESS);
  if (v.is_null()) return "null";
  std::string_view s;
  REQUIRE(v.get_string().get(s) == simdjson::SUCCESS);
  return std::string(s);
}

std::string row_data_of(const std::string& payload) {
  const std::string marker = ",\"row_data\":";
  const auto at = payload.find(marker);
  REQUIRE(at != std::string::npos);
  REQUIRE(payload.back() == '}');
  return payload.substr(at + marker.size(), payload.size() - at - marker.size() - 1);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Subject layout

TEST_CASE("subject layout: default cdc.{company}.{table}", "[transform][subject]") {
  const cdc::SubjectLayout layout("cdc.{company}.{table}");
  std::string_view company, table;
  REQUIRE(layout.split("cdc.co1.messages", company, table));
  CHECK(company == "co1");
  CHECK(table == "messages");
  CHECK(layout.filter_subject() == "cdc.*.*");

  for (const char* bad : {"cdc.co1", "cdc.co1.messages.x", "xyz.co1.messages", "cdc..messages", "cdc.co1.", "", "cdc",
                          ".cdc.co1.messages", "CDC.co1.messages"}) {
    INFO(bad);
    CHECK_FALSE(layout.split(bad, company, table));
  }
  // Best effort on a mismatch with the right token count: still names company and table.
  CHECK_FALSE(layout.split("xyz.co9.chats", company, table));
  CHECK(company == "co9");
  CHECK(table == "chats");
}

TEST_CASE("subject layout: sequin.{database}.{schema}.{table}.{action} with company_prefix", "[transform][subject]") {
  const cdc::SubjectLayout layout("sequin.{database}.{schema}.{table}.{action}", "daisi_");
  CHECK(layout.filter_subject() == "sequin.*.*.*.*");
  std::string_view company, table;
  REQUIRE(layout.split("sequin.daisi.daisi_co1.messages.insert", company, table));
  CHECK(company == "co1");
  CHECK(table == "messages");
  // Without the prefix the schema is the company as it is.
  REQUIRE(layout.split("sequin.daisi.public.chats.update", company, table));
  CHECK(company == "public");
  CHECK(table == "chats");
  // The prefix is only stripped at the start.
  REQUIRE(layout.split("sequin.db.xdaisi_co1.agents.read", company, table));
  CHECK(company == "xdaisi_co1");
  // Only the prefix: the company is empty (and is rejected later as a routing token).
  REQUIRE(layout.split("sequin.db.daisi_.agents.read", company, table));
  CHECK(company.empty());
  CHECK_FALSE(layout.split("sequin.daisi.daisi_co1.messages", company, table));
  CHECK_FALSE(layout.split("other.daisi.daisi_co1.messages.insert", company, table));
}

TEST_CASE("subject layout: literals and {*} anywhere", "[transform][subject]") {
  const cdc::SubjectLayout layout("a.{table}.b.{*}.{company}");
  CHECK(layout.filter_subject() == "a.*.b.*.*");
  std::string_view company, table;
  REQUIRE(layout.split("a.chats.b.whatever.acme", company, table));
  CHECK(company == "acme");
  CHECK(table == "chats");
  CHECK_FALSE(layout.split("a.chats.c.whatever.acme", company, table));
  // {company} does not strip the prefix; only {schema} does.
  const cdc::SubjectLayout plain("cdc.{company}.{table}", "daisi_");
  REQUIRE(plain.split("cdc.daisi_co1.messages", company, table));
  CHECK(company == "daisi_co1");
}

TEST_CASE("subject layout: bad layouts throw with a precise message", "[transform][subject]") {
  for (const char* bad : {"", "cdc..{table}", "cdc.{company}", "cdc.{table}", "cdc.{company}.{schema}.{table}",
                          "cdc.{company}.{table}.{table}", "cdc.{company}.{company}.{table}", "cdc.{foo}.{table}",
                          "cdc.{company}.{table}.x*", "cdc.{company}x.{table}", "cdc.{company}.{table}.>",
                          "c dc.{company}.{table}", "cdc.{company}.{table}."}) {
    INFO(bad);
    CHECK_THROWS_AS(cdc::SubjectLayout(bad), std::invalid_argument);
  }
  CHECK_THROWS_WITH(cdc::SubjectLayout("cdc.{foo}.{table}"), Catch::Contains("{foo}"));
  CHECK_THROWS_WITH(cdc::SubjectLayout("cdc.{company}"), Catch::Contains("{table}"));
  CHECK_NOTHROW(cdc::SubjectLayout("{schema}.{table}"));
}

TEST_CASE("transformer: bad rules throw", "[transform]") {
  auto rules_with = [](auto change) {
    TransformRules r;
    change(r);
    return r;
  };
  CHECK_THROWS_AS(Transformer(rules_with([](TransformRules& r) { r.tables.clear(); })), std::invalid_argument);
  CHECK_THROWS_WITH(Transformer(rules_with([](TransformRules& r) { r.tables.push_back("contacts"); })),
                    Catch::Contains("contacts"));
  CHECK_THROWS_AS(Transformer(rules_with([](TransformRules& r) { r.tables.push_back("a.b"); })), std::invalid_argument);
  CHECK_THROWS_AS(Transformer(rules_with([](TransformRules& r) { r.tables.push_back("chats"); })),
                  std::invalid_argument);
  CHECK_THROWS_AS(Transformer(rules_with([](TransformRules& r) { r.key_columns["chats"] = ""; })),
                  std::invalid_argument);
  for (const char* prefix : {"", "wa..x", "w a", "wa.", "wa.*"}) {
    INFO(prefix);
    CHECK_THROWS_AS(Transformer(rules_with([&](TransformRules& r) { r.subject_prefix = prefix; })),
                    std::invalid_argument);
  }
  CHECK_THROWS_AS(Transformer(rules_with([](TransformRules& r) { r.subject_layout = "cdc.{table}"; })),
                  std::invalid_argument);
  CHECK_THROWS_AS(Transformer(rules_with([](TransformRules& r) { r.max_message_bytes = 0; })), std::invalid_argument);
  CHECK_NOTHROW(Transformer(rules_with([](TransformRules& r) { r.subject_prefix = "ws.v1"; })));
}

TEST_CASE("transformer: allowed() follows the table set", "[transform]") {
  TransformRules rules;
  rules.tables = {"messages", "contacts"};
  rules.key_columns["contacts"] = "contact_id";
  Transformer t(rules);
  CHECK(t.allowed("messages"));
  CHECK(t.allowed("contacts"));
  CHECK_FALSE(t.allowed("chats"));
  CHECK_FALSE(t.allowed("message"));
  CHECK_FALSE(t.allowed(""));
}

// ---------------------------------------------------------------------------------------------
// Tokens and JSON strings

TEST_CASE("is_valid_token: the contract's rules", "[transform][token]") {
  CHECK(cdc::is_valid_token("a"));
  CHECK(cdc::is_valid_token("agent-7"));
  CHECK(cdc::is_valid_token("tenant_42"));
  CHECK(cdc::is_valid_token("a:b@c#d/e+f=g"));
  CHECK(cdc::is_valid_token(std::string(128, 'x')));
  CHECK_FALSE(cdc::is_valid_token(std::string(129, 'x')));
  CHECK_FALSE(cdc::is_valid_token(""));
  for (char c : std::string(".*> \t\n\r\f\v")) {
    INFO(static_cast<int>(c));
    CHECK_FALSE(cdc::is_valid_token(std::string("ab") + c + "cd"));
    CHECK_FALSE(cdc::is_valid_token(std::string(1, c)));
  }
  for (int c = 0; c < 0x20; ++c) {
    INFO(c);
    CHECK_FALSE(cdc::is_valid_token(std::string("a") + static_cast<char>(c)));
  }
  CHECK_FALSE(cdc::is_valid_token("a\x7f"));
  CHECK_FALSE(cdc::is_valid_token(std::string_view("a\0b", 3)));
  // UTF-8 bytes are allowed.
  CHECK(cdc::is_valid_token("ag\xc3\xa9nt"));
  CHECK(cdc::is_valid_token("\xe6\x97\xa5\xe6\x9c\xac"));
  CHECK(cdc::is_valid_token(std::string(64, '\xc3') + std::string(64, '\xa9')));
}

TEST_CASE("append_sanitized_token", "[transform][token]") {
  auto sanitized = [](std::string_view in) {
    std::string out = "pre";
    cdc::append_sanitized_token(in, out);
    REQUIRE(out.substr(0, 3) == "pre");
    return out.substr(3);
  };
  CHECK(sanitized("co1") == "co1");
  CHECK(sanitized("") == "_");
  CHECK(sanitized("a.b*c>d e\tf\x7fg") == "a_b_c_d_e_f_g");
  CHECK(sanitized(std::string(200, 'x')) == std::string(128, 'x'));
  CHECK(sanitized("ag\xc3\xa9nt") == "ag\xc3\xa9nt");
  // A 2-byte character straddling byte 128 is dropped whole, not cut in two.
  CHECK(sanitized(std::string(127, 'x') + "\xc3\xa9yz") == std::string(127, 'x'));
  for (const std::string& in : {std::string("..."), std::string(300, '>'), std::string("a b")}) {
    CHECK(cdc::is_valid_token(sanitized(in)));
  }
}

TEST_CASE("append_json_string escapes what JSON requires", "[transform][json]") {
  auto quoted = [](std::string_view in) {
    std::string out = "x";
    cdc::append_json_string(in, out);
    return out.substr(1);
  };
  CHECK(quoted("") == R"("")");
  CHECK(quoted("plain") == R"("plain")");
  CHECK(quoted(R"(a"b\c)") == R"("a\"b\\c")");
  CHECK(quoted("\b\f\n\r\t") == R"("\b\f\n\r\t")");
  CHECK(quoted(std::string_view("\x00\x01\x1f", 3)) == R"("\u0000\u0001\u001f")");
  CHECK(quoted("\x7f") == "\"\x7f\"");
  CHECK(quoted("\xc3\xa9/") == "\"\xc3\xa9/\"");
  // Round trip through an independent parser.
  const std::string nasty = std::string("q\"b\\s/\x01\x02\n\tz\xe6\x97\xa5") + std::string(1, '\0') + "end";
  const std::string doc = "[" + quoted(nasty) + "]";
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  REQUIRE(parser.parse(doc).get(e) == simdjson::SUCCESS);
  std::string_view back;
  REQUIRE(e.at(0).get_string().get(back) == simdjson::SUCCESS);
  CHECK(back == nasty);
}

TEST_CASE("to_string(ErrorKind)", "[transform]") {
  CHECK(cdc::to_string(ErrorKind::kNone) == "none");
  CHECK(cdc::to_string(ErrorKind::kInvalidJson) == "invalid_json");
  CHECK(cdc::to_string(ErrorKind::kInvalidShape) == "invalid_shape");
  CHECK(cdc::to_string(ErrorKind::kMissingField) == "missing_field");
  CHECK(cdc::to_string(ErrorKind::kInvalidToken) == "invalid_token");
  CHECK(cdc::to_string(ErrorKind::kTableMismatch) == "table_mismatch");
  CHECK(cdc::to_string(ErrorKind::kOversized) == "oversized");
  CHECK(cdc::to_string(ErrorKind::kMaxDeliveries) == "max_deliveries");
  CHECK(cdc::to_string(ErrorKind::kPublishRejected) == "publish_rejected");
  CHECK(cdc::to_string(ErrorKind::kInvalidSubject) == "invalid_subject");
}

// ---------------------------------------------------------------------------------------------
// Publish

TEST_CASE("transform: the contract's example", "[transform]") {
  const std::string record =
      R"({"message_id": "msg-789", "chat_id": "chat-12", "agent_id": "agent-7", "text": "hello"})";
  const std::string metadata =
      R"({"table_schema": "public", "table_name": "messages", "commit_timestamp": "2026-11-22T10:00:00.125001Z",)"
      R"( "commit_lsn": 27635224, "commit_idx": 0, "record_pks": ["msg-789"], "idempotency_key": "Mjc2MzUyMjQ6MA==",)"
      R"( "database_name": "daisi", "transaction_annotations": null,)"
      R"( "consumer": {"id": "c", "name": "n", "annotations": {}}})";
  const Result r = published("cdc.co1.messages", body(record, metadata));
  CHECK(r.event_id == "27635224.0:co1:messages:msg-789");
  CHECK(r.subject == "wa.co1.agent-7.messages.chat-12");
  CHECK(r.action == "insert");
  CHECK(r.company == "co1");
  CHECK(r.table == "messages");
  CHECK(r.payload == R"({"event_id":"27635224.0:co1:messages:msg-789","company_id":"co1","agent_id":"agent-7",)"
                     R"("message_id":"msg-789","chat_id":"chat-12","table":"messages","action":"insert",)"
                     R"("committed_at":"2026-11-22T10:00:00.125001Z","row_data":)" +
                         record + "}");
}

TEST_CASE("transform: chats and agents subjects and payloads", "[transform]") {
  const std::string chat = R"({"chat_id":"chat-1","agent_id":"agent-2","unread":3})";
  const Result c = published("cdc.acme.chats", body(chat, meta("chats", "10", "2"), R"("update")"));
  CHECK(c.subject == "wa.acme.agent-2.chats");
  CHECK(c.event_id == "10.2:acme:chats:chat-1");
  CHECK(c.payload == R"({"event_id":"10.2:acme:chats:chat-1","company_id":"acme","agent_id":"agent-2",)"
                     R"("chat_id":"chat-1","table":"chats","action":"update",)"
                     R"("committed_at":"2026-11-22T10:00:00Z","row_data":)" +
                         chat + "}");

  const std::string agent = R"({"agent_id":"agent-2","name":null})";
  const Result a = published("cdc.acme.agents", body(agent, meta("agents", "11"), R"("delete")"));
  CHECK(a.subject == "wa.acme.agent-2.agents");
  CHECK(a.event_id == "11.0:acme:agents:agent-2");
  CHECK(a.action == "delete");
  CHECK(a.payload == R"({"event_id":"11.0:acme:agents:agent-2","company_id":"acme","agent_id":"agent-2",)"
                     R"("table":"agents","action":"delete","committed_at":"2026-11-22T10:00:00Z","row_data":)" +
                         agent + "}");
}

TEST_CASE("transform: key order of the body does not matter, unknown keys are ignored", "[transform]") {
  const std::vector<std::string> members = {
      R"("record":{"zzz":[1,{"a":null}],"agent_id":"a1","unknown":true,"chat_id":"c1","message_id":"m1"})",
      R"("metadata":{"foo":{"bar":[]},"record_pks":["m1"],"commit_idx":3,"table_name":"messages","commit_lsn":5})",
      R"("action":"update")", R"("changes":{"x":1})", R"("unknown_top":[{"record":"nope"}])"};
  std::vector<std::size_t> order{0, 1, 2, 3, 4};
  std::vector<Result> results;
  do {
    std::string b = "{";
    for (std::size_t i : order) b.append(b.size() > 1 ? "," : "").append(members[i]);
    b.append("}");
    Result r = published("cdc.co1.messages", b);
    CHECK(r.event_id == "5.3:co1:messages:m1");
    CHECK(r.subject == "wa.co1.a1.messages.c1");
    CHECK(r.action == "update");
    CHECK(row_data_of(r.payload) == members[0].substr(9));
    results.push_back(std::move(r));
  } while (std::next_permutation(order.begin(), order.end()));
  CHECK(results.size() == 120);
  for (const Result& r : results) CHECK(r == results.front());
}

TEST_CASE("transform: whitespace everywhere", "[transform]") {
  const std::string record = "{ \"message_id\" : \"m1\" ,\n\t\"chat_id\":\"c1\" , \"agent_id\" :\r\n \"a1\" }";
  const std::string b =
      " \n{ \"metadata\" : { \"commit_lsn\" : 7 , \"record_pks\" : [ \"m1\" ] } ,"
      " \"record\" :  " +
      record + "  , \"action\" : \"insert\" }\n\t ";
  const Result r = published("cdc.co1.messages", b);
  CHECK(r.event_id == "7.0:co1:messages:m1");
  CHECK(row_data_of(r.payload) == record);
  CHECK(payload_field(r.payload, "committed_at") == "null");
}

TEST_CASE("transform: row_data is the record byte for byte", "[transform]") {
  const std::string record =
      "{ \"message_id\" : \"m1\" ,\"chat_id\":\"c1\",  \"agent_id\":\"a1\", \"big\": 123456789012345678901234567890,"
      " \"neg_big\":-98765432109876543210987654321, \"dec\": 1.10, \"exp\": 1E+2, \"negz\": -0.0,"
      " \"e\": \"\\u00e9\", \"esc\": \"tab\\there \\\"q\\\" \\\\ \\/ \\ud83d\\ude00\","
      " \"raw_utf8\": \"\xc3\xa9\xe6\x97\xa5\", \"nested\": {\"a\": [ 1 , 2 , [ ] , { } ] },"
      " \"t\":true,\"f\":false,\"n\":null, \"lsn_like\": 18446744073709551616 \n}";
  const Result r = published("cdc.co1.messages", body(record, meta("messages", "1", "0", R"("record_pks":["m1"])")));
  CHECK(row_data_of(r.payload) == record);
  // The payload is valid JSON (parsed independently; the big integers are turned into strings
  // first because simdjson's DOM rejects integers above 64 bits).
  std::string parsable = r.payload;
  for (const char* big : {"-98765432109876543210987654321", "123456789012345678901234567890", "18446744073709551616"}) {
    const auto at = parsable.find(big);
    REQUIRE(at != std::string::npos);
    parsable.replace(at, std::strlen(big), "0");
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE(parser.parse(parsable).get(doc) == simdjson::SUCCESS);
  std::string_view e;
  REQUIRE(doc["row_data"]["e"].get_string().get(e) == simdjson::SUCCESS);
  CHECK(e == "\xc3\xa9");
}

TEST_CASE("transform: payload key order and action storage", "[transform]") {
  std::string b = body();
  const Result r = published("cdc.co1.messages", b);
  std::vector<std::string> keys;
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  REQUIRE(parser.parse(r.payload).get(obj) == simdjson::SUCCESS);
  for (auto [key, value] : obj) keys.emplace_back(key);
  CHECK(keys == std::vector<std::string>{"event_id", "company_id", "agent_id", "message_id", "chat_id", "table",
                                         "action", "committed_at", "row_data"});

  // out.action points to static storage, not into the body.
  Transformer t{TransformRules{}};
  TransformOutput out;
  REQUIRE(t.transform("cdc.co1.messages", b, "", out) == Disposition::kPublish);
  const char* action = out.action.data();
  CHECK_FALSE((action >= b.data() && action < b.data() + b.size()));
  std::fill(b.begin(), b.end(), 'x');
  CHECK(out.action == "insert");
}

TEST_CASE("transform: all four actions", "[transform]") {
  for (const char* action : {"insert", "update", "delete", "read"}) {
    const Result r = published("cdc.co1.messages", body(kRecord, kMetadata, std::string("\"") + action + "\""));
    CHECK(r.action == action);
    CHECK(payload_field(r.payload, "action") == action);
  }
}

TEST_CASE("transform: configured tables beyond the defaults and another prefix", "[transform]") {
  TransformRules rules;
  rules.tables = {"messages", "chats", "agents", "contacts"};
  rules.key_columns["contacts"] = "contact_id";
  rules.subject_prefix = "websocket";
  Transformer t(rules);
  const std::string record = R"({"contact_id":99,"agent_id":"a1","chat_id":"should-not-route"})";
  const Result r = run(t, "cdc.co1.contacts", body(record, meta("contacts", "3")));
  REQUIRE(r.disposition == Disposition::kPublish);
  CHECK(r.subject == "websocket.co1.a1.contacts");
  CHECK(r.event_id == "3.0:co1:contacts:99");
  CHECK(r.payload == R"({"event_id":"3.0:co1:contacts:99","company_id":"co1","agent_id":"a1","table":"contacts",)"
                     R"("action":"insert","committed_at":"2026-11-22T10:00:00Z","row_data":)" +
                         record + "}");
  const Result m = run(t, "cdc.co1.messages", body());
  CHECK(m.subject == "websocket.co1.a1.messages.c1");
  // A table outside the set is still skipped.
  CHECK(run(t, "cdc.co1.users", "not json").disposition == Disposition::kSkip);
}

TEST_CASE("transform: sequin layout end to end", "[transform][subject]") {
  TransformRules rules;
  rules.subject_layout = "sequin.{database}.{schema}.{table}.{action}";
  rules.company_prefix = "daisi_";
  Transformer t(rules);
  const Result r = run(t, "sequin.daisi.daisi_co1.messages.insert", body());
  REQUIRE(r.disposition == Disposition::kPublish);
  CHECK(r.company == "co1");
  CHECK(r.subject == "wa.co1.a1.messages.c1");
  CHECK(payload_field(r.payload, "company_id") == "co1");
  CHECK(run(t, "sequin.daisi.daisi_co1.contacts.insert", "{").disposition == Disposition::kSkip);
  const Result empty = run(t, "sequin.daisi.daisi_.messages.insert", body());
  CHECK(empty.disposition == Disposition::kDeadLetter);
  CHECK(empty.kind == ErrorKind::kInvalidToken);
  CHECK(empty.error == "company is empty");
  CHECK(empty.has_event_id);
  CHECK(run(t, "cdc.co1.messages", body()).kind == ErrorKind::kInvalidSubject);
}

// ---------------------------------------------------------------------------------------------
// Identity

TEST_CASE("transform: pk from record_pks or the key column", "[transform][identity]") {
  const std::string record = R"({"message_id":"m1","chat_id":"c1","agent_id":"a1"})";
  auto id_with = [&](std::string_view extra, std::string_view rec = {}) {
    return published("cdc.co1.messages", body(rec.empty() ? record : rec, meta("messages", "9", "1", extra))).event_id;
  };
  CHECK(id_with(R"("record_pks":["m1"])") == "9.1:co1:messages:m1");
  CHECK(id_with(R"("record_pks":["a",2,"c",-4,123456789012345678901234567890])") ==
        "9.1:co1:messages:a,2,c,-4,123456789012345678901234567890");
  CHECK(id_with(R"("record_pks":[])") == "9.1:co1:messages:m1");
  CHECK(id_with(R"("record_pks":null)") == "9.1:co1:messages:m1");
  CHECK(id_with(R"("other":1)") == "9.1:co1:messages:m1");
  CHECK(id_with(R"("record_pks":["x\u0041\"y"])") == "9.1:co1:messages:xA\"y");
  CHECK(id_with("", R"({"message_id":77,"chat_id":"c1","agent_id":"a1"})") == "9.1:co1:messages:77");

  TransformRules rules;
  rules.key_columns["chats"] = "id";
  Transformer t(rules);
  const Result c = run(t, "cdc.co1.chats", body(R"({"id":"k","chat_id":"c1","agent_id":"a1"})", meta("chats", "1")));
  REQUIRE(c.disposition == Disposition::kPublish);
  CHECK(c.event_id == "1.0:co1:chats:k");
}

TEST_CASE("transform: message_id in the payload", "[transform][identity]") {
  // From the record when present (integers as decimal strings), else the pk.
  CHECK(payload_field(published("cdc.co1.messages", body()).payload, "message_id") == "m1");
  CHECK(payload_field(published("cdc.co1.messages",
                                body(R"({"message_id":1234,"chat_id":"c","agent_id":"a"})", meta("messages", "1", "0")))
                          .payload,
                      "message_id") == "1234");
  const Result no_id = published("cdc.co1.messages", body(R"({"chat_id":"c","agent_id":"a"})",
                                                          meta("messages", "1", "0", R"("record_pks":["p1",2])")));
  CHECK(payload_field(no_id.payload, "message_id") == "p1,2");
  const Result null_id = published("cdc.co1.messages", body(R"({"message_id":null,"chat_id":"c","agent_id":"a"})",
                                                            meta("messages", "1", "0", R"("record_pks":["p1"])")));
  CHECK(payload_field(null_id.payload, "message_id") == "p1");
  CHECK(dead("cdc.co1.messages", body(R"({"message_id":true,"chat_id":"c","agent_id":"a"})",
                                      meta("messages", "1", "0", R"("record_pks":["p1"])"))) ==
        ErrorKind::kInvalidToken);
}

TEST_CASE("transform: pk errors", "[transform][identity]") {
  auto pk_kind = [](std::string_view record, std::string_view extra = "") {
    return dead("cdc.co1.messages", body(record, meta("messages", "1", "0", extra)));
  };
  CHECK(pk_kind(R"({"chat_id":"c","agent_id":"a"})") == ErrorKind::kMissingField);
  CHECK(pk_kind(R"({"message_id":null,"chat_id":"c","agent_id":"a"})") == ErrorKind::kMissingField);
  CHECK(pk_kind(R"({"message_id":"","chat_id":"c","agent_id":"a"})") == ErrorKind::kMissingField);
  CHECK(pk_kind(R"({"message_id":false,"chat_id":"c","agent_id":"a"})") == ErrorKind::kInvalidToken);
  CHECK(pk_kind(R"({"message_id":1.5,"chat_id":"c","agent_id":"a"})") == ErrorKind::kInvalidToken);
  CHECK(pk_kind(kRecord, R"("record_pks":"m1")") == ErrorKind::kInvalidShape);
  CHECK(pk_kind(kRecord, R"("record_pks":{"a":1})") == ErrorKind::kInvalidShape);
  CHECK(pk_kind(kRecord, R"("record_pks":["m1",true])") == ErrorKind::kInvalidShape);
  CHECK(pk_kind(kRecord, R"("record_pks":[null])") == ErrorKind::kInvalidShape);
  CHECK(pk_kind(kRecord, R"("record_pks":[""])") == ErrorKind::kMissingField);
  // Control characters would break the Nats-Msg-Id header and the Redis key.
  CHECK(pk_kind(kRecord, R"("record_pks":["a\nb"])") == ErrorKind::kInvalidToken);
  CHECK(pk_kind(kRecord, R"("record_pks":["a\u0000b"])") == ErrorKind::kInvalidToken);
  CHECK(pk_kind(kRecord, "\"record_pks\":[\"a\x7f\"]") == ErrorKind::kInvalidToken);
  CHECK(dead_error("cdc.co1.messages", body(kRecord, meta("messages", "1", "0", R"("record_pks":["a\tb"])"))) ==
        "pk contains control character 0x09");
  CHECK(dead_error("cdc.co1.messages", body(R"({"chat_id":"c","agent_id":"a"})", meta("messages", "1"))) ==
        "record.message_id is missing");
}

TEST_CASE("transform: pk with quotes and backslashes is escaped in the payload", "[transform][identity]") {
  const Result r = published("cdc.co1.messages", body(R"({"chat_id":"c","agent_id":"a"})",
                                                      meta("messages", "1", "0", R"("record_pks":["q\"b\\s/"])")));
  CHECK(r.event_id == R"(1.0:co1:messages:q"b\s/)");
  CHECK(r.payload.find(R"("event_id":"1.0:co1:messages:q\"b\\s/")") != std::string::npos);
  CHECK(payload_field(r.payload, "event_id") == r.event_id);
  CHECK(payload_field(r.payload, "message_id") == R"(q"b\s/)");
}

TEST_CASE("transform: event ids", "[transform][identity]") {
  auto id = [](std::string_view lsn, std::string_view idx) {
    return published("cdc.co1.messages", body(kRecord, meta("messages", lsn, idx))).event_id;
  };
  CHECK(id("27635224", "0") == "27635224.0:co1:messages:m1");
  // Two changes in one transaction share the LSN and must not collapse.
  CHECK(id("500", "0") == "500.0:co1:messages:m1");
  CHECK(id("500", "1") == "500.1:co1:messages:m1");
  CHECK(id("500", "0") != id("500", "1"));
  // commit_idx absent or null counts as 0.
  CHECK(id("500", "") == "500.0:co1:messages:m1");
  CHECK(id("500", "null") == "500.0:co1:messages:m1");
  // Exact unsigned 64-bit integers, never through a double.
  CHECK(id("18446744073709551615", "18446744073709551615") ==
        "18446744073709551615.18446744073709551615:co1:messages:m1");
  CHECK(id("9007199254740993", "0") == "9007199254740993.0:co1:messages:m1");        // 2^53 + 1
  CHECK(id("9223372036854775808", "0") == "9223372036854775808.0:co1:messages:m1");  // 2^63
  CHECK(id("0", "0") == "0.0:co1:messages:m1");
}

TEST_CASE("transform: bad commit_lsn / commit_idx", "[transform][identity]") {
  auto kind = [](std::string_view lsn, std::string_view idx, std::string_view action = R"("insert")") {
    return dead("cdc.co1.messages", body(kRecord, meta("messages", lsn, idx), action));
  };
  CHECK(kind("", "0") == ErrorKind::kMissingField);
  CHECK(kind("null", "0") == ErrorKind::kMissingField);
  CHECK(kind("null", "0", R"("update")") == ErrorKind::kMissingField);
  CHECK(kind("-1", "0") == ErrorKind::kInvalidShape);
  CHECK(kind("1.5", "0") == ErrorKind::kInvalidShape);
  CHECK(kind("1e3", "0") == ErrorKind::kInvalidShape);
  CHECK(kind("1.0", "0") == ErrorKind::kInvalidShape);
  CHECK(kind(R"("123")", "0") == ErrorKind::kInvalidShape);
  CHECK(kind("true", "0") == ErrorKind::kInvalidShape);
  CHECK(kind("[1]", "0") == ErrorKind::kInvalidShape);
  CHECK(kind("18446744073709551616", "0") == ErrorKind::kInvalidShape);
  CHECK(kind("1", "-1") == ErrorKind::kInvalidShape);
  CHECK(kind("1", R"("0")") == ErrorKind::kInvalidShape);
  CHECK(kind("1", "0.5") == ErrorKind::kInvalidShape);
  CHECK(dead_error("cdc.co1.messages", body(kRecord, meta("messages", "-1"))) == "metadata.commit_lsn is negative");
  CHECK(dead_error("cdc.co1.messages", body(kRecord, meta("messages", ""))) == "metadata.commit_lsn is missing");
}

TEST_CASE("transform: reads without an LSN", "[transform][identity]") {
  const std::string read = R"("read")";
  // metadata.idempotency_key first, then the Nats-Msg-Id header.
  CHECK(published("cdc.co1.messages",
                  body(kRecord, meta("messages", "null", "null", R"("idempotency_key":"YmFjaw==")"), read), "hdr")
            .event_id == "b.YmFjaw==:co1:messages:m1");
  CHECK(published("cdc.co1.messages", body(kRecord, meta("messages", "", "", R"("idempotency_key":"YmFjaw==")"), read))
            .event_id == "b.YmFjaw==:co1:messages:m1");
  CHECK(published("cdc.co1.messages", body(kRecord, meta("messages", "null", "null"), read), "hdr-1").event_id ==
        "b.hdr-1:co1:messages:m1");
  CHECK(published("cdc.co1.messages", body(kRecord, meta("messages", "null", "", R"("idempotency_key":null)"), read),
                  "hdr-2")
            .event_id == "b.hdr-2:co1:messages:m1");
  CHECK(published("cdc.co1.messages", body(kRecord, meta("messages", "null", "", R"("idempotency_key":"")"), read),
                  "hdr-3")
            .event_id == "b.hdr-3:co1:messages:m1");
  // A read with an LSN uses it.
  CHECK(published("cdc.co1.messages", body(kRecord, meta("messages", "42", "7"), read), "hdr").event_id ==
        "42.7:co1:messages:m1");
  // Neither: missing_field.
  CHECK(dead("cdc.co1.messages", body(kRecord, meta("messages", "null", "null"), read)) == ErrorKind::kMissingField);
  CHECK(dead("cdc.co1.messages", body(kRecord, meta("messages", "null", "", R"("idempotency_key":5)"), read), "h") ==
        ErrorKind::kInvalidShape);
  CHECK(dead("cdc.co1.messages", body(kRecord, meta("messages", "null", "", R"("idempotency_key":"a\nb")"), read)) ==
        ErrorKind::kInvalidToken);
  // Only reads may go without an LSN.
  CHECK(dead("cdc.co1.messages", body(kRecord, meta("messages", "null", "", R"("idempotency_key":"x")")), "h") ==
        ErrorKind::kMissingField);
}

// ---------------------------------------------------------------------------------------------
// Routing tokens

TEST_CASE("transform: routing tokens", "[transform][routing]") {
  auto with = [](std::string_view agent, std::string_view chat) {
    std::string record = R"({"message_id":"m1")";
    if (!agent.empty()) record.append(R"(,"agent_id":)").append(agent);
    if (!chat.empty()) record.append(R"(,"chat_id":)").append(chat);
    record.append("}");
    return body(record, meta("messages", "1"));
  };
  SECTION("valid values") {
    CHECK(published("cdc.co1.messages", with("42", "-7")).subject == "wa.co1.42.messages.-7");
    CHECK(published("cdc.co1.messages", with("123456789012345678901234567890", "0")).subject ==
          "wa.co1.123456789012345678901234567890.messages.0");
    CHECK(published("cdc.co1.messages", with("\"ag\xc3\xa9nt\"", R"("c\u00e9")")).subject ==
          "wa.co1.ag\xc3\xa9nt.messages.c\xc3\xa9");
    const std::string at128 = "\"" + std::string(128, 'a') + "\"";
    CHECK(published("cdc.co1.messages", with(at128, at128)).subject ==
          "wa.co1." + std::string(128, 'a') + ".messages." + std::string(128, 'a'));
    const Result r = published("cdc.co1.messages", with("42", "7"));
    CHECK(payload_field(r.payload, "agent_id") == "42");
    CHECK(payload_field(r.payload, "chat_id") == "7");
  }
  SECTION("missing or null") {
    CHECK(dead("cdc.co1.messages", with("", R"("c")")) == ErrorKind::kMissingField);
    CHECK(dead("cdc.co1.messages", with("null", R"("c")")) == ErrorKind::kMissingField);
    CHECK(dead("cdc.co1.messages", with(R"("a")", "")) == ErrorKind::kMissingField);
    CHECK(dead("cdc.co1.messages", with(R"("a")", "null")) == ErrorKind::kMissingField);
    CHECK(dead_error("cdc.co1.messages", with(R"("a")", "")) == "chat_id is missing");
    CHECK(dead_error("cdc.co1.messages", with("null", R"("c")")) == "agent_id is null");
  }
  SECTION("not a token") {
    CHECK(dead_error("cdc.co1.messages", with(R"("agent.7")", R"("c")")) == "agent_id contains '.'");
    CHECK(dead_error("cdc.co1.messages", with(R"("a*")", R"("c")")) == "agent_id contains '*'");
    CHECK(dead_error("cdc.co1.messages", with(R"("a>")", R"("c")")) == "agent_id contains '>'");
    CHECK(dead_error("cdc.co1.messages", with(R"("a b")", R"("c")")) == "agent_id contains a space");
    CHECK(dead_error("cdc.co1.messages", with(R"("a\tb")", R"("c")")) == "agent_id contains control character 0x09");
    CHECK(dead_error("cdc.co1.messages", with("\"a\x7f\"", R"("c")")) == "agent_id contains control character 0x7f");
    CHECK(dead_error("cdc.co1.messages", with(R"("")", R"("c")")) == "agent_id is empty");
    CHECK(dead_error("cdc.co1.messages", with(R"("a")", "\"" + std::string(129, 'c') + "\"")) ==
          "chat_id is longer than 128 bytes");
    CHECK(dead_error("cdc.co1.messages", with(R"("a")", R"("c>")")) == "chat_id contains '>'");
    // An escaped dot is still a dot once unescaped.
    CHECK(dead_error("cdc.co1.messages", with(R"("a\u002eb")", R"("c")")) == "agent_id contains '.'");
    for (const char* bad : {"true", "1.5", "1e5", "-0.0", "{}", "[\"a\"]", "{\"id\":1}"}) {
      INFO(bad);
      CHECK(dead("cdc.co1.messages", with(bad, R"("c")")) == ErrorKind::kInvalidToken);
      CHECK(dead("cdc.co1.messages", with(R"("a")", bad)) == ErrorKind::kInvalidToken);
    }
    CHECK(dead_error("cdc.co1.messages", with("false", R"("c")")) == "agent_id is a boolean, not a string or integer");
  }
  SECTION("chat_id: required for messages and chats only") {
    CHECK(dead("cdc.co1.chats", body(R"({"agent_id":"a"})", meta("chats", "1", "0", R"("record_pks":["c1"])"))) ==
          ErrorKind::kMissingField);
    CHECK(dead("cdc.co1.chats", body(R"({"agent_id":"a","chat_id":"c.1"})", meta("chats", "1"))) ==
          ErrorKind::kInvalidToken);
    CHECK(published("cdc.co1.agents", body(R"({"agent_id":"a"})", meta("agents", "1"))).subject == "wa.co1.a.agents");
    CHECK(published("cdc.co1.agents", body(R"({"agent_id":"a","chat_id":"x.y"})", meta("agents", "1"))).subject ==
          "wa.co1.a.agents");
  }
}

TEST_CASE("transform: dead letters carry the event id once it is known", "[transform][routing]") {
  const Result r = run("cdc.co1.messages",
                       body(R"({"message_id":"m1","chat_id":"c1","agent_id":"agent.7"})", meta("messages", "101")));
  REQUIRE(r.disposition == Disposition::kDeadLetter);
  CHECK(r.kind == ErrorKind::kInvalidToken);
  CHECK(r.has_event_id);
  CHECK(r.event_id == "101.0:co1:messages:m1");
  CHECK(r.company == "co1");
  CHECK(r.table == "messages");
  // Before the position is known there is none.
  const Result early = run("cdc.co1.messages", body(kRecord, meta("chats", "101")));
  REQUIRE(early.disposition == Disposition::kDeadLetter);
  CHECK(early.kind == ErrorKind::kTableMismatch);
  CHECK_FALSE(early.has_event_id);
  CHECK(early.event_id.empty());
}

// ---------------------------------------------------------------------------------------------
// Filter, size, shapes

TEST_CASE("transform: tables outside the set are skipped without looking at the body", "[transform][filter]") {
  TransformRules rules;
  rules.max_message_bytes = 16;
  Transformer t(rules);
  for (const std::string& b :
       {std::string("not json"), std::string(1000, '{'), std::string("\xff\xfe"), std::string()}) {
    const Result r = run(t, "cdc.co1.contacts", b);
    CHECK(r.disposition == Disposition::kSkip);
    CHECK(r.kind == ErrorKind::kNone);
    CHECK(r.error.empty());
    CHECK(r.company == "co1");
    CHECK(r.table == "contacts");
  }
}

TEST_CASE("transform: oversized bodies", "[transform][filter]") {
  const std::string b = body();
  TransformRules rules;
  rules.max_message_bytes = b.size();
  Transformer exact(rules);
  CHECK(run(exact, "cdc.co1.messages", b).disposition == Disposition::kPublish);
  rules.max_message_bytes = b.size() - 1;
  Transformer smaller(rules);
  const Result r = run(smaller, "cdc.co1.messages", b);
  CHECK(r.disposition == Disposition::kDeadLetter);
  CHECK(r.kind == ErrorKind::kOversized);
  CHECK(r.error.find(std::to_string(b.size())) != std::string::npos);
  // Checked before parsing: an oversized non-JSON body is oversized, not invalid_json.
  CHECK(run(smaller, "cdc.co1.messages", std::string(b.size(), '!')).kind == ErrorKind::kOversized);
}

TEST_CASE("transform: subject errors", "[transform][filter]") {
  const Result r = run("cdc.co1", body());
  CHECK(r.disposition == Disposition::kDeadLetter);
  CHECK(r.kind == ErrorKind::kInvalidSubject);
  CHECK_FALSE(r.has_event_id);
  CHECK(r.error.find("subject") != std::string::npos);
  CHECK(run("cdc.co1.messages.extra", body()).kind == ErrorKind::kInvalidSubject);
  CHECK(run("other.co1.messages", body()).kind == ErrorKind::kInvalidSubject);
}

TEST_CASE("transform: shapes", "[transform][shape]") {
  const std::string m = meta("messages", "1");
  CHECK(dead("cdc.co1.messages", R"({"action":"insert","metadata":)" + m + "}") == ErrorKind::kMissingField);
  CHECK(dead("cdc.co1.messages", R"({"record":null,"action":"insert","metadata":)" + m + "}") ==
        ErrorKind::kMissingField);
  for (const char* bad : {"[]", "\"r\"", "1", "true", "[{\"agent_id\":\"a\"}]"}) {
    INFO(bad);
    CHECK(dead("cdc.co1.messages", body(bad, m)) == ErrorKind::kInvalidShape);
    CHECK(dead("cdc.co1.messages", body(kRecord, bad)) == ErrorKind::kInvalidShape);
  }
  CHECK(dead_error("cdc.co1.messages", body("[1]", m)) == "record is an array, not an object");
  CHECK(dead("cdc.co1.messages", std::string(R"({"record":)") + std::string(kRecord) + R"(,"action":"insert"})") ==
        ErrorKind::kMissingField);
  CHECK(dead("cdc.co1.messages", body(kRecord, "null")) == ErrorKind::kMissingField);
  CHECK(dead_error("cdc.co1.messages", body(kRecord, "null")) == "metadata is null");
  // action
  CHECK(dead("cdc.co1.messages", std::string(R"({"record":)") + std::string(kRecord) + R"(,"metadata":)" + m + "}") ==
        ErrorKind::kMissingField);
  CHECK(dead("cdc.co1.messages", body(kRecord, m, "null")) == ErrorKind::kMissingField);
  for (const char* bad : {R"("upsert")", R"("INSERT")", R"("")", "1", "true", R"(["insert"])", R"({"a":"insert"})"}) {
    INFO(bad);
    CHECK(dead("cdc.co1.messages", body(kRecord, m, bad)) == ErrorKind::kInvalidShape);
  }
  CHECK(published("cdc.co1.messages", body(kRecord, m, R"("\u0069nsert")")).action == "insert");
  // the body itself
  for (const char* bad : {"[]", "[1,{\"record\":{}}]", "\"text\"", "42", "-1.5e3", "null", "true", " [ ] "}) {
    INFO(bad);
    CHECK(dead("cdc.co1.messages", bad) == ErrorKind::kInvalidShape);
  }
  // commit_timestamp / table_name types
  CHECK(dead("cdc.co1.messages", body(kRecord, R"({"commit_lsn":1,"commit_timestamp":{"s":1}})")) ==
        ErrorKind::kInvalidShape);
  CHECK(dead("cdc.co1.messages", body(kRecord, R"({"commit_lsn":1,"table_name":5})")) == ErrorKind::kInvalidShape);
}

TEST_CASE("transform: committed_at is commit_timestamp as given", "[transform]") {
  auto committed = [](std::string_view ts) {
    std::string m = R"({"commit_lsn":1)";
    if (!ts.empty()) m.append(R"(,"commit_timestamp":)").append(ts);
    m.append("}");
    const Result r = published("cdc.co1.messages", body(kRecord, m));
    const std::string marker = R"("committed_at":)";
    const auto at = r.payload.find(marker);
    REQUIRE(at != std::string::npos);
    const auto end = r.payload.find(R"(,"row_data")", at);
    return r.payload.substr(at + marker.size(), end - at - marker.size());
  };
  CHECK(committed(R"("2026-11-22T10:00:00.125001Z")") == R"("2026-11-22T10:00:00.125001Z")");
  CHECK(committed(R"("2026-11-22T10:00:00\u002e5Z")") == R"("2026-11-22T10:00:00\u002e5Z")");
  CHECK(committed("") == "null");
  CHECK(committed("null") == "null");
  CHECK(committed("1798051283.50") == "1798051283.50");
}

TEST_CASE("transform: metadata.table_name", "[transform][filter]") {
  CHECK(dead("cdc.co1.chats", body(R"({"chat_id":"c","agent_id":"a"})", meta("contacts", "1"))) ==
        ErrorKind::kTableMismatch);
  CHECK(dead("cdc.co1.messages", body(kRecord, meta("Messages", "1"))) == ErrorKind::kTableMismatch);
  CHECK(dead_error("cdc.co1.chats", body(R"({"chat_id":"c","agent_id":"a"})", meta("contacts", "1"))) ==
        R"(metadata.table_name "contacts" does not match the subject's table "chats")");
  // Absent or null: nothing to compare.
  CHECK(published("cdc.co1.messages", body(kRecord, R"({"commit_lsn":1})")).event_id == "1.0:co1:messages:m1");
  CHECK(published("cdc.co1.messages", body(kRecord, R"({"commit_lsn":1,"table_name":null})")).event_id ==
        "1.0:co1:messages:m1");
}

TEST_CASE("transform: a key given twice in the body, record or metadata is invalid_shape", "[transform]") {
  // Contract section 6: readers disagree on which copy wins (JavaScript, Go and Python keep the
  // last), so neither copy may route the event.
  const std::string meta1 = R"("metadata":{"commit_lsn":1,"table_name":"messages"})";
  auto kind_of = [&](const std::string& b) { return dead("cdc.co1.messages", b); };
  CHECK(kind_of(R"({"record":{"message_id":"m1","agent_id":"agent-A","agent_id":"agent-B","chat_id":"c1"},)"
                R"("action":"insert",)" +
                meta1 + "}") == ErrorKind::kInvalidShape);
  CHECK(dead_error("cdc.co1.messages",
                   R"({"record":{"message_id":"m1","agent_id":"agent-A","agent_id":"agent-B","chat_id":"c1"},)"
                   R"("action":"insert",)" +
                       meta1 + "}") == R"(record has the key "agent_id" twice)");
  // Any column, not only the ones routing reads; the same value twice too.
  CHECK(kind_of(R"({"record":{"message_id":"m1","agent_id":"a","chat_id":"c1","x":1,"x":1},"action":"insert",)" +
                meta1 + "}") == ErrorKind::kInvalidShape);
  // metadata and the top level.
  CHECK(dead_error("cdc.co1.messages", R"({"record":)" + std::string(kRecord) +
                                           R"(,"action":"insert","metadata":{"commit_lsn":1,"commit_lsn":2}})") ==
        R"(metadata has the key "commit_lsn" twice)");
  CHECK(dead_error("cdc.co1.messages", R"({"record":)" + std::string(kRecord) +
                                           R"(,"action":"insert","action":"delete","metadata":{"commit_lsn":1}})") ==
        R"(the body has the key "action" twice)");
  CHECK(kind_of(R"({"record":null,"record":)" + std::string(kRecord) +
                R"(,"action":"insert","metadata":{"commit_lsn":1}})") == ErrorKind::kInvalidShape);
  CHECK(kind_of(R"({"record":)" + std::string(kRecord) +
                R"(,"action":"insert","metadata":{"commit_lsn":1},"metadata":null})") == ErrorKind::kInvalidShape);
  // Compared unescaped: "agent\u005fid" is "agent_id".
  CHECK(
      kind_of(R"({"record":{"message_id":"m1","agent_id":"a","agent\u005fid":"b","chat_id":"c1"},"action":"insert",)" +
              meta1 + "}") == ErrorKind::kInvalidShape);
  // A very long repeated key is not quoted in the error.
  const std::string long_key(200, 'k');
  CHECK(dead_error("cdc.co1.messages", R"({"record":{"message_id":"m1","agent_id":"a","chat_id":"c1",")" + long_key +
                                           R"(":1,")" + long_key + R"(":2},"action":"insert",)" + meta1 + "}") ==
        "record has a key twice");
  // Invalid JSON later in the body still wins.
  CHECK(kind_of(R"({"record":{"message_id":"m1","agent_id":"a","agent_id":"b","chat_id":"c1"},"action":"insert",)" +
                meta1 + R"(,"x":[1,,2]})") == ErrorKind::kInvalidJson);
  // Deeper objects are copied byte for byte and not checked; the same key in different objects is fine.
  const Result r = published(
      "cdc.co1.messages", R"({"record":{"message_id":"m1","agent_id":"a1","chat_id":"c1","extra":{"k":1,"k":2}},)"
                          R"("action":"insert","metadata":{"commit_lsn":1,"message_id":"m1","extra":{"a":1,"a":1}}})");
  CHECK(r.subject == "wa.co1.a1.messages.c1");
  CHECK(row_data_of(r.payload) == R"({"message_id":"m1","agent_id":"a1","chat_id":"c1","extra":{"k":1,"k":2}})");
}

TEST_CASE("transform: many keys in record, none repeated, still publish (the key set grows)", "[transform]") {
  std::string rec = R"({"message_id":"m1","agent_id":"a1","chat_id":"c1")";
  for (int i = 0; i < 5000; ++i) rec += ",\"col_" + std::to_string(i) + "\":" + std::to_string(i);
  rec += "}";
  Transformer t{TransformRules{}};
  const Result r = run(t, "cdc.co1.messages", body(rec, meta("messages", "3")));
  CHECK(r.disposition == Disposition::kPublish);
  // The same Transformer after the big object: a small one with a repeated key is still caught,
  // a small one without is still published (the generation reset forgets the earlier keys).
  CHECK(run(t, "cdc.co1.messages",
            body(R"({"message_id":"m1","agent_id":"a1","chat_id":"c1","col_1":1,"col_1":2})", meta("messages", "4")))
            .kind == ErrorKind::kInvalidShape);
  CHECK(run(t, "cdc.co1.messages",
            body(R"({"message_id":"m1","agent_id":"a1","chat_id":"c1","col_1":1})", meta("messages", "5")))
            .disposition == Disposition::kPublish);
  // And a repeat found only after the table grew.
  std::string big_dup = rec.substr(0, rec.size() - 1) + R"(,"col_4999":1})";
  CHECK(run(t, "cdc.co1.messages", body(big_dup, meta("messages", "6"))).kind == ErrorKind::kInvalidShape);
}

TEST_CASE("transform: -0 is not a routable id, other integers are", "[transform][routing]") {
  // Contract section 4: only canonical decimal integers route; -0 would make wa.co1.-0 beside wa.co1.0.
  auto res = [](std::string_view rec, std::string_view extra = {}) {
    return run("cdc.co1.messages", body(rec, meta("messages", "8", "0", extra)));
  };
  Result r = res(R"({"message_id":"m1","agent_id":-0,"chat_id":"c1"})");
  CHECK(r.kind == ErrorKind::kInvalidToken);
  CHECK(r.error == "agent_id is -0, not an integer in canonical form");
  CHECK(res(R"({"message_id":"m1","agent_id":"a","chat_id":-0})").kind == ErrorKind::kInvalidToken);
  CHECK(res(R"({"message_id":-0,"agent_id":"a","chat_id":"c"})").kind == ErrorKind::kInvalidToken);
  r = res(kRecord, R"("record_pks":["m1",-0])");
  CHECK(r.kind == ErrorKind::kInvalidToken);
  CHECK(r.error == "metadata.record_pks[1] is -0, not an integer in canonical form");
  // The pk is fine but message_id is -0 (messages take it into the payload).
  CHECK(res(R"({"message_id":-0,"agent_id":"a","chat_id":"c"})", R"("record_pks":["m1"])").kind ==
        ErrorKind::kInvalidToken);
  // Canonical integers route as written.
  r = res(R"({"message_id":"m1","agent_id":0,"chat_id":-7})");
  REQUIRE(r.disposition == Disposition::kPublish);
  CHECK(r.subject == "wa.co1.0.messages.-7");
  CHECK(res(R"({"message_id":"m1","agent_id":-0.0,"chat_id":"c"})").kind == ErrorKind::kInvalidToken);
  CHECK(res(R"({"message_id":"m1","agent_id":1e3,"chat_id":"c"})").kind == ErrorKind::kInvalidToken);
}

TEST_CASE("transform: subjects that do not fit the layout are invalid_subject, company and table unknown",
          "[transform]") {
  for (const char* subject :
       {"cdc.messages", "cdc.a.b.messages", "cdc", "cdc.co1.messages.extra", "other.co1.messages"}) {
    INFO(subject);
    const Result r = run(subject, body(kRecord, meta("messages", "1")));
    CHECK(r.kind == ErrorKind::kInvalidSubject);
    CHECK(r.company.empty());
    CHECK(r.table.empty());
    CHECK_FALSE(r.has_event_id);
  }
  CHECK(dead_error("cdc.a.b.messages", body(kRecord, meta("messages", "1"))) ==
        R"(subject does not fit subject_layout "cdc.{company}.{table}" (4 tokens))");
  // Also for a table outside the set: the subject is wrong before the table is looked at.
  CHECK(dead("cdc.a.b.contacts", body(kRecord, meta("contacts", "1"))) == ErrorKind::kInvalidSubject);
}

TEST_CASE("transform: the company is part of the event id", "[transform][identity]") {
  // Contract section 3: the same position and key in two tenants are two events.
  const std::string b = body(kRecord, meta("messages", "27635224", "0"));
  const Result co1 = published("cdc.co1.messages", b);
  const Result co2 = published("cdc.co2.messages", b);
  CHECK(co1.event_id == "27635224.0:co1:messages:m1");
  CHECK(co2.event_id == "27635224.0:co2:messages:m1");
  CHECK(payload_field(co2.payload, "event_id") == co2.event_id);
  const std::string read =
      body(kRecord, meta("messages", "null", "null", R"("idempotency_key":"YmFjaw==")"), R"("read")");
  CHECK(published("cdc.co1.messages", read).event_id != published("cdc.co2.messages", read).event_id);
}

TEST_CASE("transform: escaped keys are matched unescaped", "[transform]") {
  const Result r =
      published("cdc.co1.messages", R"({"rec\u006frd":{"message_id":"m1","agent\u005fid":"a1","chat_id":"c1"},)"
                                    R"("action":"insert","metadata":{"commit\u005flsn":77}})");
  CHECK(r.event_id == "77.0:co1:messages:m1");
  CHECK(r.subject == "wa.co1.a1.messages.c1");
}

// ---------------------------------------------------------------------------------------------
// JSON validity

TEST_CASE("transform: invalid JSON anywhere in the body", "[transform][json]") {
  const std::string r = std::string(kRecord);
  const std::string m = meta("messages", "1");
  const std::vector<std::string> bad = {
      "",
      "   ",
      "this is not json",
      "{",
      "}",
      "{\"record\":}",
      R"({"a":1,})",
      R"({"a" 1})",
      R"({"a":1 "b":2})",
      R"({,"a":1})",
      R"({"a":tru})",
      R"({"a":nul})",
      R"({"a":truex})",
      R"({"a":01})",
      R"({"a":1.})",
      R"({"a":.5})",
      R"({"a":-})",
      R"({"a":+1})",
      R"({"a":1e})",
      R"({"a":0x10})",
      R"({"a":NaN})",
      R"({"a":'x'})",
      R"({"a":"\x"})",
      R"({"a":"\u12"})",
      R"({"a":"\ud800"})",
      R"({"a":"\udc00\ud800"})",
      R"({"a":"\udc00"})",
      R"({"a":"x\udc00y"})",
      R"({"a":"\ud800\u0041"})",
      R"({1:2})",
      R"({"a"})",
      R"({"a":})",
      "{\"a\":\"x\x01y\"}",
      "{\"a\":\"\xff\"}",
      "{\"a\":\"\xc0\xaf\"}",
      "{\"a\":\"\xe2\x82\"}",
      "{\"a\":\"\xed\xa0\x80\"}",
      "\xef\xbb\xbf{}",
      R"({"a":"unterminated})",
      R"({} x)",
      R"({}})",
      R"({}{})",
      R"({},)",
      R"({"record":{"a":[}]}})",
      R"({"a":[}})",
      R"({"a":{]})",
      R"({"a":[[]}})",
      R"([{]})",
      R"({"record":[1,2})",
      // Valid prefix, broken in a part the transform does not read: still invalid.
      body(r, m).substr(0, body(r, m).size() - 1) + R"(,"changes":[1,,2]})",
      body(R"({"message_id":"m1","chat_id":"c1","agent_id":"a1","x":[1,2,]})", m),
      body(R"({"message_id":"m1","chat_id":"c1","agent_id":"a1","x":{"y":1,}})", m),
      body(R"({"message_id":"m1","chat_id":"c1","agent_id":"a1","x":{"y" "z"}})", m),
      body(r, R"({"commit_lsn":1,"consumer":{"id":"c" "x"}})"),
      body(r, m) + "garbage",
      body(r, m) + "{}",
  };
  for (const std::string& b : bad) {
    INFO(b);
    const Result res = run("cdc.co1.messages", b);
    CHECK(res.disposition == Disposition::kDeadLetter);
    CHECK(res.kind == ErrorKind::kInvalidJson);
    CHECK_FALSE(res.has_event_id);
  }
  CHECK(dead_error("cdc.co1.messages", "{\"a\":\"\xff\"}") == "body is not valid UTF-8");
}

TEST_CASE("transform: nesting depth", "[transform][json]") {
  auto nested = [](std::size_t depth) {
    std::string record = R"({"message_id":"m1","chat_id":"c1","agent_id":"a1","deep":)";
    record.append(depth, '[').append(depth, ']').append("}");
    return body(record, meta("messages", "1"));
  };
  CHECK(run("cdc.co1.messages", nested(1000)).disposition == Disposition::kPublish);
  CHECK(run("cdc.co1.messages", nested(1100)).kind == ErrorKind::kInvalidJson);
  // Far deeper than any stack would take if the walk recursed.
  CHECK(run("cdc.co1.messages", std::string(1 << 19, '[') + std::string(1 << 19, ']')).kind == ErrorKind::kInvalidJson);
  CHECK(run("cdc.co1.messages", std::string(1 << 20, '[')).kind == ErrorKind::kInvalidJson);
}

// ---------------------------------------------------------------------------------------------
// Reuse

TEST_CASE("transform: one Transformer reused gives the same results as fresh ones", "[transform]") {
  std::vector<std::pair<std::string, std::string>> inputs = {
      {"cdc.co1.messages", body()},
      {"cdc.co1.messages", "not json"},
      {"cdc.co2.chats", body(R"({"chat_id":"c\u00e9","agent_id":7})", meta("chats", "2", "1"))},
      {"cdc.co1.contacts", "{}"},
      {"cdc.co1.messages", body(R"({"message_id":"m1","chat_id":"c1","agent_id":"a.b"})", meta("messages", "3"))},
      {"cdc.co1.agents",
       body(R"({"agent_id":"ag\"q"})", meta("agents", "null", "null", R"("idempotency_key":"k")"), R"("read")")},
      {"cdc.co1.messages", body(std::string(R"({"message_id":"m1","chat_id":"c1","agent_id":"a1","pad":")") +
                                    std::string(5000, 'p') + "\"}",
                                meta("messages", "18446744073709551615", "4"))},
      {"cdc.co1.messages", body(kRecord, meta("messages", "-3"))},
      {"cdc.co1", "{}"},
      {"cdc.co1.messages", R"({"record":{"message_id":"m\n1","chat_id":"c","agent_id":"a"},"action":"insert",)"
                           R"("metadata":{"commit_lsn":1}})"},
  };
  std::vector<Result> fresh;
  for (const auto& [subject, b] : inputs) fresh.push_back(run(subject, b, "hdr"));
  Transformer shared{TransformRules{}};
  for (int round = 0; round < 50; ++round) {
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const std::size_t k = (round % 2 == 0) ? i : inputs.size() - 1 - i;
      INFO("round " << round << " input " << k);
      CHECK(run(shared, inputs[k].first, inputs[k].second, "hdr") == fresh[k]);
    }
  }
  // And the output object itself is reused without leftovers.
  TransformOutput out;
  REQUIRE(shared.transform("cdc.co1.messages", body(), "", out) == Disposition::kPublish);
  REQUIRE(shared.transform("cdc.co1.messages", "nope", "", out) == Disposition::kDeadLetter);
  CHECK(out.subject.empty());
  CHECK(out.payload.empty());
  CHECK(out.event_id.empty());
  CHECK_FALSE(out.has_event_id);
  CHECK(out.action.empty());
  REQUIRE(shared.transform("cdc.co1.users", "x", "", out) == Disposition::kSkip);
  CHECK(out.error.empty());
  CHECK(out.error_kind == ErrorKind::kNone);
}

TEST_CASE("transform: output buffers keep their capacity", "[transform]") {
  Transformer t{TransformRules{}};
  TransformOutput out;
  const std::string b = body();
  REQUIRE(t.transform("cdc.co1.messages", b, "", out) == Disposition::kPublish);
  const char* payload = out.payload.data();
  const char* subject = out.subject.data();
  const char* event_id = out.event_id.data();
  for (int i = 0; i < 100; ++i) {
    REQUIRE(t.transform("cdc.co1.messages", b, "", out) == Disposition::kPublish);
    REQUIRE(t.transform("cdc.co1.messages", "{}", "", out) == Disposition::kDeadLetter);
  }
  REQUIRE(t.transform("cdc.co1.messages", b, "", out) == Disposition::kPublish);
  CHECK(out.payload.data() == payload);
  CHECK(out.subject.data() == subject);
  CHECK(out.event_id.data() == event_id);
}

TEST_CASE("transform: JSON validity agrees with simdjson's DOM parser on mutated bodies", "[transform][json]") {
  // The walker validates the grammar itself; simdjson's DOM parser is an independent judge.
  // Numbers it rejects for their range (integers above 64 bits, 1e400) are valid JSON to us
  // and are left out of the comparison.
  const std::vector<std::string> seeds = {
      body(),
      body(R"({"message_id":"m-1","chat_id":"c","agent_id":"a","n":-12.5e+3,"t":true,"f":false,"z":null,)"
           R"("arr":[1,[2,{"k":"v"}],[]],"o":{},"s":"x\"y\\z\u00e9\n"})",
           meta("messages", "12", "3", R"("record_pks":["m-1"],"idempotency_key":"k")"), R"("update")"),
      R"( { "action" : "read" , "metadata" : { "commit_lsn" : null , "idempotency_key" : "aWQ=" } ,)"
      R"( "record" : { "chat_id" : "c" , "agent_id" : "a" , "message_id" : "m" } } )",
  };
  const std::string alphabet = std::string("{}[]:,\"\\ \t\n0123456789aeEtrufnl.-+/") + '\x01' + '\x7f' + '\xff';
  std::mt19937 rng(20261122);
  Transformer t{TransformRules{}};
  TransformOutput out;
  simdjson::dom::parser parser;
  std::size_t compared = 0, valid = 0;
  for (int i = 0; i < 30000; ++i) {
    std::string b = seeds[static_cast<std::size_t>(i) % seeds.size()];
    const int mutations = 1 + static_cast<int>(rng() % 3);
    for (int m = 0; m < mutations && !b.empty(); ++m) {
      const std::size_t at = rng() % b.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 4) {
        case 0: b[at] = c; break;
        case 1: b.erase(at, 1); break;
        case 2: b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), c); break;
        default: b.insert(at, b.substr(at, rng() % 8)); break;
      }
    }
    const auto dom = parser.parse(b).error();
    if (dom == simdjson::NUMBER_ERROR) continue;
    ++compared;
    t.transform("cdc.co1.messages", b, "hdr", out);
    INFO(b);
    INFO(simdjson::error_message(dom) << " / " << out.error);
    if (dom == simdjson::SUCCESS) {
      ++valid;
      CHECK(out.error_kind != ErrorKind::kInvalidJson);
    } else {
      CHECK(out.error_kind == ErrorKind::kInvalidJson);
    }
  }
  CHECK(compared > 25000);
  CHECK(valid > 1000);
  CHECK(compared - valid > 10000);
}

TEST_CASE("transform: payload strings are escaped wherever the special byte sits", "[transform][json]") {
  // message_id is not the pk here, so it may hold anything a JSON string can.
  const std::vector<std::pair<std::string, std::string>> specials = {
      {"\\\"", "\""}, {"\\\\", "\\"}, {"\\n", "\n"}, {"\\u001f", "\x1f"}, {"\\u0000", std::string(1, '\0')}};
  for (const auto& [escaped, plain] : specials) {
    for (std::size_t at = 0; at <= 17; ++at) {
      for (std::size_t tail = 0; tail <= 8; ++tail) {  // every position within an 8-byte word
        const std::string json_text = std::string(at, 'a') + escaped + std::string(tail, 'c');
        const std::string expected = std::string(at, 'a') + plain + std::string(tail, 'c');
        const std::string record = R"({"message_id":")" + json_text + R"(","chat_id":"c","agent_id":"a"})";
        const Result r =
            published("cdc.co1.messages", body(record, meta("messages", "1", "0", R"("record_pks":["p"])")));
        INFO(at << " " << tail << " " << escaped);
        CHECK(payload_field(r.payload, "message_id") == expected);
        CHECK(row_data_of(r.payload) == record);
      }
    }
  }
  // UTF-8 around the special byte is copied as it is.
  const std::string record = R"({"message_id":"\u00e9\"\u00e9","chat_id":"c","agent_id":"a"})";
  const Result u = published("cdc.co1.messages", body(record, meta("messages", "1", "0", R"("record_pks":["p"])")));
  CHECK(payload_field(u.payload, "message_id") == "\xc3\xa9\"\xc3\xa9");
  // Plain long values take the exact-size path and are copied as they are.
  const std::string long_id(200, 'x');
  const Result r =
      published("cdc.co1.messages", body(R"({"message_id":")" + long_id + R"(","chat_id":"c","agent_id":"a"})",
                                         meta("messages", "1", "0", R"("record_pks":["p"])")));
  CHECK(r.payload.find(R"("message_id":")" + long_id + "\"") != std::string::npos);
}

TEST_CASE("a company token that is not valid UTF-8 is dead-lettered, JSON strings stay valid UTF-8", "[transform]") {
  // Found by fuzz/transform_fuzzer.cpp: a subject may carry any byte, and company_id is copied
  // from it into the payload, which must be valid JSON.
  Transformer t{TransformRules{}};
  TransformOutput out;
  const std::string body =
      R"({"record":{"chat_id":"c1","agent_id":"a1"},"changes":null,"action":"insert","metadata":{"commit_lsn":5,"commit_idx":0}})";
  REQUIRE(t.transform("cdc.co\xbf"
                      "1.chats",
                      body, "", out) == Disposition::kDeadLetter);
  CHECK(out.error_kind == ErrorKind::kInvalidToken);
  CHECK(out.error == "company is not valid UTF-8");
  REQUIRE(t.transform("cdc.caf\xc3\xa9.chats", body, "", out) == Disposition::kPublish);  // "café" is fine
  CHECK(out.payload.find("\"company_id\":\"caf\xc3\xa9\"") != std::string::npos);

  const auto json = [](std::string_view s) {
    std::string o;
    cdc::append_json_string(s, o);
    return o;
  };
  CHECK(json("caf\xc3\xa9 \xf0\x9f\x98\x80") == "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");  // valid UTF-8 as it is
  CHECK(json("a\xbf"
             "b") == "\"a\\ufffdb\"");                                    // stray continuation byte
  CHECK(json("\xc3") == "\"\\ufffd\"");                                   // truncated sequence
  CHECK(json("\xed\xa0\x80") == "\"\\ufffd\\ufffd\\ufffd\"");             // a surrogate
  CHECK(json("\xc0\xaf") == "\"\\ufffd\\ufffd\"");                        // overlong
  CHECK(json("\xf4\x90\x80\x80") == "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");  // beyond U+10FFFF
}
