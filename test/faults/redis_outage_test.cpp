// redis-server stopped for a while and restarted mid-stream (CONTRACT.md section 5, step 5):
// with on_redis_error=publish events keep flowing and Nats-Msg-Id keeps them single; with block
// the pipeline holds with back-pressure, keeps the held messages alive with in-progress signals
// (no redelivery although the outage outlasts AckWait) and resumes. Either way the service
// reconnects on its own and /readyz and /metrics say what happened.

#include <catch2/catch.hpp>

#include <optional>

#include "faults_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace cdc::test::faults;

namespace {

bool json_has(const std::string& body, const std::string& needle) { return body.find(needle) != std::string::npos; }

/// Polls /readyz until its body contains `needle`.
bool wait_ready_body(std::uint16_t port, const std::string& needle, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (json_has(http_get(port, "/readyz").second, needle)) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

/// Polls the count of `stream` until it reaches `at_least`; true when it did within `timeout`.
bool wait_count_at_least(const JetStreamProbe& probe, const std::string& stream, std::size_t at_least,
                         std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (probe.count(stream) < at_least) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

/// Polls the count of `stream` until it has not moved for `quiet` (what was in flight has
/// settled); returns it, or nothing when it still moved at `timeout`.
std::optional<std::size_t> wait_count_stable(const JetStreamProbe& probe, const std::string& stream,
                                             std::chrono::milliseconds quiet, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t last = probe.count(stream);
  auto since = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    const std::size_t now = probe.count(stream);
    if (now != last) {
      last = now;
      since = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - since >= quiet) {
      return last;
    }
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("Redis restarted mid-stream, publish policy: flows, no duplicates", "[integration][faults]") {
  NatsServer nats;
  RedisServer redis;
  TempDir dir("cdc-faults");
  const Config config = test_config(nats, redis);
  auto records = generate(dir, "redis-publish", 4000, 62, {"--no-oversized"});
  const Expected want = expect(config, records);
  REQUIRE(want.duplicates > 0);  // repeats without a Redis mark: only Nats-Msg-Id stops them
  JetStreamProbe probe(nats.url());
  probe.create_stream(config.ingest.stream, {"cdc.>"});

  const std::uint16_t port = free_port();
  auto service =
      start_service(service_env(nats.url(), redis.address(), port, {{"DAISI_CDC_DEDUP_ON_REDIS_ERROR", "publish"}}));
  Feeder feeder(nats.url(), records, 2000);
  feeder.start();
  // Mid-stream: the pipeline is publishing (a quarter of the events), the feeder still sending.
  REQUIRE(wait_count_at_least(probe, config.publish.stream, want.event_ids.size() / 4, 30s));

  redis.stop();
  const std::size_t published_at_stop = probe.count(config.publish.stream);
  // Degraded but ready: the operator sees Redis down, the service declares the degraded mode.
  CHECK(wait_ready_body(port, "\"redis_up\":false", 5s));
  const auto [ready_status, ready_body] = http_get(port, "/readyz");
  CHECK(ready_status == 200);
  CHECK(json_has(ready_body, "\"redis_degraded\":true"));
  // Down for at least a second, and until events have flowed without it (nothing here may
  // depend on how much the machine managed in a fixed time).
  const auto outage_start = std::chrono::steady_clock::now();
  CHECK(wait_count_at_least(probe, config.publish.stream, published_at_stop + 100, 30s));
  std::this_thread::sleep_until(outage_start + 1000ms);
  const std::size_t published_in_outage = probe.count(config.publish.stream) - published_at_stop;
  const auto [s1, during] = http_get(port, "/metrics");
  CHECK(metric(during, "cdc_consumer_redis_up", "connection=\"dedup\"") == 0);
  CHECK(metric(during, "cdc_consumer_redis_errors_total") > 0);

  redis.start();
  // Reconnects on its own (backoff capped at 500 ms here).
  CHECK(wait_ready_body(port, "\"redis_up\":true", 10s));
  REQUIRE(feeder.wait(60s));
  const bool settled = wait_settled(nats.url(), config, want.event_ids.size(), 0, 60s);
  const auto [s2, after] = http_get(port, "/metrics");
  CHECK(service->terminate(30s) == 0);
  REQUIRE(settled);

  const Outcome o = collect(probe, config, to_publish(want));
  report("redis-publish", "events=" + std::to_string(records.size()) + " redis_down_ms=1000+" +
                              " published_during_outage=" + std::to_string(published_in_outage) + " redis_errors=" +
                              std::to_string(static_cast<long>(metric(after, "cdc_consumer_redis_errors_total"))) +
                              " " + figures(o));
  CHECK(published_in_outage > 0);  // kept flowing
  CHECK_OUTPUT_EXACT(o);
  CHECK(o.dead_letters == 0);
  CHECK(metric(after, "cdc_consumer_redis_up", "connection=\"dedup\"") == 1);
  CHECK(metric(after, "cdc_consumer_events_total", "result=\"processed\"") == want.event_ids.size());
  CHECK(metric(after, "cdc_consumer_events_total", "result=\"duplicate\"") == want.duplicates);
}

TEST_CASE("Redis down for 2.5 x AckWait, block policy: holds, no redelivery, resumes", "[integration][faults]") {
  NatsServer nats;
  RedisServer redis;
  TempDir dir("cdc-faults");
  const Config config = test_config(nats, redis);
  auto records = generate(dir, "redis-block", 4000, 63, {"--no-oversized"});
  const Expected want = expect(config, records);
  JetStreamProbe probe(nats.url());
  probe.create_stream(config.ingest.stream, {"cdc.>"});

  const std::uint16_t port = free_port();
  // AckWait 2 s; the outage lasts 5 s: without in-progress signals every held message would be
  // redelivered at least twice.
  auto service =
      start_service(service_env(nats.url(), redis.address(), port, {{"DAISI_CDC_DEDUP_ON_REDIS_ERROR", "block"}}));
  Feeder feeder(nats.url(), records, 2000);
  feeder.start();
  // Mid-stream: the pipeline is publishing (a quarter of the events), the feeder still sending.
  REQUIRE(wait_count_at_least(probe, config.publish.stream, want.event_ids.size() / 4, 30s));

  redis.stop();
  CHECK(wait_ready_body(port, "\"redis_up\":false", 5s));
  const auto [ready_status, ready_body] = http_get(port, "/readyz");
  CHECK(ready_status == 503);  // block is not a degraded mode: not ready
  CHECK(json_has(ready_body, "\"redis_degraded\":false"));
  // What was past dedup when Redis went away settles; then nothing more may be published.
  const std::optional<std::size_t> held = wait_count_stable(probe, config.publish.stream, 500ms, 10s);
  REQUIRE(held.has_value());
  const std::size_t held_from = *held;
  std::int64_t max_redelivered = 0;
  double max_in_flight = 0;
  const auto outage_end = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < outage_end) {
    max_redelivered =
        std::max(max_redelivered, probe.consumer_info(config.ingest.stream, config.ingest.consumer).num_redelivered);
    max_in_flight = std::max(max_in_flight, metric(http_get(port, "/metrics").second, "cdc_consumer_in_flight"));
    std::this_thread::sleep_for(200ms);
  }
  const std::size_t published_in_outage = probe.count(config.publish.stream) - held_from;
  const ConsumerState during = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  const auto [s1, metrics_during] = http_get(port, "/metrics");

  redis.start();
  CHECK(wait_ready_body(port, "\"ready\":true", 10s));
  REQUIRE(feeder.wait(60s));
  const bool settled = wait_settled(nats.url(), config, want.event_ids.size(), 0, 60s);
  for (int i = 0; i < 5; ++i) {
    max_redelivered =
        std::max(max_redelivered, probe.consumer_info(config.ingest.stream, config.ingest.consumer).num_redelivered);
  }
  const auto [s2, after] = http_get(port, "/metrics");
  CHECK(service->terminate(30s) == 0);
  REQUIRE(settled);

  const Outcome o = collect(probe, config, to_publish(want));
  report("redis-block",
         "events=" + std::to_string(records.size()) + " redis_down_ms=5300 ack_wait_ms=2000" +
             " published_during_outage=" + std::to_string(published_in_outage) +
             " max_in_flight=" + std::to_string(static_cast<long>(max_in_flight)) + " ack_pending_during=" +
             std::to_string(during.num_ack_pending) + " pending_during=" + std::to_string(during.num_pending) +
             " max_num_redelivered=" + std::to_string(max_redelivered) + " retried=" +
             std::to_string(static_cast<long>(metric(after, "cdc_consumer_retries_total"))) + " " + figures(o));
  CHECK(published_in_outage == 0);  // held
  CHECK(max_in_flight == 1024);     // the pool filled up: back-pressure reached ingest
  CHECK(during.num_pending > 0);    // ... and JetStream (max_ack_pending = pool size)
  CHECK(metric(metrics_during, "cdc_consumer_redis_up", "connection=\"dedup\"") == 0);
  CHECK(metric(metrics_during, "cdc_consumer_redis_errors_total") > 0);
  CHECK(max_redelivered == 0);  // in-progress signals kept every held message from redelivery
  CHECK_OUTPUT_EXACT(o);
  CHECK(o.dead_letters == 0);
  CHECK(metric(after, "cdc_consumer_redis_up", "connection=\"dedup\"") == 1);
  CHECK(metric(after, "cdc_consumer_retries_total") == 0);
  CHECK(metric(after, "cdc_consumer_events_total", "result=\"processed\"") == want.event_ids.size());
  CHECK(metric(after, "cdc_consumer_events_total", "result=\"duplicate\"") == want.duplicates);
}
