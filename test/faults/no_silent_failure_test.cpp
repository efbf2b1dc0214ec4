// Issue 13 ("no silent failure"), the service side against real servers:
//  - a Redis that wants a password the service lacks (or refuses the one it has) is an
//    authentication failure: logged once as an error, redis_up 0, /readyz not ready, and with
//    events held under on_redis_error=block /healthz fails after health.stall_timeout;
//  - with the output stream gone, retries, NAKs, dead letters and skipped-table acks are not
//    progress: /healthz fails after stall_timeout and the panic guard exits 3;
//  - SIGTERM mid-stream answers every message the service received: nothing is left waiting
//    AckWait (a restart finishes the backlog well within AckWait), nothing lost or doubled.

#include <catch2/catch.hpp>

#include "faults_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace cdc::test::faults;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++n;
  return n;
}

/// Polls `path` until its status is `status`; the time it took, or a negative value on timeout.
double wait_status(std::uint16_t port, const std::string& path, int status, std::chrono::milliseconds timeout,
                   Clock::time_point since) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (http_get(port, path).first == status) return seconds_since(since);
    std::this_thread::sleep_for(50ms);
  }
  return -1;
}

double wait_metric(std::uint16_t port, const std::string& name, const std::string& labels, double value,
                   std::chrono::milliseconds timeout, Clock::time_point since) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    const auto [status, body] = http_get(port, "/metrics");
    if (status == 200 && metric(body, name, labels) == value) return seconds_since(since);
    std::this_thread::sleep_for(50ms);
  }
  return -1;
}

