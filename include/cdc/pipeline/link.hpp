#pragma once
/// What joins the stages: the rings between them (Link: a ring and the WaitStrategy of the thread
/// that consumes it) and the pipeline's lifecycle flags.

#include <atomic>
#include <chrono>
#include <cstdint>

#include "cdc/pipeline/event.hpp"
#include "cdc/core/ring_buffer.hpp"
#include "cdc/core/wait_strategy.hpp"

namespace cdc {

using EventRing = RingBuffer<Event*>;

/// A ring and the WaitStrategy of the stage that consumes it.
struct Link {
  EventRing* ring = nullptr;
  WaitStrategy* waiter = nullptr;
  /// Set (release) by the producing stage once it will push nothing more.
  std::atomic<bool>* producer_done = nullptr;

  /// Consumer side: nothing queued and nothing will come.
  [[nodiscard]] bool drained() const noexcept {
    return producer_done->load(std::memory_order_acquire) && ring->front() == nullptr;
  }
};

/// Pipeline-wide lifecycle, read by every stage.
struct Lifecycle {
  /// Stop taking new messages (SIGTERM); in-flight work continues.
  std::atomic<bool> stop_intake{false};
  /// Drain deadline passed: finish now, NAK what is not final.
  std::atomic<bool> abort{false};
};

/// Steady-clock nanoseconds.
inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Pushes into a ring that by construction always has room (every ring holds the whole pool);
/// a failure is a broken invariant.
void push_or_die(EventRing& ring, Event* event) noexcept;

/// The trace id of the event's source message (its W3C `traceparent` header), or "" when it has
/// none; the `trace_id` of log lines about one event. Reads the headers: for log lines only.
std::string_view trace_id(const Event& ev) noexcept;

}  // namespace cdc
