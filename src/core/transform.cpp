// The pure transform (CONTRACT.md sections 1-4 and 6).
//
// How a body is read
// ------------------
//   1. It is copied into a scratch buffer allocated once (max_message_bytes + SIMDJSON_PADDING).
//   2. simdjson's stage 1 (SIMD, runtime-dispatched) runs over it: UTF-8, string boundaries,
//      unescaped control characters, and the array of structural indexes.
//   3. One forward walk over those indexes (`Walker`) checks the whole document against the
//      JSON grammar and records the fields we need as plain `Facts`, in whatever order they
//      come. Raw spans come for free: `record` is copied to `row_data` byte for byte, integers
//      are kept as written (no 64-bit limit), `commit_timestamp` is the token as given.
//   4. The contract's rules are applied to the facts in a fixed order, so the error reported
//      for a broken message does not depend on the key order of its body:
//        JSON validity > a key given twice > record > metadata > action > metadata.table_name /
//        metadata.commit_timestamp shape > pk > position (event_id known from here on) >
//        company > agent_id > chat_id > message_id.
//
// Why not On-Demand or DOM: every value must be validated, also the ones we do not read (a
// skipped `[1,,2]` inside `record` would end up in a published payload). A validating
// On-Demand walk cost ~1.07 us per 1 KB event on the reference machine, and simdjson 3.0.1's
// DOM rejects integers above 64 bits, which must survive in row_data. Stage 1 + this walk +
// the output come to ~0.45 us (Release, same event).
//
// Reliance on simdjson internals: `implementation::create_dom_parser_implementation()`,
// `dom_parser_implementation::stage1()` and its `structural_indexes` / `n_structural_indexes`
// are public in simdjson 3.0.1 but not documented API; the walker also relies on stage 1
// storing `len` as the index after the last token. An upgrade that changes them would most
// likely break the build; the golden, fuzz and nesting tests exercise the rest.
//
// Duplicate keys: a key given twice in the top-level object, in `record` or in `metadata` is
// invalid_shape (CONTRACT.md section 6): readers disagree on which copy wins. Keys are compared
// after unescaping ("a\u005fid" is "a_id"), in a KeySet per object: an open-addressing table of
// views, reset by a generation counter instead of clearing, keyed by a seeded hash of the whole
// key (so crafted keys cannot force quadratic work). Deeper objects are copied byte for byte
// inside row_data and are not checked. The walk goes on after a duplicate, so invalid JSON
// later in the body still wins.

#include "cdc/core/transform.hpp"

#include "cdc/core/subject.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <utility>
#include <vector>

namespace cdc {
namespace {

/// Nesting limit of a body (simdjson's default). The walker keeps its own stack of this size.
constexpr int kMaxDepth = 1024;

bool is_control(unsigned char c) noexcept { return c < 0x20 || c == 0x7f; }
bool is_json_ws(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

/// Compares with a literal without a library call (string_view::operator== is not always inlined).
template <std::size_t N>
bool eq(std::string_view s, const char (&literal)[N]) noexcept {
  return s.size() == N - 1 && std::memcmp(s.data(), literal, N - 1) == 0;
}

void append_hex_byte(unsigned char c, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.append("0x");
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 0xf]);
}

void append_uint(std::uint64_t v, std::string& out) {
  char buf[24];
  const auto result = std::to_chars(buf, buf + sizeof(buf), v);  // 24 bytes hold any uint64
  out.append(buf, static_cast<std::size_t>(result.ptr - buf));
}

constexpr std::array<bool, 256> make_escape_bytes() {
  std::array<bool, 256> escape{};
  for (std::size_t c = 0; c < 0x20; ++c) escape[c] = true;
  escape['"'] = true;
  escape['\\'] = true;
  return escape;
}
constexpr std::array<bool, 256> kEscapeByte = make_escape_bytes();

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

/// Does `s` need escaping as a JSON string? (8 bytes at a time: this runs on every output field.)
bool needs_escape(std::string_view s) noexcept {
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
    if (kEscapeByte[static_cast<unsigned char>(*p)]) return true;
  }
  return false;
}

/// Writes pieces into a string sized once up front: the hot path's outputs are a dozen short
/// pieces, and per-piece std::string::append (capacity check, length update, terminator) costs
/// more than the copies themselves.
class ExactWriter {
 public:
  ExactWriter(std::string& out, std::size_t size) : out_(out) {
    out_.resize(size);  // within the capacity kept from earlier events: no allocation
    p_ = out_.data();
    end_ = p_ + size;
  }
  ExactWriter(const ExactWriter&) = delete;
  ExactWriter& operator=(const ExactWriter&) = delete;
  /// A size computed wrong is a broken invariant, not a bad event.
  ~ExactWriter() {
    if (p_ != end_) std::abort();
  }

  [[gnu::always_inline]] void put(std::string_view s) noexcept {
    if (s.size() > static_cast<std::size_t>(end_ - p_)) std::abort();
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  [[gnu::always_inline]] void put(char c) noexcept {
    if (p_ == end_) std::abort();
    *p_++ = c;
  }
  [[gnu::always_inline]] void quoted(std::string_view s) noexcept {
    put('"');
    put(s);
    put('"');
  }

 private:
  std::string& out_;
  char* p_;
  char* end_;
};

/// A control character would break a NATS header or a Redis key.
bool describe_control(std::string_view name, std::string_view value, std::string& error) {
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (!is_control(c)) continue;
    error.assign(name).append(" contains control character ");
    append_hex_byte(c, error);
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Scalars

enum class NumberForm : std::uint8_t { kInvalid, kUnsignedInteger, kNegativeInteger, kOther };

/// RFC 8259 number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
NumberForm classify_number(std::string_view s) noexcept {
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
bool parse_u64(std::string_view digits, std::uint64_t& value) noexcept {
  const auto result = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  return result.ec == std::errc() && result.ptr == digits.data() + digits.size();
}

/// What a value starting with `c` is, for error messages.
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

/// Decodes (or, with out == nullptr, only checks) the escapes of a string's content.
/// Lone surrogates are rejected, as simdjson does.
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

// ---------------------------------------------------------------------------------------------
// KeySet: the keys of one object, to find a key given twice. Allocation-free once the table
// has grown to the largest object seen (it starts at 64 slots; an object's keys are bounded by
// its bytes).

class KeySet {
 public:
  explicit KeySet(std::uint64_t seed)
      : seed_(seed), seed2_((seed * 0x9E3779B97F4A7C15ULL) ^ 0xA0761D6478BD642FULL), slots_(kInitialSlots) {}

  /// Starts a new object: forgets every key (O(1): the generation moves on).
  void reset() noexcept {
    count_ = 0;
    if (++generation_ == 0) {  // wrapped: old stamps could look current
      for (Slot& s : slots_) s.generation = 0;
      generation_ = 1;
    }
  }

  /// Adds `key` (a view that stays valid for the walk); false when the object already has it.
  [[gnu::always_inline]] bool insert(std::string_view key) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    const std::uint64_t h = hash(key);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = static_cast<std::size_t>(h) & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.generation != generation_) {
        s = Slot{generation_, static_cast<std::uint32_t>(h >> 32), key};
        ++count_;
        return true;
      }
      if (s.tag == static_cast<std::uint32_t>(h >> 32) && s.key.size() == key.size() &&
          std::memcmp(s.key.data(), key.data(), key.size()) == 0) {
        return false;
      }
    }
  }

