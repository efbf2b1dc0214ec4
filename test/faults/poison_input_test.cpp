// A flood of malformed messages mixed into good traffic: the good ones are all published, each
// bad one is dead-lettered once with the right kind, nothing crashes, and the service's memory
// stays bounded (bodies of 1 MiB and their dead-letter records do not stay behind in the pool).

#include <catch2/catch.hpp>

#include "faults_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace cdc::test::faults;

namespace {
constexpr int kOversizedBurst = 40;
}  // namespace

TEST_CASE("30 % malformed input: good ones published, bad ones dead-lettered, memory bounded",
          "[integration][faults]") {
  NatsServer nats;
  RedisServer redis;
  TempDir dir("cdc-faults");
  const Config config = test_config(nats, redis);
  // Warm-up: good traffic only, so the pool's buffers and the allocator reach their working size.
  auto warm = generate(dir, "warm", 2000, 67, {"--no-oversized"});
  // The flood: 30 % malformed, among them bodies over max_message_bytes (1 MiB + a few KiB).
  auto flood = generate(dir, "flood", 4000, 68, {"--bad-pct", "30", "--oversized", "--start-lsn", "20000000000"});
  // And a burst of bodies over max_message_bytes spread through it, each landing in its own slot.
  for (int i = 0; i < kOversizedBurst; ++i) {
    CaptureRecord r;
    r.subject = "cdc.acme.chats";
    r.headers.emplace_back("Nats-Msg-Id", "oversized-" + std::to_string(i));
    r.data = R"({"record":{"chat_id":"chat-big-)" + std::to_string(i) + R"(","agent_id":"agent-1","blob":")" +
             std::string((1 << 20) + 1024, 'z') + R"("},"changes":null,"action":"insert","metadata":{"commit_lsn":)" +
             std::to_string(30000000000 + i) + "}}";
    flood.insert(flood.begin() + 50 + 90 * i, std::move(r));
  }
  std::vector<CaptureRecord> all = warm;
  all.insert(all.end(), flood.begin(), flood.end());
  const Expected want_warm = expect(config, warm);
  const Expected want = expect(config, all);
  const Expected want_flood = expect(config, flood);
  REQUIRE(want_flood.dead_letter_total() > 1000);
  REQUIRE(want_flood.dead_letters.at("oversized") > kOversizedBurst);

  JetStreamProbe probe(nats.url());
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  const std::uint16_t port = free_port();
  auto service = start_service(service_env(nats.url(), redis.address(), port));

  Feeder warm_feeder(nats.url(), warm, 0);
  warm_feeder.start();
  REQUIRE(warm_feeder.wait(60s));
  REQUIRE(wait_settled(nats.url(), config, want_warm.event_ids.size(), 0, 60s));
  const std::int64_t rss_before = rss_kib(service->pid());

  const auto started = std::chrono::steady_clock::now();
  Feeder feeder(nats.url(), flood, 0);
  feeder.start();
  std::int64_t rss_max = rss_before;
  while (!feeder.wait(100ms)) rss_max = std::max(rss_max, rss_kib(service->pid()));
  const bool settled = wait_settled(nats.url(), config, want.event_ids.size(), want.dead_letter_total(), 90s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const std::int64_t rss_after = rss_kib(service->pid());
  rss_max = std::max(rss_max, rss_after);
  const auto [status, metrics] = http_get(port, "/metrics");
  CHECK(service->running());  // nothing crashed
  CHECK(service->terminate(30s) == 0);
  REQUIRE(settled);

  const Outcome o = collect(probe, config, to_publish(want));
  report("poison-flood", "events=" + std::to_string(flood.size()) + " (after " + std::to_string(warm.size()) +
                             " good)" + " malformed=" + std::to_string(want_flood.dead_letter_total()) + " seconds=" +
                             std::to_string(seconds).substr(0, 5) + " rss_kib_before=" + std::to_string(rss_before) +
                             " rss_kib_max=" + std::to_string(rss_max) + " rss_kib_after=" + std::to_string(rss_after) +
                             " " + figures(o));
  CHECK_OUTPUT_EXACT(o);
  CHECK(o.kinds == want.dead_letters);
  for (const auto& d : o.letters) CHECK(d.delivery_attempts == 1);
  CHECK(metric(metrics, "cdc_consumer_events_total", "result=\"dead_lettered\"") == want.dead_letter_total());
  // The flood brings some 50 bodies of 1 MiB and more whose dead-letter records are 1.4 MB: what
  // stays resident after it must not grow with them (slots give such buffers back).
  CHECK(rss_after - rss_before < 32 * 1024);
  const ConsumerState cs = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  CHECK(cs.num_pending == 0);
  CHECK(cs.num_ack_pending == 0);
}
