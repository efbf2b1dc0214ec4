// Identity: the event's pk, position and id, and the routing ids with their token checks
// (CONTRACT.md sections 3 and 4). A row that cannot be identified or routed is dead-lettered
// here, never published to another tenant or agent.

#include <simdjson.h>

#include <charconv>
#include <string>
#include <string_view>

#include "cdc/core/json_writer.hpp"
#include "cdc/core/subject.hpp"
#include "exact_writer.hpp"
#include "steps.hpp"

namespace cdc::transform_detail {
namespace {

bool is_control(unsigned char c) noexcept { return c < 0x20 || c == 0x7f; }

/// A control character would break a NATS header or a Redis key.
bool describe_control(std::string_view name, std::string_view value, std::string& error) {
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (!is_control(c)) continue;
    error.assign(name).append(" contains control character ");
    append_hex_byte(c, error);
    return true;
  }
  return false;
}

/// Describes why id `fact` cannot be used (missing_field or invalid_token); false when it can.
bool describe_unusable_id(std::string_view prefix, std::string_view name, const IdFact& fact, TransformOutput& out,
                          ErrorKind& kind) {
  if (fact.usable()) return false;
  out.error.assign(prefix).append(name);
  switch (fact.state) {
    case IdFact::State::kAbsent:
      out.error.append(" is missing");
      kind = ErrorKind::kMissingField;
      break;
    case IdFact::State::kNull:
      out.error.append(" is null");
      kind = ErrorKind::kMissingField;
      break;
    case IdFact::State::kNonCanonical:
      out.error.append(" is ").append(fact.text).append(", not an integer in canonical form");
      kind = ErrorKind::kInvalidToken;
      break;
    default:
      out.error.append(" is ").append(fact.what).append(", not a string or integer");
      kind = ErrorKind::kInvalidToken;
      break;
  }
  return true;
}

/// A routing id: usable (present, string or canonical integer) and a valid subject token.
bool check_routing_id(std::string_view name, const IdFact& fact, TransformOutput& out) {
  ErrorKind kind = ErrorKind::kNone;
  if (describe_unusable_id("", name, fact, out, kind)) return reject(out, kind);
  if (describe_invalid_token(name, fact.text, out.error)) return reject(out, ErrorKind::kInvalidToken);
  return true;
}

/// For commit_lsn / commit_idx (invalid_shape).
bool reject_u64(std::string_view name, const U64Fact& fact, TransformOutput& out) {
  out.error.assign(name);
  switch (fact.state) {
    case U64Fact::State::kNegative: out.error.append(" is negative"); break;
    case U64Fact::State::kNotInteger: out.error.append(" is not an integer"); break;
    case U64Fact::State::kNotNumber: out.error.append(" is not a number"); break;
    case U64Fact::State::kOutOfRange: out.error.append(" is larger than 18446744073709551615"); break;
    default: out.error.append(" is invalid"); break;
  }
  return reject(out, ErrorKind::kInvalidShape);
}

/// "<commit_lsn>.<commit_idx>" (commit_idx 0 when absent or null).
bool lsn_position(const Facts& facts, Identity& id, TransformOutput& out) {
  const U64Fact& idx = facts.commit_idx;
  if (idx.state != U64Fact::State::kOk && idx.state != U64Fact::State::kAbsent && idx.state != U64Fact::State::kNull) {
    return reject_u64("metadata.commit_idx", idx, out);
  }
  char* const digits = id.digits;
  char* end = std::to_chars(digits, digits + 20, facts.commit_lsn.value).ptr;
  *end++ = '.';
  end = std::to_chars(end, digits + sizeof(id.digits), idx.state == U64Fact::State::kOk ? idx.value : 0).ptr;
  id.position = std::string_view(digits, static_cast<std::size_t>(end - digits));
  return true;
}

/// A read without commit_lsn (a backfill): its idempotency key.
bool backfill_position(const Facts& facts, std::string_view msg_id_header, Identity& id, TransformOutput& out) {
  const bool absent = facts.commit_lsn.state == U64Fact::State::kAbsent;
  if (facts.action_value != "read") {
    return reject(out, ErrorKind::kMissingField,
                  absent ? "metadata.commit_lsn is missing" : "metadata.commit_lsn is null");
  }
  if (facts.idempotency_key == Seen::kWrongType) {
    return reject(out, ErrorKind::kInvalidShape, "metadata.idempotency_key is not a string");
  }
  id.position = facts.idempotency_key == Seen::kOk ? facts.idempotency_key_value : std::string_view();
  if (id.position.empty()) id.position = msg_id_header;
  if (id.position.empty()) {
    return reject(out, ErrorKind::kMissingField,
                  "read without metadata.commit_lsn has no metadata.idempotency_key and no Nats-Msg-Id");
  }
  if (describe_control("idempotency key", id.position, out.error)) return reject(out, ErrorKind::kInvalidToken);
  id.backfill = true;
  return true;
}

}  // namespace

