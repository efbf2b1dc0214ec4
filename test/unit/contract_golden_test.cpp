// Golden files of the contract (test/contracts/*.jsonl, format in test/contracts/README.md) and
// the sample captures (tools/samples/, the repository's copies of ../shared/samples/).

#include "cdc/core/dead_letter.hpp"
#include "cdc/core/transform.hpp"

#include <catch2/catch.hpp>
#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using cdc::Disposition;

struct GoldenLine {
  std::string where;  ///< file:line
  std::string name;
  std::string rules_json;  ///< raw "rules" object, "" for the defaults
  cdc::TransformRules rules;
  std::string subject;
  std::string msg_id;
  std::string data;
  std::string disposition;
  std::string subject_out;
  std::string payload;
  std::string header_msg_id;
  std::string error_kind;
  bool expect_event_id_key = false;
  bool expect_event_id_null = false;
  std::string event_id;
};

std::string str(simdjson::dom::element e, const char* what) {
  std::string_view s;
  INFO(what);
  REQUIRE(e.get_string().get(s) == simdjson::SUCCESS);
  return std::string(s);
}

cdc::TransformRules parse_rules(simdjson::dom::object obj) {
  cdc::TransformRules rules;
  for (auto [key, value] : obj) {
    if (key == "subject_layout") {
      rules.subject_layout = str(value, "subject_layout");
    } else if (key == "company_prefix") {
      rules.company_prefix = str(value, "company_prefix");
    } else if (key == "subject_prefix") {
      rules.subject_prefix = str(value, "subject_prefix");
    } else if (key == "max_message_bytes") {
      std::uint64_t n = 0;
      REQUIRE(value.get_uint64().get(n) == simdjson::SUCCESS);
      rules.max_message_bytes = n;
    } else if (key == "tables") {
      rules.tables.clear();
      simdjson::dom::array tables;
      REQUIRE(value.get_array().get(tables) == simdjson::SUCCESS);
      for (auto t : tables) rules.tables.push_back(str(t, "tables[]"));
    } else if (key == "key_columns") {
      simdjson::dom::object columns;
      REQUIRE(value.get_object().get(columns) == simdjson::SUCCESS);
      for (auto [table, column] : columns) rules.key_columns[std::string(table)] = str(column, "key_columns");
    } else {
      FAIL("unknown rules key " << key);
    }
  }
  return rules;
}

/// The first value of header `name` in a capture's "headers" object (string or array of strings).
std::string header(simdjson::dom::element headers, std::string_view name) {
  simdjson::dom::object obj;
  if (headers.get_object().get(obj) != simdjson::SUCCESS) return {};
  for (auto [key, value] : obj) {
    if (key != name) continue;
    if (value.is_string()) return str(value, "header");
    simdjson::dom::array values;
    if (value.get_array().get(values) == simdjson::SUCCESS) {
      for (auto v : values) return str(v, "header");
    }
    return {};
  }
  return {};
}

/// A capture line's body: "data" as is, or "data_base64" decoded.
std::string capture_body(simdjson::dom::object input) {
  simdjson::dom::element data;
  if (input["data"].get(data) == simdjson::SUCCESS) return str(data, "data");
  std::string encoded = str(input["data_base64"], "data_base64"), decoded;
  REQUIRE(cdc::decode_base64(encoded, decoded));
  return decoded;
}

/// A sample capture of the repository (tools/samples/: copies of ../shared/samples/, so the
/// tests read them in a standalone clone and in the Docker build context too).
fs::path sample_path(const std::string& name) { return fs::path(CDC_SOURCE_DIR) / "tools" / "samples" / name; }

