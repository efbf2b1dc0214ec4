// The service as operators run it: a child process with environment configuration, signals,
// exit codes and the HTTP endpoint.

#include <catch2/catch.hpp>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "pipeline_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace std::chrono_literals;

namespace {

EnvOverrides service_env(const NatsServer& nats, const RedisServer& redis, std::uint16_t metrics_port) {
  return {{"NATS_URL", nats.url()},
          {"REDIS_ADDRESS", redis.address()},
          {"DAISI_CDC_METRICS_PORT", std::to_string(metrics_port)},
          {"DAISI_CDC_METRICS_BIND", "127.0.0.1"},
          {"DAISI_CDC_PIPELINE_RING_CAPACITY", "1024"},
          {"DAISI_CDC_PUBLISH_MAX_PENDING", "256"},
          {"DAISI_CDC_DEDUP_PENDING_TTL", "2s"},
          {"LOG_LEVEL", "info"}};
}

}  // namespace

TEST_CASE("invalid configuration stops start-up with exit code 2 naming the key", "[integration][service]") {
  ServiceProcess p(CDC_BINARY, {}, {{"DAISI_CDC_PIPELINE_RING_CAPACITY", "1000"}});
  const auto code = p.wait(20s);
  REQUIRE(code.has_value());
  CHECK(*code == 2);
  CHECK(p.output().find("DAISI_CDC_PIPELINE_RING_CAPACITY: must be a power of two, got 1000") != std::string::npos);

  ServiceProcess q(CDC_BINARY, {}, {{"JS_ACK_WAIT", "30"}});
  REQUIRE(q.wait(20s) == std::optional<int>(2));
  CHECK(q.output().find("JS_ACK_WAIT: duration needs a unit") != std::string::npos);
}

TEST_CASE("unreachable NATS stops start-up with exit code 1", "[integration][service]") {
  ServiceProcess p(CDC_BINARY, {},
                   {{"NATS_URL", "nats://127.0.0.1:" + std::to_string(free_port())},
                    {"DAISI_CDC_NATS_CONNECT_TIMEOUT", "500ms"},
                    {"DAISI_CDC_METRICS_ENABLED", "false"}});
  const auto code = p.wait(20s);
  REQUIRE(code.has_value());
  CHECK(*code == 1);
  CHECK(p.output().find("start-up failed") != std::string::npos);
}

TEST_CASE("SIGTERM drains in-flight work, a restart finishes the stream with nothing lost or doubled",
          "[integration][service]") {
  NatsServer nats;
  RedisServer redis;
  Config config = test_config(nats, redis);
  auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  // A bigger backlog: the sample three times over with distinct positions, so there is
  // still work in flight when the signal comes.
  const std::size_t base = records.size();
  for (int copy = 1; copy <= 2; ++copy) {
    for (std::size_t i = 0; i < base; ++i) {
      CaptureRecord r = records[i];
      const auto at = r.data.find("\"commit_lsn\":");
      if (at != std::string::npos) r.data.insert(at + 13, std::to_string(copy));  // 9000.. -> 19000..
      r.headers.clear();
      records.push_back(std::move(r));
    }
  }
  const Expected want = expect(config, records);
  JetStreamProbe probe(nats.url());
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  publish_all(probe, records);

  const std::uint16_t port = free_port();
  {
    ServiceProcess service(CDC_BINARY, {}, service_env(nats, redis, port));
    REQUIRE(service.wait_for_output("pipeline started", 20s));
    // Let part of the backlog through, then stop.
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (probe.count(config.publish.stream) < 200 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    service.signal(SIGTERM);
    const auto code = service.wait(30s);
    INFO(service.output().substr(0, 4000));
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(service.output().find("pipeline stopped") != std::string::npos);
  }
  // Whatever was not acked before exit is redelivered (NAKed ones at once) to the next process.
  {
    ServiceProcess service(CDC_BINARY, {}, service_env(nats, redis, port));
    REQUIRE(service.wait_for_output("pipeline started", 20s));
    REQUIRE(wait_consumer_idle(probe, config, 90s));
    CHECK(service.terminate(30s) == 0);
  }
  const auto out = probe.read_stream(config.publish.stream);
  std::set<std::string> ids;
  for (const auto& m : out) ids.insert(m.header("Nats-Msg-Id"));
  CHECK(out.size() == want.event_ids.size());                                         // nothing doubled
  CHECK(ids == std::set<std::string>(want.event_ids.begin(), want.event_ids.end()));  // nothing missing
  CHECK(probe.count(config.publish.dlq_stream) == 0);
}

TEST_CASE("the HTTP endpoint serves metrics, health and readiness", "[integration][service]") {
  NatsServer nats;
  RedisServer redis;
  Config config = test_config(nats, redis);
  const std::uint16_t port = free_port();
  ServiceProcess service(CDC_BINARY, {}, service_env(nats, redis, port));
  REQUIRE(service.wait_for_output("service started", 20s));
  JetStreamProbe probe(nats.url());
  const auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  std::vector<CaptureRecord> some(records.begin(), records.begin() + 100);
  const Expected want = expect(config, some);
  publish_all(probe, some);
  REQUIRE(wait_consumer_idle(probe, config, 30s));

  httplib::Client http("127.0.0.1", port);
  auto metrics = http.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  CHECK(metrics->body.find("# TYPE cdc_consumer_events_total counter") != std::string::npos);
  std::uint64_t processed = 0;
  std::size_t pos = 0;
  const std::string key = "cdc_consumer_events_total{table=\"";
  while ((pos = metrics->body.find(key, pos)) != std::string::npos) {
    const std::size_t eol = metrics->body.find('\n', pos);
    const std::string line = metrics->body.substr(pos, eol - pos);
    if (line.find("result=\"processed\"") != std::string::npos)
      processed += std::stoull(line.substr(line.rfind(' ') + 1));
    pos = eol;
  }
  CHECK(processed == want.subjects.size());
  auto health = http.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  auto ready = http.Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 200);
  auto missing = http.Get("/nope");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  auto wrong = http.Post("/metrics", "", "text/plain");
  REQUIRE(wrong);
  CHECK(wrong->status == 405);

  // Redis gone: still ready (on_redis_error=publish is a declared degraded mode). Polled until
  // the service has noticed, then the answer must be 200.
  redis.stop();
  auto degraded = http.Get("/readyz");
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!(degraded && degraded->body.find("\"redis_up\":false") != std::string::npos) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    degraded = http.Get("/readyz");
  }
  REQUIRE(degraded);
  CHECK(degraded->body.find("\"redis_up\":false") != std::string::npos);
  CHECK(degraded->status == 200);
  CHECK(service.terminate(30s) == 0);
}

