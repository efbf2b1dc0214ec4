// Dead-letter records (CONTRACT.md section 6).

#include "cdc/core/dead_letter.hpp"

#include <array>
#include <charconv>

namespace cdc {
namespace {

constexpr char kBase64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_base64_decode_table() {
  std::array<std::int8_t, 256> table{};
  for (auto& v : table) v = -1;
  for (int i = 0; i < 64; ++i) table[static_cast<unsigned char>(kBase64Alphabet[i])] = static_cast<std::int8_t>(i);
  return table;
}
constexpr std::array<std::int8_t, 256> kBase64Decode = make_base64_decode_table();

void append_uint(std::uint64_t v, std::string& out) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  (void)ec;
  out.append(buf, static_cast<std::size_t>(end - buf));
}

void append_padded(std::int64_t v, int width, std::string& out) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v < 0 ? -v : v);
  (void)ec;
  if (v < 0) out.push_back('-');
  for (auto n = end - buf; n < width; ++n) out.push_back('0');
  out.append(buf, static_cast<std::size_t>(end - buf));
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
  const std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/// Howard Hinnant's civil_from_days: days since 1970-01-01 to a proleptic Gregorian date.
void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
}

}  // namespace

void append_rfc3339(std::int64_t unix_ns, std::string& out) {
  // Truncate to microseconds towards the past, so 10:00:00.9999999 never becomes 10:00:01.
  const std::int64_t us = floor_div(unix_ns, 1000);
  const std::int64_t secs = floor_div(us, 1000000);
  std::int64_t frac = us - secs * 1000000;
  const std::int64_t days = floor_div(secs, 86400);
  const std::int64_t sod = secs - days * 86400;
  std::int64_t year = 0;
  unsigned month = 0, day = 0;
  civil_from_days(days, year, month, day);
  append_padded(year, 4, out);
  out.push_back('-');
  append_padded(month, 2, out);
  out.push_back('-');
  append_padded(day, 2, out);
  out.push_back('T');
  append_padded(sod / 3600, 2, out);
  out.push_back(':');
  append_padded(sod / 60 % 60, 2, out);
  out.push_back(':');
  append_padded(sod % 60, 2, out);
  if (frac != 0) {
    int digits = 6;
    while (frac % 10 == 0) {
      frac /= 10;
      --digits;
    }
    out.push_back('.');
    append_padded(frac, digits, out);
  }
  out.push_back('Z');
}

void append_base64(std::string_view data, std::string& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const std::size_t n = data.size();
  std::size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8) | p[i + 2];
    const char quad[4] = {kBase64Alphabet[v >> 18], kBase64Alphabet[(v >> 12) & 63], kBase64Alphabet[(v >> 6) & 63],
                          kBase64Alphabet[v & 63]};
    out.append(quad, 4);
  }
  if (const std::size_t rest = n - i; rest > 0) {
    std::uint32_t v = std::uint32_t{p[i]} << 16;
    if (rest == 2) v |= std::uint32_t{p[i + 1]} << 8;
    const char quad[4] = {kBase64Alphabet[v >> 18], kBase64Alphabet[(v >> 12) & 63],
                          rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=', '='};
    out.append(quad, 4);
  }
}

// `out` is overwritten (left empty on failure). Padding is optional; when present it must
// complete the last quad. No whitespace, no URL-safe alphabet.
bool decode_base64(std::string_view text, std::string& out) {
  out.clear();
  std::size_t len = text.size();
  std::size_t pad = 0;
  while (len > 0 && text[len - 1] == '=' && pad < 2) {
    --len;
    ++pad;
  }
  if (pad > 0 && text.size() % 4 != 0) return false;
  if (len % 4 == 1) return false;
  out.reserve(len / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < len; ++i) {
    const std::int8_t v = kBase64Decode[static_cast<unsigned char>(text[i])];
    if (v < 0) {
      out.clear();
      return false;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
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
  out.append("\",\"headers\":{");
  if (letter.headers != nullptr) {
    const auto& headers = *letter.headers;
    bool first = true;
    for (std::size_t i = 0; i < headers.size(); ++i) {
      bool repeated = false;  // a repeated key keeps its first value; header lists are short
      for (std::size_t j = 0; j < i && !repeated; ++j) repeated = headers[j].first == headers[i].first;
      if (repeated) continue;
      if (!first) out.push_back(',');
      first = false;
      append_json_string(headers[i].first, out);
      out.push_back(':');
      append_json_string(headers[i].second, out);
    }
  }
  out.append("},\"data_base64\":\"");
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
