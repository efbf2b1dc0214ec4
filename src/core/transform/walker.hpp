#pragma once
// Private to the transform (src/core/transform/): see transform.cpp for the map of its parts.
// The walker: one validating forward pass over simdjson's stage-1 structural indexes, with the
// scalar grammar (numbers, literals, escapes) it checks on the way.

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "cdc/core/internal_error.hpp"
#include "key_set.hpp"

namespace cdc::transform_detail {

/// Nesting limit of a body (simdjson's default). The walker keeps its own stack of this size.
constexpr int kMaxDepth = 1024;

inline bool is_json_ws(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
inline bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

/// Compares with a literal without a library call (string_view::operator== is not always inlined).
template <std::size_t N>
bool eq(std::string_view s, const char (&literal)[N]) noexcept {
  return s.size() == N - 1 && std::memcmp(s.data(), literal, N - 1) == 0;
}

enum class NumberForm : std::uint8_t { kInvalid, kUnsignedInteger, kNegativeInteger, kOther };

/// RFC 8259 number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
inline NumberForm classify_number(std::string_view s) noexcept {
  std::size_t i = 0;
  const std::size_t n = s.size();
  bool negative = false;
  if (i < n && s[i] == '-') {
    negative = true;
    ++i;
  }
  if (i >= n) return NumberForm::kInvalid;
  if (s[i] == '0') {
    ++i;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && is_digit(s[i])) ++i;
  } else {
    return NumberForm::kInvalid;
  }
  bool integer = true;
  if (i < n && s[i] == '.') {
    integer = false;
    const std::size_t start = ++i;
    while (i < n && is_digit(s[i])) ++i;
    if (i == start) return NumberForm::kInvalid;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    integer = false;
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    const std::size_t start = i;
    while (i < n && is_digit(s[i])) ++i;
    if (i == start) return NumberForm::kInvalid;
  }
  if (i != n) return NumberForm::kInvalid;
  if (!integer) return NumberForm::kOther;
  return negative ? NumberForm::kNegativeInteger : NumberForm::kUnsignedInteger;
}

/// Exact decimal to uint64 (never through a double); false on overflow.
inline bool parse_u64(std::string_view digits, std::uint64_t& value) noexcept {
  const auto result = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  return result.ec == std::errc() && result.ptr == digits.data() + digits.size();
}

/// What a value starting with `c` is, for error messages ("an object", "a boolean", ...).
const char* type_phrase(char c) noexcept;

/// Decodes (or, with out == nullptr, only checks) the escapes of a string's content.
/// Lone surrogates are rejected, as simdjson does.
bool unescape(std::string_view content, std::string* out);

// Walker: a validating forward walk over simdjson's stage-1 structural indexes.
//
// Stage 1 marks every '{' '}' '[' ']' ':' ',' outside strings, the opening quote of every string
// and the first byte of every other scalar; it has already checked UTF-8, closed strings and
// control characters inside strings. A token runs from its index to the next one; trailing
// whitespace aside, a scalar token must be exactly one number or literal. After the last token
// stage 1 stores len as a sentinel index, and the scratch buffer has a NUL there, which no
// grammar rule accepts, so running off the end is an ordinary error.

class Walker {
 public:
  /// `may_escape`: the body contains a backslash somewhere (most bodies do not, and then no
  /// string needs a look for escapes).
  Walker(const char* buf, const std::uint32_t* idx, std::uint32_t n, bool may_escape, std::uint64_t* stack,
         std::string& arena, std::string& key_buf) noexcept
      : buf_(buf), idx_(idx), n_(n), may_escape_(may_escape), stack_(stack), arena_(arena), key_buf_(key_buf) {}

  [[nodiscard]] char peek() const noexcept { return buf_[idx_[i_]]; }
  [[nodiscard]] bool at_end() const noexcept { return i_ == n_; }
  [[nodiscard]] const char* here() const noexcept { return buf_ + idx_[i_]; }
  /// End of the previous token (e.g. one past the '}' just consumed).
  [[nodiscard]] const char* previous_end() const noexcept { return buf_ + idx_[i_ - 1] + 1; }
  /// The current token without the whitespace after it.
  [[nodiscard]] std::string_view token() const noexcept {
    const char* b = buf_ + idx_[i_];
    const char* e = buf_ + idx_[i_ + 1];
    while (e > b && is_json_ws(e[-1])) --e;
    return {b, static_cast<std::size_t>(e - b)};
  }
  void advance() noexcept { ++i_; }

