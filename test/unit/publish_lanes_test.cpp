// Publish lanes (publish.write_mode adaptive, docs/decisions.md): the publish stage writes a
// backlog through the batching lane and idle events through the eager one, and changes lanes
// only when nothing it published awaits a PubAck, so each subject keeps its order.
// The real Pipeline on the in-process rig (test/support/pipeline_rig.hpp).

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "pipeline_rig.hpp"

namespace {

using namespace std::chrono_literals;
using namespace cdc_test;

cdc::Config lanes_config() {
  cdc::Config config;
  config.dedup.enabled = false;
  config.pipeline.ring_capacity = 1024;
  config.publish.batching_threshold = 64;           // eager again at 8 or fewer
  config.publish.ack_timeout = cdc::Millis{60000};  // PubAcks come when the test answers
  config.pipeline.drain_timeout = cdc::Millis{300};
  return config;
}

std::vector<int> numbered(int count) {
  std::vector<int> changes;
  for (int i = 1; i <= count; ++i) changes.push_back(i);
  return changes;
}

/// Answers the publisher's PubAcks until `completed` events are completed.
bool answer_until(Rig& rig, int completed) {
  return eventually([&] {
    rig.out->answer();
    return rig.done->completed() >= completed;
  });
}

}  // namespace

TEST_CASE("with two lanes a backlog goes through the batching lane and an idle event through the eager one",
          "[publish][lanes]") {
  constexpr int kBacklog = 600;
  constexpr int kTrickle = 5;
  Rig rig(lanes_config(), numbered(kBacklog + kTrickle), /*lanes=*/true, /*first=*/kBacklog);
  cdc::Metrics& metrics = rig.pipeline->metrics();

  // Nothing answered yet: the stage publishes on the eager lane until its load asks for the
  // batching one, then takes nothing new while its eager publishes await their PubAcks.
  REQUIRE(eventually([&] { return rig.out->count() > 0; }));
  std::this_thread::sleep_for(100ms);
  const std::size_t before = rig.out->count();
  std::this_thread::sleep_for(100ms);
  CHECK(rig.out->count() == before);
  CHECK(rig.out->batched() == 0);
  CHECK(metrics.publish.lane_switches.value() == 0);

  REQUIRE(answer_until(rig, kBacklog));
  CHECK(rig.out->batched() > 0);
  CHECK(metrics.publish.lane_switches.value() >= 1);
  // Backlog done: back on the eager lane once the batching one has nothing out.
  REQUIRE(eventually([&] { return metrics.publish.batching.value() == 0; }));

  for (int i = 1; i <= kTrickle; ++i) {
    rig.source->allow(1);
    REQUIRE(eventually([&] { return rig.out->count() == static_cast<std::size_t>(kBacklog + i); }));
    CHECK_FALSE(rig.out->last_batched());
    REQUIRE(answer_until(rig, kBacklog + i));
  }
  CHECK(metrics.publish.lane_switches.value() >= 2);
  CHECK(rig.out->crossed() == 0);
  CHECK(rig.out->count() == static_cast<std::size_t>(kBacklog + kTrickle));
  for (int seq = 1; seq <= kBacklog + kTrickle; ++seq) {
    INFO("stream sequence " << seq);
    CHECK(rig.done->of(seq).kind == 'a');
  }
  rig.pipeline->stop();
}

TEST_CASE("a lane change under steady answers never publishes on one lane while the other has one out",
          "[publish][lanes]") {
  // PubAcks answered as they come, in bursts, while the load crosses the thresholds both ways:
  // three backlogs with idle stretches between them.
  constexpr int kRound = 600;
  Rig rig(lanes_config(), numbered(3 * kRound), /*lanes=*/true, /*first=*/0);
  cdc::Metrics& metrics = rig.pipeline->metrics();
  for (int round = 1; round <= 3; ++round) {
    rig.source->allow(kRound);
    REQUIRE(answer_until(rig, kRound * round));
    REQUIRE(eventually([&] { return metrics.publish.batching.value() == 0; }));
  }
  CHECK(rig.out->crossed() == 0);
  CHECK(rig.out->batched() > 0);
  CHECK(metrics.publish.lane_switches.value() >= 6);
  CHECK(rig.out->count() == static_cast<std::size_t>(3 * kRound));
  rig.pipeline->stop();
}

TEST_CASE("a publisher with one lane is never switched", "[publish][lanes]") {
  Rig rig(lanes_config(), numbered(600));
  REQUIRE(answer_until(rig, 600));
  CHECK(rig.pipeline->metrics().publish.lane_switches.value() == 0);
  CHECK(rig.pipeline->metrics().publish.batching.value() == 0);
  CHECK(rig.out->batched() == 0);
  rig.pipeline->stop();
}
