#pragma once
/// Liveness: two of the judgements the pipeline monitor makes once per tick (the third is
/// FailureGuard, failure_guard.hpp), as pure state machines fed with counters and the steady
/// clock (so tests drive them with made-up time):
///
/// - ProgressTracker: what counts as progress (docs/operations.md, "What counts as progress").
///   An event that reaches its final success on the output side (stored in the output stream,
///   or found already stored) is progress. Other final outcomes (skipped-table acks, dead
///   letters of bad input) are progress only while the output side is not failing: from an
///   output-side failure (publish error, PubAck timeout or refusal, an event dead-lettered
///   because it could not be published) until the next output success or until nothing is
///   pending, they are not. NAKs and retries are never progress.
/// - StallDetector: liveness (/healthz). Stalled when work has been pending for
///   health.stall_timeout without progress, whatever happened meanwhile (reconnects, NAKs,
///   retries, dead letters of failing events).
///
/// Thread contract: one thread (the monitor) calls update(); the results are published by the
/// caller.

#include <cstdint>

namespace cdc {

class ProgressTracker {
 public:
  struct Sample {
    std::uint64_t output_ok = 0;        ///< processed + duplicate acks (the output has the event)
    std::uint64_t other_final = 0;      ///< skipped acks, dead letters of bad input
    std::uint64_t output_failures = 0;  ///< publish errors, PubAck timeouts, events dead-lettered
                                        ///< because they could not be published
    bool pending = false;               ///< events in flight, or a backlog on the consumer
  };
  /// Feeds one tick's totals; returns the running progress count (the first call only sets
  /// the baseline and returns 0).
  std::uint64_t update(const Sample& s) noexcept;
  /// True from an output-side failure until the next output success or until nothing is pending.
  [[nodiscard]] bool output_failing() const noexcept { return failing_; }

 private:
  bool started_ = false;
  Sample last_;
  bool failing_ = false;
  std::uint64_t progress_ = 0;
};

class StallDetector {
 public:
  struct Sample {
    bool pending = false;        ///< events in flight, or a backlog on the consumer
    std::uint64_t progress = 0;  ///< ProgressTracker's count
  };
  /// Returns true when stalled. `timeout_ns` <= 0 disables the check (never stalled).
  bool update(std::int64_t now_ns, const Sample& s, std::int64_t timeout_ns) noexcept;
  /// How long work has been pending without progress (0 when it is not).
  [[nodiscard]] std::int64_t waiting_ns(std::int64_t now_ns) const noexcept {
    return waiting_ ? now_ns - since_ns_ : 0;
  }

 private:
  bool started_ = false;
  bool waiting_ = false;
  std::int64_t since_ns_ = 0;  ///< last progress, or when work became pending
  std::uint64_t progress_ = 0;
};

}  // namespace cdc