std::vector<GoldenLine> load_golden() {
  const fs::path dir = fs::path(CDC_SOURCE_DIR) / "test" / "contracts";
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".jsonl") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  REQUIRE_FALSE(files.empty());
  std::vector<GoldenLine> lines;
  simdjson::dom::parser parser;
  for (const fs::path& file : files) {
    std::ifstream in(file);
    REQUIRE(in);
    std::string text;
    for (int number = 1; std::getline(in, text); ++number) {
      if (text.empty()) continue;
      GoldenLine g;
      g.where = file.filename().string() + ":" + std::to_string(number);
      INFO(g.where);
      simdjson::dom::object line;
      REQUIRE(parser.parse(text).get(line) == simdjson::SUCCESS);
      g.name = str(line["name"], "name");
      simdjson::dom::object rules;
      if (line["rules"].get(rules) == simdjson::SUCCESS) {
        g.rules_json = simdjson::minify(rules);
        g.rules = parse_rules(rules);
      }
      simdjson::dom::object input;
      REQUIRE(line["input"].get(input) == simdjson::SUCCESS);
      g.subject = str(input["subject"], "subject");
      g.msg_id = header(input["headers"], "Nats-Msg-Id");
      g.data = capture_body(input);
      simdjson::dom::object expect;
      REQUIRE(line["expect"].get(expect) == simdjson::SUCCESS);
      g.disposition = str(expect["disposition"], "disposition");
      if (g.disposition == "publish") {
        g.subject_out = str(expect["subject"], "expect.subject");
        g.payload = str(expect["payload"], "expect.payload");
        g.header_msg_id = header(expect["headers"], "Nats-Msg-Id");
        REQUIRE_FALSE(g.header_msg_id.empty());
      } else if (g.disposition == "dead_letter") {
        g.error_kind = str(expect["error_kind"], "expect.error_kind");
        simdjson::dom::element event_id;
        if (expect["event_id"].get(event_id) == simdjson::SUCCESS) {
          g.expect_event_id_key = true;
          g.expect_event_id_null = event_id.is_null();
          if (!g.expect_event_id_null) g.event_id = str(event_id, "expect.event_id");
        }
      } else {
        REQUIRE(g.disposition == "skip");
      }
      lines.push_back(std::move(g));
    }
  }
  return lines;
}

void check_line(cdc::Transformer& t, const GoldenLine& g) {
  INFO(g.where << " " << g.name);
  cdc::TransformOutput out;
  const Disposition d = t.transform(g.subject, g.data, g.msg_id, out);
  INFO("error: " << out.error);
  CHECK(d == out.disposition);
  if (g.disposition == "publish") {
    REQUIRE(d == Disposition::kPublish);
    CHECK(out.subject == g.subject_out);
    CHECK(out.event_id == g.header_msg_id);
    CHECK(out.payload == g.payload);
  } else if (g.disposition == "dead_letter") {
    REQUIRE(d == Disposition::kDeadLetter);
    CHECK(cdc::to_string(out.error_kind) == g.error_kind);
    CHECK_FALSE(out.error.empty());
    CHECK(out.subject.empty());
    CHECK(out.payload.empty());
    if (g.expect_event_id_key) {
      CHECK(out.has_event_id == !g.expect_event_id_null);
      if (!g.expect_event_id_null) CHECK(out.event_id == g.event_id);
    }
  } else {
    CHECK(d == Disposition::kSkip);
    CHECK(out.error_kind == cdc::ErrorKind::kNone);
  }
}

/// The raw text of the top-level member `name` of a JSON object, found by a plain scanner
/// (independent of the transform's walker). Empty when absent.
std::string_view raw_member(std::string_view json, std::string_view name) {
  std::size_t i = 0;
  int depth = 0;
  auto skip_string = [&](std::size_t start) {  // start at the opening quote; returns one past the closing
    std::size_t j = start + 1;
    while (json[j] != '"') j += json[j] == '\\' ? 2 : 1;
    return j + 1;
  };
  while (i < json.size()) {
    const char c = json[i];
    if (c == '"') {
      const std::size_t end = skip_string(i);
      std::size_t k = end;
      while (k < json.size() && std::isspace(static_cast<unsigned char>(json[k]))) ++k;
      if (depth == 1 && k < json.size() && json[k] == ':' && json.substr(i + 1, end - i - 2) == name) {
        std::size_t v = k + 1;
        while (std::isspace(static_cast<unsigned char>(json[v]))) ++v;
        std::size_t w = v;
        int d = 0;
        do {
          if (json[w] == '"') {
            w = skip_string(w);
            continue;
          }
          if (json[w] == '{' || json[w] == '[') ++d;
          if (json[w] == '}' || json[w] == ']') --d;
          ++w;
        } while (d > 0);
        return json.substr(v, w - v);
      }
      i = end;
      continue;
    }
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
    ++i;
  }
  return {};
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> parts;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t at = s.find(sep, pos);
    parts.emplace_back(s.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
    if (at == std::string_view::npos) return parts;
    pos = at + 1;
  }
}

}  // namespace

