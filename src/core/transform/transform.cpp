// The pure transform (CONTRACT.md sections 1-4 and 6): Transformer, and the order of its steps.
//
// Where the parts live (split the simdjson way; private headers next to the sources)
// -------------------------------------------------------------------------------
//   transform.cpp       Transformer, Impl::run: stage 1, then the steps below in order
//   walker.hpp/.cpp     Walker: the one validating pass over stage 1's structural indexes;
//                       the scalar grammar (numbers, literals, escapes)
//   key_set.hpp         KeySet: duplicate-key detection per object
//   facts.hpp/.cpp      Facts: what the walk found; the readers of record, metadata, action
//   rules.cpp           table rules (from TransformRules / Config) and the shape rules
//   identity.cpp        pk, position, event id; routing ids and their token checks
//   output.cpp          the output subject and the enriched payload
//   exact_writer.hpp    ExactWriter: a string written in pieces into a size computed up front
//   steps.hpp           what the steps share (Table, Identity) and their declarations
//   subject_layout.cpp  SubjectLayout (the ingest subject)
// JSON string escaping, numbers and hex are cdc/core/json_writer.hpp; the token rule is
// cdc/core/subject.hpp.
//
// How a body is read
// ------------------
//   1. It is copied into a scratch buffer allocated once (max_message_bytes + SIMDJSON_PADDING).
//   2. simdjson's stage 1 (SIMD, runtime-dispatched) runs over it: UTF-8, string boundaries,
//      unescaped control characters, and the array of structural indexes.
//   3. One forward walk over those indexes (`Walker`, walk_body) checks the whole document against the
//      JSON grammar and records the fields we need as plain `Facts`, in whatever order they
//      come. Raw spans come for free: `record` is copied to `row_data` byte for byte, integers
//      are kept as written (no 64-bit limit), `commit_timestamp` is the token as given.
//   4. The contract's rules are applied to the facts in a fixed order (check_shape,
//      resolve_pk, resolve_position, check_routing), so the error reported
//      for a broken message does not depend on the key order of its body:
//        JSON validity > a key given twice > record > metadata > action > metadata.table_name /
//        metadata.commit_timestamp shape > pk > position (event_id known from here on) >
//        company > agent_id > chat_id > message_id.
//
// Why not On-Demand or DOM: every value must be validated, also the ones we do not read (a
// skipped `[1,,2]` inside `record` would end up in a published payload). A validating
// On-Demand walk cost ~1.07 us per 1 KB event on the reference machine, and simdjson 3.0.1's
// DOM rejects integers above 64 bits, which must survive in row_data. Stage 1 + this walk +
// the output come to ~0.45 us (Release, same event).
//
// Reliance on simdjson internals: `implementation::create_dom_parser_implementation()`,
// `dom_parser_implementation::stage1()` and its `structural_indexes` / `n_structural_indexes`
// are public in simdjson 3.0.1 but not documented API; the walker also relies on stage 1
// storing `len` as the index after the last token. An upgrade that changes them would most
// likely break the build; the golden, fuzz and nesting tests exercise the rest.
//
// Duplicate keys: a key given twice in the top-level object, in `record` or in `metadata` is
// invalid_shape (CONTRACT.md section 6): readers disagree on which copy wins. Keys are compared
// after unescaping ("a\u005fid" is "a_id"), in a KeySet per object: an open-addressing table of
// views, reset by a generation counter instead of clearing, keyed by a seeded hash of the whole
// key (so crafted keys cannot force quadratic work). Deeper objects are copied byte for byte
// inside row_data and are not checked. The walk goes on after a duplicate, so invalid JSON
// later in the body still wins.

#include "cdc/core/transform.hpp"

#include "cdc/core/subject.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <utility>
#include <vector>

#include "cdc/core/transform.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "cdc/core/json_writer.hpp"
#include "steps.hpp"

