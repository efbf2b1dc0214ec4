#pragma once
/// Capture files (CONTRACT.md section 9): JSON Lines, one message per line:
/// {"subject":"cdc.co1.messages","headers":{"Nats-Msg-Id":"…"},"data":"<body>"}
/// with optional "stream_seq" and "time" (RFC 3339); a body that is not valid UTF-8 is written
/// as "data_base64" instead of "data". Pure; no I/O beyond std streams.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cdc {

struct CaptureRecord {
  std::string subject;
  std::vector<std::pair<std::string, std::string>> headers;  ///< in file order
  std::string data;                                          ///< raw body bytes
  std::optional<std::uint64_t> stream_seq;
  std::optional<std::string> time;  ///< RFC 3339 as written

  /// First value of header `name` (case-sensitive), or "".
  [[nodiscard]] std::string_view header(std::string_view name) const noexcept;
};

/// Parses one capture line. On failure returns false and sets `error` to a reason.
bool parse_capture_line(std::string_view line, CaptureRecord& out, std::string& error);
/// Serialises one record as a capture line (no trailing newline). Uses "data_base64" when the
/// body is not valid UTF-8. Keys in order: subject, headers, data|data_base64, stream_seq, time.
std::string format_capture_line(const CaptureRecord& record);

}  // namespace cdc
