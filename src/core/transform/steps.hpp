#pragma once
// Private to the transform (src/core/transform/): see transform.cpp for the map of its parts.
// The steps Transformer::Impl::run takes, in order, and what they share. Every step that can
// fail returns false after making `out` a dead letter (kind and reason set).

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "cdc/core/transform.hpp"
#include "facts.hpp"
#include "key_set.hpp"
#include "walker.hpp"

namespace cdc::transform_detail {

/// One allowed table and what the contract asks of it.
struct Table {
  std::string name;
  std::string key_column;
  bool has_message_id = false;  ///< "messages": message_id in the payload, chat_id in the subject
  bool has_chat_id = false;     ///< "messages" and "chats": chat_id is a required routing token
};

/// The keys seen in the top-level object, `record` and `metadata` (duplicate keys); one seed
/// per Transformer, drawn at construction.
struct BodyKeys {
  explicit BodyKeys(std::uint64_t seed) : body(seed), record(seed), metadata(seed) {}
  KeySet body;
  KeySet record;
  KeySet metadata;
};

/// What identifies the event, resolved from the facts (identity.cpp). Views point into the
/// facts, the body scratch, the Impl's pk buffer or `digits`: lives on run()'s stack.
struct Identity {
  std::string_view pk;          ///< record_pks joined, or the key column's value
  char digits[48] = {};         ///< "<commit_lsn>.<commit_idx>": two uint64 and a dot
  std::string_view position;    ///< into `digits`, or the idempotency key
  bool backfill = false;        ///< a read without commit_lsn: the id starts with "b."
  std::string_view message_id;  ///< "messages" only: message_id, or the pk when absent
};

inline Disposition dead_letter(TransformOutput& out, ErrorKind kind) noexcept {
  out.disposition = Disposition::kDeadLetter;
  out.error_kind = kind;
  return Disposition::kDeadLetter;
}

inline Disposition dead_letter(TransformOutput& out, ErrorKind kind, std::string_view error) {
  out.error.assign(error);
  return dead_letter(out, kind);
}

/// For the steps: makes `out` a dead letter and returns false ("do not go on").
inline bool reject(TransformOutput& out, ErrorKind kind) noexcept {
  dead_letter(out, kind);
  return false;
}

inline bool reject(TransformOutput& out, ErrorKind kind, std::string_view error) {
  dead_letter(out, kind, error);
  return false;
}

// ---- walk (facts.cpp) ---------------------------------------------------------------------------
/// Walks the whole body once and records its facts (the key column's name comes from `table`).
/// False: invalid_json (with the walker's reason and byte offset), or invalid_shape when the
/// body is valid JSON but not an object.
bool walk_body(Walker& w, const Table& table, BodyKeys& keys, Facts& facts, std::string& pk, TransformOutput& out);

// ---- rules (rules.cpp) --------------------------------------------------------------------------
/// The allowed tables from `rules`, checked (start-up zone: throws std::invalid_argument for an
/// empty table set, a table listed twice or without key column, a bad subject prefix or size).
std::vector<Table> table_rules(const TransformRules& rules);
/// The shape rules, in the contract's order: a key given twice > record > metadata > action >
/// metadata.table_name (and its match with the subject's table) > metadata.commit_timestamp.
bool check_shape(const Facts& facts, const Table& table, TransformOutput& out);

// ---- identity (identity.cpp) --------------------------------------------------------------------
/// pk: record_pks joined with ',' (`joined_pks`) when present and non-empty, else the table's
/// key column; never empty, no control character.
bool resolve_pk(const Facts& facts, const Table& table, std::string_view joined_pks, Identity& id,
                TransformOutput& out);
/// position: "<commit_lsn>.<commit_idx>", or the idempotency key of a read without LSN
/// (metadata.idempotency_key, else the Nats-Msg-Id header).
bool resolve_position(const Facts& facts, std::string_view msg_id_header, Identity& id, TransformOutput& out);
/// Writes out.event_id ("<position>:<company>:<table>:<pk>", "b." first for a backfill) and
/// sets out.has_event_id.
void write_event_id(const Table& table, const Identity& id, TransformOutput& out);
/// The routing tokens: company, agent_id, chat_id (chats, messages) and message_id (messages).
bool check_routing(const Facts& facts, const Table& table, Identity& id, TransformOutput& out);

// ---- output (output.cpp) ------------------------------------------------------------------------
/// out.subject: "<prefix>.<company>.<agent_id>.<table>[.<chat_id>]".
void write_subject(std::string_view prefix, const Facts& facts, const Table& table, TransformOutput& out);
/// out.payload: the enriched event, compact JSON, record copied byte for byte as row_data.
void write_payload(const Facts& facts, const Table& table, const Identity& id, TransformOutput& out);

}  // namespace cdc::transform_detail
