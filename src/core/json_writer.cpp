// JSON writing helpers shared by every writer of the service (include/cdc/core/json_writer.hpp).

#include "cdc/core/json_writer.hpp"

#include <array>
#include <charconv>

namespace cdc {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr char kBase64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_base64_decode_table() {
  std::array<std::int8_t, 256> table{};
  for (auto& v : table) v = -1;
  for (int i = 0; i < 64; ++i) table[static_cast<unsigned char>(kBase64Alphabet[i])] = static_cast<std::int8_t>(i);
  return table;
}
constexpr std::array<std::int8_t, 256> kBase64Decode = make_base64_decode_table();

/// Length of the well-formed UTF-8 sequence (RFC 3629) starting at `p`, or 0 when there is none.
std::size_t utf8_sequence_length(const char* p, const char* end) noexcept {
  const auto at = [&](std::size_t i) { return static_cast<unsigned char>(p[i]); };
  const auto cont = [&](std::size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return p + i < end && at(i) >= lo && at(i) <= hi;
  };
  const unsigned c = at(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;  // no surrogates
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/// The escape of an ASCII byte that needs one ('"', '\\', below 0x20).
void append_escape(unsigned char c, std::string& out) {
  switch (c) {
    case '"': out.append("\\\""); break;
    case '\\': out.append("\\\\"); break;
    case '\b': out.append("\\b"); break;
    case '\f': out.append("\\f"); break;
    case '\n': out.append("\\n"); break;
    case '\r': out.append("\\r"); break;
    case '\t': out.append("\\t"); break;
    default: {
      const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
      out.append(esc, sizeof(esc));
    }
  }
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

void append_json_string(std::string_view s, std::string& out) {
  out.push_back('"');
  const char* run = s.data();
  const char* const end = s.data() + s.size();
  for (const char* p = s.data(); p != end; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    if (c >= 0x80) {
      // Copied when it starts a valid UTF-8 sequence; a stray byte (a NATS subject or header
      // may hold any) becomes U+FFFD, so the output is valid JSON whatever the input.
      if (const std::size_t n = utf8_sequence_length(p, end); n > 0) {
        p += n - 1;
        continue;
      }
      out.append(run, static_cast<std::size_t>(p - run));
      out.append("\\ufffd");
      run = p + 1;
      continue;
    }
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(run, static_cast<std::size_t>(p - run));
    run = p + 1;
    append_escape(c, out);
  }
  out.append(run, static_cast<std::size_t>(end - run));
  out.push_back('"');
}

void append_json_string_latin1(std::string_view s, std::string& out) {
  out.push_back('"');
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80) {
      const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
      out.append(esc, sizeof(esc));
    } else if (c < 0x20 || c == '"' || c == '\\') {
      append_escape(c, out);
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
}

void append_json_headers(const std::vector<std::pair<std::string, std::string>>& headers, std::string& out) {
  out.push_back('{');
  bool first = true;
  for (std::size_t i = 0; i < headers.size(); ++i) {
    bool repeated = false;
    for (std::size_t j = 0; j < i && !repeated; ++j) repeated = headers[j].first == headers[i].first;
    if (repeated) continue;
    if (!first) out.push_back(',');
    first = false;
    append_json_string(headers[i].first, out);
    out.push_back(':');
    append_json_string(headers[i].second, out);
  }
  out.push_back('}');
}

void append_uint(std::uint64_t v, std::string& out) {
  char buf[24];
  const auto result = std::to_chars(buf, buf + sizeof(buf), v);  // 24 bytes hold any uint64
  out.append(buf, static_cast<std::size_t>(result.ptr - buf));
}

void append_int(std::int64_t v, std::string& out) {
  char buf[24];
  const auto result = std::to_chars(buf, buf + sizeof(buf), v);  // 24 bytes hold any int64
  out.append(buf, static_cast<std::size_t>(result.ptr - buf));
}

void append_hex_byte(unsigned char c, std::string& out) {
  out.append("0x");
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 0xf]);
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

}  // namespace cdc
