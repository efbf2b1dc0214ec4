// The walk's readers: what each member of the body the contract names contributes to Facts
// (facts.hpp). Everything else is validated and skipped by the walker.

#include <array>
#include <string>
#include <string_view>

#include "cdc/core/json_writer.hpp"
#include "steps.hpp"

namespace cdc::transform_detail {
namespace {

constexpr std::string_view kActions[] = {"insert", "update", "delete", "read"};

bool read_id(Walker& w, IdFact& fact, int depth) {
  const char c = w.peek();
  if (c == '"') {
    std::string_view content;
    bool escaped;
    if (!w.read_string(content, escaped)) return false;
    fact.state = IdFact::State::kString;
    fact.text = w.keep(content, escaped);
    return true;
  }
  if (c == '-' || is_digit(c)) {
    const std::string_view t = w.token();
    switch (classify_number(t)) {
      case NumberForm::kInvalid: return w.fail("invalid number");
      case NumberForm::kUnsignedInteger:
      case NumberForm::kNegativeInteger:
        // The grammar already excludes leading zeros and '+'; "-0" is the one integer
        // spelling that is valid JSON and not canonical.
        fact.state = eq(t, "-0") ? IdFact::State::kNonCanonical : IdFact::State::kInteger;
        fact.text = t;
        break;
      case NumberForm::kOther:
        fact.state = IdFact::State::kWrongType;
        fact.what = "a fractional or exponent number";
        break;
    }
    w.advance();
    return true;
  }
  if (c == 'n') {
    fact.state = IdFact::State::kNull;
    return w.read_null();
  }
  fact.state = IdFact::State::kWrongType;
  fact.what = type_phrase(c);
  return w.skip_value(depth);
}

Seen string_fact(const IdFact& id) noexcept {
  if (id.state == IdFact::State::kString) return Seen::kOk;
  return id.state == IdFact::State::kNull ? Seen::kNull : Seen::kWrongType;
}

bool read_u64(Walker& w, U64Fact& fact, int depth) {
  const char c = w.peek();
  if (c == 'n') {
    fact.state = U64Fact::State::kNull;
    return w.read_null();
  }
  if (c != '-' && !is_digit(c)) {
    fact.state = U64Fact::State::kNotNumber;
    return w.skip_value(depth);
  }
  const std::string_view t = w.token();
  switch (classify_number(t)) {
    case NumberForm::kInvalid: return w.fail("invalid number");
    case NumberForm::kNegativeInteger: fact.state = U64Fact::State::kNegative; break;
    case NumberForm::kOther: fact.state = U64Fact::State::kNotInteger; break;
    case NumberForm::kUnsignedInteger:
      fact.state = parse_u64(t, fact.value) ? U64Fact::State::kOk : U64Fact::State::kOutOfRange;
      break;
  }
  w.advance();
  return true;
}

/// metadata.record_pks joined into `pk` with ',' (strings unescaped, integers as written).
bool read_record_pks(Walker& w, Facts& facts, std::string& pk, int depth) {
  const char c = w.peek();
  if (c == 'n') {
    facts.record_pks = Facts::Pks::kNull;
    return w.read_null();
  }
  if (c != '[') {
    facts.record_pks = Facts::Pks::kNotArray;
    return w.skip_value(depth);
  }
  facts.record_pks = Facts::Pks::kOk;
  std::size_t count = 0;
  const bool ok = w.elements(depth, [&](std::size_t index) {
    IdFact id;
    if (!read_id(w, id, depth + 1)) return false;
    if (id.usable()) {
      if (index > 0) pk.push_back(',');
      pk.append(id.text);
    } else if (facts.record_pks == Facts::Pks::kOk) {
      facts.record_pks = id.state == IdFact::State::kNonCanonical ? Facts::Pks::kNonCanonical : Facts::Pks::kBadElement;
      facts.record_pks_bad_index = index;
    }
    ++count;
    return true;
  });
  facts.record_pks_count = count;
  return ok;
}

bool read_metadata(Walker& w, Facts& facts, std::string& pk, KeySet& keys, int depth) {
  return w.members(depth, &keys, [&](std::string_view key, bool repeated) {
    const int inner = depth + 1;
    if (repeated) {
      facts.note_duplicate("metadata", key);
      return w.skip(inner);
    }
    if (eq(key, "commit_lsn") && facts.commit_lsn.state == U64Fact::State::kAbsent) {
      return read_u64(w, facts.commit_lsn, inner);
    }
    if (eq(key, "commit_idx") && facts.commit_idx.state == U64Fact::State::kAbsent) {
      return read_u64(w, facts.commit_idx, inner);
    }
    if (eq(key, "record_pks") && facts.record_pks == Facts::Pks::kAbsent) {
      return read_record_pks(w, facts, pk, inner);
    }
    if (eq(key, "table_name") && facts.table_name == Seen::kAbsent) {
      IdFact s;
      if (!read_id(w, s, inner)) return false;
      facts.table_name = string_fact(s);
      facts.table_name_value = s.text;
      return true;
    }
    if (eq(key, "idempotency_key") && facts.idempotency_key == Seen::kAbsent) {
      IdFact s;
      if (!read_id(w, s, inner)) return false;
      facts.idempotency_key = string_fact(s);
      facts.idempotency_key_value = s.text;
      return true;
    }
    if (eq(key, "commit_timestamp") && facts.commit_timestamp == Seen::kAbsent) {
      const char c = w.peek();
      if (c == '{' || c == '[') {
        facts.commit_timestamp = Seen::kWrongType;
        facts.commit_timestamp_what = type_phrase(c);
      } else {
        facts.commit_timestamp = Seen::kOk;  // a scalar, copied as given (null included)
        facts.commit_timestamp_raw = w.token();
      }
    }
    return w.skip(inner);
  });
}

bool read_record(Walker& w, Facts& facts, const std::array<std::string_view, kIdSlots>& names, KeySet& keys,
                 int depth) {
  const char* const begin = w.here();
  const bool ok = w.members(depth, &keys, [&](std::string_view key, bool repeated) {
    if (repeated) {
      facts.note_duplicate("record", key);
      return w.skip(depth + 1);
    }
    IdFact* targets[kIdSlots];
    std::size_t n = 0;
    for (std::size_t i = 0; i < kIdSlots; ++i) {
      if (key == names[i] && facts.ids[i].state == IdFact::State::kAbsent) targets[n++] = &facts.ids[i];
    }
    if (n == 0) return w.skip(depth + 1);
    IdFact id;
    if (!read_id(w, id, depth + 1)) return false;
    for (std::size_t i = 0; i < n; ++i) *targets[i] = id;
    return true;
  });
  if (!ok) return false;
  facts.record_raw = std::string_view(begin, static_cast<std::size_t>(w.previous_end() - begin));
  return true;
}

/// A top-level member that must be an object: classifies it, and skips it when it is not one.
bool classify_object_member(Walker& w, Seen& seen, const char*& what) {
  const char c = w.peek();
  if (c == '{') {
    seen = Seen::kOk;
    return true;
  }
  if (c == 'n') {
    seen = Seen::kNull;
    return w.read_null();
  }
  seen = Seen::kWrongType;
  what = type_phrase(c);
  return w.skip_value(1);
}

bool read_action(Walker& w, Facts& facts) {
  const char c = w.peek();
  if (c == 'n') {
    facts.action = Seen::kNull;
    return w.read_null();
  }
  if (c != '"') {
    facts.action = Seen::kWrongType;
    return w.skip_value(1);
  }
  std::string_view content;
  bool escaped;
  if (!w.read_string(content, escaped)) return false;
  const std::string_view s = w.keep(content, escaped);
  facts.action_is_string = true;
  facts.action = Seen::kWrongType;
  for (std::string_view known : kActions) {
    if (s == known) {
      facts.action = Seen::kOk;
      facts.action_value = known;  // static storage, not the body
    }
  }
  return true;
}

/// The top-level members the contract reads: record, metadata, action (each once; a repeated
/// key is noted and skipped, so invalid JSON later in the body still wins).
bool read_top_level(Walker& w, const std::array<std::string_view, kIdSlots>& id_names, BodyKeys& keys, Facts& facts,
                    std::string& pk) {
  return w.members(0, &keys.body, [&](std::string_view key, bool repeated) {
    if (repeated) {
      facts.note_duplicate("the body", key);
      return w.skip(1);
    }
    if (eq(key, "record") && facts.record == Seen::kAbsent) {
      if (!classify_object_member(w, facts.record, facts.record_what)) return false;
      return facts.record != Seen::kOk || read_record(w, facts, id_names, keys.record, 1);
    }
    if (eq(key, "metadata") && facts.metadata == Seen::kAbsent) {
      if (!classify_object_member(w, facts.metadata, facts.metadata_what)) return false;
      return facts.metadata != Seen::kOk || read_metadata(w, facts, pk, keys.metadata, 1);
    }
    if (eq(key, "action") && facts.action == Seen::kAbsent) return read_action(w, facts);
    return w.skip(1);
  });
}

bool invalid_json(const Walker& w, TransformOutput& out) {
  out.error.assign("body is not valid JSON: ").append(w.error() ? w.error() : "malformed");
  out.error.append(" at byte ");
  append_uint(w.error_offset(), out.error);
  return reject(out, ErrorKind::kInvalidJson);
}

}  // namespace

bool walk_body(Walker& w, const Table& table, BodyKeys& keys, Facts& facts, std::string& pk, TransformOutput& out) {
  if (w.peek() != '{') {
    const char first = w.peek();
    if (!w.skip_value(0)) return invalid_json(w, out);
    if (!w.at_end()) {
      w.fail("trailing content after the JSON value");
      return invalid_json(w, out);
    }
    out.error.assign("body is ").append(type_phrase(first)).append(", not a JSON object");
    return reject(out, ErrorKind::kInvalidShape);
  }
  const std::array<std::string_view, kIdSlots> id_names{"agent_id", "chat_id", "message_id", table.key_column};
  if (!read_top_level(w, id_names, keys, facts, pk)) return invalid_json(w, out);
  if (!w.at_end()) {
    w.fail("trailing content after the JSON object");
    return invalid_json(w, out);
  }
  return true;
}

}  // namespace cdc::transform_detail