 private:
  static constexpr std::size_t kInitialSlots = 64;
  struct Slot {
    std::uint32_t generation = 0;
    std::uint32_t tag = 0;  ///< high half of the hash: most mismatches end here
    std::string_view key;
  };

  /// wyhash-style: 16 bytes per 64x64->128-bit multiply, folded, with two per-Transformer
  /// secrets. A key of up to 16 bytes (nearly all column names) is one multiply, read with
  /// overlapping loads inside the key (assembling the tail byte by byte stalled store
  /// forwarding: a third of the check's time when measured).
  [[nodiscard]] std::uint64_t hash(std::string_view key) const noexcept {
    __extension__ using U128 = unsigned __int128;
    const auto mum = [](std::uint64_t a, std::uint64_t b) {
      const U128 r = static_cast<U128>(a) * b;
      return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
    };
    const auto r8 = [](const char* at) {
      std::uint64_t v;
      std::memcpy(&v, at, 8);
      return v;
    };
    const auto r4 = [](const char* at) {
      std::uint32_t v;
      std::memcpy(&v, at, 4);
      return std::uint64_t{v};
    };
    const char* p = key.data();
    std::size_t n = key.size();
    std::uint64_t h = seed_ ^ key.size();
    while (n > 16) {
      h = mum(r8(p) ^ seed2_, r8(p + 8) ^ h);
      p += 16;
      n -= 16;
    }
    std::uint64_t a = 0, b = 0;
    if (n >= 8) {
      a = r8(p);
      b = r8(p + n - 8);
    } else if (n >= 4) {
      a = r4(p);
      b = r4(p + n - 4);
    } else if (n > 0) {
      const auto u = [&](std::size_t i) { return std::uint64_t{static_cast<unsigned char>(p[i])}; };
      a = u(0) << 16 | u(n >> 1) << 8 | u(n - 1);
    }
    return mum(a ^ seed2_, b ^ h);
  }

  [[gnu::noinline]] void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    const std::size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.generation != generation_) continue;
      std::size_t i = static_cast<std::size_t>(hash(s.key)) & mask;
      while (slots_[i].generation == generation_) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }

  std::uint64_t seed_;
  std::uint64_t seed2_;
  std::uint32_t generation_ = 1;
  std::size_t count_ = 0;
  std::vector<Slot> slots_;
};