  [[nodiscard]] const char* error() const noexcept { return error_; }
  [[nodiscard]] std::size_t error_offset() const noexcept { return error_at_; }
  bool fail(const char* why) noexcept {
    if (error_ == nullptr) {
      error_ = why;
      error_at_ = idx_[i_];
    }
    return false;
  }

  /// Validates the string token at the cursor and moves past it. `content` is between the
  /// quotes, still escaped; `escaped` tells whether it has escapes.
  bool read_string(std::string_view& content, bool& escaped) {
    const std::string_view t = token();
    if (t.size() < 2 || t.back() != '"') return fail("malformed string");  // stage 1 prevents it
    content = std::string_view(t.data() + 1, t.size() - 2);
    escaped = may_escape_ && std::memchr(content.data(), '\\', content.size()) != nullptr;
    if (escaped && !unescape(content, nullptr)) return fail("invalid escape in string");
    advance();
    return true;
  }

  /// The unescaped value of a string read by read_string(); stable for the whole walk.
  std::string_view keep(std::string_view content, bool escaped) {
    if (!escaped) return content;
    // The arena's capacity is max_message_bytes and unescaping never grows a string, so this
    // never reallocates: earlier views stay valid.
    if (content.size() > arena_.capacity() - arena_.size()) [[unlikely]] {
      on_internal_error("unescaped string does not fit the arena sized for the largest body");
    }
    const std::size_t start = arena_.size();
    unescape(content, &arena_);
    return std::string_view(arena_).substr(start);
  }

  /// Validates one value at the cursor and moves past it; inline for the common plain string.
  [[gnu::always_inline]] bool skip(int depth) {
    if (peek() == '"' && !may_escape_) {
      advance();
      return true;
    }
    return skip_value(depth);
  }

  /// Validates one value of any type at the cursor and moves past it. `depth` is the number of
  /// containers around it. (walker.cpp)
  bool skip_value(int depth);

  /// Walks the object at the cursor (depth = containers around it), calling
  /// on_member(std::string_view key, bool repeated) with the cursor on each value; on_member
  /// must consume the value (skip_value() or a reader) and return false on error. The key view
  /// lives until the next key. With `keys`, each key is checked against the earlier ones of this
  /// object (`repeated`: given before), and the view lives for the whole walk.
  template <class F>
  bool members(int depth, KeySet* keys, F&& on_member) {
    if (depth >= kMaxDepth) return fail("nesting deeper than 1024");
    advance();  // '{'
    if (keys != nullptr) keys->reset();
    if (peek() == '}') {
      advance();
      return true;
    }
    for (;;) {
      if (peek() != '"') return fail("expected a string key");
      std::string_view content;
      bool escaped;
      if (!read_string(content, escaped)) return false;
      std::string_view key = content;
      bool repeated = false;
      if (keys != nullptr) {
        key = keep(content, escaped);  // stable: the set keeps views
        repeated = !keys->insert(key);
      } else if (escaped) {
        key_buf_.clear();
        unescape(content, &key_buf_);
        key = key_buf_;
      }
      if (peek() != ':') return fail("expected ':'");
      advance();
      if (!on_member(key, repeated)) return false;
      if (peek() == ',') {
        advance();
      } else if (peek() == '}') {
        advance();
        return true;
      } else {
        return fail("expected ',' or '}'");
      }
    }
  }

  /// Walks the array at the cursor like members(): on_element(std::size_t index).
  template <class F>
  bool elements(int depth, F&& on_element) {
    if (depth >= kMaxDepth) return fail("nesting deeper than 1024");
    advance();  // '['
    if (peek() == ']') {
      advance();
      return true;
    }
    for (std::size_t index = 0;; ++index) {
      if (!on_element(index)) return false;
      if (peek() == ',') {
        advance();
      } else if (peek() == ']') {
        advance();
        return true;
      } else {
        return fail("expected ',' or ']'");
      }
    }
  }

  /// Consumes a literal null at the cursor.
  bool read_null() noexcept {
    if (!eq(token(), "null")) return fail("invalid literal");
    advance();
    return true;
  }

 private:
  /// Past the string at index `i` (key or value). Without a backslash in the body, stage 1 has
  /// checked all a string can get wrong; with one, read_string validates its escapes.
  bool skip_string_at(std::uint32_t& i);

  const char* buf_;
  const std::uint32_t* idx_;
  std::uint32_t n_;
  std::uint32_t i_ = 0;
  bool may_escape_;
  std::uint64_t* stack_;  ///< kMaxDepth bits: which open containers are objects
  std::string& arena_;
  std::string& key_buf_;
  const char* error_ = nullptr;
  std::size_t error_at_ = 0;
};

}  // namespace cdc::transform_detail