namespace cdc {

using transform_detail::BodyKeys;
using transform_detail::dead_letter;
using transform_detail::Facts;
using transform_detail::Identity;
using transform_detail::kMaxDepth;
using transform_detail::Table;
using transform_detail::Walker;

void TransformOutput::clear() noexcept {
  disposition = Disposition::kSkip;
  company = {};
  table = {};
  error_kind = ErrorKind::kNone;
  error.clear();
  has_event_id = false;
  event_id.clear();
  subject.clear();
  payload.clear();
  action = {};
}

struct Transformer::Impl {
  /// simdjson's stage 1 for the CPU we run on (structural indexes only; see the top of this file).
  std::unique_ptr<simdjson::internal::dom_parser_implementation> indexer;
  std::unique_ptr<char[]> scratch;  ///< max_message_bytes + SIMDJSON_PADDING, allocated once
  std::size_t scratch_capacity = 0;
  std::unique_ptr<std::uint64_t[]> stack;  ///< kMaxDepth bits for Walker::skip_value
  std::string arena;                       ///< unescaped strings; capacity max_message_bytes, never grows
  std::string key_buf;                     ///< an unescaped key (rare)
  std::string pk;                          ///< joined record_pks
  std::vector<Table> tables;
  Facts facts;
  /// Keys seen in the top-level object, `record` and `metadata` (duplicate keys); one seed per
  /// Transformer, drawn at construction.
  BodyKeys keys{(std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()};

  [[nodiscard]] const Table* find(std::string_view table) const noexcept {
    for (const Table& t : tables) {
      if (t.name == table) return &t;
    }
    return nullptr;
  }

  /// Stage 1 over a copy of `body` in the padded scratch buffer; false: invalid_json.
  bool index(std::string_view body, TransformOutput& out);
  Disposition run(const Table& table, std::string_view body, std::string_view msg_id_header,
                  const TransformRules& rules, TransformOutput& out);
};

Transformer::Transformer(TransformRules rules)
    : rules_(std::move(rules)),
      layout_(rules_.subject_layout, rules_.company_prefix, rules_.partitions),
      impl_(std::make_unique<Impl>()) {
  impl_->tables = transform_detail::table_rules(rules_);
  if (simdjson::get_active_implementation()->create_dom_parser_implementation(rules_.max_message_bytes, kMaxDepth,
                                                                              impl_->indexer) != simdjson::SUCCESS) {
    throw std::bad_alloc();
  }
  impl_->scratch_capacity = rules_.max_message_bytes + simdjson::SIMDJSON_PADDING;
  impl_->scratch = std::make_unique<char[]>(impl_->scratch_capacity);
  impl_->stack = std::make_unique<std::uint64_t[]>(kMaxDepth / 64 + 1);
  impl_->arena.reserve(rules_.max_message_bytes);
  impl_->key_buf.reserve(256);
  impl_->pk.reserve(256);
}

Transformer::~Transformer() = default;

bool Transformer::allowed(std::string_view table) const noexcept { return impl_->find(table) != nullptr; }

Disposition Transformer::transform(std::string_view subject, std::string_view body, std::string_view msg_id_header,
                                   TransformOutput& out) noexcept {
  out.clear();
  std::string_view company, table;
  const bool matched = layout_.split(subject, company, table);
  if (!matched) {
    // Which tenant and table such a subject belongs to is a guess (in "cdc.a.b.messages", is
    // "a" the company?), so neither is reported: the dead letter goes to <dlq>._._ and the
    // record keeps the whole source_subject (docs/decisions.md).
    out.error.assign("subject does not fit subject_layout \"").append(rules_.subject_layout).append("\" (");
    append_uint(static_cast<std::uint64_t>(std::count(subject.begin(), subject.end(), '.') + 1), out.error);
    out.error.append(" tokens)");
    return dead_letter(out, ErrorKind::kInvalidSubject);
  }
  out.company = company;
  out.table = table;
  const Table* info = impl_->find(table);
  if (info == nullptr) {
    out.disposition = Disposition::kSkip;  // the body is not looked at, not even its size
    return Disposition::kSkip;
  }
  if (body.size() > rules_.max_message_bytes) {
    out.error.assign("body is ");
    append_uint(body.size(), out.error);
    out.error.append(" bytes, over max_message_bytes ");
    append_uint(rules_.max_message_bytes, out.error);
    return dead_letter(out, ErrorKind::kOversized);
  }
  return impl_->run(*info, body, msg_id_header, rules_, out);
}

bool Transformer::Impl::index(std::string_view body, TransformOutput& out) {
  char* const buffer = scratch.get();
  std::memcpy(buffer, body.data(), body.size());
  // Stage 1 reads up to SIMDJSON_PADDING bytes past the end; the walker relies on a NUL there.
  std::memset(buffer + body.size(), 0, simdjson::SIMDJSON_PADDING);
  const auto indexed =
      indexer->stage1(reinterpret_cast<const std::uint8_t*>(buffer), body.size(), simdjson::stage1_mode::regular);
  switch (indexed) {
    case simdjson::SUCCESS: return true;
    case simdjson::UTF8_ERROR: return transform_detail::reject(out, ErrorKind::kInvalidJson, "body is not valid UTF-8");
    case simdjson::EMPTY:
      return transform_detail::reject(out, ErrorKind::kInvalidJson, "body is not valid JSON: it is empty");
    default:
      out.error.assign("body is not valid JSON: ").append(simdjson::error_message(indexed));
      return transform_detail::reject(out, ErrorKind::kInvalidJson);
  }
}

Disposition Transformer::Impl::run(const Table& table, std::string_view body, std::string_view msg_id_header,
                                   const TransformRules& rules, TransformOutput& out) {
  if (!index(body, out)) return out.disposition;

  facts = Facts{};
  pk.clear();
  arena.clear();
  const bool may_escape = std::memchr(scratch.get(), '\\', body.size()) != nullptr;
  Walker w(scratch.get(), indexer->structural_indexes.get(), indexer->n_structural_indexes, may_escape, stack.get(),
           arena, key_buf);
  if (!transform_detail::walk_body(w, table, keys, facts, pk, out)) return out.disposition;

  Identity id;
  if (!transform_detail::check_shape(facts, table, out) || !transform_detail::resolve_pk(facts, table, pk, id, out) ||
      !transform_detail::resolve_position(facts, msg_id_header, id, out)) {
    return out.disposition;
  }
  transform_detail::write_event_id(table, id, out);  // known from here on, also for a dead letter
  if (!transform_detail::check_routing(facts, table, id, out)) return out.disposition;

  out.action = facts.action_value;
  transform_detail::write_subject(rules.subject_prefix, facts, table, out);
  transform_detail::write_payload(facts, table, id, out);
  out.disposition = Disposition::kPublish;
  return Disposition::kPublish;
}

}  // namespace cdc
