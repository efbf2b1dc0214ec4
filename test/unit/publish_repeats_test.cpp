// Repeats in flight (docs/decisions.md): a repeat of an event still awaiting its outcome in the
// publish stage is held, not published a second time, and completes by its first copy's outcome.
// The real Pipeline on in-process ports: a source that delivers a fixed list, a publisher whose
// PubAcks the test answers, a completer that records each completion, and (dedup on) an
// in-process dedup store with Redis' SET NX GET semantics.

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "pipeline_rig.hpp"

namespace {

using namespace std::chrono_literals;
using namespace cdc_test;

cdc::Config repeat_config(bool dedup) {
  cdc::Config config;
  config.dedup.enabled = dedup;
  config.pipeline.ring_capacity = 1024;
  config.publish.ack_timeout = cdc::Millis{60000};  // PubAcks come when the test answers
  config.publish.nak_delay = cdc::Millis{777};
  config.pipeline.drain_timeout = cdc::Millis{300};
  return config;
}

}  // namespace

TEST_CASE("publish stage holds repeats while the first copy awaits its PubAck and acks them as duplicates",
          "[pipeline][publish][repeats]") {
  cdc::log::set_level(cdc::log::Level::kError);
  const bool dedup = GENERATE(true, false);  // claim 'p' of our own, or no claim at all
  INFO("dedup " << dedup);
  // Change 0 repeated twice behind it while in flight, change 2 once.
  Rig rig(repeat_config(dedup), {0, 1, 0, 2, 0, 2, 3});
  REQUIRE(eventually([&] { return rig.held() == 3; }));
  REQUIRE(rig.out->count() == 4);  // one publish per event id, none for the repeats
  CHECK(rig.done->completed() == 0);
  rig.out->answer();
  REQUIRE(eventually([&] { return rig.done->completed() == 7; }));
  rig.pipeline->stop();
  for (int n = 0; n < 4; ++n) CHECK(rig.out->count(event_id(n)) == 1);
  CHECK(rig.out->count() == 4);
  for (int seq = 1; seq <= 7; ++seq) CHECK(rig.done->of(seq).kind == 'a');
  CHECK(rig.events(cdc::EventResult::kProcessed) == 4);
  CHECK(rig.events(cdc::EventResult::kDuplicate) == 3);
  CHECK(rig.events(cdc::EventResult::kRetried) == 0);
  if (dedup) {
    // The first copy's done mark covers the repeats.
    std::lock_guard<std::mutex> lock(rig.keys.mutex);
    CHECK(rig.keys.values["dedup:" + event_id(0)] == "d");
  }
  CHECK(rig.pipeline->render_metrics().find("\ncdc_consumer_repeats_held_total 3\n") != std::string::npos);
}

TEST_CASE("a repeat held behind a first copy that fails for good is NAKed with it, not lost",
          "[pipeline][publish][repeats]") {
  cdc::log::set_level(cdc::log::Level::kError);
  const bool dedup = GENERATE(true, false);
  INFO("dedup " << dedup);
  cdc::Config config = repeat_config(dedup);
  config.publish.max_retries = 0;  // the first negative PubAck spends the budget: NAK
  Rig rig(config, {0, 1, 0});
  REQUIRE(eventually([&] { return rig.held() == 1; }));
  REQUIRE(rig.out->count() == 2);
  rig.out->answer(event_id(0));  // change 0 fails, change 1 is stored
  REQUIRE(eventually([&] { return rig.done->completed() == 3; }));
  rig.pipeline->stop();
  CHECK(rig.out->count(event_id(0)) == 1);
  CHECK(rig.done->of(1).kind == 'n');
  CHECK(rig.done->of(1).delay_ms == 777);
  CHECK(rig.done->of(2).kind == 'a');
  // The repeat goes through the claim again with its first copy, after publish.nak_delay.
  CHECK(rig.done->of(3).kind == 'n');
  CHECK(rig.done->of(3).delay_ms == 777);
  CHECK(rig.events(cdc::EventResult::kRetried) == 2);
  CHECK(rig.events(cdc::EventResult::kDuplicate) == 0);
  if (dedup) CHECK_FALSE(rig.keys.has("dedup:" + event_id(0)));  // unmarked: the redeliveries claim afresh
}