TEST_CASE("golden: every line of test/contracts", "[golden]") {
  const std::vector<GoldenLine> lines = load_golden();
  REQUIRE(lines.size() >= 100);
  std::map<std::string, std::unique_ptr<cdc::Transformer>> by_rules;
  for (const GoldenLine& g : lines) {
    auto& t = by_rules[g.rules_json];
    if (!t) t = std::make_unique<cdc::Transformer>(g.rules);
    check_line(*t, g);
  }
  // A fresh Transformer per line gives the same result as the shared ones.
  for (const GoldenLine& g : lines) {
    cdc::Transformer fresh(g.rules);
    check_line(fresh, g);
  }
  // And the shared ones once more, in reverse order.
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) check_line(*by_rules[it->rules_json], *it);
}

TEST_CASE("golden: the files cover every disposition and every error kind of the transform", "[golden]") {
  std::set<std::string> seen;
  std::set<std::string> names;
  for (const GoldenLine& g : load_golden()) {
    seen.insert(g.disposition == "dead_letter" ? g.error_kind : g.disposition);
    INFO(g.where);
    CHECK(names.insert(g.name).second);  // names are unique, so a failure points at one line
  }
  for (const char* want : {"publish", "skip", "invalid_json", "invalid_shape", "missing_field", "invalid_token",
                           "table_mismatch", "oversized", "invalid_subject"}) {
    INFO(want);
    CHECK(seen.count(want) == 1);
  }
}

TEST_CASE("golden: the five bad examples of the shared samples are included", "[golden]") {
  const fs::path path = sample_path("bad-examples.jsonl");
  std::ifstream in(path);
  INFO("sample " << path);
  REQUIRE(in);  // in every checkout: missing is a failure, never a skip
  std::set<std::pair<std::string, std::string>> golden;
  for (const GoldenLine& g : load_golden()) golden.emplace(g.subject, g.data);
  simdjson::dom::parser parser;
  std::string text;
  int count = 0;
  while (std::getline(in, text)) {
    simdjson::dom::object input;
    REQUIRE(parser.parse(text).get(input) == simdjson::SUCCESS);
    INFO(text);
    CHECK(golden.count({str(input["subject"], "subject"), capture_body(input)}) == 1);
    ++count;
  }
  CHECK(count == 5);
}

