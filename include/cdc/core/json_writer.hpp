#pragma once
/// The pieces every JSON writer of the service shares, in one place: string literals (one UTF-8
/// rule), numbers, hex bytes, base64 and RFC 3339 timestamps. Used by the transform's output,
/// dead-letter records, log lines, the DLQ worker's headers column, capture files and the
/// operator tool. Pure; no I/O; no allocation beyond growing `out`.
///
/// Thread contract: free functions without shared state; any thread.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cdc {

/// Appends `s` as a JSON string literal (with quotes), escaping '"', '\\' and control
/// characters (\b \f \n \r \t, others as \u00XX). Valid UTF-8 is copied as it is; a byte that
/// is not part of a valid UTF-8 sequence becomes \ufffd, so the result is always valid JSON.
void append_json_string(std::string_view s, std::string& out);

/// Appends `s` as a JSON string literal reading every byte >= 0x80 as Latin-1 (\u00XX), for
/// text that is not valid UTF-8 (a capture's subject or header): lossy for UTF-8, but every byte
/// stays visible and the line stays parseable. Escapes as append_json_string otherwise.
void append_json_string_latin1(std::string_view s, std::string& out);

/// Does `s` hold a byte a JSON string must escape ('"', '\\' or below 0x20)? Bytes >= 0x80
/// are not looked at: for text known to be valid UTF-8. Checks 8 bytes at a time (it runs on
/// every field of every published payload), hence inline.
[[nodiscard]] inline bool needs_json_escape(std::string_view s) noexcept {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  auto has_zero_byte = [](std::uint64_t v) { return ((v - kOnes) & ~v & kHigh) != 0; };
  const char* p = s.data();
  std::size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    // "Is any byte below 0x20 / equal to '"' / equal to '\\'", exactly (Bit Twiddling Hacks'
    // hasless and haszero; bytes >= 0x80 never match).
    if ((((v - kOnes * 0x20) & ~v & kHigh) != 0) || has_zero_byte(v ^ (kOnes * '"')) ||
        has_zero_byte(v ^ (kOnes * '\\'))) {
      return true;
    }
  }
  for (; n > 0; ++p, --n) {
    const auto c = static_cast<unsigned char>(*p);
    if (c < 0x20 || c == '"' || c == '\\') return true;
  }
  return false;
}

/// Appends `headers` (NATS headers in order, a multimap) as one JSON object: a name given more
/// than once keeps its first value (header lists are short: quadratic is fine). For dead-letter
/// records and the DLQ worker's jsonb column.
void append_json_headers(const std::vector<std::pair<std::string, std::string>>& headers, std::string& out);

/// Appends `v` in decimal.
void append_uint(std::uint64_t v, std::string& out);
/// Appends `v` in decimal (with '-' when negative).
void append_int(std::int64_t v, std::string& out);
/// Appends `c` as "0x" and two lower-case hex digits ("0x1f"), for error messages.
void append_hex_byte(unsigned char c, std::string& out);

/// Appends standard base64 (with padding) of `data`.
void append_base64(std::string_view data, std::string& out);
/// Decodes standard base64 into `out` (overwritten; left empty on failure). Padding is
/// optional; when present it must complete the last quad. No whitespace, no URL-safe alphabet.
/// False on invalid input. Here, next to append_base64, so both read one alphabet.
bool decode_base64(std::string_view text, std::string& out);

/// Appends an RFC 3339 UTC timestamp with microseconds, trailing zeros of the fraction dropped
/// ("2026-11-22T10:00:01.5Z", "2026-11-22T10:00:01Z"). Truncates towards the past.
void append_rfc3339(std::int64_t unix_ns, std::string& out);

}  // namespace cdc
