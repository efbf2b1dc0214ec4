// Liveness (ProgressTracker, StallDetector) as state machines on made-up time.

#include "cdc/core/stall_detector.hpp"

#include <catch2/catch.hpp>

namespace {

constexpr std::int64_t kSec = 1'000'000'000;
constexpr std::int64_t kStall = 120 * kSec;  // health.stall_timeout default

using Stall = cdc::StallDetector::Sample;

}  // namespace

TEST_CASE("liveness fails only when work stays pending with nothing completed for stall_timeout", "[health]") {
  cdc::StallDetector d;
  std::int64_t t = 1000 * kSec;
  // Idle for a long time: never stalled.
  for (int i = 0; i < 10; ++i, t += 60 * kSec) CHECK_FALSE(d.update(t, Stall{false, 0}, kStall));
  // Work arrives and completes steadily: not stalled, however long it lasts.
  std::uint64_t done = 0;
  for (int i = 0; i < 10; ++i, t += 60 * kSec) CHECK_FALSE(d.update(t, Stall{true, ++done}, kStall));
  // Now nothing completes while work is pending: stalled stall_timeout after the last
  // completion, not before.
  const std::int64_t last = t - 60 * kSec;
  CHECK_FALSE(d.update(t, Stall{true, done}, kStall));
  CHECK_FALSE(d.update(last + kStall - kSec, Stall{true, done}, kStall));
  CHECK(d.waiting_ns(last + kStall - kSec) == kStall - kSec);
  CHECK(d.update(last + kStall, Stall{true, done}, kStall));
  CHECK(d.update(last + kStall + 30 * kSec, Stall{true, done}, kStall));
  // One completion and it is alive again.
  CHECK_FALSE(d.update(last + kStall + 31 * kSec, Stall{true, done + 1}, kStall));
  CHECK(d.waiting_ns(last + kStall + 31 * kSec) == 0);
}

TEST_CASE("liveness counts from when work became pending, not from the last completion", "[health]") {
  cdc::StallDetector d;
  std::int64_t t = 5000 * kSec;
  CHECK_FALSE(d.update(t, Stall{true, 7}, kStall));
  CHECK_FALSE(d.update(t + kSec, Stall{false, 8}, kStall));  // done, idle
  // An hour of idleness, then a message that takes a few seconds: not a stall.
  t += 3600 * kSec;
  CHECK_FALSE(d.update(t, Stall{false, 8}, kStall));
  CHECK_FALSE(d.update(t + kSec, Stall{true, 8}, kStall));
  CHECK_FALSE(d.update(t + 10 * kSec, Stall{true, 8}, kStall));
  CHECK(d.update(t + kSec + kStall, Stall{true, 8}, kStall));
}

TEST_CASE("dependency outages and reconnects do not restart the liveness clock", "[health]") {
  cdc::StallDetector d;
  std::int64_t t = 100 * kSec;
  CHECK_FALSE(d.update(t, Stall{true, 1}, kStall));
  // Redis refusing every command (NOAUTH) and reconnecting every few seconds, NATS flapping:
  // none of it is progress, so the clock runs from the last progress.
  for (int i = 1; i * 5 * kSec < kStall; ++i) CHECK_FALSE(d.update(t + i * 5 * kSec, Stall{true, 1}, kStall));
  CHECK(d.update(t + kStall, Stall{true, 1}, kStall));
}

TEST_CASE("progress is an output success, not a failure, whatever else is acked meanwhile", "[health]") {
  using P = cdc::ProgressTracker::Sample;
  cdc::ProgressTracker p;
  CHECK(p.update(P{10, 5, 0, true}) == 0);
  // Normal traffic: outputs and skipped tables both count.
  CHECK(p.update(P{20, 8, 0, true}) == 13);
  // The output stream is gone: publishes fail while skipped-table messages keep being acked
  // and failing events are dead-lettered. None of it is progress.
  CHECK(p.update(P{20, 9, 3, true}) == 13);
  CHECK(p.output_failing());
  CHECK(p.update(P{20, 50, 3, true}) == 13);
  CHECK(p.update(P{20, 90, 40, true}) == 13);
  // The output is back: an event stored, and skipped acks count again.
  CHECK(p.update(P{21, 95, 40, true}) == 19);
  CHECK_FALSE(p.output_failing());
  CHECK(p.update(P{21, 96, 40, true}) == 20);
  // A failure, then nothing pending any more: skipped traffic counts again.
  CHECK(p.update(P{21, 96, 41, true}) == 20);
  CHECK(p.update(P{21, 97, 41, false}) == 21);
  CHECK_FALSE(p.output_failing());
}

TEST_CASE("a stall timeout of 0 disables liveness failures", "[health]") {
  cdc::StallDetector d;
  CHECK_FALSE(d.update(kSec, Stall{true, 0}, 0));
  CHECK_FALSE(d.update(1000000 * kSec, Stall{true, 0}, 0));
  // The limit can change between ticks (SIGHUP): the wait so far counts.
  CHECK(d.update(1000001 * kSec, Stall{true, 0}, kStall));
}
