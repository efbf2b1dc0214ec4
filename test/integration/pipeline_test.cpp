// The pipeline end to end against real nats-server -js and redis-server (CONTRACT.md 1-6).

#include <catch2/catch.hpp>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <map>
#include <set>

#include "cdc/adapters/service_ports.hpp"
#include "cdc/pipeline/pipeline.hpp"
#include "eventually.hpp"
#include "pipeline_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace std::chrono_literals;

namespace {

struct Servers {
  NatsServer nats;
  RedisServer redis;
};

void check_output_matches(const std::vector<StreamMessage>& got, const Expected& want) {
  REQUIRE(got.size() == want.subjects.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("message " << i << " event_id " << want.event_ids[i]);
    CHECK(got[i].subject == want.subjects[i]);
    CHECK(got[i].header("Nats-Msg-Id") == want.event_ids[i]);
    CHECK(got[i].data == want.payloads[i]);
  }
}

std::uint64_t events_total(Pipeline& p, const std::string& table, EventResult r) {
  auto& m = p.metrics();
  return m.ack.events[m.table_index(table)][static_cast<std::size_t>(r)].value();
}

std::uint64_t events_total(Pipeline& p, EventResult r) {
  std::uint64_t n = 0;
  for (const auto& t : p.metrics().table_labels()) n += events_total(p, t, r);
  return n;
}

}  // namespace

TEST_CASE("sample capture: every allowed change published once, in order, bad input dead-lettered",
          "[integration][pipeline]") {
  Servers s;
  Config config = test_config(s.nats, s.redis);
  auto mode = GENERATE(IngestMode::kPush, IngestMode::kPull);
  config.ingest.mode = mode;
  INFO("mode " << (mode == IngestMode::kPush ? "push" : "pull"));

  auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  const auto bad = read_capture(sample_path("bad-examples.jsonl"));
  // Bad input mixed into good traffic, not after it.
  for (std::size_t i = 0; i < bad.size(); ++i)
    records.insert(records.begin() + static_cast<long>(100 + 300 * i), bad[i]);
  const Expected want = expect(config, records);
  REQUIRE(want.subjects.size() > 1000);
  REQUIRE(want.duplicates > 0);
  REQUIRE(want.skipped > 0);
  REQUIRE(want.dead_letter_total() == bad.size());

  Pipeline pipeline(config, make_service_ports(config));
  pipeline.start();
  JetStreamProbe probe(s.nats.url());
  publish_all(probe, records);
  REQUIRE(wait_consumer_idle(probe, config, 60s));
  REQUIRE(probe.wait_for_count(config.publish.stream, want.subjects.size(), 10s) == want.subjects.size());
  pipeline.stop();

  check_output_matches(probe.read_stream(config.publish.stream), want);

  // Dead letters: one per bad message, with the right kind and the source intact.
  const auto dlq = probe.read_stream(config.publish.dlq_stream);
  REQUIRE(dlq.size() == bad.size());
  std::map<std::string, int> kinds;
  for (const auto& m : dlq) {
    CHECK(m.subject.rfind("cdc_dlq.", 0) == 0);
    const auto at = m.data.find("\"error_kind\":\"");
    REQUIRE(at != std::string::npos);
    const auto start = at + 14;
    ++kinds[m.data.substr(start, m.data.find('"', start) - start)];
    CHECK(m.data.find("\"source_stream\":\"cdc_events_stream\"") != std::string::npos);
    CHECK(m.data.find("\"data_base64\":\"") != std::string::npos);
  }
  CHECK(kinds == want.dead_letters);

  // Nothing left for the consumer; the counters agree with what landed.
  const ConsumerState cs = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  CHECK(cs.num_pending == 0);
  CHECK(cs.num_ack_pending == 0);
  CHECK(cs.num_redelivered == 0);  // none waiting for redelivery now
  CHECK(events_total(pipeline, EventResult::kProcessed) == want.subjects.size());
  CHECK(events_total(pipeline, EventResult::kDuplicate) == static_cast<std::uint64_t>(want.duplicates));
  CHECK(events_total(pipeline, EventResult::kSkipped) == static_cast<std::uint64_t>(want.skipped));
  CHECK(events_total(pipeline, EventResult::kDeadLettered) == bad.size());
  // A repeat arriving while its first delivery is in flight finds 'p' and is NAKed, then acked as
  // a duplicate on redelivery: it counts once as retried and once as duplicate.
  CHECK(events_total(pipeline, EventResult::kRetried) <= static_cast<std::uint64_t>(want.duplicates));
  // Skipped tables never reach the output.
  for (const auto& m : probe.read_stream(config.publish.stream)) {
    CHECK(m.subject.find(".contacts") == std::string::npos);
    CHECK(m.subject.find(".users") == std::string::npos);
    CHECK(m.subject.find(".onboarding_log") == std::string::npos);
  }
}

