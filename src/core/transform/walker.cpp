// The walker's out-of-line parts: escapes and the validating skip of any value (walker.hpp).

#include "walker.hpp"

namespace cdc::transform_detail {
namespace {

bool hex4(const char* p, const char* end, std::uint32_t& value) noexcept {
  if (end - p < 4) return false;
  value = 0;
  for (int k = 0; k < 4; ++k) {
    const char c = p[k];
    std::uint32_t d;
    if (c >= '0' && c <= '9') {
      d = static_cast<std::uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<std::uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      d = static_cast<std::uint32_t>(c - 'A' + 10);
    } else {
      return false;
    }
    value = value << 4 | d;
  }
  return true;
}

}  // namespace

const char* type_phrase(char c) noexcept {
  switch (c) {
    case '{': return "an object";
    case '[': return "an array";
    case '"': return "a string";
    case 't':
    case 'f': return "a boolean";
    case 'n': return "null";
    default: return "a number";
  }
}

bool unescape(std::string_view content, std::string* out) {
  const char* p = content.data();
  const char* const end = p + content.size();
  while (p < end) {
    const auto* bs = static_cast<const char*>(std::memchr(p, '\\', static_cast<std::size_t>(end - p)));
    if (bs == nullptr) {
      if (out) out->append(p, static_cast<std::size_t>(end - p));
      return true;
    }
    if (out) out->append(p, static_cast<std::size_t>(bs - p));
    p = bs + 1;
    if (p >= end) return false;
    char simple = 0;
    switch (*p) {
      case '"': simple = '"'; break;
      case '\\': simple = '\\'; break;
      case '/': simple = '/'; break;
      case 'b': simple = '\b'; break;
      case 'f': simple = '\f'; break;
      case 'n': simple = '\n'; break;
      case 'r': simple = '\r'; break;
      case 't': simple = '\t'; break;
      case 'u': break;
      default: return false;
    }
    if (simple != 0) {
      if (out) out->push_back(simple);
      ++p;
      continue;
    }
    std::uint32_t cp;
    if (!hex4(p + 1, end, cp)) return false;
    p += 5;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      std::uint32_t low;
      if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, end, low) || low < 0xDC00 || low > 0xDFFF) {
        return false;
      }
      p += 6;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    if (!out) continue;
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | cp >> 6));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | cp >> 12));
      out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | cp >> 18));
      out->push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return true;
}

namespace {

/// Is bit `k` of `bits` set (the k-th open container an object)?
[[gnu::always_inline]] inline bool bit_set(const std::uint64_t* bits, int k) noexcept {
  return (bits[k >> 6] >> (k & 63) & 1) != 0;
}

/// Why the scalar token at index `i` is not one JSON literal or number; nullptr when it is.
/// A token runs to the next index, less trailing whitespace.
[[gnu::always_inline]] inline const char* scalar_error(const char* buf, const std::uint32_t* idx,
                                                       std::uint32_t i) noexcept {
  const char c = buf[idx[i]];
  const bool number = c == '-' || is_digit(c);
  if (!number && c != 't' && c != 'f' && c != 'n') return "expected a value";
  const char* e = buf + idx[i + 1];
  while (is_json_ws(e[-1])) --e;  // stops at the token's first byte at the latest
  const std::string_view t(buf + idx[i], static_cast<std::size_t>(e - (buf + idx[i])));
  if (number) return classify_number(t) == NumberForm::kInvalid ? "invalid number" : nullptr;
  return eq(t, "true") || eq(t, "false") || eq(t, "null") ? nullptr : "invalid literal";
}

}  // namespace

bool Walker::skip_string_at(std::uint32_t& i) {
  if (!may_escape_) {
    ++i;
    return true;
  }
  i_ = i;
  std::string_view content;
  bool escaped;
  if (!read_string(content, escaped)) return false;
  i = i_;
  return true;
}

bool Walker::skip_value(int depth) {
  // Hot loop: the cursor lives in locals (stores through char pointers would otherwise make
  // the compiler reload the members after every write), and the open containers are bits.
  const char* const buf = buf_;
  const std::uint32_t* const idx = idx_;
  std::uint32_t i = i_;
  std::uint64_t* const objects = stack_;  // bit k set: the k-th open container is an object
  int top = 0;
  const char* why = nullptr;
  enum class State : std::uint8_t { kValue, kKey, kAfter };
  State state = State::kValue;
  for (;;) {
    const char c = buf[idx[i]];
    if (state == State::kValue) {
      if (c == '{' || c == '[') {
        if (depth + top >= kMaxDepth) {
          why = "nesting deeper than 1024";
          break;
        }
        const std::uint64_t bit = std::uint64_t{1} << (top & 63);
        objects[top >> 6] = c == '{' ? objects[top >> 6] | bit : objects[top >> 6] & ~bit;
        ++i;
        if (buf[idx[i]] == (c == '{' ? '}' : ']')) {  // empty: closed at once
          ++i;
          state = State::kAfter;
        } else {
          ++top;
          state = c == '{' ? State::kKey : State::kValue;
        }
        continue;
      }
      if (c == '"') {
        if (!skip_string_at(i)) return false;
      } else {
        why = scalar_error(buf, idx, i);
        if (why != nullptr) break;
        ++i;
      }
      state = State::kAfter;
    } else if (state == State::kKey) {
      if (c != '"') {
        why = "expected a string key";
        break;
      }
      if (!skip_string_at(i)) return false;
      if (buf[idx[i]] != ':') {
        why = "expected ':'";
        break;
      }
      ++i;
      state = State::kValue;
    } else {  // kAfter
      if (top == 0) {
        i_ = i;
        return true;
      }
      const bool object = bit_set(objects, top - 1);
      if (c == ',') {
        ++i;
        state = object ? State::kKey : State::kValue;
      } else if (c == (object ? '}' : ']')) {
        ++i;
        --top;
      } else {
        why = object ? "expected ',' or '}'" : "expected ',' or ']'";
        break;
      }
    }
  }
  i_ = i;
  return fail(why);
}

}  // namespace cdc::transform_detail