bool resolve_pk(const Facts& facts, const Table& table, std::string_view joined_pks, Identity& id,
                TransformOutput& out) {
  if (facts.record_pks == Facts::Pks::kNotArray) {
    return reject(out, ErrorKind::kInvalidShape, "metadata.record_pks is not an array");
  }
  if (facts.record_pks == Facts::Pks::kBadElement || facts.record_pks == Facts::Pks::kNonCanonical) {
    out.error.assign("metadata.record_pks[");
    append_uint(facts.record_pks_bad_index, out.error);
    if (facts.record_pks == Facts::Pks::kNonCanonical) {
      out.error.append("] is -0, not an integer in canonical form");
      return reject(out, ErrorKind::kInvalidToken);
    }
    out.error.append("] is not a string or integer");
    return reject(out, ErrorKind::kInvalidShape);
  }
  id.pk = joined_pks;
  if (facts.record_pks != Facts::Pks::kOk || facts.record_pks_count == 0) {
    const IdFact& key = facts.ids[kKeyColumn];
    ErrorKind kind = ErrorKind::kNone;
    if (describe_unusable_id("record.", table.key_column, key, out, kind)) return reject(out, kind);
    id.pk = key.text;
  }
  if (id.pk.empty()) return reject(out, ErrorKind::kMissingField, "pk is empty");
  if (describe_control("pk", id.pk, out.error)) return reject(out, ErrorKind::kInvalidToken);
  return true;
}

bool resolve_position(const Facts& facts, std::string_view msg_id_header, Identity& id, TransformOutput& out) {
  switch (facts.commit_lsn.state) {
    case U64Fact::State::kOk: return lsn_position(facts, id, out);
    case U64Fact::State::kAbsent:
    case U64Fact::State::kNull: return backfill_position(facts, msg_id_header, id, out);
    default: return reject_u64("metadata.commit_lsn", facts.commit_lsn, out);
  }
}

void write_event_id(const Table& table, const Identity& id, TransformOutput& out) {
  // The company is part of the id: tenants in different databases have independent LSNs, and
  // the Redis key and Nats-Msg-Id derive from the id (CONTRACT.md section 3).
  ExactWriter w(out.event_id,
                (id.backfill ? 2 : 0) + id.position.size() + out.company.size() + table.name.size() + id.pk.size() + 3);
  if (id.backfill) w.put("b.");
  w.put(id.position);
  w.put(':');
  w.put(out.company);
  w.put(':');
  w.put(table.name);
  w.put(':');
  w.put(id.pk);
  out.has_event_id = true;
}

bool check_routing(const Facts& facts, const Table& table, Identity& id, TransformOutput& out) {
  if (describe_invalid_token("company", out.company, out.error)) return reject(out, ErrorKind::kInvalidToken);
  // The company comes from the subject, whose bytes nobody validated as UTF-8 (the other
  // routing values come out of the validated JSON); company_id must be valid JSON.
  if (!simdjson::validate_utf8(out.company.data(), out.company.size())) {
    return reject(out, ErrorKind::kInvalidToken, "company is not valid UTF-8");
  }
  if (!check_routing_id("agent_id", facts.ids[kAgentId], out)) return false;
  if (table.has_chat_id && !check_routing_id("chat_id", facts.ids[kChatId], out)) return false;
  if (table.has_message_id) {
    const IdFact& m = facts.ids[kMessageId];
    if (m.state == IdFact::State::kWrongType || m.state == IdFact::State::kNonCanonical) {
      ErrorKind kind = ErrorKind::kNone;
      describe_unusable_id("", "message_id", m, out, kind);
      return reject(out, kind);
    }
    id.message_id = m.usable() ? m.text : id.pk;
  }
  return true;
}

}  // namespace cdc::transform_detail
