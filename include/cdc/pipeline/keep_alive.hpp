#pragma once
/// KeepAlive: in-progress signals for source messages a stage holds for long.

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "cdc/pipeline/event.hpp"
#include "cdc/pipeline/link.hpp"

namespace cdc {

class Completer;

/// Keeps messages a stage holds for long (retries, Redis down with on_redis_error=block) from
/// being redelivered: once an event has been held for half of AckWait since delivery or the last
/// signal, it sends JetStream an in-progress signal. Used by the stage that owns the events (its
/// own window and its input ring); scans at most once a second.
class KeepAlive {
 public:
  KeepAlive(Completer* completer, std::chrono::milliseconds ack_wait) noexcept
      : completer_(completer),
        half_ack_wait_ns_(std::chrono::duration_cast<std::chrono::nanoseconds>(ack_wait).count() / 2),
        // An event crosses the half-AckWait mark up to one scan period before a scan sees it:
        // scanning every quarter of AckWait (at most every second) signals it by 3/4 of AckWait.
        // A fixed 1 s period signalled at up to half AckWait + 1 s, too late for AckWait <= 2 s.
        scan_period_ns_(std::min<std::int64_t>(1'000'000'000LL, half_ack_wait_ns_ / 2)) {}
  /// True when a scan is due (every quarter of AckWait, at most once a second).
  bool due(std::int64_t now) noexcept {
    if (completer_ == nullptr || now - last_scan_ns_ < scan_period_ns_) return false;
    last_scan_ns_ = now;
    return true;
  }
  /// Signals `ev` if it has been held for half of AckWait. Returns true when it did.
  bool touch(Event& ev, std::int64_t now) noexcept;
  /// Scans every event queued in `ring` (consumer side).
  void touch_ring(EventRing& ring, std::int64_t now) noexcept {
    for (std::size_t i = 0;; ++i) {
      Event** e = ring.peek(i);
      if (e == nullptr) break;
      touch(**e, now);
    }
  }
  [[nodiscard]] std::uint64_t signals() const noexcept { return signals_; }

 private:
  Completer* completer_;
  std::int64_t half_ack_wait_ns_;
  std::int64_t scan_period_ns_;
  std::int64_t last_scan_ns_ = 0;
  std::uint64_t signals_ = 0;
};

}  // namespace cdc
