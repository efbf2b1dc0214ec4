#include "cdc/core/jetstream_meta.hpp"

#include <array>
#include <charconv>

namespace cdc {
namespace {

template <typename T>
bool to_number(std::string_view text, T& out) noexcept {
  if (text.empty()) return false;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

// Finds `"key"` followed by optional spaces and ':'; returns the position after the colon.
std::size_t find_key(std::string_view body, std::string_view key, std::size_t from = 0) noexcept {
  while (true) {
    const std::size_t at = body.find(key, from);
    if (at == std::string_view::npos) return at;
    std::size_t p = at + key.size();
    if (at > 0 && body[at - 1] == '"' && p < body.size() && body[p] == '"') {
      ++p;
      while (p < body.size() && (body[p] == ' ' || body[p] == '\t')) ++p;
      if (p < body.size() && body[p] == ':') {
        ++p;
        while (p < body.size() && (body[p] == ' ' || body[p] == '\t')) ++p;
        return p;
      }
    }
    from = at + 1;
  }
}

int read_int(std::string_view body, std::size_t p) noexcept {
  int v = 0;
  std::size_t end = p;
  while (end < body.size() && body[end] >= '0' && body[end] <= '9') ++end;
  to_number(body.substr(p, end - p), v);
  return v;
}

}  // namespace

bool parse_ack_subject(std::string_view reply, AckSubjectInfo& out) noexcept {
  std::array<std::string_view, 13> tok{};
  std::size_t n = 0;
  std::size_t start = 0;
  while (n < tok.size()) {
    const std::size_t dot = reply.find('.', start);
    tok[n++] = reply.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (n < 9 || tok[0] != "$JS" || tok[1] != "ACK") return false;
  std::size_t base = 2;              // v1: stream at token 2
  if (n == 11 || n == 12) base = 4;  // v2: domain, account hash first
  else if (n != 9) return false;
  out.stream = tok[base];
  out.consumer = tok[base + 1];
  return to_number(tok[base + 2], out.deliveries) && to_number(tok[base + 3], out.stream_seq);
}

bool parse_pub_ack(std::string_view body, PubAckInfo& out) noexcept {
  out = PubAckInfo{};
  const std::size_t err = find_key(body, "error");
  if (err != std::string_view::npos) {
    const std::size_t code = find_key(body, "code", err);
    if (code != std::string_view::npos) out.error_code = read_int(body, code);
    const std::size_t ecode = find_key(body, "err_code", err);
    if (ecode != std::string_view::npos) out.error_err_code = read_int(body, ecode);
    const std::size_t desc = find_key(body, "description", err);
    if (desc != std::string_view::npos && desc < body.size() && body[desc] == '"') {
      std::size_t end = desc + 1;
      while (end < body.size() && body[end] != '"') end += body[end] == '\\' ? 2 : 1;
      out.description = body.substr(desc + 1, std::min(end, body.size()) - desc - 1);
    }
    return true;
  }
  if (find_key(body, "stream") == std::string_view::npos) return false;
  out.ok = true;
  const std::size_t dup = find_key(body, "duplicate");
  out.duplicate = dup != std::string_view::npos && body.substr(dup, 4) == "true";
  return true;
}

}  // namespace cdc
