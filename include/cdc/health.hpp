#pragma once
/// The two judgements the pipeline monitor makes once per tick, as pure state machines fed with
/// counters and the steady clock (so tests drive them with made-up time):
///
/// - StallDetector: liveness (/healthz). Stalled when work has been pending for
///   health.stall_timeout with no source message completed meanwhile, while the dependencies
///   looked fine (a NATS or Redis outage is readiness' business, and the panic guard's).
/// - FailureGuard: the panic guard. Tripped when processing has failed continuously for
///   guard.max_failure_duration: failures kept being counted and nothing succeeded since the
///   first of them. The service then exits with code 3 so the orchestrator restarts it.
///
/// Thread contract: one thread (the monitor) calls update(); the results are published by the
/// caller.

#include <cstdint>

namespace cdc {

class StallDetector {
 public:
  struct Sample {
    bool pending = false;          ///< events in flight, or a backlog on the consumer
    std::uint64_t completed = 0;   ///< source messages completed (ack, nak, term) so far
    bool dependencies_ok = true;   ///< NATS connected, and Redis up or not needed to progress
  };
  /// Returns true when stalled. `timeout_ns` <= 0 disables the check (never stalled).
  bool update(std::int64_t now_ns, const Sample& s, std::int64_t timeout_ns) noexcept;
  /// How long work has been pending without progress (0 when it is not).
  [[nodiscard]] std::int64_t waiting_ns(std::int64_t now_ns) const noexcept { return waiting_ ? now_ns - since_ns_ : 0; }

 private:
  bool started_ = false;
  bool waiting_ = false;
  std::int64_t since_ns_ = 0;  ///< last completion, or when work became pending / dependencies recovered
  std::uint64_t completed_ = 0;
};

class FailureGuard {
 public:
  struct Sample {
    std::uint64_t successes = 0;  ///< completions that are final outcomes (ack, term)
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
