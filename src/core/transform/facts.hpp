#pragma once
// Private to the transform (src/core/transform/): see transform.cpp for the map of its parts.
// Facts: what the walk found in a body, as plain values, in whatever order the keys came. The
// rules (rules.cpp, identity.cpp) judge them afterwards in a fixed order.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cdc::transform_detail {

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

}  // namespace cdc::transform_detail
