// Observability and operations of the service as operators run it (a child process against real
// nats-server -js and redis-server): /metrics counts what happened, /healthz and /readyz follow
// the dependencies and the pipeline, SIGHUP reloads what can change, the panic guard exits 3.

#include <catch2/catch.hpp>
#include <hiredis/hiredis.h>
#include <httplib.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sys/wait.h>

#include "pipeline_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace std::chrono_literals;

namespace {

/// Environment of a service under test: servers, a metrics port, fast reconnects and reads.
EnvOverrides service_env(const NatsServer& nats, const RedisServer& redis, std::uint16_t metrics_port,
                         const EnvOverrides& extra = {}) {
  EnvOverrides env = {{"NATS_URL", nats.url()},
                      {"REDIS_ADDRESS", redis.address()},
                      {"DAISI_CDC_METRICS_PORT", std::to_string(metrics_port)},
                      {"DAISI_CDC_METRICS_BIND", "127.0.0.1"},
                      {"DAISI_CDC_METRICS_BACKLOG_INTERVAL", "200ms"},
                      {"DAISI_CDC_PIPELINE_RING_CAPACITY", "1024"},
                      {"DAISI_CDC_PUBLISH_MAX_PENDING", "256"},
                      {"DAISI_CDC_DEDUP_PENDING_TTL", "2s"},
                      {"DAISI_CDC_NATS_RECONNECT_WAIT", "200ms"},
                      {"DAISI_CDC_REDIS_RECONNECT_BACKOFF_MAX", "500ms"},
                      {"LOG_LEVEL", "info"}};
  for (auto& [k, v] : extra) env[k] = v;
  return env;
}

/// One scrape of /metrics: "name{labels}" -> value.
struct Scrape {
  std::string text;
  std::map<std::string, double> values;

  [[nodiscard]] double get(const std::string& series) const {
    const auto it = values.find(series);
    return it == values.end() ? -1 : it->second;
  }
  [[nodiscard]] bool has(const std::string& series) const { return values.count(series) != 0; }
  /// Sum over the series of `name` whose labels contain every one of `must`.
  [[nodiscard]] double sum(const std::string& name, std::initializer_list<std::string> must = {}) const {
    double total = 0;
    for (const auto& [series, v] : values) {
      if (series.compare(0, name.size(), name) != 0) continue;
      if (series.size() > name.size() && series[name.size()] != '{') continue;
      bool all = true;
      for (const auto& m : must) all = all && series.find(m) != std::string::npos;
      if (all) total += v;
    }
    return total;
  }
};

Scrape scrape(std::uint16_t port) {
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(5, 0);
  auto res = http.Get("/metrics");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  Scrape s;
  s.text = res->body;
  std::size_t start = 0;
  while (start < s.text.size()) {
    std::size_t end = s.text.find('\n', start);
    if (end == std::string::npos) end = s.text.size();
    const std::string line = s.text.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    s.values[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return s;
}

/// Scrapes every 100 ms until `done(scrape)` holds or `timeout` passes; the last scrape either
/// way (gauges the monitor samples periodically lag what JetStream says for a moment).
template <typename Done>
Scrape scrape_until(std::uint16_t port, Done done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Scrape s = scrape(port);
  while (!done(s) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
    s = scrape(port);
  }
  return s;
}

/// Status of GET `path`, or -1 when the request failed.
int status_of(std::uint16_t port, const std::string& path, std::string* body = nullptr) {
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(5, 0);
  auto res = http.Get(path);
  if (!res) return -1;
  if (body != nullptr) *body = res->body;
  return res->status;
}

/// Polls until GET `path` answers `status`; the last body goes to `body`.
bool wait_status(std::uint16_t port, const std::string& path, int status, std::chrono::milliseconds timeout,
                 std::string* body = nullptr) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (status_of(port, path, body) == status) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
}

std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + needle.size())) ++n;
  return n;
}

