// libFuzzer target: the contract's transform (CONTRACT.md sections 1-4, 6) and the dead-letter
// record over arbitrary subjects and bodies.
//
// Input: one control byte, then "<subject>\n<body>" (without a newline the whole rest is the
// body, on subject cdc.co1.messages). Control byte bits:
//   0-1  rules: 0 and 3 the defaults, 1 Sequin's layout sequin.{database}.{schema}.{table}.{action}
//        with company prefix "daisi_", 2 the defaults with max_message_bytes = 512
//   2    the message carries a Nats-Msg-Id header
//   3-7  cap of the dead-letter record: 0 none, else 64 * value bytes
//
// Besides "no crash, no sanitizer report", every run checks what the contract promises for any
// input: a published event has a subject made of valid tokens under the output prefix, a
// payload that is one valid JSON object naming the event id, and the same result when
// transformed again; a dead letter has a kind and is valid JSON (within its cap when set).

#include <simdjson.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cdc/core/dead_letter.hpp"
#include "cdc/core/transform.hpp"

namespace {

[[noreturn]] void fail(const char* what, std::string_view subject, std::string_view detail) {
  std::fprintf(stderr, "transform_fuzzer: %s\n  subject: %.*s\n  detail: %.*s\n", what,
               static_cast<int>(subject.size()), subject.data(),
               static_cast<int>(std::min<std::size_t>(detail.size(), 2000)), detail.data());
  std::abort();
}

cdc::Transformer& transformer(unsigned variant) {
  static std::unique_ptr<cdc::Transformer> all[3] = {
      std::make_unique<cdc::Transformer>(cdc::TransformRules{}),
      [] {
        cdc::TransformRules r;
        r.subject_layout = "sequin.{database}.{schema}.{table}.{action}";
        r.company_prefix = "daisi_";
        return std::make_unique<cdc::Transformer>(r);
      }(),
      [] {
        cdc::TransformRules r;
        r.max_message_bytes = 512;
        return std::make_unique<cdc::Transformer>(r);
      }(),
  };
  return *all[variant == 3 ? 0 : variant];
}

simdjson::dom::parser& json() {
  static simdjson::dom::parser parser;
  return parser;
}

/// A strict RFC 8259 validator, independent of the parser the transform uses (simdjson's DOM
/// refuses integers beyond 64 bits, which the contract carries through row_data untouched).
class JsonValidator {
 public:
  static bool valid(std::string_view text) {
    if (!simdjson::validate_utf8(text.data(), text.size())) return false;
    JsonValidator v(text);
    v.ws();
    if (!v.value(0)) return false;
    v.ws();
    return v.i_ == text.size();
  }

