#include "cdc/core/subject.hpp"

#include <array>

#include "cdc/core/json_writer.hpp"

namespace cdc {
namespace {

constexpr std::array<bool, 256> make_token_bytes() {
  std::array<bool, 256> ok{};
  for (std::size_t c = 0; c < ok.size(); ++c) ok[c] = c >= 0x20 && c != 0x7f;
  ok['.'] = false;
  ok['*'] = false;
  ok['>'] = false;
  ok[' '] = false;  // \t \n \v \f \r are below 0x20
  return ok;
}
constexpr std::array<bool, 256> kTokenByteOk = make_token_bytes();

}  // namespace

bool is_token_byte(unsigned char c) noexcept { return kTokenByteOk[c]; }

bool is_valid_token(std::string_view token) noexcept {
  if (token.empty() || token.size() > kMaxTokenBytes) return false;
  for (char c : token) {
    if (!kTokenByteOk[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

void append_sanitized_token(std::string_view token, std::string& out) {
  if (token.empty()) {
    out.push_back('_');
    return;
  }
  if (token.size() > kMaxTokenBytes) {
    std::size_t cut = kMaxTokenBytes;
    // Do not cut a UTF-8 sequence in two: back up over continuation bytes.
    while (cut > 0 && (static_cast<unsigned char>(token[cut]) & 0xC0) == 0x80) --cut;
    if (cut == 0) cut = kMaxTokenBytes;
    token = token.substr(0, cut);
  }
  for (char c : token) out.push_back(kTokenByteOk[static_cast<unsigned char>(c)] ? c : '_');
}

// Writes why `token` is not a valid subject token into `error`; false when it is valid.
bool describe_invalid_token(std::string_view name, std::string_view token, std::string& error) {
  if (token.empty()) {
    error.assign(name).append(" is empty");
    return true;
  }
  if (token.size() > kMaxTokenBytes) {
    error.assign(name).append(" is longer than 128 bytes");
    return true;
  }
  for (char ch : token) {
    const auto c = static_cast<unsigned char>(ch);
    if (kTokenByteOk[c]) continue;
    error.assign(name);
    if (c == '.' || c == '*' || c == '>') {
      error.append(" contains '").push_back(ch);
      error.push_back('\'');
    } else if (c == ' ') {
      error.append(" contains a space");
    } else {
      error.append(" contains control character ");
      append_hex_byte(c, error);
    }
    return true;
  }
  return false;
}

}  // namespace cdc
