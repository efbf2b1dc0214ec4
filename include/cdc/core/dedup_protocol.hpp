#pragma once
/// The dedup protocol of CONTRACT.md section 5 as pure functions: which commands to send for a
/// claim, a done mark and an unmark, and what a claim's reply means. No client library: the
/// Redis adapter (src/adapters/redis) encodes the commands and decodes the replies; this file is
/// what the stages and the unit tests (test/unit/dedup_protocol_test.cpp) share.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "cdc/core/config.hpp"

namespace cdc {

/// What the dedup stage learnt from its claim (`SET <prefix><id> p NX GET EX <pending_ttl>`).
enum class DedupResult : std::uint8_t {
  kNotChecked,   ///< not a publishable event, or dedup disabled
  kFirstSeen,    ///< nil: we own the 'p' mark and must publish
  kDone,         ///< 'd': already published, ack without publishing
  kInFlight,     ///< 'p': another delivery is being worked on, NAK with delay
  kUnavailable,  ///< Redis error and on_redis_error=publish: rely on Nats-Msg-Id
};

/// One reply, valid until the next one is decoded (`str` points into the decoder). kLost: the
/// connection dropped before the reply came.
struct RedisReply {
  enum class Type : std::uint8_t { kLost, kNil, kString, kStatus, kInteger, kError, kArray };
  Type type = Type::kLost;
  std::string_view str;    ///< kString, kStatus, kError
  long long integer = 0;   ///< kInteger; element count for kArray
  bool truncated = false;  ///< `str` holds only the first bytes the decoder keeps

  [[nodiscard]] bool failed() const noexcept { return type == Type::kLost || type == Type::kError; }
  /// Human-readable reason for a failed reply.
  [[nodiscard]] std::string_view error_text() const noexcept {
    return type == Type::kLost ? std::string_view("connection lost") : str;
  }
};

/// A command as its arguments; views into the DedupProtocol that made it, valid until its next
/// command. No allocation once the key buffer has grown to the longest key.
struct DedupCommand {
  std::array<std::string_view, 7> args{};
  std::size_t size = 0;
  [[nodiscard]] std::span<const std::string_view> view() const noexcept { return {args.data(), size}; }
};

/// Builds the commands of one connection (one instance per stage: it owns the key buffer).
class DedupProtocol {
 public:
  /// `key_prefix`: dedup.key_prefix; `pending_ttl`: Config::pending_ttl(); `done_ttl`: dedup.ttl.
  DedupProtocol(std::string key_prefix, Millis pending_ttl, Millis done_ttl);

  /// `SET <prefix><id> p NX GET EX <pending_ttl s>`: claims the event, answering the old mark.
  [[nodiscard]] DedupCommand claim(std::string_view event_id) noexcept;
  /// `SET <prefix><id> d EX <ttl s>`: the event is stored in the output.
  [[nodiscard]] DedupCommand mark_done(std::string_view event_id) noexcept;
  /// `DEL <prefix><id>`: the redelivery must not look like a duplicate (section 5, step 4).
  [[nodiscard]] DedupCommand unmark(std::string_view event_id) noexcept;

  /// A claim's reply: nil -> kFirstSeen, "d" -> kDone, "p" -> kInFlight; an error, a lost
  /// connection or anything else (a mark we did not write) -> kUnavailable.
  [[nodiscard]] static DedupResult claim_result(const RedisReply& reply) noexcept;

  /// Whole seconds for EX, rounded up, at least 1.
  [[nodiscard]] static std::string ttl_seconds(Millis ttl);

 private:
  std::string_view key(std::string_view event_id) noexcept;

  std::string prefix_;
  std::string pending_ttl_s_;
  std::string done_ttl_s_;
  std::string key_;
};

}  // namespace cdc
