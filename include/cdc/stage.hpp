#pragma once
/// What every stage shares: the ring it reads, the ring it writes, the Waiter of each, and the
/// pipeline's lifecycle flags. A stage is a class with one run() loop on one thread.

#include <atomic>
#include <chrono>
#include <cstdint>

#include "cdc/event.hpp"
#include "cdc/ring_buffer.hpp"
#include "cdc/wait_strategy.hpp"

namespace cdc {

using EventRing = RingBuffer<Event*>;

/// A ring and the Waiter of the stage that consumes it.
struct Link {
  EventRing* ring = nullptr;
  Waiter* waiter = nullptr;
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
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Pushes into a ring that by construction always has room (every ring holds the whole pool);
/// a failure is a broken invariant.
void push_or_die(EventRing& ring, Event* event) noexcept;

/// Names the calling thread and pins it to `cpu` (-1 = leave it to the scheduler).
void setup_stage_thread(const char* name, int cpu) noexcept;

}  // namespace cdc
