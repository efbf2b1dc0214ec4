// The panic guard (FailureGuard) as a state machine on made-up time.

#include "cdc/core/failure_guard.hpp"

#include <catch2/catch.hpp>

namespace {

constexpr std::int64_t kSec = 1'000'000'000;
constexpr std::int64_t kGuard = 900 * kSec;  // guard.max_failure_duration default

using Guard = cdc::FailureGuard::Sample;

}  // namespace

TEST_CASE("the panic guard trips after max_failure_duration of failures without a success", "[health]") {
  cdc::FailureGuard g;
  std::int64_t t = 10 * kSec;
  Guard s{100, 0, true};
  CHECK_FALSE(g.update(t, s, kGuard));
  // Failures begin; nothing succeeds any more.
  s.failures = 3;
  t += kSec;
  CHECK_FALSE(g.update(t, s, kGuard));
  const std::int64_t first = t;
  for (int i = 0; i < 14; ++i) {
    t += 60 * kSec;
    s.failures += 2;
    CHECK_FALSE(g.update(t, s, kGuard));
  }
  CHECK(g.failing_ns(t) == t - first);
  CHECK(g.failures_since_success() == 3 + 28);
  // Failures pause (a NAK delay) while work is still pending: still failing.
  t = first + kGuard - kSec;
  CHECK_FALSE(g.update(t, s, kGuard));
  t = first + kGuard;
  CHECK(g.update(t, s, kGuard));
}

TEST_CASE("one success resets the panic guard", "[health]") {
  cdc::FailureGuard g;
  std::int64_t t = kSec;
  Guard s{0, 0, true};
  g.update(t, s, kGuard);
  s.failures = 1;
  g.update(t += kSec, s, kGuard);
  s.failures = 50;
  g.update(t += 800 * kSec, s, kGuard);
  CHECK(g.failing_ns(t) == 800 * kSec);
  // Mixed traffic: some events keep failing, but others succeed. Not a failing service.
  s.successes = 1;
  s.failures = 60;
  CHECK_FALSE(g.update(t += kSec, s, kGuard));
  CHECK(g.failing_ns(t) == 0);
  CHECK(g.failures_since_success() == 0);
  s.failures = 70;
  const std::int64_t again = t += kSec;
  CHECK_FALSE(g.update(again, s, kGuard));
  CHECK_FALSE(g.update(again + kGuard - 1, s, kGuard));
  CHECK(g.update(again + kGuard, s, kGuard));
}

TEST_CASE("the panic guard ignores failures once nothing is pending any more", "[health]") {
  cdc::FailureGuard g;
  std::int64_t t = kSec;
  Guard s{5, 0, true};
  g.update(t, s, kGuard);
  s.failures = 4;
  g.update(t += kSec, s, kGuard);
  // The failing messages were dead-lettered elsewhere / the stream was purged: idle.
  s.pending = false;
  CHECK_FALSE(g.update(t += kSec, s, kGuard));
  CHECK_FALSE(g.update(t += 2 * kGuard, s, kGuard));
  CHECK(g.failing_ns(t) == 0);
}

TEST_CASE("a guard limit of 0 disables the panic guard", "[health]") {
  cdc::FailureGuard g;
  Guard s{0, 0, true};
  g.update(kSec, s, 0);
  s.failures = 1;
  CHECK_FALSE(g.update(2 * kSec, s, 0));
  s.failures = 2;
  CHECK_FALSE(g.update(100000 * kSec, s, 0));
  CHECK(g.failing_ns(100000 * kSec) > 0);
}
