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
#include <vector>

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

/// One reply, valid until the next one is decoded (`str` and `elements` point into the
/// decoder). kLost: the connection dropped before the reply came.
struct RedisReply {
  enum class Type : std::uint8_t { kLost, kNil, kString, kStatus, kInteger, kError, kArray };
  Type type = Type::kLost;
  std::string_view str;    ///< kString, kStatus, kError
  long long integer = 0;   ///< kInteger; element count for kArray
  bool truncated = false;  ///< `str` holds only the first bytes the decoder keeps
  /// kArray: its elements, one level deep (an element that is itself an array has its count in
  /// `integer` and no elements of its own).
  std::span<const RedisReply> elements;

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

/// The function library that applies a batch of claims or done marks in one call (dedup.batch:
/// function / auto). `claim` does exactly `SET key p NX GET EX <args[1]>` per key and answers
/// one element per key (nil, the old value, or that key's error); `mark` does `SET key d EX
/// <args[1]>` per key and answers the key count. Keys are only ever passed as KEYS (a cluster
/// routes by them), never built in Lua. The version is in the names: a change of behaviour gets
/// a new library name, so two service versions sharing a Redis never replace each other's code.
inline constexpr std::string_view kDedupLibrary = "cdc_dedup_v1";
inline constexpr std::string_view kDedupClaimFunction = "cdc_dedup_v1_claim";
inline constexpr std::string_view kDedupMarkFunction = "cdc_dedup_v1_mark";
/// The library's source, for `FUNCTION LOAD REPLACE`.
extern const std::string_view kDedupLibrarySource;

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

  /// Batches (one function call for many keys). Starts an empty batch of claims
  /// (`FCALL cdc_dedup_v1_claim <n> <key>... <pending_ttl s>`) or of done marks
  /// (`FCALL cdc_dedup_v1_mark <n> <key>... <ttl s>`). No allocation once the buffers have grown
  /// to the largest batch (reserve them with `reserve_batch`).
  void begin_claims() noexcept { begin_batch(kDedupClaimFunction, pending_ttl_s_); }
  void begin_marks() noexcept { begin_batch(kDedupMarkFunction, done_ttl_s_); }
  /// Adds the key of `event_id` to the batch begun last.
  void add_to_batch(std::string_view event_id) noexcept;
  /// Keys in the batch.
  [[nodiscard]] std::size_t batch_size() const noexcept { return key_ends_.size(); }
  /// The batch as one command's arguments; views valid until the next begin or add.
  [[nodiscard]] std::span<const std::string_view> batch_command() noexcept;
  /// Sizes the batch buffers for `keys` keys of ids up to `id_bytes` bytes (start-up zone).
  void reserve_batch(std::size_t keys, std::size_t id_bytes = 128);

  /// Element `i` of a batch's reply, as the per-key command's reply would have been: the
  /// element itself; the whole reply when it failed (an error or a lost connection applies to
  /// every key); an error when the reply is not an array or has no element `i` (a reply we
  /// cannot read is a failure, never a claim).
  [[nodiscard]] static RedisReply batch_element(const RedisReply& reply, std::size_t i) noexcept;

 private:
  std::string_view key(std::string_view event_id) noexcept;
  void begin_batch(std::string_view function, std::string_view ttl_s) noexcept;

  std::string prefix_;
  std::string pending_ttl_s_;
  std::string done_ttl_s_;
  std::string key_;
  // The batch being built: its keys back to back, where each ends, and the argument views
  // (made by batch_command(), once every key is in: appending may move the key bytes).
  std::string_view batch_function_;
  std::string_view batch_ttl_s_;
  std::string batch_keys_;
  std::vector<std::size_t> key_ends_;
  std::vector<std::string_view> batch_args_;
  std::array<char, 24> numkeys_{};
};

}  // namespace cdc
