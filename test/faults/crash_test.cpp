// SIGKILL at random moments during one stream (CONTRACT.md section 5, crash safety): the
// service is killed and restarted several times while events arrive; JetStream redelivers what
// was not acknowledged, the two-phase Redis mark and Nats-Msg-Id keep it single, and nothing is
// skipped as a false duplicate.

#include <catch2/catch.hpp>

#include <random>

#include "faults_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace cdc::test::faults;

TEST_CASE("SIGKILL several times during one stream: every event published exactly once", "[integration][faults]") {
  NatsServer nats;
  RedisServer redis;
  TempDir dir("cdc-faults");
  const Config config = test_config(nats, redis);
  // 1 % malformed: their dead letters must be exactly-once across the kills too.
  auto records = generate(dir, "crash", 6000, 61, {"--bad-pct", "1", "--no-oversized"});
  const Expected want = expect(config, records);
  REQUIRE(want.dead_letter_total() > 0);
  {
    JetStreamProbe probe(nats.url());
    probe.create_stream(config.ingest.stream, {"cdc.>"});
  }

  const std::uint16_t port = free_port();
  const EnvOverrides env = service_env(nats.url(), redis.address(), port);
  auto service = start_service(env);
  // ~4 s of traffic at 1500 events/s; the kills land inside it.
  Feeder feeder(nats.url(), records, 1500);
  feeder.start();

  std::random_device rd;
  const unsigned seed = rd();
  INFO("kill schedule seed " << seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pause_ms(300, 900);
  int kills = 0;
  std::vector<std::size_t> fed_at_kill;
  for (int k = 0; k < 4; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    fed_at_kill.push_back(feeder.stored());
    CHECK(service->kill() == 128 + SIGKILL);
    ++kills;
    service = start_service(env);
  }
  REQUIRE(feeder.wait(120s));
  // One more kill while the redeliveries of the earlier ones are being worked on.
  std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
  CHECK(service->kill() == 128 + SIGKILL);
  ++kills;
  service = start_service(env);

  const bool settled = wait_settled(nats.url(), config, want.event_ids.size(), want.dead_letter_total(), 120s);
  const auto [status, metrics] = http_get(port, "/metrics");
  CHECK(service->terminate(30s) == 0);
  REQUIRE(settled);

  JetStreamProbe probe(nats.url());
  const Outcome o = collect(probe, config, to_publish(want));
  std::string at;
  for (const auto n : fed_at_kill) at += (at.empty() ? "" : ",") + std::to_string(n);
  report("sigkill", "events=" + std::to_string(records.size()) + " kills=" + std::to_string(kills) +
                        " (fed at kill: " + at + ") " + figures(o));
  CHECK_OUTPUT_EXACT(o);
  CHECK(o.kinds == want.dead_letters);
  const ConsumerState cs = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  CHECK(cs.num_pending == 0);
  CHECK(cs.num_ack_pending == 0);
  CHECK(status == 200);
}
