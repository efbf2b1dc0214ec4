#include "cdc/core/wait_strategy.hpp"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

namespace cdc {

bool parse_wait_kind(std::string_view text, WaitStrategyKind& out) noexcept {
  if (text == "busy_spin") out = WaitStrategyKind::kBusySpin;
  else if (text == "yield") out = WaitStrategyKind::kYield;
  else if (text == "sleep") out = WaitStrategyKind::kSleep;
  // "park" is the name before the Disruptor's vocabulary: existing config files keep working.
  else if (text == "blocking" || text == "park") out = WaitStrategyKind::kBlocking;
  else return false;
  return true;
}

std::string_view to_string(WaitStrategyKind kind) noexcept {
  switch (kind) {
    case WaitStrategyKind::kBusySpin: return "busy_spin";
    case WaitStrategyKind::kYield: return "yield";
    case WaitStrategyKind::kSleep: return "sleep";
    case WaitStrategyKind::kBlocking: return "blocking";
  }
  return "blocking";
}

std::chrono::nanoseconds WaitStrategy::sleep_step(int rounds) noexcept {
  // 50 us growing to 1 ms: short naps while work trickles in, ~1000 wake-ups/s when idle.
  const auto step = std::chrono::microseconds(50) * (1 << std::min(rounds - 64, 5));
  return std::min<std::chrono::nanoseconds>(step, std::chrono::milliseconds(1));
}

void WaitStrategy::yield() noexcept { sched_yield(); }

void WaitStrategy::nap(std::chrono::nanoseconds d) noexcept {
  timespec ts{static_cast<time_t>(d.count() / 1000000000), static_cast<long>(d.count() % 1000000000)};
  nanosleep(&ts, nullptr);
}

void WaitStrategy::block(std::uint32_t epoch, std::chrono::nanoseconds d) noexcept {
  timespec ts{static_cast<time_t>(d.count() / 1000000000), static_cast<long>(d.count() % 1000000000)};
  // FUTEX_WAIT returns at once if epoch_ moved since we read it, so a notify() between our
  // predicate check and this call is never lost.
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&epoch_), FUTEX_WAIT_PRIVATE, epoch, &ts, nullptr, 0);
}

void WaitStrategy::wake() noexcept {
  epoch_.fetch_add(1, std::memory_order_release);
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&epoch_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

}  // namespace cdc
