// nats-server restarted mid-stream, file storage kept: the service's two connections reconnect,
// publishes in flight when the server went away are retried (or NAKed and redelivered), and
// wa_stream ends with every event exactly once. The service reaches the server through a proxy
// that adds 10 ms per chunk, so PubAcks are always outstanding when the server goes away; the
// first restart is graceful, the second a crash (SIGKILL) followed by a start on the same store.

#include <catch2/catch.hpp>

#include "faults_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace cdc::test::faults;

TEST_CASE("nats-server restarted mid-stream: reconnects, nothing lost or doubled", "[integration][faults]") {
  NatsServer nats;
  RedisServer redis;
  TempDir dir("cdc-faults");
  const Config config = test_config(nats, redis);
  auto records = generate(dir, "nats-restart", 4000, 64, {"--bad-pct", "1", "--no-oversized"});
  const Expected want = expect(config, records);
  {
    JetStreamProbe probe(nats.url());
    probe.create_stream(config.ingest.stream, {"cdc.>"});
  }
  TcpProxy link(nats.port(), 10ms);
  const std::uint16_t port = free_port();
  auto service = start_service(service_env(link.nats_url(), redis.address(), port));
  Feeder feeder(nats.url(), records, 1000);
  feeder.start();

  int restarts = 0;
  std::vector<std::size_t> fed_at;
  for (int i = 0; i < 2; ++i) {
    std::this_thread::sleep_for(1200ms);
    fed_at.push_back(feeder.stored());
    if (i == 0) {
      nats.restart();  // graceful stop (JetStream flushes its store), start on the same port and dir
    } else {
      nats.kill();  // a crash: JetStream recovers its store and consumer state on start
      nats.start();
    }
    ++restarts;
  }
  REQUIRE(feeder.wait(120s));
  const bool settled = wait_settled(nats.url(), config, want.event_ids.size(), want.dead_letter_total(), 120s);
  const auto [status, metrics] = http_get(port, "/metrics");
  const auto [ready_status, ready] = http_get(port, "/readyz");
  CHECK(service->terminate(30s) == 0);
  REQUIRE(settled);

  JetStreamProbe probe(nats.url());
  const Outcome o = collect(probe, config, to_publish(want));
  report(
      "nats-restart",
      "events=" + std::to_string(records.size()) + " restarts=" + std::to_string(restarts) +
          " (fed at restart: " + std::to_string(fed_at[0]) + "," + std::to_string(fed_at[1]) + ")" +
          " reconnects=" + std::to_string(static_cast<long>(metric(metrics, "cdc_consumer_nats_reconnects_total"))) +
          " publish_retries=" +
          std::to_string(static_cast<long>(metric(metrics, "cdc_consumer_publish_retries_total"))) +
          " publish_timeouts=" +
          std::to_string(static_cast<long>(metric(metrics, "cdc_consumer_publish_timeouts_total"))) + " naks=" +
          std::to_string(static_cast<long>(metric(metrics, "cdc_consumer_source_completions_total", "kind=\"nak\""))) +
          " retried=" + std::to_string(static_cast<long>(metric(metrics, "cdc_consumer_retries_total"))) + " " +
          figures(o));
  CHECK_OUTPUT_EXACT(o);
  CHECK(o.kinds == want.dead_letters);
  CHECK(metric(metrics, "cdc_consumer_nats_reconnects_total") >= 2 * restarts);  // both connections, each time
  CHECK(ready_status == 200);
  CHECK(ready.find("\"nats_connected\":true") != std::string::npos);
  const ConsumerState cs = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  CHECK(cs.num_pending == 0);
  CHECK(cs.num_ack_pending == 0);
}
