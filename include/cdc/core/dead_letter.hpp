#pragma once
/// Dead-letter records (CONTRACT.md section 6). Pure; no I/O.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cdc/core/error_kind.hpp"
#include "cdc/core/json_writer.hpp"  // append_rfc3339, append_base64, decode_base64: callers of this header use them

namespace cdc {

struct DeadLetter {
  std::string_view source_subject;
  std::string_view source_stream;
  std::uint64_t source_seq = 0;
  std::uint32_t delivery_attempts = 0;
  ErrorKind error_kind = ErrorKind::kNone;
  std::string_view error;
  bool has_event_id = false;
  std::string_view event_id;
  std::int64_t failed_at_unix_ns = 0;
  /// Source headers in order; a repeated key keeps its first value.
  const std::vector<std::pair<std::string, std::string>>* headers = nullptr;
  std::string_view data;  ///< source body, any bytes
  /// Largest record to write, bytes (0 = no limit). When the record with the whole body would be
  /// larger, `data_base64` carries the longest prefix of the body that fits, and the record ends
  /// with `"data_truncated":true,"data_bytes":<size of the whole body>` (docs/decisions.md).
  std::size_t max_bytes = 0;
};

/// Writes the record's JSON (keys in the contract's order) into `out` (cleared first). With
/// `letter.max_bytes` set, `out` is at most that long unless the record without any body is
/// already longer (then data_base64 is empty and data_truncated is true).
void build_dead_letter_payload(const DeadLetter& letter, std::string& out);
/// Writes "<prefix>.<company>.<table>" with both tokens sanitised into `out` (cleared first).
void build_dead_letter_subject(std::string_view prefix, std::string_view company, std::string_view table,
                               std::string& out);

}  // namespace cdc