 private:
  explicit JsonValidator(std::string_view t) : t_(t) {}
  [[nodiscard]] bool more() const { return i_ < t_.size(); }
  [[nodiscard]] char peek() const { return more() ? t_[i_] : '\0'; }
  void ws() {
    while (more() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\n' || t_[i_] == '\r')) ++i_;
  }
  bool literal(std::string_view word) {
    if (t_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  bool digits() {
    const std::size_t start = i_;
    while (more() && t_[i_] >= '0' && t_[i_] <= '9') ++i_;
    return i_ > start;
  }
  bool number() {
    if (peek() == '-') ++i_;
    if (peek() == '0') {
      ++i_;
    } else if (!digits()) {
      return false;
    }
    if (peek() == '.') {
      ++i_;
      if (!digits()) return false;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!digits()) return false;
    }
    return true;
  }
  bool string() {
    ++i_;  // opening quote
    while (more()) {
      const auto c = static_cast<unsigned char>(t_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') continue;
      if (!more()) return false;
      const char e = t_[i_++];
      if (e == 'u') {
        for (int k = 0; k < 4; ++k) {
          if (!more() || !std::isxdigit(static_cast<unsigned char>(t_[i_++]))) return false;
        }
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return false;
      }
    }
    return false;
  }
  bool value(int depth) {
    if (depth > 512) return false;
    switch (peek()) {
      case '{': {
        ++i_;
        ws();
        if (peek() == '}') return ++i_, true;
        while (true) {
          ws();
          if (peek() != '"' || !string()) return false;
          ws();
          if (peek() != ':') return false;
          ++i_;
          ws();
          if (!value(depth + 1)) return false;
          ws();
          if (peek() == '}') return ++i_, true;
          if (peek() != ',') return false;
          ++i_;
        }
      }
      case '[': {
        ++i_;
        ws();
        if (peek() == ']') return ++i_, true;
        while (true) {
          ws();
          if (!value(depth + 1)) return false;
          ws();
          if (peek() == ']') return ++i_, true;
          if (peek() != ',') return false;
          ++i_;
        }
      }
      case '"': return string();
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: return number();
    }
  }

  std::string_view t_;
  std::size_t i_ = 0;
};

/// The payload's "event_id", unescaped (On-Demand reads it without touching the big integers
/// that may follow in row_data).
std::string event_id_of(const std::string& payload) {
  static simdjson::ondemand::parser parser;
  const simdjson::padded_string padded(payload);
  simdjson::ondemand::document doc;
  std::string_view id;
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS ||
      doc["event_id"].get_string().get(id) != simdjson::SUCCESS) {
    return "<unreadable>";
  }
  return std::string(id);
}

void check_published(const cdc::Transformer& t, std::string_view subject, const cdc::TransformOutput& out) {
  const std::string& prefix = t.rules().subject_prefix;
  if (out.subject.compare(0, prefix.size(), prefix) != 0 || out.subject.size() <= prefix.size() ||
      out.subject[prefix.size()] != '.') {
    fail("output subject outside the prefix", subject, out.subject);
  }
  std::size_t tokens = 0;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = out.subject.find('.', start);
    const std::string_view token =
        std::string_view(out.subject).substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cdc::is_valid_token(token)) fail("invalid token in the output subject", subject, out.subject);
    ++tokens;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (tokens != 4 && tokens != 5) fail("output subject has the wrong number of tokens", subject, out.subject);
  if (!out.has_event_id || out.event_id.empty()) fail("published without an event id", subject, out.payload);
  if (!JsonValidator::valid(out.payload)) fail("payload is not valid JSON", subject, out.payload);
  if (event_id_of(out.payload) != out.event_id) fail("payload event_id differs", subject, out.payload);
  // CONTRACT.md section 3: "<position>:<company>:<table>:<pk>" (tenants have independent LSNs).
  std::string scope = ":";
  scope.append(out.company).append(":").append(out.table).append(":");
  if (out.event_id.find(scope) == std::string::npos)
    fail("event_id without its company and table", subject, out.event_id);
  if (out.payload.find(",\"row_data\":") == std::string::npos) fail("payload without row_data", subject, out.payload);
}

void check_dead_letter(std::string_view subject, std::string_view body, std::string_view msg_id,
                       const cdc::TransformOutput& out, std::size_t cap) {
  if (out.error_kind == cdc::ErrorKind::kNone) fail("dead letter without an error kind", subject, out.error);
  std::vector<std::pair<std::string, std::string>> headers;
  if (!msg_id.empty()) headers.emplace_back("Nats-Msg-Id", std::string(msg_id));
  cdc::DeadLetter letter;
  letter.source_subject = subject;
  letter.source_stream = "cdc_events_stream";
  letter.source_seq = 42;
  letter.delivery_attempts = 1;
  letter.error_kind = out.error_kind;
  letter.error = out.error;
  letter.has_event_id = out.has_event_id;
  letter.event_id = out.event_id;
  letter.failed_at_unix_ns = 1'795'341'601'000'000'000;
  letter.headers = &headers;
  letter.data = body;
  letter.max_bytes = cap;
  std::string record;
  cdc::build_dead_letter_payload(letter, record);
  if (!JsonValidator::valid(record)) fail("dead-letter record is not valid JSON", subject, record);
  simdjson::dom::element doc;  // no big integers in a record: the DOM reads it
  if (json().parse(record).get(doc) != simdjson::SUCCESS) fail("dead-letter record is not readable", subject, record);
  std::string_view data;
  std::string decoded;
  if (doc["data_base64"].get(data) != simdjson::SUCCESS || !cdc::decode_base64(data, decoded) ||
      body.substr(0, decoded.size()) != decoded) {
    fail("dead-letter data_base64 is not a prefix of the body", subject, record);
  }
  bool truncated = false;
  if (doc["data_truncated"].get(truncated) == simdjson::SUCCESS) {
    if (cap == 0) fail("dead letter truncated without a cap", subject, record);
    if (!decoded.empty() && record.size() > cap) fail("truncated dead letter over its cap", subject, record);
  } else if (decoded.size() != body.size()) {
    fail("dead letter lost part of the body without saying so", subject, record);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned control = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string_view subject = "cdc.co1.messages";
  std::string_view body = rest;
  if (const std::size_t nl = rest.find('\n'); nl != std::string_view::npos) {
    subject = rest.substr(0, nl);
    body = rest.substr(nl + 1);
  }
  const std::string_view msg_id = (control & 4) != 0 ? "Mjc2MzUyMjQ6MA==" : "";
  const std::size_t cap = static_cast<std::size_t>(control >> 3) * 64;

  cdc::Transformer& t = transformer(control & 3);
  // Reused across runs, as the parse stage reuses each event's buffers.
  static cdc::TransformOutput out;
  static cdc::TransformOutput again;
  const cdc::Disposition d = t.transform(subject, body, msg_id, out);
  switch (d) {
    case cdc::Disposition::kSkip: break;
    case cdc::Disposition::kPublish: check_published(t, subject, out); break;
    case cdc::Disposition::kDeadLetter: check_dead_letter(subject, body, msg_id, out, cap); break;
  }
  if (t.transform(subject, body, msg_id, again) != d || again.subject != out.subject || again.payload != out.payload ||
      again.event_id != out.event_id || again.error_kind != out.error_kind) {
    fail("a second transform of the same input differs", subject, out.payload + " / " + again.payload);
  }
  return 0;
}