/// `n` copies of `base` on a table the service does not consume (acked as skipped), each with
/// its own Nats-Msg-Id.
std::vector<CaptureRecord> skipped_records(const CaptureRecord& base, std::size_t n, const std::string& tag) {
  std::vector<CaptureRecord> out;
  for (std::size_t i = 0; i < n; ++i) {
    CaptureRecord r = base;
    r.subject = "cdc.co1.audit_log";
    r.headers = {{"Nats-Msg-Id", tag + "-" + std::to_string(i)}};
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

TEST_CASE("a Redis that refuses the service credentials is an authentication failure and fails liveness",
          "[integration][faults]") {
  const bool wrong_password = GENERATE(false, true);
  INFO((wrong_password ? "service has a wrong password (WRONGPASS)" : "service has no password (NOAUTH)"));
  NatsServer nats;
  RedisServer redis(RedisServerOptions{{"--requirepass", "s3cret-not-given"}});
  TempDir dir("cdc-faults");
  const Config config = test_config(nats, redis);
  auto records = generate(dir, "redis-auth", 200, 71, {"--no-oversized"});
  JetStreamProbe probe(nats.url());
  probe.create_stream(config.ingest.stream, {"cdc.>"});

  const std::uint16_t port = free_port();
  EnvOverrides extra{{"DAISI_CDC_DEDUP_ON_REDIS_ERROR", "block"},
                     {"DAISI_CDC_HEALTH_STALL_TIMEOUT", "3s"},
                     {"DAISI_CDC_GUARD_MAX_FAILURE_DURATION", "0"}};
  if (wrong_password) extra["DAISI_CDC_REDIS_PASSWORD"] = "wrong";
  const auto started = Clock::now();
  auto service = start_service(service_env(nats.url(), redis.address(), port, extra));
  // Reported as what it is, from the first connection on.
  const double to_redis_down = wait_metric(port, "cdc_consumer_redis_up", "connection=\"dedup\"", 0, 10s, started);
  const double to_not_ready = wait_status(port, "/readyz", 503, 10s, started);
  CHECK(to_redis_down >= 0);
  CHECK(to_not_ready >= 0);
  const auto [ready_status, ready_body] = http_get(port, "/readyz");
  CHECK(ready_status == 503);
  CHECK(ready_body.find("\"redis_up\":false") != std::string::npos);

  // Events held by the block policy: nothing completes, liveness fails after stall_timeout
  // however often the connection is retried meanwhile.
  const auto fed = Clock::now();
  for (const auto& r : records) probe.publish(r);
  const double to_stalled = wait_status(port, "/healthz", 503, 20s, fed);
  CHECK(to_stalled >= 0);
  CHECK(to_stalled < 3.0 + 3.0);  // stall_timeout, plus the backlog read and the monitor tick
  // The readiness and metrics stay consistent for a while: never up in between.
  for (int i = 0; i < 10; ++i) {
    const auto [st, body] = http_get(port, "/readyz");
    CHECK(st == 503);
    CHECK(body.find("\"redis_up\":false") != std::string::npos);
    std::this_thread::sleep_for(200ms);
  }
  const auto [ms, metrics] = http_get(port, "/metrics");
  CHECK(metric(metrics, "cdc_consumer_redis_up", "connection=\"dedup\"") == 0);
  CHECK(metric(metrics, "cdc_consumer_stalled") == 1);
  const std::string out = service->output();
  // Once per connection (dedup, mark), as an error; no warning per command or per reconnect.
  const std::size_t auth_errors = count_of(out, "redis authentication failed");
  CHECK(auth_errors >= 1);
  CHECK(auth_errors <= 2);
  CHECK(out.find("\"level\":\"error\",\"msg\":\"redis authentication failed") != std::string::npos);
  // Commands are not answered with a warning each: the refusal is the one error line above.
  CHECK(count_of(out, "\"level\":\"warn\"") < 10);
  CHECK(count_of(out, "\"error\":\"NOAUTH") + count_of(out, "\"error\":\"WRONGPASS") == auth_errors);
  CHECK(count_of(out, "redis connection failed; retrying") == 0);
  report(std::string("redis-auth-") + (wrong_password ? "wrongpass" : "noauth"),
         "start_to_redis_up_0_s=" + std::to_string(to_redis_down) + " start_to_readyz_503_s=" +
             std::to_string(to_not_ready) + " pending_to_healthz_503_s=" + std::to_string(to_stalled) +
             " (stall_timeout 3s) auth_error_lines=" + std::to_string(auth_errors));
  CHECK(service->terminate(30s) == 0);
}

TEST_CASE(
    "with the output failing skipped acks and dead letters are not progress so liveness fails and the guard exits 3",
    "[integration][faults]") {
  NatsServer nats;
  RedisServer redis;
  TempDir dir("cdc-faults");
  const Config config = test_config(nats, redis);
  auto records = generate(dir, "output-gone", 300, 83, {"--no-oversized"});
  std::vector<CaptureRecord> failing;
  for (const auto& r : records) {
    if (r.subject.size() > 9 && r.subject.compare(r.subject.size() - 9, 9, ".messages") == 0) failing.push_back(r);
  }
  REQUIRE(failing.size() >= 40);
  failing.resize(40);
  const auto skipped = skipped_records(failing.front(), 1500, "skip");
  // Interleaved: 1 output event for every 30 skipped-table messages, for ~25 s at 60/s.
  std::vector<CaptureRecord> mixed;
  std::size_t f = 0;
  for (std::size_t i = 0; i < skipped.size(); ++i) {
    mixed.push_back(skipped[i]);
    if (i % 30 == 0 && f < failing.size()) mixed.push_back(failing[f++]);
  }
  JetStreamProbe probe(nats.url());
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  const std::uint16_t port = free_port();
  auto service = start_service(service_env(nats.url(), redis.address(), port,
                                           {{"DAISI_CDC_HEALTH_STALL_TIMEOUT", "3s"},
                                            {"DAISI_CDC_GUARD_MAX_FAILURE_DURATION", "8s"},
                                            {"DAISI_CDC_INGEST_MAX_DELIVER", "2"},
                                            {"DAISI_CDC_PUBLISH_MAX_RETRIES", "2"},
                                            {"DAISI_CDC_METRICS_BACKLOG_INTERVAL", "200ms"}}));
  // The output stream takes no output subject any more: every publish gets "no responders".
  // (Deleted, it would be an outage the service repairs by recreating it.)
  REQUIRE(probe.stream_exists(config.publish.stream));
  probe.create_stream(StreamConfig{config.publish.stream, {"parked." + config.publish.subject_prefix + ".>"}, 300s});
  const auto failing_since = Clock::now();
  Feeder feeder(nats.url(), mixed, 60);
  feeder.start();
  const double to_stalled = wait_status(port, "/healthz", 503, 20s, failing_since);
  CHECK(to_stalled >= 0);
  const auto [ms, metrics] = http_get(port, "/metrics");
  // Meanwhile the rest of the traffic was acked, and failing events were dead-lettered.
  CHECK(metric(metrics, "cdc_consumer_events_total", "result=\"skipped\"") > 0);
  CHECK(metric(metrics, "cdc_consumer_publish_errors_total") > 0);
  CHECK(metric(metrics, "cdc_consumer_failing_seconds") > 0);
  const auto code = service->wait(30s);
  const double to_exit = seconds_since(failing_since);
  const std::string out = service->output();
  const auto letters = read_dead_letters(probe, config.publish.dlq_stream);
  report("output-gone",
         "healthz_503_after_s=" + std::to_string(to_stalled) +
             " (stall_timeout 3s) guard_exit_after_s=" + std::to_string(to_exit) +
             " (max_failure_duration 8s) exit=" + std::to_string(code.value_or(-1)) + " skipped_acked=" +
             std::to_string(static_cast<long>(metric(metrics, "cdc_consumer_events_total", "result=\"skipped\""))) +
             " dead_letters=" + std::to_string(letters.size()));
  CHECK(to_stalled < 3.0 + 2.5);  // stall_timeout, plus the backlog read and the monitor tick
  CHECK(code == std::optional<int>(3));
  CHECK(to_exit < 8.0 + 4.0);  // guard.max_failure_duration from the first failure, plus the drain
  CHECK(out.find("panic guard") != std::string::npos);
  CHECK(letters.size() > 0);  // dead-letter terms happened, and did not reset the guard
  feeder.wait(1s);
}

TEST_CASE("SIGTERM mid-stream answers every message received: none left to wait AckWait", "[integration][faults]") {
  NatsServer nats;
  RedisServer redis;
  TempDir dir("cdc-faults");
  const Config config = test_config(nats, redis);
  auto records = generate(dir, "sigterm", 20000, 97, {"--no-oversized"});
  const Expected want = expect(config, records);
  JetStreamProbe probe(nats.url());
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  publish_all(probe, records);  // a backlog
  const std::uint16_t port = free_port();
  // AckWait far longer than the test: a message left unanswered shows as ack-pending.
  const EnvOverrides env{{"DAISI_CDC_INGEST_ACK_WAIT", "60s"},
                         {"DAISI_CDC_INGEST_MAX_ACK_PENDING", "4096"},
                         {"DAISI_CDC_PIPELINE_RING_CAPACITY", "1024"}};
  auto service = start_service(service_env(nats.url(), redis.address(), port, env));
  // Mid-stream: some done, most not.
  const auto deadline = Clock::now() + 30s;
  double processed = 0;
  while (Clock::now() < deadline) {
    const auto [st, body] = http_get(port, "/metrics");
    processed = st == 200 ? metric(body, "cdc_consumer_events_total") : 0;
    if (processed >= 2000) break;
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(processed >= 2000);
  REQUIRE(processed < static_cast<double>(records.size()));
  CHECK(service->terminate(30s) == 0);
  const ConsumerState after_exit = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  const std::string out = service->output();
  INFO(out.substr(out.size() > 3000 ? out.size() - 3000 : 0));
  CHECK(out.find("intake stopped") != std::string::npos);

  // A restart finishes the rest at once: every message the first run received was answered
  // (acked, or NAKed and so redelivered immediately), none waits AckWait (60 s here).
  const auto restarted = Clock::now();
  auto again = start_service(service_env(nats.url(), redis.address(), port, env));
  const bool settled = wait_settled(nats.url(), config, want.event_ids.size(), 0, 50s);
  const double settle_s = seconds_since(restarted);
  const ConsumerState end = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  CHECK(again->terminate(30s) == 0);
  report("sigterm", "events=" + std::to_string(records.size()) +
                        " completed_before_sigterm>=" + std::to_string(static_cast<long>(processed)) +
                        " ack_pending_right_after_exit=" + std::to_string(after_exit.num_ack_pending) +
                        " (NAKed, waiting for a subscriber) pending=" + std::to_string(after_exit.num_pending) +
                        " restart_settled_s=" + std::to_string(settle_s) +
                        " (ack_wait 60s) redelivered=" + std::to_string(end.num_redelivered));
  CHECK(settled);
  CHECK(settle_s < 40.0);
  const Outcome o = collect(probe, config, to_publish(want));
  report("sigterm-restart", figures(o));
  CHECK_OUTPUT_EXACT(o);
}
