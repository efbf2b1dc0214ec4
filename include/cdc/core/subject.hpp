#pragma once
/// The contract's rule for NATS subject tokens (CONTRACT.md section 3), in one place: the
/// transform checks routing ids with it, the config loader checks prefixes and table names.

#include <cstddef>
#include <string>
#include <string_view>

namespace cdc {

/// Longest valid token, in bytes.
inline constexpr std::size_t kMaxTokenBytes = 128;

/// True when byte `c` may appear in a token: not '.', '*', '>', space or a control character.
bool is_token_byte(unsigned char c) noexcept;
/// True when `token` is a valid NATS subject token per the contract: non-empty, at most 128
/// bytes, no '.', '*', '>', whitespace (space, \t, \n, \r, \f, \v) or control characters (< 0x20, 0x7f).
bool is_valid_token(std::string_view token) noexcept;
/// Appends `token` made valid: invalid bytes become '_', empty becomes "_", cut to 128 bytes.
void append_sanitized_token(std::string_view token, std::string& out);
/// Writes why `token` (called `name` in the message) is not a valid subject token into `error`,
/// e.g. "agent_id contains '.'"; returns false (and leaves `error` alone) when it is valid.
bool describe_invalid_token(std::string_view name, std::string_view token, std::string& error);

}  // namespace cdc