// ---------------------------------------------------------------------------------------------
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
    if (content.size() > arena_.capacity() - arena_.size()) std::abort();  // cannot happen, see above
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
  /// containers around it.
  bool skip_value(int depth) {
    // Hot loop: the cursor lives in locals (stores through char pointers would otherwise make
    // the compiler reload the members after every write), and the open containers are bits.
    const char* const buf = buf_;
    const std::uint32_t* const idx = idx_;
    std::uint32_t i = i_;
    std::uint64_t* const objects = stack_;  // bit k set: the k-th open container is an object
    int top = 0;
    const char* why = nullptr;
    auto trimmed_end = [&](std::uint32_t at) {
      const char* e = buf + idx[at + 1];
      while (is_json_ws(e[-1])) --e;  // stops at the token's first byte at the latest
      return e;
    };
    auto is_object = [&]() { return (objects[(top - 1) >> 6] >> ((top - 1) & 63) & 1) != 0; };
    // Past the string at index i (key or value). Without a backslash in the body, stage 1 has
    // checked all a string can get wrong; with one, read_string validates its escapes.
    auto skip_string = [&](std::uint32_t& i) {
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
    };
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
          if (c == '{') {
            objects[top >> 6] |= bit;
          } else {
            objects[top >> 6] &= ~bit;
          }
          ++top;
          ++i;
          const char next = buf[idx[i]];
          if (next == (c == '{' ? '}' : ']')) {
            ++i;
            --top;
            state = State::kAfter;
          } else {
            state = c == '{' ? State::kKey : State::kValue;
          }
          continue;
        }
        if (c == '"') {
          if (!skip_string(i)) return false;
        } else if (c == 't' || c == 'f' || c == 'n') {
          const std::string_view t(buf + idx[i], static_cast<std::size_t>(trimmed_end(i) - (buf + idx[i])));
          if (!eq(t, "true") && !eq(t, "false") && !eq(t, "null")) {
            why = "invalid literal";
            break;
          }
          ++i;
        } else if (c == '-' || is_digit(c)) {
          const std::string_view t(buf + idx[i], static_cast<std::size_t>(trimmed_end(i) - (buf + idx[i])));
          if (classify_number(t) == NumberForm::kInvalid) {
            why = "invalid number";
            break;
          }
          ++i;
        } else {
          why = "expected a value";
          break;
        }
        state = State::kAfter;
      } else if (state == State::kKey) {
        if (c != '"') {
          why = "expected a string key";
          break;
        }
        if (!skip_string(i)) return false;
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
        const bool object = is_object();
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

// ---------------------------------------------------------------------------------------------
// Facts gathered by the walk.

enum class Seen : std::uint8_t { kAbsent, kNull, kOk, kWrongType };

/// An identifier: a string (unescaped) or an integer in canonical decimal form (text as
/// written). `-0` is kNonCanonical: it names the same number as `0` but would make another
/// subject and another event id (CONTRACT.md section 4).
struct IdFact {
  enum class State : std::uint8_t { kAbsent, kNull, kString, kInteger, kWrongType, kNonCanonical };
  State state = State::kAbsent;
  std::string_view text;
  const char* what = "";  ///< kWrongType: "a boolean", "a fractional or exponent number", ...

  [[nodiscard]] bool usable() const noexcept { return state == State::kString || state == State::kInteger; }
};

/// An unsigned 64-bit integer (commit_lsn, commit_idx).
struct U64Fact {
  enum class State : std::uint8_t { kAbsent, kNull, kOk, kNegative, kNotInteger, kNotNumber, kOutOfRange };
  State state = State::kAbsent;
  std::uint64_t value = 0;
};

enum IdSlot : std::size_t { kAgentId, kChatId, kMessageId, kKeyColumn, kIdSlots };

struct Facts {
  Seen record = Seen::kAbsent;
  const char* record_what = "";
  std::string_view record_raw;

  Seen metadata = Seen::kAbsent;
  const char* metadata_what = "";

  Seen action = Seen::kAbsent;  ///< kWrongType: not a string, or not a known action
  bool action_is_string = false;
  std::string_view action_value;  ///< static storage

  Seen table_name = Seen::kAbsent;
  std::string_view table_name_value;
  Seen commit_timestamp = Seen::kAbsent;
  std::string_view commit_timestamp_raw;
  const char* commit_timestamp_what = "";
  U64Fact commit_lsn;
  U64Fact commit_idx;
  /// kNonCanonical: an element is -0 (invalid_token, like a routing id).
  enum class Pks : std::uint8_t {
    kAbsent,
    kNull,
    kOk,
    kNotArray,
    kBadElement,
    kNonCanonical
  } record_pks = Pks::kAbsent;
  std::size_t record_pks_count = 0;
  std::size_t record_pks_bad_index = 0;
  Seen idempotency_key = Seen::kAbsent;
  std::string_view idempotency_key_value;

  std::array<IdFact, kIdSlots> ids{};

  /// The first key given twice in the top-level object, `record` or `metadata` (invalid_shape).
  const char* duplicate_in = nullptr;  ///< "the body", "record", "metadata"; nullptr: none
  std::string_view duplicate_key;

  void note_duplicate(const char* where, std::string_view key) noexcept {
    if (duplicate_in != nullptr) return;
    duplicate_in = where;
    duplicate_key = key;
  }
};

constexpr std::string_view kActions[] = {"insert", "update", "delete", "read"};

bool read_id(Walker& w, IdFact& fact, int depth) {
  const char c = w.peek();
  if (c == '"') {
    std::string_view content;
    bool escaped;
    if (!w.read_string(content, escaped)) return false;
    fact.state = IdFact::State::kString;
    fact.text = w.keep(content, escaped);
    return true;
  }
  if (c == '-' || is_digit(c)) {
    const std::string_view t = w.token();
    switch (classify_number(t)) {
      case NumberForm::kInvalid: return w.fail("invalid number");
      case NumberForm::kUnsignedInteger:
      case NumberForm::kNegativeInteger:
        // The grammar already excludes leading zeros and '+'; "-0" is the one integer
        // spelling that is valid JSON and not canonical.
        fact.state = eq(t, "-0") ? IdFact::State::kNonCanonical : IdFact::State::kInteger;
        fact.text = t;
        break;
      case NumberForm::kOther:
        fact.state = IdFact::State::kWrongType;
        fact.what = "a fractional or exponent number";
        break;
    }
    w.advance();
    return true;
  }
  if (c == 'n') {
    fact.state = IdFact::State::kNull;
    return w.read_null();
  }
  fact.state = IdFact::State::kWrongType;
  fact.what = type_phrase(c);
  return w.skip_value(depth);
}

Seen string_fact(const IdFact& id) noexcept {
  if (id.state == IdFact::State::kString) return Seen::kOk;
  return id.state == IdFact::State::kNull ? Seen::kNull : Seen::kWrongType;
}

bool read_u64(Walker& w, U64Fact& fact, int depth) {
  const char c = w.peek();
  if (c == 'n') {
    fact.state = U64Fact::State::kNull;
    return w.read_null();
  }
  if (c != '-' && !is_digit(c)) {
    fact.state = U64Fact::State::kNotNumber;
    return w.skip_value(depth);
  }
  const std::string_view t = w.token();
  switch (classify_number(t)) {
    case NumberForm::kInvalid: return w.fail("invalid number");
    case NumberForm::kNegativeInteger: fact.state = U64Fact::State::kNegative; break;
    case NumberForm::kOther: fact.state = U64Fact::State::kNotInteger; break;
    case NumberForm::kUnsignedInteger:
      fact.state = parse_u64(t, fact.value) ? U64Fact::State::kOk : U64Fact::State::kOutOfRange;
      break;
  }
  w.advance();
  return true;
}

/// metadata.record_pks joined into `pk` with ',' (strings unescaped, integers as written).
bool read_record_pks(Walker& w, Facts& facts, std::string& pk, int depth) {
  const char c = w.peek();
  if (c == 'n') {
    facts.record_pks = Facts::Pks::kNull;
    return w.read_null();
  }
  if (c != '[') {
    facts.record_pks = Facts::Pks::kNotArray;
    return w.skip_value(depth);
  }
  facts.record_pks = Facts::Pks::kOk;
  std::size_t count = 0;
  const bool ok = w.elements(depth, [&](std::size_t index) {
    IdFact id;
    if (!read_id(w, id, depth + 1)) return false;
    if (id.usable()) {
      if (index > 0) pk.push_back(',');
      pk.append(id.text);
    } else if (facts.record_pks == Facts::Pks::kOk) {
      facts.record_pks = id.state == IdFact::State::kNonCanonical ? Facts::Pks::kNonCanonical : Facts::Pks::kBadElement;
      facts.record_pks_bad_index = index;
    }
    ++count;
    return true;
  });
  facts.record_pks_count = count;
  return ok;
}

bool read_metadata(Walker& w, Facts& facts, std::string& pk, KeySet& keys, int depth) {
  return w.members(depth, &keys, [&](std::string_view key, bool repeated) {
    const int inner = depth + 1;
    if (repeated) {
      facts.note_duplicate("metadata", key);
      return w.skip(inner);
    }
    if (eq(key, "commit_lsn") && facts.commit_lsn.state == U64Fact::State::kAbsent) {
      return read_u64(w, facts.commit_lsn, inner);
    }
    if (eq(key, "commit_idx") && facts.commit_idx.state == U64Fact::State::kAbsent) {
      return read_u64(w, facts.commit_idx, inner);
    }
    if (eq(key, "record_pks") && facts.record_pks == Facts::Pks::kAbsent) {
      return read_record_pks(w, facts, pk, inner);
    }
    if (eq(key, "table_name") && facts.table_name == Seen::kAbsent) {
      IdFact s;
      if (!read_id(w, s, inner)) return false;
      facts.table_name = string_fact(s);
      facts.table_name_value = s.text;
      return true;
    }
    if (eq(key, "idempotency_key") && facts.idempotency_key == Seen::kAbsent) {
      IdFact s;
      if (!read_id(w, s, inner)) return false;
      facts.idempotency_key = string_fact(s);
      facts.idempotency_key_value = s.text;
      return true;
    }
    if (eq(key, "commit_timestamp") && facts.commit_timestamp == Seen::kAbsent) {
      const char c = w.peek();
      if (c == '{' || c == '[') {
        facts.commit_timestamp = Seen::kWrongType;
        facts.commit_timestamp_what = type_phrase(c);
      } else {
        facts.commit_timestamp = Seen::kOk;  // a scalar, copied as given (null included)
        facts.commit_timestamp_raw = w.token();
      }
    }
    return w.skip(inner);
  });
}

bool read_record(Walker& w, Facts& facts, const std::array<std::string_view, kIdSlots>& names, KeySet& keys,
                 int depth) {
  const char* const begin = w.here();
  const bool ok = w.members(depth, &keys, [&](std::string_view key, bool repeated) {
    if (repeated) {
      facts.note_duplicate("record", key);
      return w.skip(depth + 1);
    }
    IdFact* targets[kIdSlots];
    std::size_t n = 0;
    for (std::size_t i = 0; i < kIdSlots; ++i) {
      if (key == names[i] && facts.ids[i].state == IdFact::State::kAbsent) targets[n++] = &facts.ids[i];
    }
    if (n == 0) return w.skip(depth + 1);
    IdFact id;
    if (!read_id(w, id, depth + 1)) return false;
    for (std::size_t i = 0; i < n; ++i) *targets[i] = id;
    return true;
  });
  if (!ok) return false;
  facts.record_raw = std::string_view(begin, static_cast<std::size_t>(w.previous_end() - begin));
  return true;
}

/// A top-level member that must be an object: classifies it, and skips it when it is not one.
bool classify_object_member(Walker& w, Seen& seen, const char*& what) {
  const char c = w.peek();
  if (c == '{') {
    seen = Seen::kOk;
    return true;
  }
  if (c == 'n') {
    seen = Seen::kNull;
    return w.read_null();
  }
  seen = Seen::kWrongType;
  what = type_phrase(c);
  return w.skip_value(1);
}

bool read_action(Walker& w, Facts& facts) {
  const char c = w.peek();
  if (c == 'n') {
    facts.action = Seen::kNull;
    return w.read_null();
  }
  if (c != '"') {
    facts.action = Seen::kWrongType;
    return w.skip_value(1);
  }
  std::string_view content;
  bool escaped;
  if (!w.read_string(content, escaped)) return false;
  const std::string_view s = w.keep(content, escaped);
  facts.action_is_string = true;
  facts.action = Seen::kWrongType;
  for (std::string_view known : kActions) {
    if (s == known) {
      facts.action = Seen::kOk;
      facts.action_value = known;  // static storage, not the body
    }
  }
  return true;
}

Disposition dead_letter(TransformOutput& out, ErrorKind kind) noexcept {
  out.disposition = Disposition::kDeadLetter;
  out.error_kind = kind;
  return Disposition::kDeadLetter;
}

Disposition dead_letter(TransformOutput& out, ErrorKind kind, std::string_view error) {
  out.error.assign(error);
  return dead_letter(out, kind);
}

/// Describes why id `fact` cannot be used (missing_field or invalid_token); false when it can.
bool describe_unusable_id(std::string_view prefix, std::string_view name, const IdFact& fact, TransformOutput& out,
                          ErrorKind& kind) {
  if (fact.usable()) return false;
  out.error.assign(prefix).append(name);
  switch (fact.state) {
    case IdFact::State::kAbsent:
      out.error.append(" is missing");
      kind = ErrorKind::kMissingField;
      break;
    case IdFact::State::kNull:
      out.error.append(" is null");
      kind = ErrorKind::kMissingField;
      break;
    case IdFact::State::kNonCanonical:
      out.error.append(" is ").append(fact.text).append(", not an integer in canonical form");
      kind = ErrorKind::kInvalidToken;
      break;
    default:
      out.error.append(" is ").append(fact.what).append(", not a string or integer");
      kind = ErrorKind::kInvalidToken;
      break;
  }
  return true;
}

/// For commit_lsn / commit_idx (invalid_shape).
void describe_u64(std::string_view name, const U64Fact& fact, std::string& error) {
  error.assign(name);
  switch (fact.state) {
    case U64Fact::State::kNegative: error.append(" is negative"); break;
    case U64Fact::State::kNotInteger: error.append(" is not an integer"); break;
    case U64Fact::State::kNotNumber: error.append(" is not a number"); break;
    case U64Fact::State::kOutOfRange: error.append(" is larger than 18446744073709551615"); break;
    default: error.append(" is invalid"); break;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

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

void append_json_string(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
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
  out.append(run, static_cast<std::size_t>(end - run));
  out.push_back('"');
}

void TransformOutput::clear() noexcept {
  disposition = Disposition::kSkip;
  company = {};
  table = {};
  error_kind = ErrorKind::kNone;
  error.clear();
  has_event_id = false;
  event_id.clear();
  subject.clear();
  payload.clear();
  action = {};
}

// ---------------------------------------------------------------------------------------------
// SubjectLayout

SubjectLayout::SubjectLayout(const std::string& layout, std::string company_prefix)
    : company_prefix_(std::move(company_prefix)) {
  if (layout.empty()) throw std::invalid_argument("subject_layout is empty");
  const std::string where = "subject_layout \"" + layout + "\"";
  int companies = 0, schemas = 0, tables = 0;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t dot = layout.find('.', pos);
    const std::string token = layout.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (token.empty()) throw std::invalid_argument(where + " has an empty token");
    Part part = Part::kLiteral;
    if (token.front() == '{') {
      if (token == "{company}") {
        part = Part::kCompany;
        ++companies;
      } else if (token == "{table}") {
        part = Part::kTable;
        ++tables;
      } else if (token == "{schema}") {
        part = Part::kSchema;
        ++schemas;
      } else if (token == "{database}" || token == "{action}" || token == "{*}") {
        part = Part::kOther;
      } else {
        throw std::invalid_argument(where + ": unknown placeholder \"" + token +
                                    "\" (known: {company} {table} {schema} {database} {action} {*})");
      }
    } else if (!is_valid_token(token) || token.find_first_of("{}") != std::string::npos) {
      throw std::invalid_argument(where + ": \"" + token + "\" is neither a placeholder nor a valid subject token");
    }
    parts_.emplace_back(part, part == Part::kLiteral ? token : std::string());
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  if (tables != 1) throw std::invalid_argument(where + " needs exactly one {table}");
  if (companies + schemas != 1) throw std::invalid_argument(where + " needs exactly one of {company} or {schema}");
}

bool SubjectLayout::split(std::string_view subject, std::string_view& company, std::string_view& table) const noexcept {
  // company/table are filled as far as the subject goes, also when it does not match (they are
  // a best-effort hint for the dead-letter subject).
  company = {};
  table = {};
  bool match = true;
  std::size_t pos = 0;
  std::size_t i = 0;
  for (;; ++i) {
    const std::size_t dot = subject.find('.', pos);
    const std::string_view token =
        subject.substr(pos, dot == std::string_view::npos ? std::string_view::npos : dot - pos);
    if (i >= parts_.size()) return false;  // more tokens than the layout
    const auto& [part, literal] = parts_[i];
    if (token.empty()) match = false;
    switch (part) {
      case Part::kLiteral: match = match && token == literal; break;
      case Part::kCompany: company = token; break;
      case Part::kSchema:
        company = token;
        if (!company_prefix_.empty() && company.substr(0, company_prefix_.size()) == company_prefix_) {
          company.remove_prefix(company_prefix_.size());
        }
        break;
      case Part::kTable: table = token; break;
      case Part::kOther: break;
    }
    if (dot == std::string_view::npos) break;
    pos = dot + 1;
  }
  return match && i + 1 == parts_.size();
}

std::string SubjectLayout::filter_subject() const {
  std::string filter;
  for (const auto& [part, literal] : parts_) {
    if (!filter.empty()) filter.push_back('.');
    if (part == Part::kLiteral) {
      filter.append(literal);
    } else {
      filter.push_back('*');
    }
  }
  return filter;
}

// ---------------------------------------------------------------------------------------------
// Transformer

struct Transformer::Impl {
  struct Table {
    std::string name;
    std::string key_column;
    bool has_message_id = false;  ///< "messages": message_id in the payload, chat_id in the subject
    bool has_chat_id = false;     ///< "messages" and "chats": chat_id is a required routing token
  };

  /// simdjson's stage 1 for the CPU we run on (structural indexes only; see the top of this file).
  std::unique_ptr<simdjson::internal::dom_parser_implementation> indexer;
  std::unique_ptr<char[]> scratch;  ///< max_message_bytes + SIMDJSON_PADDING, allocated once
  std::size_t scratch_capacity = 0;
  std::unique_ptr<std::uint64_t[]> stack;  ///< kMaxDepth bits for Walker::skip_value
  std::string arena;                       ///< unescaped strings; capacity max_message_bytes, never grows
  std::string key_buf;                     ///< an unescaped key (rare)
  std::string pk;                          ///< joined record_pks
  std::vector<Table> tables;
  Facts facts;
  /// Keys seen in the top-level object, `record` and `metadata` (duplicate keys); one seed per
  /// Transformer, drawn at construction.
  std::uint64_t key_seed = (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  KeySet body_keys{key_seed};
  KeySet record_keys{key_seed};
  KeySet metadata_keys{key_seed};

  [[nodiscard]] const Table* find(std::string_view table) const noexcept {
    for (const Table& t : tables) {
      if (t.name == table) return &t;
    }
    return nullptr;
  }

  Disposition run(const Table& table, std::string_view body, std::string_view msg_id_header,
                  const TransformRules& rules, TransformOutput& out);
};

Transformer::Transformer(TransformRules rules)
    : rules_(std::move(rules)), layout_(rules_.subject_layout, rules_.company_prefix), impl_(std::make_unique<Impl>()) {
  if (rules_.tables.empty()) throw std::invalid_argument("tables is empty");
  if (rules_.max_message_bytes == 0) throw std::invalid_argument("max_message_bytes must be greater than 0");
  if (rules_.max_message_bytes > 0xFFFFFFF0u) {
    throw std::invalid_argument("max_message_bytes must be below 4 GiB");  // stage 1 uses 32-bit indexes
  }
  if (rules_.subject_prefix.empty()) throw std::invalid_argument("subject_prefix is empty");
  for (std::size_t pos = 0;;) {
    const std::size_t dot = rules_.subject_prefix.find('.', pos);
    const std::string_view token =
        std::string_view(rules_.subject_prefix).substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (!is_valid_token(token)) {
      throw std::invalid_argument("subject_prefix \"" + rules_.subject_prefix + "\" is not a valid subject prefix");
    }
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  for (const std::string& name : rules_.tables) {
    if (!is_valid_token(name)) throw std::invalid_argument("tables: \"" + name + "\" is not a valid subject token");
    if (impl_->find(name) != nullptr) throw std::invalid_argument("tables: \"" + name + "\" is listed twice");
    const auto key = rules_.key_columns.find(name);
    if (key == rules_.key_columns.end() || key->second.empty()) {
      throw std::invalid_argument("key_columns: table \"" + name + "\" has no key column");
    }
    Impl::Table t;
    t.name = name;
    t.key_column = key->second;
    t.has_message_id = name == "messages";
    t.has_chat_id = name == "messages" || name == "chats";
    impl_->tables.push_back(std::move(t));
  }
  if (simdjson::get_active_implementation()->create_dom_parser_implementation(rules_.max_message_bytes, kMaxDepth,
                                                                              impl_->indexer) != simdjson::SUCCESS) {
    throw std::bad_alloc();
  }
  impl_->scratch_capacity = rules_.max_message_bytes + simdjson::SIMDJSON_PADDING;
  impl_->scratch = std::make_unique<char[]>(impl_->scratch_capacity);
  impl_->stack = std::make_unique<std::uint64_t[]>(kMaxDepth / 64 + 1);
  impl_->arena.reserve(rules_.max_message_bytes);
  impl_->key_buf.reserve(256);
  impl_->pk.reserve(256);
}

Transformer::~Transformer() = default;

bool Transformer::allowed(std::string_view table) const noexcept { return impl_->find(table) != nullptr; }

Disposition Transformer::transform(std::string_view subject, std::string_view body, std::string_view msg_id_header,
                                   TransformOutput& out) noexcept {
  out.clear();
  std::string_view company, table;
  const bool matched = layout_.split(subject, company, table);
  if (!matched) {
    // Which tenant and table such a subject belongs to is a guess (in "cdc.a.b.messages", is
    // "a" the company?), so neither is reported: the dead letter goes to <dlq>._._ and the
    // record keeps the whole source_subject (docs/decisions.md).
    out.error.assign("subject does not fit subject_layout \"").append(rules_.subject_layout).append("\" (");
    append_uint(static_cast<std::uint64_t>(std::count(subject.begin(), subject.end(), '.') + 1), out.error);
    out.error.append(" tokens)");
    return dead_letter(out, ErrorKind::kInvalidSubject);
  }
  out.company = company;
  out.table = table;
  const Impl::Table* info = impl_->find(table);
  if (info == nullptr) {
    out.disposition = Disposition::kSkip;  // the body is not looked at, not even its size
    return Disposition::kSkip;
  }
  if (body.size() > rules_.max_message_bytes) {
    out.error.assign("body is ");
    append_uint(body.size(), out.error);
    out.error.append(" bytes, over max_message_bytes ");
    append_uint(rules_.max_message_bytes, out.error);
    return dead_letter(out, ErrorKind::kOversized);
  }
  return impl_->run(*info, body, msg_id_header, rules_, out);
}

Disposition Transformer::Impl::run(const Table& table, std::string_view body, std::string_view msg_id_header,
                                   const TransformRules& rules, TransformOutput& out) {
  char* const buffer = scratch.get();
  std::memcpy(buffer, body.data(), body.size());
  // Stage 1 reads up to SIMDJSON_PADDING bytes past the end; the walker relies on a NUL there.
  std::memset(buffer + body.size(), 0, simdjson::SIMDJSON_PADDING);

  const auto indexed =
      indexer->stage1(reinterpret_cast<const std::uint8_t*>(buffer), body.size(), simdjson::stage1_mode::regular);
  switch (indexed) {
    case simdjson::SUCCESS: break;
    case simdjson::UTF8_ERROR: return dead_letter(out, ErrorKind::kInvalidJson, "body is not valid UTF-8");
    case simdjson::EMPTY: return dead_letter(out, ErrorKind::kInvalidJson, "body is not valid JSON: it is empty");
    default:
      out.error.assign("body is not valid JSON: ").append(simdjson::error_message(indexed));
      return dead_letter(out, ErrorKind::kInvalidJson);
  }

  facts = Facts{};
  pk.clear();
  arena.clear();
  const bool may_escape = std::memchr(buffer, '\\', body.size()) != nullptr;
  Walker w(buffer, indexer->structural_indexes.get(), indexer->n_structural_indexes, may_escape, stack.get(), arena,
           key_buf);
  const std::array<std::string_view, kIdSlots> id_names{"agent_id", "chat_id", "message_id", table.key_column};

  auto invalid_json = [&]() {
    out.error.assign("body is not valid JSON: ").append(w.error() ? w.error() : "malformed");
    out.error.append(" at byte ");
    append_uint(w.error_offset(), out.error);
    return dead_letter(out, ErrorKind::kInvalidJson);
  };

  // ---- walk -----------------------------------------------------------------------------------
  if (w.peek() != '{') {
    const char first = w.peek();
    if (!w.skip_value(0)) return invalid_json();
    if (!w.at_end()) {
      w.fail("trailing content after the JSON value");
      return invalid_json();
    }
    out.error.assign("body is ").append(type_phrase(first)).append(", not a JSON object");
    return dead_letter(out, ErrorKind::kInvalidShape);
  }
  const bool walked = w.members(0, &body_keys, [&](std::string_view key, bool repeated) {
    if (repeated) {
      facts.note_duplicate("the body", key);
      return w.skip(1);
    }
    if (eq(key, "record") && facts.record == Seen::kAbsent) {
      if (!classify_object_member(w, facts.record, facts.record_what)) return false;
      return facts.record != Seen::kOk || read_record(w, facts, id_names, record_keys, 1);
    }
    if (eq(key, "metadata") && facts.metadata == Seen::kAbsent) {
      if (!classify_object_member(w, facts.metadata, facts.metadata_what)) return false;
      return facts.metadata != Seen::kOk || read_metadata(w, facts, pk, metadata_keys, 1);
    }
    if (eq(key, "action") && facts.action == Seen::kAbsent) return read_action(w, facts);
    return w.skip(1);
  });
  if (!walked) return invalid_json();
  if (!w.at_end()) {
    w.fail("trailing content after the JSON object");
    return invalid_json();
  }

  // ---- rules, in a fixed order ------------------------------------------------------------------
  if (facts.duplicate_in != nullptr) {
    // Readers disagree on which copy of a repeated key wins (first here, last in JavaScript,
    // Go, Python): routing by one while row_data carries both could misroute the event.
    out.error.assign(facts.duplicate_in);
    if (facts.duplicate_key.size() <= 64 &&
        simdjson::validate_utf8(facts.duplicate_key.data(), facts.duplicate_key.size())) {
      out.error.append(" has the key \"").append(facts.duplicate_key).append("\" twice");
    } else {
      out.error.append(" has a key twice");
    }
    return dead_letter(out, ErrorKind::kInvalidShape);
  }
  auto object_member = [&](std::string_view name, Seen seen, const char* what) {
    if (seen == Seen::kOk) return true;
    out.error.assign(name);
    if (seen == Seen::kAbsent || seen == Seen::kNull) {
      out.error.append(seen == Seen::kAbsent ? " is missing" : " is null");
      dead_letter(out, ErrorKind::kMissingField);
    } else {
      out.error.append(" is ").append(what).append(", not an object");
      dead_letter(out, ErrorKind::kInvalidShape);
    }
    return false;
  };
  if (!object_member("record", facts.record, facts.record_what)) return out.disposition;
  if (!object_member("metadata", facts.metadata, facts.metadata_what)) return out.disposition;

  switch (facts.action) {
    case Seen::kAbsent: return dead_letter(out, ErrorKind::kMissingField, "action is missing");
    case Seen::kNull: return dead_letter(out, ErrorKind::kMissingField, "action is null");
    case Seen::kWrongType:
      return dead_letter(
          out, ErrorKind::kInvalidShape,
          facts.action_is_string ? "action is not one of insert, update, delete, read" : "action is not a string");
    case Seen::kOk: break;
  }

  if (facts.table_name == Seen::kWrongType) {
    return dead_letter(out, ErrorKind::kInvalidShape, "metadata.table_name is not a string");
  }
  if (facts.table_name == Seen::kOk && facts.table_name_value != table.name) {
    out.error.assign("metadata.table_name \"").append(facts.table_name_value);
    out.error.append("\" does not match the subject's table \"").append(table.name).push_back('"');
    return dead_letter(out, ErrorKind::kTableMismatch);
  }
  if (facts.commit_timestamp == Seen::kWrongType) {
    out.error.assign("metadata.commit_timestamp is ").append(facts.commit_timestamp_what);
    return dead_letter(out, ErrorKind::kInvalidShape);
  }

  // pk: record_pks joined with ',' when present and non-empty, else the table's key column.
  if (facts.record_pks == Facts::Pks::kNotArray) {
    return dead_letter(out, ErrorKind::kInvalidShape, "metadata.record_pks is not an array");
  }
  if (facts.record_pks == Facts::Pks::kBadElement || facts.record_pks == Facts::Pks::kNonCanonical) {
    out.error.assign("metadata.record_pks[");
    append_uint(facts.record_pks_bad_index, out.error);
    if (facts.record_pks == Facts::Pks::kNonCanonical) {
      out.error.append("] is -0, not an integer in canonical form");
      return dead_letter(out, ErrorKind::kInvalidToken);
    }
    out.error.append("] is not a string or integer");
    return dead_letter(out, ErrorKind::kInvalidShape);
  }
  ErrorKind kind = ErrorKind::kNone;
  std::string_view pk_view = pk;
  if (facts.record_pks != Facts::Pks::kOk || facts.record_pks_count == 0) {
    const IdFact& key = facts.ids[kKeyColumn];
    if (describe_unusable_id("record.", table.key_column, key, out, kind)) return dead_letter(out, kind);
    pk_view = key.text;
  }
  if (pk_view.empty()) return dead_letter(out, ErrorKind::kMissingField, "pk is empty");
  if (describe_control("pk", pk_view, out.error)) return dead_letter(out, ErrorKind::kInvalidToken);

  // position: "<commit_lsn>.<commit_idx>", or "b.<idempotency_key>" for a read without LSN.
  char digits[48];  // two uint64 and a dot
  std::string_view position;
  switch (facts.commit_lsn.state) {
    case U64Fact::State::kOk: {
      const U64Fact& idx = facts.commit_idx;
      if (idx.state != U64Fact::State::kOk && idx.state != U64Fact::State::kAbsent &&
          idx.state != U64Fact::State::kNull) {
        describe_u64("metadata.commit_idx", idx, out.error);
        return dead_letter(out, ErrorKind::kInvalidShape);
      }
      char* end = std::to_chars(digits, digits + 20, facts.commit_lsn.value).ptr;
      *end++ = '.';
      end = std::to_chars(end, digits + sizeof(digits), idx.state == U64Fact::State::kOk ? idx.value : 0).ptr;
      position = std::string_view(digits, static_cast<std::size_t>(end - digits));
      break;
    }
    case U64Fact::State::kAbsent:
    case U64Fact::State::kNull: {
      const bool absent = facts.commit_lsn.state == U64Fact::State::kAbsent;
      if (facts.action_value != "read") {
        return dead_letter(out, ErrorKind::kMissingField,
                           absent ? "metadata.commit_lsn is missing" : "metadata.commit_lsn is null");
      }
      if (facts.idempotency_key == Seen::kWrongType) {
        return dead_letter(out, ErrorKind::kInvalidShape, "metadata.idempotency_key is not a string");
      }
      position = facts.idempotency_key == Seen::kOk ? facts.idempotency_key_value : std::string_view();
      if (position.empty()) position = msg_id_header;
      if (position.empty()) {
        return dead_letter(out, ErrorKind::kMissingField,
                           "read without metadata.commit_lsn has no metadata.idempotency_key and no Nats-Msg-Id");
      }
      if (describe_control("idempotency key", position, out.error)) {
        return dead_letter(out, ErrorKind::kInvalidToken);
      }
      break;
    }
    default:
      describe_u64("metadata.commit_lsn", facts.commit_lsn, out.error);
      return dead_letter(out, ErrorKind::kInvalidShape);
  }
  const bool backfill = facts.commit_lsn.state != U64Fact::State::kOk;
  {
    // The company is part of the id: tenants in different databases have independent LSNs, and
    // the Redis key and Nats-Msg-Id derive from the id (CONTRACT.md section 3).
    ExactWriter w(out.event_id,
                  (backfill ? 2 : 0) + position.size() + out.company.size() + table.name.size() + pk_view.size() + 3);
    if (backfill) w.put("b.");
    w.put(position);
    w.put(':');
    w.put(out.company);
    w.put(':');
    w.put(table.name);
    w.put(':');
    w.put(pk_view);
  }
  const std::string_view id = out.event_id;
  out.has_event_id = true;

  // routing tokens: a row that cannot be routed must never reach another tenant or agent.
  if (describe_invalid_token("company", out.company, out.error)) return dead_letter(out, ErrorKind::kInvalidToken);
  // The company comes from the subject, whose bytes nobody validated as UTF-8 (the other
  // routing values come out of the validated JSON); company_id must be valid JSON.
  if (!simdjson::validate_utf8(out.company.data(), out.company.size())) {
    out.error.assign("company is not valid UTF-8");
    return dead_letter(out, ErrorKind::kInvalidToken);
  }
  const IdFact& agent = facts.ids[kAgentId];
  if (describe_unusable_id("", "agent_id", agent, out, kind)) return dead_letter(out, kind);
  if (describe_invalid_token("agent_id", agent.text, out.error)) return dead_letter(out, ErrorKind::kInvalidToken);
  const IdFact& chat = facts.ids[kChatId];
  if (table.has_chat_id) {
    if (describe_unusable_id("", "chat_id", chat, out, kind)) return dead_letter(out, kind);
    if (describe_invalid_token("chat_id", chat.text, out.error)) return dead_letter(out, ErrorKind::kInvalidToken);
  }
  std::string_view message_id;
  if (table.has_message_id) {
    const IdFact& m = facts.ids[kMessageId];
    if (m.state == IdFact::State::kWrongType || m.state == IdFact::State::kNonCanonical) {
      describe_unusable_id("", "message_id", m, out, kind);
      return dead_letter(out, kind);
    }
    message_id = m.usable() ? m.text : pk_view;
  }

  // ---- output ---------------------------------------------------------------------------------
  out.action = facts.action_value;
  const std::string_view company = out.company;
  {
    ExactWriter w(out.subject, rules.subject_prefix.size() + company.size() + agent.text.size() + table.name.size() +
                                   3 + (table.has_message_id ? chat.text.size() + 1 : 0));
    w.put(rules.subject_prefix);
    w.put('.');
    w.put(company);
    w.put('.');
    w.put(agent.text);
    w.put('.');
    w.put(table.name);
    if (table.has_message_id) {
      w.put('.');
      w.put(chat.text);
    }
  }

  static constexpr std::string_view kEventIdKey = "{\"event_id\":";
  static constexpr std::string_view kCompanyKey = ",\"company_id\":";
  static constexpr std::string_view kAgentKey = ",\"agent_id\":";
  static constexpr std::string_view kMessageKey = ",\"message_id\":";
  static constexpr std::string_view kChatKey = ",\"chat_id\":";
  static constexpr std::string_view kTableKey = ",\"table\":";
  static constexpr std::string_view kActionKey = ",\"action\":\"";
  static constexpr std::string_view kCommittedKey = "\",\"committed_at\":";
  static constexpr std::string_view kRowDataKey = ",\"row_data\":";
  const std::string_view committed = facts.commit_timestamp == Seen::kOk ? facts.commit_timestamp_raw : "null";
  std::string& p = out.payload;
  const bool plain = !needs_escape(id) && !needs_escape(company) && !needs_escape(agent.text) &&
                     !needs_escape(message_id) && !(table.has_chat_id && needs_escape(chat.text)) &&
                     !needs_escape(table.name);
  if (plain) {  // the common case: nothing to escape, so every size is known
    ExactWriter w(p, kEventIdKey.size() + id.size() + kCompanyKey.size() + company.size() + kAgentKey.size() +
                         agent.text.size() + (table.has_message_id ? kMessageKey.size() + message_id.size() + 2 : 0) +
                         (table.has_chat_id ? kChatKey.size() + chat.text.size() + 2 : 0) + kTableKey.size() +
                         table.name.size() + kActionKey.size() + facts.action_value.size() + kCommittedKey.size() +
                         committed.size() + kRowDataKey.size() + facts.record_raw.size() + 9);
    w.put(kEventIdKey);
    w.quoted(id);
    w.put(kCompanyKey);
    w.quoted(company);
    w.put(kAgentKey);
    w.quoted(agent.text);
    if (table.has_message_id) {
      w.put(kMessageKey);
      w.quoted(message_id);
    }
    if (table.has_chat_id) {
      w.put(kChatKey);
      w.quoted(chat.text);
    }
    w.put(kTableKey);
    w.quoted(table.name);
    w.put(kActionKey);
    w.put(facts.action_value);
    w.put(kCommittedKey);
    w.put(committed);
    w.put(kRowDataKey);
    w.put(facts.record_raw);
    w.put('}');
  } else {
    p.reserve(facts.record_raw.size() +
              6 * (id.size() + company.size() + agent.text.size() + message_id.size() + chat.text.size() +
                   table.name.size()) +
              160);
    p.append(kEventIdKey);
    append_json_string(id, p);
    p.append(kCompanyKey);
    append_json_string(company, p);
    p.append(kAgentKey);
    append_json_string(agent.text, p);
    if (table.has_message_id) {
      p.append(kMessageKey);
      append_json_string(message_id, p);
    }
    if (table.has_chat_id) {
      p.append(kChatKey);
      append_json_string(chat.text, p);
    }
    p.append(kTableKey);
    append_json_string(table.name, p);
    p.append(kActionKey).append(facts.action_value).append(kCommittedKey).append(committed);
    p.append(kRowDataKey).append(facts.record_raw).push_back('}');
  }

  out.disposition = Disposition::kPublish;
  return Disposition::kPublish;
}

}  // namespace cdc
