#include "cdc/core/stall_detector.hpp"

namespace cdc {

std::uint64_t ProgressTracker::update(const Sample& s) noexcept {
  if (!started_) {
    started_ = true;
    last_ = s;
    return progress_;
  }
  // Counters read one by one may be a unit apart for a tick: a step back is no step.
  const auto step = [](std::uint64_t now, std::uint64_t before) { return now > before ? now - before : 0; };
  const std::uint64_t ok = step(s.output_ok, last_.output_ok);
  const std::uint64_t other = step(s.other_final, last_.other_final);
  const bool failed = s.output_failures > last_.output_failures;
  if (ok > 0) {
    // The output takes events: whatever failed this tick was transient (a retry, one replica of
    // a cluster), and the rest of the traffic is progress again.
    failing_ = false;
    progress_ += ok + other;
  } else if (failed) {
    failing_ = true;
  } else if (!s.pending) {
    failing_ = false;  // nothing is waiting for the output any more
    progress_ += other;
  } else if (!failing_) {
    progress_ += other;
  }
  last_ = s;
  return progress_;
}

bool StallDetector::update(std::int64_t now_ns, const Sample& s, std::int64_t timeout_ns) noexcept {
  const bool progressed = !started_ || s.progress != progress_;
  started_ = true;
  progress_ = s.progress;
  if (!s.pending || progressed) {
    // The clock (re)starts at the last progress and when work becomes pending, and at nothing
    // else: reconnects, NAKs and retries do not restart it.
    waiting_ = s.pending;
    since_ns_ = now_ns;
    return false;
  }
  if (!waiting_) {
    waiting_ = true;
    since_ns_ = now_ns;
  }
  return timeout_ns > 0 && now_ns - since_ns_ >= timeout_ns;
}

}  // namespace cdc
