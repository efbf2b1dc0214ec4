#include "cdc/core/failure_guard.hpp"

namespace cdc {

bool FailureGuard::update(std::int64_t now_ns, const Sample& s, std::int64_t limit_ns) noexcept {
  if (!started_) {
    started_ = true;
    last_ = s;
    return false;
  }
  if (s.successes != last_.successes) {
    failing_ = false;
    failures_since_success_ = 0;
  } else if (s.failures != last_.failures) {
    if (!failing_) {
      failing_ = true;
      failing_since_ns_ = now_ns;
    }
    failures_since_success_ += s.failures - last_.failures;
  } else if (!s.pending) {
    // Idle: nothing is waiting to be retried, so nothing is failing.
    failing_ = false;
    failures_since_success_ = 0;
  }
  last_ = s;
  return limit_ns > 0 && failing_ && now_ns - failing_since_ns_ >= limit_ns;
}

}  // namespace cdc
