#pragma once
/// The pure core of the contract (CONTRACT.md sections 1-4 and 6): subject layout, filter,
/// identity (pk, event_id), routing tokens, output subject and payload. No I/O, no servers.
/// Implemented in src/core/transform/ (its transform.cpp maps the parts).
///
/// Thread contract: a Transformer owns a simdjson parser and a padded scratch buffer, so each
/// thread uses its own instance. transform() is noexcept, allocates nothing once the output
/// buffers have grown to the working size, and never throws on any input.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cdc/core/error_kind.hpp"
#include "cdc/core/subject.hpp"

namespace cdc {

enum class Disposition : std::uint8_t {
  kSkip,        ///< table not in the allowed set: ack without parsing
  kPublish,     ///< out.subject / out.payload / out.event_id are set
  kDeadLetter,  ///< out.error_kind / out.error are set (out.event_id when it was known)
};

/// The rules a Transformer applies; built from Config by transform_rules().
struct TransformRules {
  /// Subject layout: literal tokens and placeholders {company} {table} {schema} {partition}
  /// {database} {action} {*}, separated by '.'. Needs {table} and exactly one of {company} or {schema}
  /// (the company is then the schema with company_prefix stripped).
  std::string subject_layout = "cdc.{company}.{table}";
  std::string company_prefix;
  /// Bound of a {partition} token (ingest.partitions when the layout has one; 0 = any).
  std::uint32_t partitions = 0;
  std::vector<std::string> tables{"messages", "chats", "agents"};
  /// Key column per table, used when metadata.record_pks is absent or empty.
  std::map<std::string, std::string> key_columns{
      {"messages", "message_id"}, {"chats", "chat_id"}, {"agents", "agent_id"}};
  std::size_t max_message_bytes = 1 << 20;
  std::string subject_prefix = "wa";
};

struct Config;
/// The service's transform rules from its configuration (ingest.subject_layout, company_prefix,
/// tables, key_columns, max_message_bytes; publish.subject_prefix). Defined in
/// src/core/transform/rules.cpp; used by the parse stage and by `cdc-replay transform`.
TransformRules transform_rules(const Config& config);

/// A parsed subject layout. Construction throws std::invalid_argument with a precise message
/// for a bad layout (start-up zone).
class SubjectLayout {
 public:
  /// `partitions` bounds a `{partition}` token (ingest.partitions; 0 = any canonical decimal).
  explicit SubjectLayout(const std::string& layout, std::string company_prefix = {}, std::uint32_t partitions = 0);
  /// Splits `subject`; false when it does not match the layout (wrong token count, literal
  /// mismatch, a `{partition}` token that is not a canonical decimal below the partition count).
  /// company/table are views into `subject` (company with the prefix stripped).
  bool split(std::string_view subject, std::string_view& company, std::string_view& table) const noexcept;
  /// The layout as a subject filter: every placeholder replaced by '*' ("cdc.*.*"). Not the
  /// consumer's default filter: the consumer takes every subject of the stream, so that one
  /// off the layout is dead-lettered (invalid_subject) rather than left in the stream.
  [[nodiscard]] std::string filter_subject() const;
  /// The filter of one partition's consumer: as filter_subject(), with `{partition}` as
  /// `partition` ("cdc.*.*.3").
  [[nodiscard]] std::string partition_filter(std::uint32_t partition) const;
  /// The layout has a `{partition}` token.
  [[nodiscard]] bool partitioned() const noexcept;

 private:
  enum class Part : std::uint8_t { kLiteral, kCompany, kTable, kSchema, kOther, kPartition };
  std::vector<std::pair<Part, std::string>> parts_;
  std::string company_prefix_;
  std::uint32_t partitions_ = 0;
};

/// Reusable output buffers of one transform() call. Views point into the subject passed in.
struct TransformOutput {
  Disposition disposition = Disposition::kSkip;
  std::string_view company;  ///< from the subject (empty when the subject did not match)
  std::string_view table;    ///< from the subject (empty when the subject did not match)
  ErrorKind error_kind = ErrorKind::kNone;
  std::string error;  ///< human-readable reason, e.g. "agent_id contains '.'"
  bool has_event_id = false;
  /// "<lsn>.<idx>:<company>:<table>:<pk>" or "b.<idempotency_key>:<company>:<table>:<pk>"
  std::string event_id;
  std::string subject;      ///< output subject (kPublish)
  std::string payload;      ///< output payload, compact JSON (kPublish)
  std::string_view action;  ///< "insert" | "update" | "delete" | "read" (kPublish), static storage

  void clear() noexcept;
};

class Transformer {
 public:
  /// Throws std::invalid_argument for bad rules (layout, empty table set, table without key column).
  explicit Transformer(TransformRules rules);
  ~Transformer();
  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  /// Is `table` in the allowed set? (Cheap; no allocation.)
  [[nodiscard]] bool allowed(std::string_view table) const noexcept;

  /// Transforms one source message. `msg_id_header` is the Nats-Msg-Id header ("" if none),
  /// used as the idempotency key of a read without commit_lsn when metadata has none.
  Disposition transform(std::string_view subject, std::string_view body, std::string_view msg_id_header,
                        TransformOutput& out) noexcept;

  [[nodiscard]] const TransformRules& rules() const noexcept { return rules_; }
  [[nodiscard]] const SubjectLayout& layout() const noexcept { return layout_; }

 private:
  struct Impl;
  TransformRules rules_;
  SubjectLayout layout_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cdc