TEST_CASE("samples: sequin-mixed-2k is published or skipped, never dead-lettered", "[golden][samples]") {
  const fs::path path = sample_path("sequin-mixed-2k.jsonl");
  std::ifstream in(path);
  INFO("sample " << path);
  REQUIRE(in);  // in every checkout: missing is a failure, never a skip
  const cdc::TransformRules rules;
  cdc::Transformer t(rules);
  cdc::TransformOutput out;
  simdjson::dom::parser capture_parser, body_parser, payload_parser;
  std::map<std::string, std::string> payload_by_event_id;
  std::size_t published = 0, skipped = 0, repeats = 0, line_number = 0;
  std::string text;
  while (std::getline(in, text)) {
    ++line_number;
    INFO("line " << line_number);
    simdjson::dom::object input;
    REQUIRE(capture_parser.parse(text).get(input) == simdjson::SUCCESS);
    const std::string subject = str(input["subject"], "subject");
    const std::string body = capture_body(input);
    const Disposition d = t.transform(subject, body, header(input["headers"], "Nats-Msg-Id"), out);
    INFO(subject << " -> " << cdc::to_string(out.error_kind) << ": " << out.error);
    REQUIRE(d != Disposition::kDeadLetter);
    const std::vector<std::string> in_tokens = split(subject, '.');
    REQUIRE(in_tokens.size() == 3);
    const std::string& company = in_tokens[1];
    const std::string& table = in_tokens[2];
    if (d == Disposition::kSkip) {
      CHECK(std::find(rules.tables.begin(), rules.tables.end(), table) == rules.tables.end());
      ++skipped;
      continue;
    }
    ++published;
    REQUIRE(std::find(rules.tables.begin(), rules.tables.end(), table) != rules.tables.end());

    // Subject: wa.<company>.<agent>.<table>[.<chat>], every token valid.
    const std::vector<std::string> tokens = split(out.subject, '.');
    REQUIRE(tokens.size() == (table == "messages" ? 5u : 4u));
    for (const std::string& token : tokens) CHECK(cdc::is_valid_token(token));
    CHECK(tokens[0] == "wa");
    CHECK(tokens[1] == company);
    CHECK(tokens[3] == table);

    // The body, read independently.
    simdjson::dom::object doc;
    REQUIRE(body_parser.parse(body).get(doc) == simdjson::SUCCESS);
    simdjson::dom::object record = doc["record"];
    simdjson::dom::object metadata = doc["metadata"];
    CHECK(tokens[2] == str(record["agent_id"], "agent_id"));
    if (table == "messages") CHECK(tokens[4] == str(record["chat_id"], "chat_id"));

    // event_id = <commit_lsn>.<commit_idx>:<company>:<table>:<pk>
    std::string pk;
    simdjson::dom::array pks;
    if (metadata["record_pks"].get(pks) == simdjson::SUCCESS && pks.size() > 0) {
      for (auto e : pks) pk += (pk.empty() ? "" : ",") + str(e, "record_pks[]");
    } else {
      pk = str(record[rules.key_columns.at(table)], "key column");
    }
    const std::uint64_t lsn = metadata["commit_lsn"];
    const std::uint64_t idx = metadata["commit_idx"];
    CHECK(out.event_id == std::to_string(lsn) + "." + std::to_string(idx) + ":" + company + ":" + table + ":" + pk);

    // Payload: valid JSON, the routing values, and row_data equal to the record bytes.
    simdjson::dom::object payload;
    REQUIRE(payload_parser.parse(out.payload).get(payload) == simdjson::SUCCESS);
    CHECK(str(payload["event_id"], "event_id") == out.event_id);
    CHECK(str(payload["company_id"], "company_id") == company);
    CHECK(str(payload["agent_id"], "agent_id") == tokens[2]);
    CHECK(str(payload["table"], "table") == table);
    CHECK(str(payload["action"], "action") == str(doc["action"], "action"));
    CHECK(str(payload["committed_at"], "committed_at") == str(metadata["commit_timestamp"], "commit_timestamp"));
    if (table != "agents") CHECK(str(payload["chat_id"], "chat_id") == str(record["chat_id"], "chat_id"));
    const std::string_view record_raw = raw_member(body, "record");
    REQUIRE_FALSE(record_raw.empty());
    CHECK(out.payload.size() > record_raw.size());
    CHECK(std::string_view(out.payload).substr(out.payload.size() - record_raw.size() - 1, record_raw.size()) ==
          record_raw);
    CHECK(raw_member(out.payload, "row_data") == record_raw);

    // A repeated event (producer restart past the duplicate window) must be the same event.
    const auto [it, inserted] = payload_by_event_id.emplace(out.event_id, out.payload);
    if (!inserted) {
      ++repeats;
      CHECK(it->second == out.payload);
    }
  }
  CHECK(line_number > 1000);
  CHECK(published > 1000);
  CHECK(skipped > 100);
  CHECK(repeats > 0);  // the sample contains a few exact repeats
}