/// Waits until the service's output holds `needle` at least `count` times.
bool wait_for_count(ServiceProcess& p, const std::string& needle, std::size_t count,
                    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (occurrences(p.output(), needle) < count) {
    if (!p.running() || std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

/// `promtool check metrics` accepts `text` (valid and lint-clean).
void check_promtool(const std::string& text) {
  TempDir dir("cdc-promtool");
  const auto path = dir.path() / "metrics.txt";
  std::ofstream(path) << text;
  FILE* p = popen(("promtool check metrics < " + path.string() + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::string output;
  char buf[4096];
  std::size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output.append(buf, n);
  const int status = pclose(p);
  INFO("promtool: " << output);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

/// The table of an event id "<position>:<company>:<table>:<pk>".
std::string table_of(const std::string& event_id) {
  const auto a = event_id.find(':', event_id.find(':') + 1);
  return event_id.substr(a + 1, event_id.find(':', a + 1) - a - 1);
}

std::vector<CaptureRecord> records_of_table(const std::vector<CaptureRecord>& all, const std::string& table,
                                            std::size_t n) {
  std::vector<CaptureRecord> out;
  for (const auto& r : all) {
    if (out.size() < n && r.subject.size() > table.size() &&
        r.subject.compare(r.subject.size() - table.size(), table.size(), table) == 0) {
      out.push_back(r);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("/metrics counts what was published and skipped and de-duplicated and dead-lettered",
          "[integration][observability]") {
  NatsServer nats;
  RedisServer redis;
  const Config config = test_config(nats, redis);
  auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  const auto bad = read_capture(sample_path("bad-examples.jsonl"));
  for (std::size_t i = 0; i < bad.size(); ++i)
    records.insert(records.begin() + static_cast<long>(100 + 300 * i), bad[i]);
  const Expected want = expect(config, records);
  REQUIRE(want.duplicates > 0);
  REQUIRE(want.skipped > 0);
  REQUIRE(want.dead_letter_total() == bad.size());

  const std::uint16_t port = free_port();
  ServiceProcess service(CDC_BINARY, {}, service_env(nats, redis, port));
  REQUIRE(service.wait_for_output("service started", 20s));
  JetStreamProbe probe(nats.url());
  publish_all(probe, records);

  // Scraped while the run is in progress: a valid exposition.
  check_promtool(scrape(port).text);

  REQUIRE(wait_consumer_idle(probe, config, 90s));
  REQUIRE(probe.wait_for_count(config.publish.stream, want.subjects.size(), 10s) == want.subjects.size());
  // The ack stage counts right after sending the ack: JetStream may see the last acks before the
  // counters move, so wait until every outcome is counted and every slot is back.
  const Scrape after = scrape_until(
      port,
      [&](const Scrape& s) {
        return s.sum("cdc_consumer_events_total", {"result=\"processed\""}) ==
                   static_cast<double>(want.subjects.size()) &&
               s.sum("cdc_consumer_events_total", {"result=\"skipped\""}) == static_cast<double>(want.skipped) &&
               s.sum("cdc_consumer_events_total", {"result=\"duplicate\""}) == static_cast<double>(want.duplicates) &&
               s.sum("cdc_consumer_events_total", {"result=\"dead_lettered\""}) == static_cast<double>(bad.size()) &&
               s.get("cdc_consumer_in_flight") == 0;
      },
      10s);
  check_promtool(after.text);

  // The contract's counters agree with the capture, table by table for what was published.
  const double processed = after.sum("cdc_consumer_events_total", {"result=\"processed\""});
  const double skipped = after.sum("cdc_consumer_events_total", {"result=\"skipped\""});
  const double duplicate = after.sum("cdc_consumer_events_total", {"result=\"duplicate\""});
  const double dead = after.sum("cdc_consumer_events_total", {"result=\"dead_lettered\""});
  CHECK(processed == static_cast<double>(want.subjects.size()));
  CHECK(skipped == static_cast<double>(want.skipped));
  CHECK(duplicate == static_cast<double>(want.duplicates));
  CHECK(dead == static_cast<double>(bad.size()));
  std::map<std::string, double> per_table;
  for (const auto& id : want.event_ids) per_table[table_of(id)] += 1;
  for (const auto& [table, n] : per_table) {
    INFO("table " << table);
    CHECK(after.get("cdc_consumer_events_total{table=\"" + table + "\",result=\"processed\"}") == n);
  }
  // Skipped tables are not in ingest.tables: they count under _other.
  CHECK(after.get("cdc_consumer_events_total{table=\"_other\",result=\"skipped\"}") ==
        static_cast<double>(want.skipped));
  // ... and by name in skipped_messages_total, so a table the filter misses shows up.
  REQUIRE(want.skipped_tables.size() >= 2);
  for (const auto& [table, n] : want.skipped_tables) {
    INFO("skipped table " << table);
    CHECK(after.get("cdc_consumer_skipped_messages_total{table=\"" + table + "\"}") == n);
  }
  CHECK(after.get("cdc_consumer_skipped_messages_total{table=\"_other\"}") == 0);
  CHECK(after.sum("cdc_consumer_skipped_messages_total") == static_cast<double>(want.skipped));
  for (const auto& [kind, n] : want.dead_letters) {
    INFO("error_kind " << kind);
    CHECK(after.get("cdc_consumer_dead_letters_total{error_kind=\"" + kind + "\"}") == n);
  }
  CHECK(after.sum("cdc_consumer_dead_letters_total") == static_cast<double>(bad.size()));
  CHECK(after.get("cdc_consumer_publish_errors_total") == 0);
  // Every final outcome took one observation of processing_seconds; NAKed deliveries do not.
  const double outcomes = processed + skipped + duplicate + dead;
  CHECK(after.sum("cdc_consumer_processing_seconds_count") == outcomes);
  const double retried = after.get("cdc_consumer_retries_total");
  CHECK(retried <= static_cast<double>(want.duplicates));
  CHECK(after.get("cdc_consumer_source_completions_total{kind=\"term\"}") == dead);
  CHECK(after.get("cdc_consumer_source_completions_total{kind=\"nak\"}") == retried);
  // Every delivery went through every stage.
  const double deliveries = outcomes + retried;
  for (const char* stage : {"parse", "dedup", "publish", "ack"}) {
    INFO("stage " << stage);
    CHECK(after.get(std::string("cdc_consumer_stage_latency_seconds_count{stage=\"") + stage + "\"}") == deliveries);
  }
  // Dedup look-ups: one per publishable delivery; repeats found their mark.
  CHECK(after.get("cdc_consumer_redis_hit_total{result=\"miss\"}") >= processed);
  CHECK(after.get("cdc_consumer_redis_hit_total{result=\"hit\"}") +
            after.get("cdc_consumer_redis_hit_total{result=\"miss\"}") ==
        processed + duplicate + retried);
  // PubAcks: every event and dead letter stored once; repeats published while in flight are duplicates.
  CHECK(after.get("cdc_consumer_pubacks_total{result=\"stored\"}") == processed + dead);
  // Lag over the last 10 s: the run just finished.
  CHECK(after.get("cdc_consumer_lag_seconds") > 0);
  CHECK(after.get("cdc_consumer_lag_seconds") < 60);
  // Idle now: every slot is back in the free ring.
  CHECK(after.get("cdc_consumer_ring_occupancy{ring=\"free\"}") == 1024);
  CHECK(after.get("cdc_consumer_in_flight") == 0);
  CHECK(after.get("cdc_consumer_publish_in_flight") == 0);
  CHECK(after.get("cdc_consumer_up") == 1);
  CHECK(after.get("cdc_consumer_ready") == 1);
  CHECK(after.get("cdc_consumer_stalled") == 0);
  CHECK(after.get("cdc_consumer_nats_connected{connection=\"consume\"}") == 1);
  CHECK(after.get("cdc_consumer_redis_up{connection=\"dedup\"}") == 1);
  CHECK(after.sum("cdc_consumer_build_info") == 1);
  CHECK(after.get("cdc_consumer_log_dropped_total") == 0);

  // The backlog the autoscaler reads, as JetStream says: nothing left.
  const ConsumerState cs = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  CHECK(cs.num_pending == 0);
  CHECK(cs.num_ack_pending == 0);
  // The gauges are sampled every backlog_interval (200 ms here) by the monitor thread, so the
  // scrape above may hold a reading taken before the last acks landed: wait for a fresh one.
  const Scrape settled = scrape_until(
      port,
      [](const Scrape& s) {
        return s.get("cdc_consumer_backlog_messages") == 0 && s.get("cdc_consumer_ack_pending_messages") == 0;
      },
      10s);
  CHECK(settled.get("cdc_consumer_backlog_messages") == 0);
  CHECK(settled.get("cdc_consumer_ack_pending_messages") == 0);
  CHECK(service.terminate(30s) == 0);
}

TEST_CASE("the consumer backlog is read from JetStream for the autoscaler", "[integration][observability]") {
  NatsServer nats;
  RedisServer redis;
  const Config config = test_config(nats, redis);
  const auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  const std::uint16_t port = free_port();
  // Redis away with on_redis_error=block holds the work; JetStream delivers at most
  // max_ack_pending, so the rest stays in the backlog.
  redis.stop();
  ServiceProcess service(CDC_BINARY, {},
                         service_env(nats, redis, port,
                                     {{"DAISI_CDC_DEDUP_ON_REDIS_ERROR", "block"},
                                      {"DAISI_CDC_INGEST_MAX_ACK_PENDING", "100"},
                                      {"DAISI_CDC_METRICS_BACKLOG_INTERVAL", "100ms"}}));
  REQUIRE(service.wait_for_output("service started", 20s));
  JetStreamProbe probe(nats.url());
  // Messages only: a skipped table or a dead letter completes without Redis, after which
  // JetStream delivers more and the backlog moves between the two readings compared below.
  const std::vector<CaptureRecord> some = records_of_table(records, "messages", 300);
  publish_all(probe, some);
  const std::uint64_t stored = probe.stream_state(config.ingest.stream).messages;
  REQUIRE(stored == 300);
  // What the service reports is what JetStream reports.
  const Scrape s = scrape_until(
      port,
      [&](const Scrape& x) { return x.get("cdc_consumer_backlog_messages") == static_cast<double>(stored - 100); },
      15s);
  const ConsumerState cs = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  CHECK(cs.num_ack_pending == 100);
  CHECK(s.get("cdc_consumer_backlog_messages") == static_cast<double>(cs.num_pending));
  CHECK(s.get("cdc_consumer_ack_pending_messages") == 100);
  CHECK(s.get("cdc_consumer_backlog_timestamp_seconds") > 1.6e9);
  CHECK(s.get("cdc_consumer_backlog_errors_total") == 0);
  // Redis back: the backlog drains, and the gauge follows it down.
  redis.start();
  REQUIRE(wait_consumer_idle(probe, config, 60s));
  const Scrape drained = scrape_until(
      port, [](const Scrape& x) { return x.get("cdc_consumer_backlog_messages") == 0; }, 10s);
  CHECK(drained.get("cdc_consumer_backlog_messages") == 0);
  CHECK(service.terminate(30s) == 0);
}

TEST_CASE("health endpoints follow NATS and Redis and the pipeline as they go away and come back",
          "[integration][observability]") {
  NatsServer nats;
  RedisServer redis;
  Config config = test_config(nats, redis);
  const auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  const std::uint16_t port = free_port();
  ServiceProcess service(CDC_BINARY, {},
                         service_env(nats, redis, port,
                                     {{"DAISI_CDC_DEDUP_ON_REDIS_ERROR", "block"},
                                      {"DAISI_CDC_HEALTH_STALL_TIMEOUT", "2s"},
                                      {"DAISI_CDC_GUARD_MAX_FAILURE_DURATION", "0"},
                                      {"DAISI_CDC_PUBLISH_MAX_RETRIES", "100000"},
                                      {"DAISI_CDC_PUBLISH_RETRY_BACKOFF_MAX", "300ms"},
                                      {"DAISI_CDC_PUBLISH_ACK_TIMEOUT", "1s"},
                                      {"DAISI_CDC_PIPELINE_DRAIN_TIMEOUT", "2s"}}));
  REQUIRE(service.wait_for_output("service started", 20s));
  std::string body;
  CHECK(wait_status(port, "/readyz", 200, 10s, &body));
  CHECK(status_of(port, "/healthz") == 200);
  CHECK(status_of(port, "/nope") == 404);
  {
    httplib::Client http("127.0.0.1", port);
    auto del = http.Delete("/healthz");
    REQUIRE(del);
    CHECK(del->status == 405);
    CHECK(del->get_header_value("Allow") == "GET, HEAD");
    auto put = http.Put("/readyz", "x", "text/plain");
    REQUIRE(put);
    CHECK(put->status == 405);
    auto head = http.Head("/metrics");
    REQUIRE(head);
    CHECK(head->status == 200);
    auto post = http.Post("/nope", "", "text/plain");
    REQUIRE(post);
    CHECK(post->status == 404);
  }

  SECTION("Redis away with on_redis_error=block: not ready; back: ready") {
    redis.stop();
    CHECK(wait_status(port, "/readyz", 503, 10s, &body));
    CHECK(body.find("\"redis_up\":false") != std::string::npos);
    CHECK(body.find("\"redis_degraded\":false") != std::string::npos);
    CHECK(status_of(port, "/healthz") == 200);  // an outage is not a wedged process
    CHECK(scrape(port).get("cdc_consumer_redis_up{connection=\"dedup\"}") == 0);
    redis.start();
    CHECK(wait_status(port, "/readyz", 200, 15s, &body));
    const Scrape s = scrape(port);
    CHECK(s.get("cdc_consumer_redis_up{connection=\"dedup\"}") == 1);
    CHECK(s.get("cdc_consumer_redis_reconnects_total{connection=\"dedup\"}") >= 1);
    CHECK(s.get("cdc_consumer_redis_connect_failures_total{connection=\"dedup\"}") >= 1);
  }

  SECTION("NATS away: not ready, still alive; back: ready, reconnect counted") {
    nats.stop();
    CHECK(wait_status(port, "/readyz", 503, 10s, &body));
    CHECK(body.find("\"nats_connected\":false") != std::string::npos);
    CHECK(status_of(port, "/healthz") == 200);
    nats.start();
    CHECK(wait_status(port, "/readyz", 200, 20s, &body));
    const Scrape s = scrape(port);
    CHECK(s.get("cdc_consumer_nats_reconnects_total{connection=\"consume\"}") >= 1);
    CHECK(s.get("cdc_consumer_nats_reconnects_total{connection=\"publish\"}") >= 1);
    CHECK(s.get("cdc_consumer_nats_disconnects_total{connection=\"consume\"}") >= 1);
  }

  SECTION("a wedged pipeline fails liveness after health.stall_timeout; progress restores it") {
    // The output stream stops taking the output subjects: every publish gets "no responders"
    // and is retried in place, so messages stay in flight, nothing completes, and NATS, Redis
    // and both streams look fine. (A deleted stream would be an outage the service repairs by
    // recreating it: see the publish failure fault tests.)
    JetStreamProbe probe(nats.url());
    probe.create_stream(StreamConfig{config.publish.stream, {"parked." + config.publish.subject_prefix + ".>"}, 300s});
    const std::vector<CaptureRecord> some = records_of_table(records, ".messages", 20);
    const Expected want = expect(config, some);
    publish_all(probe, some);
    CHECK(wait_status(port, "/healthz", 503, 15s, &body));
    CHECK(body.find("\"status\":\"stalled\"") != std::string::npos);
    CHECK(status_of(port, "/readyz") == 200);  // dependencies are fine
    Scrape s = scrape(port);
    CHECK(s.get("cdc_consumer_stalled") == 1);
    CHECK(s.get("cdc_consumer_publish_errors_total") > 0);
    CHECK(s.get("cdc_consumer_in_flight") > 0);
    CHECK(s.get("cdc_consumer_failing_seconds") > 0);
    CHECK(service.output().find("liveness failing") != std::string::npos);
    // The stream takes the subjects again: the retries land, liveness recovers.
    probe.create_stream(StreamConfig{config.publish.stream, {config.publish.subject_prefix + ".>"}, 300s});
    CHECK(wait_status(port, "/healthz", 200, 15s, &body));
    REQUIRE(wait_consumer_idle(probe, config, 30s));
    s = scrape(port);
    CHECK(s.get("cdc_consumer_stalled") == 0);
    CHECK(s.get("cdc_consumer_failing_seconds") == 0);
    CHECK(probe.count(config.publish.stream) == want.subjects.size());
  }
  CHECK(service.terminate(30s) == 0);
}

TEST_CASE("the panic guard exits with code 3 when processing keeps failing", "[integration][observability]") {
  NatsServer nats;
  RedisServer redis;
  Config config = test_config(nats, redis);
  const auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  const std::uint16_t port = free_port();
  ServiceProcess service(CDC_BINARY, {},
                         service_env(nats, redis, port,
                                     {{"DAISI_CDC_GUARD_MAX_FAILURE_DURATION", "3s"},
                                      {"DAISI_CDC_INGEST_MAX_DELIVER", "-1"},  // never dead-lettered: a success
                                      {"DAISI_CDC_PUBLISH_MAX_RETRIES", "1"},
                                      {"DAISI_CDC_PUBLISH_RETRY_BACKOFF", "50ms"},
                                      {"DAISI_CDC_PUBLISH_NAK_DELAY", "200ms"},
                                      {"DAISI_CDC_PIPELINE_DRAIN_TIMEOUT", "1s"}}));
  REQUIRE(service.wait_for_output("service started", 20s));
  JetStreamProbe probe(nats.url());
  // Every publish fails (no stream takes the output subjects; a deleted stream would be
  // recreated): NAKs, redeliveries, again.
  probe.create_stream(StreamConfig{config.publish.stream, {"parked." + config.publish.subject_prefix + ".>"}, 300s});
  publish_all(probe, records_of_table(records, ".messages", 10));
  const auto code = service.wait(40s);
  INFO(service.output().substr(0, 8000));
  REQUIRE(code.has_value());
  CHECK(*code == 3);
  CHECK(service.output().find("panic guard: exiting so the orchestrator restarts the service") != std::string::npos);
  CHECK(service.output().find("processing has failed continuously for") != std::string::npos);
  // Drained like a SIGTERM: nothing is left waiting for AckWait.
  CHECK(service.output().find("pipeline stopped") != std::string::npos);
}

TEST_CASE("SIGHUP reloads the log level and tables and keeps the running config when the file is invalid",
          "[integration][observability]") {
  NatsServer nats;
  RedisServer redis;
  const Config config = test_config(nats, redis);
  const auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  auto messages = records_of_table(records, ".messages", 40);
  const auto all_agents = records_of_table(records, ".agents", 11);
  REQUIRE(messages.size() == 40);
  REQUIRE(all_agents.size() == 11);
  const std::vector<CaptureRecord> agents(all_agents.begin(), all_agents.begin() + 10);
  // One message carries a W3C trace context; debug lines about it name its trace id.
  messages[20].headers.emplace_back("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");

  TempDir dir("cdc-sighup");
  const auto path = dir.path() / "config.yaml";
  const std::uint16_t port = free_port();
  const auto write_config = [&](const std::string& level, const std::string& extra) {
    std::ofstream out(path);
    out << "nats:\n  url: " << nats.url() << "\n  reconnect_wait: 200ms\n"
        << "redis:\n  address: " << redis.address() << "\n"
        << "metrics:\n  bind: 127.0.0.1\n  port: " << port << "\n"
        << "pipeline:\n  ring_capacity: 1024\n"
        << "publish:\n  max_pending: 256\n"
        << "log:\n  level: " << level << "\n"
        << extra;
  };
  write_config("info", "");
  // The file decides the level: the environment must not override it.
  ServiceProcess service(CDC_BINARY, {"--config", path.string()},
                         {{"LOG_LEVEL", std::nullopt},
                          {"DAISI_CDC_LOG_LEVEL", std::nullopt},
                          {"NATS_URL", std::nullopt},
                          {"REDIS_ADDRESS", std::nullopt}});
  REQUIRE(service.wait_for_output("service started", 20s));
  JetStreamProbe probe(nats.url());
  publish_all(probe, std::vector<CaptureRecord>(messages.begin(), messages.begin() + 10));
  REQUIRE(wait_consumer_idle(probe, config, 30s));
  CHECK(service.output().find("\"level\":\"debug\"") == std::string::npos);

  // 1. log.level info -> debug: per-event debug lines appear.
  write_config("debug", "");
  service.signal(SIGHUP);
  REQUIRE(wait_for_count(service, "\"msg\":\"configuration reloaded\"", 1, 10s));
  CHECK(service.output().find("\"applied\":\"log.level\"") != std::string::npos);
  publish_all(probe, std::vector<CaptureRecord>(messages.begin() + 10, messages.begin() + 30));
  REQUIRE(wait_consumer_idle(probe, config, 30s));
  REQUIRE(wait_for_count(service, "\"msg\":\"event completed\"", 20, 10s));
  CHECK(service.output().find("\"level\":\"debug\"") != std::string::npos);
  CHECK(service.output().find("\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"") != std::string::npos);
  CHECK(service.output().find("\"latency_ms\":") != std::string::npos);
  CHECK(service.output().find("\"delivery_attempt\":1") != std::string::npos);

  // 2. ingest.tables without agents: applied to the running parse stage; agents now skipped.
  //    nats.name and pipeline.ring_capacity changed too: logged as needing a restart, not applied.
  write_config("debug",
               "ingest:\n  tables: [messages, chats]\n"
               "health:\n  stall_timeout: 30s\n");
  std::string text;
  {
    std::ifstream in(path);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto replace = [&text](const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
  };
  replace("  ring_capacity: 1024", "  ring_capacity: 2048");
  replace("  reconnect_wait: 200ms", "  reconnect_wait: 200ms\n  name: renamed");
  std::ofstream(path) << text;
  service.signal(SIGHUP);
  REQUIRE(wait_for_count(service, "\"msg\":\"configuration reloaded\"", 2, 10s));
  REQUIRE(wait_for_count(service, "parse stage took the reloaded rules", 1, 10s));
  CHECK(service.output().find("\"applied\":\"ingest.tables,health.stall_timeout\"") != std::string::npos);
  CHECK(service.output().find(
            "\"msg\":\"changed but needs a restart; ignored\",\"keys\":\"nats.name,pipeline.ring_capacity\"") !=
        std::string::npos);
  Scrape before = scrape(port);
  const double agents_skipped = before.get("cdc_consumer_events_total{table=\"agents\",result=\"skipped\"}");
  publish_all(probe, agents);
  REQUIRE(wait_consumer_idle(probe, config, 30s));
  const auto agents_skipped_now = [](double n) {
    return
        [n](const Scrape& s) { return s.get("cdc_consumer_events_total{table=\"agents\",result=\"skipped\"}") == n; };
  };
  Scrape after = scrape_until(port, agents_skipped_now(agents_skipped + 10), 10s);
  // agents is still a label (labels are fixed at start-up), and all ten went there as skipped.
  CHECK(after.get("cdc_consumer_events_total{table=\"agents\",result=\"skipped\"}") == agents_skipped + 10);
  CHECK(after.get("cdc_consumer_events_total{table=\"agents\",result=\"processed\"}") ==
        before.get("cdc_consumer_events_total{table=\"agents\",result=\"processed\"}"));
  CHECK(after.get("cdc_consumer_ring_capacity") == 1024);  // not half-applied
  CHECK(after.get("cdc_consumer_config_reloads_total{result=\"applied\"}") == 2);

  // 3. An invalid file: the running configuration stays, the reason is logged.
  std::ofstream(path) << "log:\n  level: verbose\n";
  service.signal(SIGHUP);
  REQUIRE(wait_for_count(service, "configuration reload failed; keeping the running configuration", 1, 10s));
  CHECK(service.output().find("log.level: expected one of trace, debug, info, warn, error, got 'verbose'") !=
        std::string::npos);
  // Not YAML at all: the same.
  std::ofstream(path) << "log: [unclosed\n";
  service.signal(SIGHUP);
  REQUIRE(wait_for_count(service, "configuration reload failed; keeping the running configuration", 2, 10s));
  CHECK(service.running());
  // Still debug, still without agents.
  const std::size_t completed_lines = occurrences(service.output(), "\"msg\":\"event completed\"");
  publish_all(probe, std::vector<CaptureRecord>(messages.begin() + 30, messages.end()));
  probe.publish(all_agents[10]);
  REQUIRE(wait_consumer_idle(probe, config, 30s));
  CHECK(wait_for_count(service, "\"msg\":\"event completed\"", completed_lines + 11, 10s));
  const Scrape last = scrape_until(port, agents_skipped_now(agents_skipped + 10 + 1), 10s);
  CHECK(last.get("cdc_consumer_config_reloads_total{result=\"failed\"}") == 2);
  CHECK(last.get("cdc_consumer_events_total{table=\"agents\",result=\"skipped\"}") == agents_skipped + 10 + 1);
  CHECK(service.terminate(30s) == 0);
}

TEST_CASE("SIGHUP names the environment variable that pins a key the file changed", "[integration][observability]") {
  NatsServer nats;
  RedisServer redis;
  TempDir dir("cdc-sighup-pinned");
  const auto path = dir.path() / "config.yaml";
  const std::uint16_t port = free_port();
  const std::uint16_t file_port = free_port();
  const auto write_config = [&](const std::string& level, std::uint16_t metrics_port, const std::string& stall) {
    std::ofstream out(path);
    out << "nats:\n  url: " << nats.url() << "\n"
        << "redis:\n  address: " << redis.address() << "\n"
        << "metrics:\n  bind: 127.0.0.1\n  port: " << metrics_port << "\n"
        << "health:\n  stall_timeout: " << stall << "\n"
        << "log:\n  level: " << level << "\n";
  };
  write_config("info", file_port, "120s");
  // As a container with LOG_LEVEL baked into its image: the variables pin log.level and
  // metrics.port whatever the file says.
  ServiceProcess service(CDC_BINARY, {"--config", path.string()},
                         {{"LOG_LEVEL", "info"},
                          {"DAISI_CDC_LOG_LEVEL", std::nullopt},
                          {"DAISI_CDC_METRICS_PORT", std::to_string(port)},
                          {"NATS_URL", std::nullopt},
                          {"REDIS_ADDRESS", std::nullopt}});
  REQUIRE(service.wait_for_output("service started", 20s));
  CHECK(status_of(port, "/healthz") == 200);

  // 1. The operator raises the level and moves the port in the file: neither changes, and the
  //    reload line says which variable holds each of them.
  const std::uint16_t moved_port = free_port();
  write_config("debug", moved_port, "120s");
  service.signal(SIGHUP);
  REQUIRE(wait_for_count(service, "\"msg\":\"configuration reloaded\"", 1, 10s));
  const std::string out = service.output();
  INFO(out);
  CHECK(out.find("\"level\":\"warn\",\"msg\":\"configuration reloaded\"") != std::string::npos);
  CHECK(out.find("\"pinned_by_env\":\"metrics.port by DAISI_CDC_METRICS_PORT,log.level by LOG_LEVEL\"") !=
        std::string::npos);
  CHECK(out.find("\"applied\":\"\"") != std::string::npos);
  CHECK(out.find("\"log_level\":\"info\"") != std::string::npos);
  CHECK(out.find("needs a restart") == std::string::npos);  // nothing in effect changed
  CHECK(status_of(port, "/healthz") == 200);

  // 2. A key nobody pins: applied, and the line names no variable (the pinned keys were not
  //    edited this time).
  write_config("debug", moved_port, "90s");
  service.signal(SIGHUP);
  REQUIRE(wait_for_count(service, "\"msg\":\"configuration reloaded\"", 2, 10s));
  const std::string second = service.output().substr(out.size());
  INFO(second);
  CHECK(second.find("\"level\":\"info\",\"msg\":\"configuration reloaded\"") != std::string::npos);
  CHECK(second.find("\"applied\":\"health.stall_timeout\"") != std::string::npos);
  CHECK(second.find("pinned_by_env") == std::string::npos);
  // The level stayed info all along: no debug line was ever written.
  CHECK(service.output().find("\"level\":\"debug\"") == std::string::npos);
  CHECK(service.terminate(30s) == 0);
}

TEST_CASE("Redis evictions and maxmemory-policy are exported and an evicting policy is warned about",
          "[integration][observability][redis]") {
  NatsServer nats;
  // allkeys-lru with a small maxmemory: filler keys make Redis evict while the service runs.
  RedisServer redis(RedisServerOptions{{"--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"}});
  const std::uint16_t port = free_port();
  ServiceProcess service(CDC_BINARY, {}, service_env(nats, redis, port));
  REQUIRE(service.wait_for_output("service started", 20s));
  // The start-up warning names the policy.
  REQUIRE(service.wait_for_output("redis maxmemory-policy can evict dedup keys", 10s));
  CHECK(service.output().find("\"policy\":\"allkeys-lru\"") != std::string::npos);
  Scrape s = scrape_until(
      port, [](const Scrape& x) { return x.has("cdc_consumer_redis_evicted_keys"); }, 10s);
  CHECK(s.get("cdc_consumer_redis_maxmemory_policy{policy=\"allkeys-lru\"}") == 1);
  CHECK(s.sum("cdc_consumer_redis_maxmemory_policy") == 1);
  REQUIRE(s.get("cdc_consumer_redis_evicted_keys") == 0);

  // Fill Redis past maxmemory: it evicts, and the next INFO read shows it.
  redisContext* c = redisConnect("127.0.0.1", redis.port());
  REQUIRE(c != nullptr);
  REQUIRE(c->err == 0);
  const std::string big(64 * 1024, 'x');
  for (int i = 0; i < 100; ++i) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "SET filler:%d %b", i, big.data(), big.size()));
    REQUIRE(r != nullptr);
    freeReplyObject(r);
  }
  redisFree(c);
  s = scrape_until(
      port, [](const Scrape& x) { return x.get("cdc_consumer_redis_evicted_keys") > 0; }, 10s);
  CHECK(s.get("cdc_consumer_redis_evicted_keys") > 0);
  check_promtool(s.text);
  CHECK(service.terminate(30s) == 0);
}

TEST_CASE("a noeviction Redis gets no eviction warning", "[integration][observability][redis]") {
  NatsServer nats;
  RedisServer redis(RedisServerOptions{{"--maxmemory-policy", "noeviction"}});
  const std::uint16_t port = free_port();
  ServiceProcess service(CDC_BINARY, {}, service_env(nats, redis, port));
  REQUIRE(service.wait_for_output("service started", 20s));
  const Scrape s = scrape_until(
      port, [](const Scrape& x) { return x.has("cdc_consumer_redis_maxmemory_policy{policy=\"noeviction\"}"); }, 10s);
  CHECK(s.get("cdc_consumer_redis_maxmemory_policy{policy=\"noeviction\"}") == 1);
  CHECK(s.get("cdc_consumer_redis_evicted_keys") == 0);
  REQUIRE(service.wait_for_output("\"policy\":\"noeviction\"", 10s));  // logged at info instead
  CHECK(service.output().find("can evict dedup keys") == std::string::npos);
  CHECK(service.terminate(30s) == 0);
}