namespace {
/// CPU seconds (user + system) the process has used so far, from /proc/<pid>/stat.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name, which is in parentheses and may hold spaces.
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}
}  // namespace

TEST_CASE("an idle service with both Redis connections up uses next to no CPU", "[integration][service]") {
  NatsServer nats;
  RedisServer redis;
  const Config config = test_config(nats, redis);
  ServiceProcess service(CDC_BINARY, {}, service_env(nats, redis, free_port()));
  REQUIRE(service.wait_for_output("service started", 20s));
  // Some work first, so every stage, both Redis connections and the PubAck path have run.
  JetStreamProbe probe(nats.url());
  const auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  publish_all(probe, std::vector<CaptureRecord>(records.begin(), records.begin() + 200));
  REQUIRE(wait_consumer_idle(probe, config, 60s));
  std::this_thread::sleep_for(500ms);
  // Idle: the default park wait strategy and the libuv loops must block, not poll. 3 s of wall
  // time; the monitor thread's backlog read every 5 s and the stages' 50 ms wake-ups cost a few
  // ms. 5 % of one core is far above that and far below any spinning thread.
  const double before = cpu_seconds(service.pid());
  std::this_thread::sleep_for(3s);
  const double used = cpu_seconds(service.pid()) - before;
  INFO("CPU seconds over 3 s idle: " << used);
  CHECK(used < 0.15);
  CHECK(service.terminate(30s) == 0);
}

namespace {
/// Runs the binary with `args` to completion: its exit code and output (stdout and stderr).
std::pair<std::optional<int>, std::string> run_binary(std::vector<std::string> args, const EnvOverrides& env = {}) {
  ServiceProcess p(CDC_BINARY, std::move(args), env);
  const auto code = p.wait(20s);
  return {code, p.output()};
}
}  // namespace

TEST_CASE("the HEALTHCHECK URL (option --metrics-url) follows metrics.port from the file and from the environment",
          "[integration][service]") {
  NatsServer nats;
  RedisServer redis;
  TempDir dir("cdc-metrics-url");
  const auto path = dir.path() / "config.yaml";
  const std::uint16_t file_port = free_port();
  std::ofstream(path) << "nats:\n  url: " << nats.url() << "\nredis:\n  address: " << redis.address()
                      << "\nmetrics:\n  port: " << file_port << "\n";
  const EnvOverrides clean = {{"DAISI_CDC_METRICS_PORT", std::nullopt},
                              {"DAISI_CDC_METRICS_BIND", std::nullopt},
                              {"DAISI_CDC_METRICS_ENABLED", std::nullopt},
                              {"NATS_URL", std::nullopt},
                              {"REDIS_ADDRESS", std::nullopt}};
  // The port of the file (bind 0.0.0.0 by default: reached on loopback).
  const auto [code, url] = run_binary({"--config", path.string(), "--metrics-url"}, clean);
  REQUIRE(code == std::optional<int>(0));
  CHECK(url == "http://127.0.0.1:" + std::to_string(file_port) + "\n");

  // The environment overrides the file, as for the service.
  EnvOverrides env = clean;
  env["DAISI_CDC_METRICS_PORT"] = "9191";
  env["DAISI_CDC_METRICS_BIND"] = "127.0.0.2";
  CHECK(run_binary({"--config", path.string(), "--metrics-url"}, env).second == "http://127.0.0.2:9191\n");
  env["DAISI_CDC_METRICS_BIND"] = "::1";
  CHECK(run_binary({"--config", path.string(), "--metrics-url"}, env).second == "http://[::1]:9191\n");
  // Nothing to probe: exit 1 (the health check fails), a reason on stderr.
  env["DAISI_CDC_METRICS_ENABLED"] = "false";
  const auto [disabled_code, disabled] = run_binary({"--config", path.string(), "--metrics-url"}, env);
  CHECK(disabled_code == std::optional<int>(1));
  CHECK(disabled.find("metrics.enabled is false") != std::string::npos);
  // An invalid file: exit 2, no URL.
  EnvOverrides bad = clean;
  bad["DAISI_CDC_METRICS_PORT"] = "70000";
  CHECK(run_binary({"--config", path.string(), "--metrics-url"}, bad).first == std::optional<int>(2));

  // The URL it prints is where the running service answers /healthz.
  ServiceProcess service(CDC_BINARY, {"--config", path.string()}, clean);
  REQUIRE(service.wait_for_output("service started", 20s));
  httplib::Client http("127.0.0.1", file_port);
  http.set_read_timeout(5, 0);
  auto health = http.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(service.terminate(30s) == 0);
}
