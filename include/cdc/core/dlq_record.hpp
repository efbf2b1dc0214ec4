#pragma once
/// What daisi-dlq-worker decides about one dead-letter record (CONTRACT.md section 6): parse it,
/// retry it (with which headers, Nats-Msg-Id and backoff) or keep it in PostgreSQL. Pure; no I/O.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cdc/core/dlq_worker_config.hpp"

namespace cdc {

/// Retries the worker already published for this event; travels with each retry and comes back
/// in the headers of the next dead letter (the service copies the source headers into it).
inline constexpr std::string_view kDlqAttemptHeader = "Daisi-Dlq-Attempt";
/// failed_at of the first dead letter of the event (RFC 3339), set on the first retry.
inline constexpr std::string_view kDlqFirstFailedHeader = "Daisi-Dlq-First-Failed-At";
/// The event's Nats-Msg-Id before the worker replaced it (a retry needs its own, see
/// dlq_retry_msg_id), set on the first retry.
inline constexpr std::string_view kDlqOriginalMsgIdHeader = "Daisi-Dlq-Original-Msg-Id";

using HeaderList = std::vector<std::pair<std::string, std::string>>;

/// One decoded dead-letter record.
struct DlqRecord {
  bool parsed = false;  ///< false: not a dead-letter record; `problem` says why
  std::string problem;
  std::string source_subject;
  std::string source_stream;
  std::uint64_t source_seq = 0;
  std::uint64_t delivery_attempts = 0;
  std::string error_kind;
  std::string error;
  std::optional<std::string> event_id;
  std::string failed_at;          ///< as written
  std::int64_t failed_at_ns = 0;  ///< 0 when failed_at is not RFC 3339
  HeaderList headers;             ///< in record order
  std::string body;               ///< decoded data_base64
  bool truncated = false;         ///< data_truncated: `body` is a prefix of the source body
};

/// Decodes `json` into `out` (reset first). False (with out.problem) when it is not a record the
/// worker can act on: not JSON, no source_subject, no or invalid data_base64, no error_kind.
bool parse_dlq_record(std::string_view json, DlqRecord& out);
/// As parse_dlq_record, without asking for error_kind: what `cdc-replay dlq` lists and redrives
/// (a redrive needs only the source subject and body).
bool read_dlq_record(std::string_view json, DlqRecord& out);

/// First value of header `name`, or nullptr.
[[nodiscard]] const std::string* find_header(const HeaderList& headers, std::string_view name) noexcept;
/// kDlqAttemptHeader as a number; 0 when absent or not a number.
[[nodiscard]] std::uint32_t dlq_attempts_done(const DlqRecord& record) noexcept;

enum class DlqAction : std::uint8_t {
  kRetry,      ///< republish to the source subject (when due)
  kExhausted,  ///< a retryable kind whose retries are spent: PostgreSQL
  kPermanent,  ///< can never succeed: PostgreSQL
};
[[nodiscard]] std::string_view to_string(DlqAction action) noexcept;

/// The decision for a parsed record. A publish_rejected whose error names a size limit (the
/// output is larger than the server's max_payload or the stream's max_msg_size) is permanent:
/// republishing the same body gives the same output.
[[nodiscard]] DlqAction classify_dlq_record(const DlqRecord& record, const DlqWorkerConfig& config) noexcept;

/// Wait before retry `attempt` (1-based): base * 2^(attempt-1), at most `max`.
[[nodiscard]] Millis dlq_backoff(std::uint32_t attempt, Millis base, Millis max) noexcept;

/// Nats-Msg-Id of retry `attempt` of the record at `dlq_seq`: deterministic, so a worker that
/// crashed after publishing publishes the same id again and the source stream drops the copy;
/// never the original's id, which the source stream's duplicate window would swallow.
[[nodiscard]] std::string dlq_retry_msg_id(std::string_view dlq_stream, std::uint64_t dlq_seq, std::uint32_t attempt);

/// Headers of retry `attempt`: the record's, with Nats-Msg-Id = `msg_id`, kDlqAttemptHeader =
/// attempt, and kDlqFirstFailedHeader / kDlqOriginalMsgIdHeader set when not there yet.
[[nodiscard]] HeaderList dlq_retry_headers(const DlqRecord& record, std::uint32_t attempt, std::string_view msg_id);

/// Headers for publishing a stored event again (cdc-replay exhausted requeue): `headers` without
/// the worker's attempt bookkeeping, with Nats-Msg-Id = `msg_id` (the old one is kept in
/// kDlqOriginalMsgIdHeader when that is not set yet).
[[nodiscard]] HeaderList dlq_requeue_headers(const HeaderList& headers, std::string_view msg_id);

/// `headers` as a JSON object (first value of a repeated name wins), for the jsonb column.
[[nodiscard]] std::string headers_to_json(const HeaderList& headers);

/// Unix ns of an RFC 3339 UTC timestamp as the service writes them ("2026-11-22T10:00:01.5Z");
/// nullopt otherwise.
[[nodiscard]] std::optional<std::int64_t> parse_rfc3339_utc(std::string_view text) noexcept;

}  // namespace cdc
