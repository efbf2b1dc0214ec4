// Dead-letter records (CONTRACT.md section 6).

#include "cdc/core/dead_letter.hpp"

#include "cdc/core/json_writer.hpp"
#include "cdc/core/subject.hpp"

namespace cdc {

std::string_view to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::kNone: return "none";
    case ErrorKind::kInvalidJson: return "invalid_json";
    case ErrorKind::kInvalidShape: return "invalid_shape";
    case ErrorKind::kMissingField: return "missing_field";
    case ErrorKind::kInvalidToken: return "invalid_token";
    case ErrorKind::kTableMismatch: return "table_mismatch";
    case ErrorKind::kOversized: return "oversized";
    case ErrorKind::kMaxDeliveries: return "max_deliveries";
    case ErrorKind::kPublishRejected: return "publish_rejected";
    case ErrorKind::kInvalidSubject: return "invalid_subject";
  }
  return "none";
}

void build_dead_letter_subject(std::string_view prefix, std::string_view company, std::string_view table,
                               std::string& out) {
  out.clear();
  out.append(prefix).push_back('.');
  append_sanitized_token(company, out);
  out.push_back('.');
  append_sanitized_token(table, out);
}

void build_dead_letter_payload(const DeadLetter& letter, std::string& out) {
  out.clear();
  out.reserve(letter.data.size() / 3 * 4 + 512);
  out.append("{\"source_subject\":");
  append_json_string(letter.source_subject, out);
  out.append(",\"source_stream\":");
  append_json_string(letter.source_stream, out);
  out.append(",\"source_seq\":");
  append_uint(letter.source_seq, out);
  out.append(",\"delivery_attempts\":");
  append_uint(letter.delivery_attempts, out);
  out.append(",\"error_kind\":");
  append_json_string(to_string(letter.error_kind), out);
  out.append(",\"error\":");
  append_json_string(letter.error, out);
  out.append(",\"event_id\":");
  if (letter.has_event_id) {
    append_json_string(letter.event_id, out);
  } else {
    out.append("null");
  }
  out.append(",\"failed_at\":\"");
  append_rfc3339(letter.failed_at_unix_ns, out);
  out.append("\",\"headers\":");
  if (letter.headers != nullptr) {
    append_json_headers(*letter.headers, out);
  } else {
    out.append("{}");
  }
  out.append(",\"data_base64\":\"");
  const std::size_t encoded = (letter.data.size() + 2) / 3 * 4;
  if (letter.max_bytes == 0 || out.size() + encoded + 2 <= letter.max_bytes) {
    append_base64(letter.data, out);
    out.append("\"}");
    return;
  }
  // Over the limit (the broker would refuse the record and the source could never be
  // completed): keep the longest prefix of the body that fits, in whole base64 quads.
  std::string tail = "\",\"data_truncated\":true,\"data_bytes\":";
  append_uint(letter.data.size(), tail);
  tail.push_back('}');
  const std::size_t used = out.size() + tail.size();
  const std::size_t room = letter.max_bytes > used ? letter.max_bytes - used : 0;
  append_base64(letter.data.substr(0, room / 4 * 3), out);
  out.append(tail);
}

}  // namespace cdc
