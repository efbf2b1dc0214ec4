#pragma once
/// The pure rules of partition leases (CONTRACT.md section 11, docs/decisions.md "Leases in a
/// key-value bucket"): when a lease or a member counts as expired, when its owner fences itself,
/// when a new owner may start fetching after a take-over, when a hand-over may release, and the
/// lease value's JSON. Every time is a steady-clock reading in nanoseconds passed in by the
/// caller, so the rules are tested with an injected clock and never compare two hosts' clocks.

#include <cstdint>
#include <string>
#include <string_view>

namespace cdc::lease {

/// What one observer knows of a key: the revision it saw last and when (its own steady clock) it
/// first saw that revision. Revision 0 = absent (never written, deleted or purged).
struct Observed {
  std::uint64_t revision = 0;
  std::int64_t seen_ns = 0;
};

/// Records that the key has `revision` at `now_ns`: the time restarts only when the revision
/// changed, so a key nobody rewrites ages on the observer's clock alone (skew-free).
void observe(Observed& key, std::uint64_t revision, std::int64_t now_ns) noexcept;

/// The key is present and its revision has not changed for `ttl_ns` since it was first seen.
[[nodiscard]] bool expired(const Observed& key, std::int64_t now_ns, std::int64_t ttl_ns) noexcept;

/// How often an owner renews its leases and a member its member key: ttl / 5.
[[nodiscard]] std::int64_t renew_interval(std::int64_t ttl_ns) noexcept;

/// When an owner must stop using a lease whose last successful renewal was sent at
/// `renew_sent_ns`: 0.8 x ttl later. Every observer saw that revision after it was sent, so
/// none can count it expired before sent + ttl; the margin covers one blocked KV call (at most
/// ttl / 10, call_timeout()) between the owner's checks.
[[nodiscard]] std::int64_t fence_deadline(std::int64_t renew_sent_ns, std::int64_t ttl_ns) noexcept;

/// The timeout of one KV or consumer-info call on the fleet thread: ttl / 10, at least 100 ms.
[[nodiscard]] std::int64_t call_timeout(std::int64_t ttl_ns) noexcept;

/// After taking over an expired lease: may this replica start fetching? Yes once AckWait has
/// passed since the expiry was observed (whatever the old owner held has been redelivered or
/// can no longer be acked by it), or at once when the consumer shows nothing the old owner could
/// still ack: no message awaiting an ack and no pull request of its own still open (a request
/// open at its fence lasts at most fetch_expires). `num_ack_pending` / `num_waiting` < 0 = not
/// read.
[[nodiscard]] bool take_over_ready(std::int64_t expiry_seen_ns, std::int64_t now_ns, std::int64_t ack_wait_ns,
                                   std::int64_t fetch_expires_ns, std::int64_t num_ack_pending,
                                   std::int64_t num_waiting) noexcept;

/// During a hand-over (fetching stopped at `stopped_ns`): may the lease be released? Only once
/// the source has no pull request outstanding, and then when the consumer has nothing awaiting
/// an ack (everything delivered was completed), or AckWait has passed since fetching stopped
/// (what is left is redelivered to the next owner before anything newer). `num_ack_pending` < 0
/// = not read.
[[nodiscard]] bool hand_over_ready(bool fetch_idle, std::int64_t num_ack_pending, std::int64_t stopped_ns,
                                   std::int64_t now_ns, std::int64_t ack_wait_ns) noexcept;

/// The epoch after `previous`: previous + 1, never 0 (0 means "not owned" in the table).
[[nodiscard]] std::uint32_t next_epoch(std::uint32_t previous) noexcept;

/// The value of a `lease.<p>` key.
struct LeaseValue {
  std::string owner;  ///< replica id; "" = released
  std::uint32_t epoch = 0;
};

/// {"owner":"<owner>","epoch":<epoch>}
[[nodiscard]] std::string lease_json(std::string_view owner, std::uint32_t epoch);
/// Reads a lease value; false for anything else (the caller treats the key as foreign).
bool parse_lease(std::string_view json, LeaseValue& out) noexcept;

/// Where a recreated consumer starts: the stream sequence after the checkpoint, or 0 = deliver
/// all when there is no checkpoint (first deployment) or it belongs to an older stream of the
/// same name: the stream's last sequence is below it, or the stream was created after the
/// checkpoint was written (`checkpoint_written_ns`, `stream_created_ns`: the server's wall-clock
/// times, 0 = unknown; a recreated stream may already hold more than the old checkpoint).
[[nodiscard]] std::uint64_t resume_sequence(std::uint64_t checkpoint, std::uint64_t stream_last_seq,
                                            std::int64_t checkpoint_written_ns = 0,
                                            std::int64_t stream_created_ns = 0) noexcept;

}  // namespace cdc::lease
