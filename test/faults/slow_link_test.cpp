// Slow Redis and slow JetStream: a TCP proxy adds latency to every chunk between the service
// and its servers. Back-pressure must reach the ingest stage (the pool fills, JetStream holds
// the rest back), memory stays bounded, and every event is published exactly once.

#include <catch2/catch.hpp>

#include "faults_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace cdc::test::faults;

TEST_CASE("slow Redis and JetStream: back-pressure, bounded memory, nothing dropped", "[integration][faults]") {
  NatsServer nats;
  RedisServer redis;
  TempDir dir("cdc-faults");
  const Config config = test_config(nats, redis);
  auto records = generate(dir, "slow", 3000, 69, {"--bad-pct", "1", "--no-oversized"});
  const Expected want = expect(config, records);

  TcpProxy slow_redis(redis.port(), 30ms);
  TcpProxy slow_nats(nats.port(), 5ms);
  JetStreamProbe probe(nats.url());
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  // A backlog: everything is there before the service starts.
  Feeder feeder(nats.url(), records, 0);
  feeder.start();
  REQUIRE(feeder.wait(60s));

  constexpr int kPool = 256;
  const std::uint16_t port = free_port();
  auto service = start_service(service_env(slow_nats.nats_url(), slow_redis.address(), port,
                                           {{"DAISI_CDC_PIPELINE_RING_CAPACITY", std::to_string(kPool)},
                                            // JetStream may deliver twice the pool: the pool, not
                                            // max_ack_pending, is what stops intake.
                                            {"DAISI_CDC_INGEST_MAX_ACK_PENDING", std::to_string(2 * kPool)},
                                            {"DAISI_CDC_PUBLISH_MAX_PENDING", "128"},
                                            {"DAISI_CDC_PIPELINE_BATCH_SIZE", "64"},
                                            // Round trips are slow on purpose: no timeouts for that.
                                            {"DAISI_CDC_PUBLISH_ACK_TIMEOUT", "5s"},
                                            {"DAISI_CDC_REDIS_COMMAND_TIMEOUT", "5s"},
                                            {"DAISI_CDC_INGEST_ACK_WAIT", "10s"},
                                            {"DAISI_CDC_DEDUP_PENDING_TTL", "10s"}}));
  const std::int64_t rss_start = rss_kib(service->pid());
  double max_in_flight = 0;
  double min_free = kPool;
  std::int64_t max_ack_pending = 0;
  std::uint64_t max_waiting_in_jetstream = 0;
  std::int64_t rss_max = rss_start;
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + 120s;
  bool settled = false;
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string m = http_get(port, "/metrics").second;
    max_in_flight = std::max(max_in_flight, metric(m, "cdc_consumer_in_flight"));
    min_free = std::min(min_free, metric(m, "cdc_consumer_ring_occupancy", "ring=\"free\""));
    const ConsumerState cs = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
    max_ack_pending = std::max(max_ack_pending, cs.num_ack_pending);
    max_waiting_in_jetstream = std::max(max_waiting_in_jetstream, cs.num_pending);
    rss_max = std::max(rss_max, rss_kib(service->pid()));
    if (cs.num_pending == 0 && cs.num_ack_pending == 0 && probe.count(config.publish.stream) >= want.event_ids.size()) {
      settled = true;
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  CHECK(service->terminate(30s) == 0);
  REQUIRE(settled);

  const Outcome o = collect(probe, config, to_publish(want));
  report("slow-links",
         "events=" + std::to_string(records.size()) + " redis_delay_ms=30 nats_delay_ms=5 pool=" +
             std::to_string(kPool) + " seconds=" + std::to_string(seconds).substr(0, 5) +
             " max_in_flight=" + std::to_string(static_cast<long>(max_in_flight)) + " min_free_slots=" +
             std::to_string(static_cast<long>(min_free)) + " max_ack_pending=" + std::to_string(max_ack_pending) +
             " max_held_in_jetstream=" + std::to_string(max_waiting_in_jetstream) +
             " rss_kib_start=" + std::to_string(rss_start) + " rss_kib_max=" + std::to_string(rss_max) +
             " proxied_bytes=" + std::to_string(slow_redis.bytes() + slow_nats.bytes()) + " " + figures(o));
  CHECK(max_in_flight == kPool);  // the pool filled: back-pressure reached ingest
  CHECK(min_free == 0);
  CHECK(max_ack_pending <= 2 * kPool);  // ... and JetStream held the rest back
  CHECK(max_waiting_in_jetstream > 0);
  CHECK(rss_max - rss_start < 64 * 1024);
  CHECK_OUTPUT_EXACT(o);
  CHECK(o.kinds == want.dead_letters);
  CHECK(slow_redis.connections() >= 2);  // dedup and mark connections went through the proxy
}
