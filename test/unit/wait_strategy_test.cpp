#include "cdc/core/wait_strategy.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <string_view>
#include <thread>

namespace {

using cdc::WaitStrategy;
using cdc::WaitStrategyKind;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr WaitStrategyKind kAllKinds[] = {WaitStrategyKind::kBusySpin, WaitStrategyKind::kYield,
                                          WaitStrategyKind::kSleep, WaitStrategyKind::kBlocking};

/// Generous bound for "returned because of the notify, not because the timeout ran out": the
/// waits below use a 10 s timeout, and a wake-up takes microseconds.
constexpr auto kLongTimeout = 10s;
constexpr auto kPrompt = 5s;

std::string name(WaitStrategyKind k) { return std::string(cdc::to_string(k)); }

}  // namespace

TEST_CASE("parse_wait_kind and to_string round-trip", "[wait]") {
  CHECK(cdc::to_string(WaitStrategyKind::kBusySpin) == "busy_spin");
  CHECK(cdc::to_string(WaitStrategyKind::kYield) == "yield");
  CHECK(cdc::to_string(WaitStrategyKind::kSleep) == "sleep");
  CHECK(cdc::to_string(WaitStrategyKind::kBlocking) == "blocking");
  for (const WaitStrategyKind k : kAllKinds) {
    INFO(name(k));
    // Start from a different kind so a parse that does not write `out` fails.
    WaitStrategyKind out = k == WaitStrategyKind::kBlocking ? WaitStrategyKind::kBusySpin : WaitStrategyKind::kBlocking;
    REQUIRE(cdc::parse_wait_kind(cdc::to_string(k), out));
    CHECK(out == k);
  }
  for (const std::string_view bad :
       {"", "Park", "PARK", "Blocking", "block", "busy-spin", "busyspin", "spin", "park ", " yield", "sleeping"}) {
    INFO("'" << bad << "'");
    WaitStrategyKind out = WaitStrategyKind::kYield;
    CHECK_FALSE(cdc::parse_wait_kind(bad, out));
    CHECK(out == WaitStrategyKind::kYield);  // untouched on failure
  }
}

TEST_CASE("park is accepted as the old name of blocking", "[wait]") {
  WaitStrategyKind out = WaitStrategyKind::kBusySpin;
  REQUIRE(cdc::parse_wait_kind("park", out));
  CHECK(out == WaitStrategyKind::kBlocking);
}

TEST_CASE("a WaitStrategy keeps its kind, blocking is the default", "[wait]") {
  CHECK(WaitStrategy().kind() == WaitStrategyKind::kBlocking);
  for (const WaitStrategyKind k : kAllKinds) CHECK(WaitStrategy(k).kind() == k);
}

TEST_CASE("wait_for returns at once when there is already work", "[wait]") {
  for (const WaitStrategyKind k : kAllKinds) {
    INFO(name(k));
    WaitStrategy w(k);
    int calls = 0;
    const auto start = Clock::now();
    CHECK(w.wait_for([&] { return ++calls > 0; }, 1h));
    CHECK(Clock::now() - start < kPrompt);
    CHECK(calls == 1);
  }
}

TEST_CASE("wait_for returns true when work arrives with a notify from another thread", "[wait]") {
  for (const WaitStrategyKind k : kAllKinds) {
    INFO(name(k));
    WaitStrategy w(k);
    std::atomic<bool> work{false};
    std::atomic<int> checks{0};
    bool blocked = false;  // the waiter stopped checking: it is asleep in the kernel

    std::thread notifier([&] {
      // Let the waiter get past its spinning into its idle phase before the work arrives: wait
      // until it has checked a few hundred times, or stopped checking for a while (parked).
      int last = -1;
      auto last_change = Clock::now();
      const auto give_up = Clock::now() + 2s;
      while (Clock::now() < give_up) {
        const int now = checks.load();
        if (now >= 400) break;
        if (now != last) {
          last = now;
          last_change = Clock::now();
        } else if (now > 0 && Clock::now() - last_change > 50ms) {
          blocked = true;
          break;
        }
        std::this_thread::sleep_for(1ms);
      }
      work.store(true, std::memory_order_release);
      w.notify();
    });

    const auto start = Clock::now();
    const bool woke = w.wait_for(
        [&] {
          checks.fetch_add(1);
          return work.load(std::memory_order_acquire);
        },
        kLongTimeout);
    const auto elapsed = Clock::now() - start;
    notifier.join();

    CHECK(woke);
    // Woken by the notify, not by the timeout running out (wait_for re-checks at the deadline).
    CHECK(elapsed < kPrompt);
    // blocking must actually block when idle (~0 % CPU), and notify() must be what ends the block.
    if (k == WaitStrategyKind::kBlocking) CHECK(blocked);
  }
}

TEST_CASE("wait_for returns false after the timeout when there is nothing to do", "[wait]") {
  for (const WaitStrategyKind k : kAllKinds) {
    INFO(name(k));
    WaitStrategy w(k);
    w.notify();  // a stale notify must not turn into a spurious true
    const auto start = Clock::now();
    const bool got = w.wait_for([] { return false; }, 20ms);
    const auto elapsed = Clock::now() - start;
    CHECK_FALSE(got);
    CHECK(elapsed >= 20ms);
    CHECK(elapsed < kPrompt);
  }
}

TEST_CASE("blocking: a stray notify does not end a wait whose work has not arrived", "[wait]") {
  WaitStrategy w(WaitStrategyKind::kBlocking);
  std::atomic<bool> stop{false};
  std::thread noisy([&] {
    while (!stop.load()) {
      w.notify();
      std::this_thread::yield();
    }
  });
  const auto start = Clock::now();
  const bool got = w.wait_for([] { return false; }, 50ms);
  const auto elapsed = Clock::now() - start;
  stop.store(true);
  noisy.join();
  CHECK_FALSE(got);
  CHECK(elapsed >= 50ms);
  CHECK(elapsed < kPrompt);
}

TEST_CASE("ping-pong: no wake-up is lost over many hand-offs", "[wait]") {
  for (const WaitStrategyKind k : kAllKinds) {
    INFO(name(k));
    constexpr int kRounds = 20'000;
    WaitStrategy ping_waiter(k);  // the responder waits on it
    WaitStrategy pong_waiter(k);  // the initiator waits on it
    std::atomic<int> ping{0};
    std::atomic<int> pong{0};
    std::atomic<int> slow{0};  // waits that ran into the timeout: lost wake-ups

    std::thread responder([&] {
      for (int i = 1; i <= kRounds; ++i) {
        if (!ping_waiter.wait_for([&] { return ping.load(std::memory_order_acquire) >= i; }, kLongTimeout)) {
          slow.fetch_add(1);
        }
        pong.store(i, std::memory_order_release);
        pong_waiter.notify();
      }
    });
    const auto start = Clock::now();
    for (int i = 1; i <= kRounds; ++i) {
      ping.store(i, std::memory_order_release);
      ping_waiter.notify();
      const auto t0 = Clock::now();
      if (!pong_waiter.wait_for([&] { return pong.load(std::memory_order_acquire) >= i; }, kLongTimeout) ||
          Clock::now() - t0 > kPrompt) {
        slow.fetch_add(1);
      }
    }
    responder.join();
    CHECK(slow.load() == 0);
    CHECK(pong.load() == kRounds);
    CHECK(Clock::now() - start < 60s);
  }
}
