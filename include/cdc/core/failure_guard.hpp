#pragma once
/// The panic guard, one of the judgements the pipeline monitor makes once per tick (with
/// ProgressTracker and StallDetector, stall_detector.hpp), as a pure state machine fed with
/// counters and the steady clock (so tests drive it with made-up time).
///
/// FailureGuard is tripped when processing has failed continuously for
/// guard.max_failure_duration: failures kept being counted and there was no progress
/// (ProgressTracker's count) since the first of them. The service then exits with code 3 so the
/// orchestrator restarts it.
///
/// Thread contract: one thread (the monitor) calls update(); the results are published by the
/// caller.

#include <cstdint>

namespace cdc {

class FailureGuard {
 public:
  struct Sample {
    std::uint64_t successes = 0;  ///< ProgressTracker's count
    std::uint64_t failures = 0;   ///< NAKs, failed publishes, Redis errors that hold work, ...
    bool pending = false;         ///< events in flight, or a backlog on the consumer
  };
  /// Returns true when processing has been failing continuously for at least `limit_ns`
  /// (<= 0 disables the guard).
  bool update(std::int64_t now_ns, const Sample& s, std::int64_t limit_ns) noexcept;
  /// How long processing has been failing (0 when it is not).
  [[nodiscard]] std::int64_t failing_ns(std::int64_t now_ns) const noexcept {
    return failing_ ? now_ns - failing_since_ns_ : 0;
  }
  /// Failures counted since the last success.
  [[nodiscard]] std::uint64_t failures_since_success() const noexcept { return failures_since_success_; }

 private:
  bool started_ = false;
  Sample last_;
  bool failing_ = false;
  std::int64_t failing_since_ns_ = 0;
  std::uint64_t failures_since_success_ = 0;
};

}  // namespace cdc