TEST_CASE("the same change delivered again is published once, also after a restart", "[integration][pipeline]") {
  Servers s;
  Config config = test_config(s.nats, s.redis);
  const auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  std::vector<CaptureRecord> first(records.begin(), records.begin() + 50);
  // Re-sent by a producer that restarted past the stream's duplicate window: new msg id.
  std::vector<CaptureRecord> again = first;
  for (auto& r : again) r.headers.clear();
  const Expected want = expect(config, first);

  JetStreamProbe probe(s.nats.url());
  {
    Pipeline pipeline(config, make_service_ports(config));
    pipeline.start();
    publish_all(probe, first);
    publish_all(probe, again);
    REQUIRE(wait_consumer_idle(probe, config, 30s));
    pipeline.stop();
    CHECK(events_total(pipeline, EventResult::kDuplicate) >= again.size() - static_cast<std::size_t>(want.skipped));
    CHECK(pipeline.metrics().dedup.hit.value() > 0);
  }
  {
    // A new process: the marks in Redis still suppress them.
    Pipeline pipeline(config, make_service_ports(config));
    pipeline.start();
    publish_all(probe, again);
    REQUIRE(wait_consumer_idle(probe, config, 30s));
    pipeline.stop();
    CHECK(events_total(pipeline, EventResult::kProcessed) == 0);
  }
  check_output_matches(probe.read_stream(config.publish.stream), want);
}

TEST_CASE("a mark left by a crashed attempt is honoured: 'p' NAKs, 'd' acks without publishing",
          "[integration][pipeline]") {
  Servers s;
  Config config = test_config(s.nats, s.redis);
  config.dedup.pending_ttl = 1s;  // the NAK delay of a 'p' hit
  const auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  std::vector<CaptureRecord> batch;
  for (const auto& r : records) {
    if (r.subject.find(".messages") != std::string::npos && batch.size() < 2) batch.push_back(r);
  }
  const Expected want = expect(config, batch);
  REQUIRE(want.event_ids.size() == 2);
  {
    // Put the marks in place: first event done elsewhere, second in flight elsewhere (expires).
    redisContext* rc = redisConnect("127.0.0.1", s.redis.port());
    REQUIRE(rc != nullptr);
    freeReplyObject(redisCommand(rc, "SET dedup:%s d EX 300", want.event_ids[0].c_str()));
    freeReplyObject(redisCommand(rc, "SET dedup:%s p EX 2", want.event_ids[1].c_str()));
    redisFree(rc);
  }
  Pipeline pipeline(config, make_service_ports(config));
  pipeline.start();
  JetStreamProbe probe(s.nats.url());
  publish_all(probe, batch);
  // The 'p' one is NAKed with a delay, redelivered after the mark expired, then published.
  REQUIRE(wait_consumer_idle(probe, config, 30s));
  pipeline.stop();
  const auto out = probe.read_stream(config.publish.stream);
  REQUIRE(out.size() == 1);
  CHECK(out[0].header("Nats-Msg-Id") == want.event_ids[1]);
  CHECK(events_total(pipeline, EventResult::kDuplicate) == 1);
  CHECK(events_total(pipeline, EventResult::kRetried) >= 1);
  CHECK(events_total(pipeline, EventResult::kProcessed) == 1);
}

TEST_CASE("Redis unreachable with on_redis_error=publish: events keep flowing, JetStream dedups",
          "[integration][pipeline]") {
  Servers s;
  Config config = test_config(s.nats, s.redis);
  s.redis.stop();
  const auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  std::vector<CaptureRecord> first(records.begin(), records.begin() + 200);
  const Expected want = expect(config, first);
  Pipeline pipeline(config, make_service_ports(config));
  pipeline.start();
  JetStreamProbe probe(s.nats.url());
  publish_all(probe, first);
  REQUIRE(wait_consumer_idle(probe, config, 30s));
  pipeline.stop();
  CHECK(pipeline.metrics().dedup.errors.value() > 0);
  // Within the duplicate window, JetStream's Nats-Msg-Id check keeps repeats out.
  check_output_matches(probe.read_stream(config.publish.stream), want);
}

TEST_CASE(
    "publish.write_mode adaptive: a backlog drains through the batching connection, idle events go eager, "
    "in order",
    "[integration][pipeline][lanes]") {
  Servers s;
  Config config = test_config(s.nats, s.redis);
  config.publish.write_mode = WriteMode::kAdaptive;
  config.publish.batching_threshold = 64;
  auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  const Expected want = expect(config, records);
  constexpr std::size_t kTrickle = 5;
  const std::vector<CaptureRecord> backlog(records.begin(), records.end() - kTrickle);

  // The backlog is in the source stream before the pipeline starts (the ports create the streams).
  Pipeline pipeline(config, make_service_ports(config));
  JetStreamProbe probe(s.nats.url());
  publish_all(probe, backlog);
  pipeline.start();
  REQUIRE(wait_consumer_idle(probe, config, 60s));
  Metrics& metrics = pipeline.metrics();
  CHECK(metrics.publish.lane_switches.value() >= 1);
  // Drained: back on the eager connection.
  REQUIRE(cdc_test::eventually([&] { return metrics.publish.batching.value() == 0; }, 5s));
  const std::uint64_t switches = metrics.publish.lane_switches.value();
  CHECK(switches >= 2);
  for (std::size_t i = records.size() - kTrickle; i < records.size(); ++i) {
    probe.publish(records[i]);
    REQUIRE(wait_consumer_idle(probe, config, 10s));
  }
  // One event at a time is no load: no more changes of connection.
  CHECK(metrics.publish.lane_switches.value() == switches);
  CHECK(metrics.publish.batching.value() == 0);
  REQUIRE(probe.wait_for_count(config.publish.stream, want.subjects.size(), 10s) == want.subjects.size());
  pipeline.stop();
  check_output_matches(probe.read_stream(config.publish.stream), want);
  CHECK(events_total(pipeline, EventResult::kProcessed) == want.subjects.size());
}