TEST_CASE("a held repeat on its last delivery is published itself when the first copy fails",
          "[pipeline][publish][repeats]") {
  cdc::log::set_level(cdc::log::Level::kError);
  cdc::Config config = repeat_config(true);
  config.publish.max_retries = 0;
  config.ingest.max_deliver = 1;  // every delivery is the last: a NAK would end it
  Rig rig(config, {0, 0});
  REQUIRE(eventually([&] { return rig.held() == 1; }));
  REQUIRE(rig.out->count() == 1);
  rig.out->answer(event_id(0));  // the first copy fails: dead-lettered (its last delivery)
  REQUIRE(eventually([&] { return rig.out->count() == 2; }));  // its dead letter
  CHECK(rig.out->count(event_id(0)) == 1);
  CHECK(rig.done->completed() == 0);
  rig.out->answer();
  // The dead letter is stored: the first copy is final, and the repeat publishes the event.
  REQUIRE(eventually([&] { return rig.out->count() == 3; }));
  CHECK(rig.out->count(event_id(0)) == 2);
  rig.out->answer();
  REQUIRE(eventually([&] { return rig.done->completed() == 2; }));
  rig.pipeline->stop();
  CHECK(rig.done->of(1).kind == 't');
  CHECK(rig.done->of(2).kind == 'a');
  CHECK(rig.events(cdc::EventResult::kProcessed) == 1);
  CHECK(rig.events(cdc::EventResult::kDeadLettered) == 1);
}

TEST_CASE("at shutdown a held repeat is NAKed at once with its unsettled first copy, acked with a stored one",
          "[pipeline][publish][repeats]") {
  cdc::log::set_level(cdc::log::Level::kError);
  Rig rig(repeat_config(true), {0, 1, 0, 1});
  REQUIRE(eventually([&] { return rig.held() == 2; }));
  REQUIRE(rig.out->count() == 2);
  // Change 1 is stored; change 0's PubAck never comes: the drain deadline NAKs it.
  REQUIRE(rig.out->answer_only(event_id(1)) == 1);
  rig.pipeline->stop();
  REQUIRE(rig.done->completed() == 4);
  CHECK(rig.out->count() == 2);
  CHECK(rig.done->of(1).kind == 'n');
  CHECK(rig.done->of(1).delay_ms == 0);  // redelivered at once, to the next owner
  CHECK(rig.done->of(2).kind == 'a');
  CHECK(rig.done->of(3).kind == 'n');
  CHECK(rig.done->of(3).delay_ms == 0);
  CHECK(rig.done->of(4).kind == 'a');  // its first copy was stored: a duplicate
  CHECK(rig.events(cdc::EventResult::kRetried) == 2);
  CHECK(rig.events(cdc::EventResult::kDuplicate) == 1);
}

TEST_CASE("the leader table stays consistent through thousands of first copies and repeats",
          "[pipeline][publish][repeats]") {
  cdc::log::set_level(cdc::log::Level::kError);
  const bool dedup = GENERATE(true, false);
  INFO("dedup " << dedup);
  cdc::Config config = repeat_config(dedup);
  config.pipeline.ring_capacity = 256;  // a small table (512 entries), filled and emptied many times
  config.publish.max_pending = 256;
  std::vector<int> changes;
  for (int n = 0; n < 6000; ++n) {
    const int copies = n % 7 == 0 ? 3 : n % 3 == 0 ? 2 : 1;
    for (int c = 0; c < copies; ++c) changes.push_back(n);
  }
  const int total = static_cast<int>(changes.size());
  const int repeats = total - 6000;
  Rig rig(config, changes);
  // PubAcks in waves, as a broker answers a loaded window.
  std::atomic<bool> stop{false};
  std::thread answering([&] {
    while (!stop.load()) {
      rig.out->answer();
      std::this_thread::sleep_for(200us);
    }
  });
  const bool all = eventually([&] { return rig.done->completed() == total; }, 60s);
  stop.store(true);
  answering.join();
  REQUIRE(all);
  rig.pipeline->stop();
  const auto held = rig.held();
  INFO("held " << held << " of " << repeats);
  CHECK(held > 0);
  // Every source message acked once: each publish (all answered "stored") is one processed
  // event; the held repeats (and, dedup on, repeats that found a 'd' mark) are duplicates. A
  // repeat is published again only when its first copy had left the stage before it came.
  const auto processed = rig.events(cdc::EventResult::kProcessed);
  const auto duplicates = rig.events(cdc::EventResult::kDuplicate);
  CHECK(processed == rig.out->count());
  CHECK(processed + duplicates == static_cast<std::uint64_t>(total));
  CHECK(duplicates >= held);
  CHECK(rig.events(cdc::EventResult::kRetried) == 0);
  for (int seq = 1; seq <= total; ++seq) {
    if (rig.done->of(seq).kind != 'a') FAIL_CHECK("seq " << seq << " completed as " << rig.done->of(seq).kind);
  }
  const auto per_id = rig.out->per_id();
  CHECK(per_id.size() == 6000);
  for (int n = 0; n < 6000; ++n) {
    const auto it = per_id.find(event_id(n));
    if (it == per_id.end()) FAIL_CHECK("change " << n << " never published");
  }
}
