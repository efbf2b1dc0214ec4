#pragma once
/// How a stage waits for work: the Disruptor's WaitStrategy, without locks.
///
/// Each consuming stage owns one WaitStrategy. Producers call notify() after making work visible;
/// the consumer calls wait_for(pred, timeout) when it found nothing to do. Strategies:
///  - busy_spin: never sleeps (lowest latency, burns a core; only with pinned, dedicated cores)
///  - yield:     spins briefly, then sched_yield() in a loop (burns a core while idle)
///  - sleep:     spins, yields, then sleeps with growing naps up to 1 ms (~0 % CPU idle, no
///               producer-side cost)
///  - blocking:  spins, yields, then blocks on a futex until notify() or the timeout (default;
///               ~0 % CPU idle, wakes in microseconds). "park" is accepted as an alias.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "cdc/core/ring_buffer.hpp"

namespace cdc {

enum class WaitStrategyKind : std::uint8_t { kBusySpin, kYield, kSleep, kBlocking };

/// Parses "busy_spin" | "yield" | "sleep" | "blocking" (or its old name "park", an alias);
/// returns false on anything else and leaves `out` untouched.
bool parse_wait_kind(std::string_view text, WaitStrategyKind& out) noexcept;
/// The configuration name of `kind`: "busy_spin", "yield", "sleep" or "blocking".
std::string_view to_string(WaitStrategyKind kind) noexcept;

class WaitStrategy {
 public:
  explicit WaitStrategy(WaitStrategyKind kind = WaitStrategyKind::kBlocking) noexcept : kind_(kind) {}
  WaitStrategy(const WaitStrategy&) = delete;
  WaitStrategy& operator=(const WaitStrategy&) = delete;

  /// Any producer thread, after publishing work. Costs one load unless the consumer is blocked.
  void notify() noexcept {
    if (kind_ != WaitStrategyKind::kBlocking) return;
    // seq_cst pairs with the consumer's seq_cst store of blocked_ (Dekker): either we see it blocked
    // and wake it, or it sees our work before it sleeps.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (blocked_.load(std::memory_order_relaxed)) wake();
  }

  /// Consumer thread only. Returns when pred() is true or timeout elapsed; returns pred().
  template <typename Pred>
  bool wait_for(Pred&& pred, std::chrono::nanoseconds timeout) noexcept {
    if (pred()) return true;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (int spin = 0; spin < spin_limit(); ++spin) {
      if (pred()) return true;
      cpu_relax();
    }
    int rounds = 0;
    while (true) {
      if (pred()) return true;
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return false;
      switch (kind_) {
        case WaitStrategyKind::kBusySpin: cpu_relax(); break;
        case WaitStrategyKind::kYield: yield(); break;
        case WaitStrategyKind::kSleep:
          if (rounds < 64) {
            yield();
          } else {
            nap(std::min<std::chrono::nanoseconds>(deadline - now, sleep_step(rounds)));
          }
          break;
        case WaitStrategyKind::kBlocking: {
          if (rounds < 8) {
            yield();
            break;
          }
          const std::uint32_t epoch = epoch_.load(std::memory_order_acquire);
          blocked_.store(true, std::memory_order_seq_cst);
          if (!pred()) block(epoch, deadline - now);
          blocked_.store(false, std::memory_order_relaxed);
          break;
        }
      }
      ++rounds;
    }
  }

  [[nodiscard]] WaitStrategyKind kind() const noexcept { return kind_; }

 private:
  static void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  // The first spins skip the clock; busy_spin keeps spinning in the loop below, which checks it.
  [[nodiscard]] static constexpr int spin_limit() noexcept { return 200; }
  static std::chrono::nanoseconds sleep_step(int rounds) noexcept;
  static void yield() noexcept;
  static void nap(std::chrono::nanoseconds d) noexcept;
  void block(std::uint32_t epoch, std::chrono::nanoseconds d) noexcept;
  void wake() noexcept;

  const WaitStrategyKind kind_;
  alignas(kCacheLine) std::atomic<bool> blocked_{false};
  std::atomic<std::uint32_t> epoch_{0};
};

}  // namespace cdc
