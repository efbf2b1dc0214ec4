// daisi-dlq-worker against real servers (docs/dlq-worker.md): nats-server -js, redis-server and a
// PostgreSQL cluster made by initdb in a temp dir. The service and the worker run as their
// built binaries. Backoffs are milliseconds here; the defaults are minutes.
//
// - a transient failure (wa_stream refusing one company's subjects) dead-letters events; once
//   the cause is gone the worker's retries reach wa_stream exactly once, nothing in PostgreSQL;
// - every permanent kind lands in exhausted_events once, with what is needed to understand and
//   requeue it; `cdc-replay exhausted requeue` after a fix publishes it;
// - a retry that keeps failing is exhausted after dlq_worker.max_attempts, with the count;
// - a retry the source stream cannot take now (no stream) is tried again, not counted;
// - PostgreSQL stopped mid-batch: nothing acked, nothing lost, each row once after it returns;
//   the worker SIGKILLed mid-burst: after a restart every record has exactly one row.

#include <catch2/catch.hpp>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cdc/core/dead_letter.hpp"
#include "cdc/dlq_worker/postgres.hpp"
#include "cdc/core/dlq_record.hpp"
#include "pipeline_fixture.hpp"
#include "postgres.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

/// A valid Sequin insert for table messages of `company` (the subject carries it).
CaptureRecord message_insert(const std::string& company, std::uint64_t lsn, const std::string& pad = "") {
  CaptureRecord r;
  r.subject = "cdc." + company + ".messages";
  const std::string id = "m-" + company + "-" + std::to_string(lsn);
  r.headers.emplace_back("Nats-Msg-Id", "seq-" + company + "-" + std::to_string(lsn));
  r.data = R"({"record":{"message_id":")" + id + R"(","chat_id":"chat-1","agent_id":"agent-7","text":"hi)" + pad +
           R"("},"changes":null,"action":"insert","metadata":{"table_schema":"public","table_name":"messages",)"
           R"("commit_timestamp":"2026-11-22T10:00:00Z","commit_lsn":)" +
           std::to_string(lsn) + R"(,"commit_idx":0,"record_pks":[")" + id + R"("]}})";
  return r;
}

std::string event_id_of(const Config& config, const CaptureRecord& r) {
  Transformer t(transform_rules(config));
  TransformOutput out;
  if (t.transform(r.subject, r.data, r.header("Nats-Msg-Id"), out) != Disposition::kPublish) {
    throw std::runtime_error("not a publishable record: " + r.data);
  }
  return out.event_id;
}

EnvOverrides service_env(const NatsServer& nats, const RedisServer& redis, const EnvOverrides& extra = {}) {
  EnvOverrides env{{"NATS_URL", nats.url()},
                   {"REDIS_ADDRESS", redis.address()},
                   {"DAISI_CDC_METRICS_PORT", std::to_string(free_port())},
                   {"DAISI_CDC_METRICS_BIND", "127.0.0.1"},
                   {"DAISI_CDC_INGEST_ACK_WAIT", "2s"},
                   {"DAISI_CDC_DEDUP_PENDING_TTL", "2s"},
                   {"DAISI_CDC_INGEST_MAX_DELIVER", "2"},
                   {"DAISI_CDC_PIPELINE_RING_CAPACITY", "1024"},
                   {"DAISI_CDC_INGEST_MAX_ACK_PENDING", "1024"},
                   {"DAISI_CDC_PUBLISH_MAX_PENDING", "256"},
                   {"DAISI_CDC_PUBLISH_ACK_TIMEOUT", "1s"},
                   {"DAISI_CDC_PUBLISH_MAX_RETRIES", "1"},
                   {"DAISI_CDC_PUBLISH_RETRY_BACKOFF", "50ms"},
                   {"DAISI_CDC_PUBLISH_RETRY_BACKOFF_MAX", "200ms"},
                   {"DAISI_CDC_PUBLISH_NAK_DELAY", "200ms"},
                   {"DAISI_CDC_PIPELINE_DRAIN_TIMEOUT", "5s"},
                   {"LOG_LEVEL", "info"}};
  for (const auto& [k, v] : extra) env[k] = v;
  return env;
}

std::unique_ptr<ServiceProcess> start_service(const EnvOverrides& env) {
  auto p = std::make_unique<ServiceProcess>(CDC_BINARY, std::vector<std::string>{}, env);
  if (!p->wait_for_output("pipeline started", 30s)) throw std::runtime_error("service did not start:\n" + p->output());
  return p;
}

struct Worker {
  std::uint16_t port = 0;
  std::unique_ptr<ServiceProcess> process;
};

EnvOverrides worker_env(const NatsServer& nats, const PostgresServer& pg, std::uint16_t port,
                        const EnvOverrides& extra = {}) {
  EnvOverrides env{{"NATS_URL", nats.url()},
                   {"DAISI_CDC_POSTGRES_CONNINFO", pg.conninfo()},
                   {"DAISI_CDC_POSTGRES_FLUSH_INTERVAL", "100ms"},
                   {"DAISI_CDC_POSTGRES_CONNECT_TIMEOUT", "1s"},
                   {"DAISI_CDC_POSTGRES_RECONNECT_BACKOFF_MAX", "300ms"},
                   {"DAISI_CDC_DLQ_WORKER_METRICS_PORT", std::to_string(port)},
                   {"DAISI_CDC_DLQ_WORKER_METRICS_BIND", "127.0.0.1"},
                   {"DAISI_CDC_DLQ_WORKER_ACK_WAIT", "3s"},
                   {"DAISI_CDC_DLQ_WORKER_FETCH_EXPIRES", "100ms"},
                   {"DAISI_CDC_DLQ_WORKER_BACKOFF_BASE", "200ms"},
                   {"DAISI_CDC_DLQ_WORKER_BACKOFF_MAX", "1s"},
                   {"DAISI_CDC_DLQ_WORKER_RETRY_DELAY", "200ms"},
                   {"DAISI_CDC_DLQ_WORKER_BACKLOG_INTERVAL", "200ms"},
                   {"LOG_LEVEL", "info"}};
  for (const auto& [k, v] : extra) env[k] = v;
  return env;
}

std::unique_ptr<ServiceProcess> start_worker_process(const EnvOverrides& env) {
  auto p = std::make_unique<ServiceProcess>(CDC_DLQ_WORKER_BINARY, std::vector<std::string>{}, env);
  if (!p->wait_for_output("dlq worker running", 30s)) throw std::runtime_error("worker did not start:\n" + p->output());
  return p;
}

Worker start_worker(const NatsServer& nats, const PostgresServer& pg, const EnvOverrides& extra = {}) {
  Worker w;
  w.port = free_port();
  w.process = start_worker_process(worker_env(nats, pg, w.port, extra));
  return w;
}

std::pair<int, std::string> http_get(std::uint16_t port, const std::string& path) {
  httplib::Client http("127.0.0.1", port);
  http.set_connection_timeout(2, 0);
  http.set_read_timeout(5, 0);
  auto res = http.Get(path.c_str());
  if (!res) return {0, {}};
  return {res->status, res->body};
}

/// Sum of the samples of `name` whose labels contain `labels`; NaN when none matches.
double metric(const std::string& body, std::string_view name, std::string_view labels = {}) {
  double sum = 0;
  bool found = false;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.compare(0, name.size(), name) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;
    if (!labels.empty() && line.find(labels) == std::string::npos) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
    found = true;
  }
  return found ? sum : std::numeric_limits<double>::quiet_NaN();
}

long long count_rows(const PostgresServer& pg, const std::string& where = "") {
  PgConnection c(pg.conninfo(), 2s);
  const PgResultPtr r = c.query("SELECT count(*) FROM exhausted_events" + (where.empty() ? "" : " WHERE " + where));
  return std::stoll(PQgetvalue(r.get(), 0, 0));
}

/// Polls `predicate` until it holds or `timeout` passes; its last value.
template <typename F>
bool eventually(F predicate, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    try {
      if (predicate()) return true;
    } catch (const std::exception&) {
      // A server restarting; try again.
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
}

/// The worker's consumer has nothing undelivered and nothing unacknowledged.
bool worker_idle(const JetStreamProbe& probe, const Config& config) {
  const ConsumerState s = probe.consumer_info(config.publish.dlq_stream, "cdc_dlq_worker");
  return s.num_pending == 0 && s.num_ack_pending == 0;
}

/// A dead-letter record as the service writes it, published straight into the DLQ stream.
std::uint64_t publish_dead_letter(JetStreamProbe& probe, const Config& config, std::uint64_t source_seq, ErrorKind kind,
                                  const std::string& error, const std::string& body,
                                  const std::string& kind_text = "") {
  const std::vector<std::pair<std::string, std::string>> headers{{"Nats-Msg-Id", "src-" + std::to_string(source_seq)}};
  DeadLetter d;
  d.source_subject = "cdc.co1.messages";
  d.source_stream = config.ingest.stream;
  d.source_seq = source_seq;
  d.delivery_attempts = 1;
  d.error_kind = kind;
  d.error = error;
  d.failed_at_unix_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  d.headers = &headers;
  d.data = body;
  std::string payload;
  build_dead_letter_payload(d, payload);
  if (!kind_text.empty()) {
    const std::string from = "\"error_kind\":\"" + std::string(to_string(kind)) + "\"";
    payload.replace(payload.find(from), from.size(), "\"error_kind\":\"" + kind_text + "\"");
  }
  return probe
      .publish("cdc_dlq.co1.messages", payload,
               {{"Nats-Msg-Id", "dlq:" + config.ingest.stream + ":" + std::to_string(source_seq)}})
      .seq;
}

void create_streams(JetStreamProbe& probe, const Config& config, const std::vector<std::string>& wa_subjects) {
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  StreamConfig wa;
  wa.name = config.publish.stream;
  wa.subjects = wa_subjects;
  wa.duplicate_window = 5min;
  probe.create_stream(wa);
  probe.create_stream(config.publish.dlq_stream, {config.publish.dlq_subject_prefix + ".>"}, 5min);
}

Config base_config(const NatsServer& nats, const RedisServer& redis) { return test_config(nats, redis); }

}  // namespace

TEST_CASE("postgres test helper: initdb, start, stop, restart keeps the data", "[integration][dlq_worker]") {
  PostgresServer pg;
  {
    PgConnection c(pg.conninfo(), 2s);
    c.exec("CREATE TABLE t (x int); INSERT INTO t VALUES (42)");
  }
  pg.stop();
  CHECK_FALSE(pg.running());
  CHECK_THROWS_AS(PgConnection(pg.conninfo(), 1s), PgError);
  pg.start();
  PgConnection c(pg.conninfo(), 2s);
  const PgResultPtr r = c.query("SELECT x FROM t");
  REQUIRE(PQntuples(r.get()) == 1);
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "42");
}

TEST_CASE("dlq worker: a transient failure is retried once its cause is gone and reaches wa_stream exactly once",
          "[integration][dlq_worker]") {
  NatsServer nats;
  RedisServer redis;
  PostgresServer pg;
  const Config config = base_config(nats, redis);
  JetStreamProbe probe(nats.url());
  // wa_stream takes co1 only: co2's publishes find no stream (no responders: transient), are
  // retried in place, NAKed, and dead-lettered as max_deliveries on the last delivery.
  create_streams(probe, config, {"wa.co1.>"});
  auto service = start_service(service_env(nats, redis));
  // Backoff 1 s: the cause is removed long before the first retry is due.
  Worker worker =
      start_worker(nats, pg, {{"DAISI_CDC_DLQ_WORKER_BACKOFF_BASE", "1s"}, {"DAISI_CDC_DLQ_WORKER_BACKOFF_MAX", "4s"}});

  std::set<std::string> expected, failing;
  for (std::uint64_t i = 1; i <= 10; ++i) {
    const CaptureRecord r = message_insert(i % 3 == 0 ? "co2" : "co1", 1000 + i);
    probe.publish(r);
    expected.insert(event_id_of(config, r));
    if (i % 3 == 0) failing.insert(event_id_of(config, r));
  }
  REQUIRE(failing.size() == 3);
  REQUIRE(eventually([&] { return probe.count(config.publish.dlq_stream) >= failing.size(); }, 30s));
  // The cause goes away: wa_stream takes every company.
  StreamConfig wa;
  wa.name = config.publish.stream;
  wa.subjects = {"wa.>"};
  wa.duplicate_window = 5min;
  probe.create_stream(wa);

  REQUIRE(eventually([&] { return probe.count(config.publish.stream) >= expected.size(); }, 30s));
  REQUIRE(eventually([&] { return worker_idle(probe, config); }, 15s));
  const auto [status, metrics] = http_get(worker.port, "/metrics");
  REQUIRE(status == 200);
  CHECK(worker.process->terminate(15s) == 0);
  CHECK(service->terminate(15s) == 0);

  std::multiset<std::string> published;
  for (const auto& m : probe.read_stream(config.publish.stream)) published.insert(m.header("Nats-Msg-Id"));
  CHECK(published.size() == expected.size());
  CHECK(std::set<std::string>(published.begin(), published.end()) == expected);  // each once
  std::size_t original_letters = 0;
  for (const auto& m : probe.read_stream(config.publish.dlq_stream)) {
    DlqRecord rec;
    REQUIRE(parse_dlq_record(m.data, rec));
    CHECK(rec.error_kind == "max_deliveries");
    CHECK(failing.count(rec.event_id.value_or("")) == 1);
    if (dlq_attempts_done(rec) == 0) ++original_letters;
  }
  CHECK(original_letters == failing.size());
  // The retries in the source stream: attempt 1, their own Nats-Msg-Id, the original kept.
  std::set<std::string> retry_ids;
  for (const auto& m : probe.read_stream(config.ingest.stream)) {
    if (m.header(std::string(kDlqAttemptHeader)).empty()) continue;
    CHECK(m.header(std::string(kDlqAttemptHeader)) == "1");
    CHECK(m.header("Nats-Msg-Id").rfind("dlq-retry:cdc_dlq_stream:", 0) == 0);
    CHECK(m.header(std::string(kDlqOriginalMsgIdHeader)).rfind("seq-co2-", 0) == 0);
    CHECK(m.subject == "cdc.co2.messages");
    retry_ids.insert(m.header("Nats-Msg-Id"));
  }
  CHECK(retry_ids.size() == failing.size());
  CHECK(metric(metrics, "cdc_dlq_worker_retries_total", "kind=\"max_deliveries\"") ==
        static_cast<double>(failing.size()));
  CHECK(metric(metrics, "cdc_dlq_worker_exhausted_total") == 0);
  CHECK(count_rows(pg) == 0);
}

TEST_CASE("dlq worker: each permanent kind lands in exhausted_events once and can be requeued after a fix",
          "[integration][dlq_worker]") {
  NatsServer nats;
  RedisServer redis;
  PostgresServer pg;
  const Config config = base_config(nats, redis);
  JetStreamProbe probe(nats.url());
  create_streams(probe, config, {"wa.>"});
  // Bodies over 1 KiB are `oversized` until the fix below raises the limit.
  auto service = start_service(service_env(nats, redis, {{"DAISI_CDC_INGEST_MAX_MESSAGE_BYTES", "1KiB"}}));
  Worker worker = start_worker(nats, pg);

  const CaptureRecord good = message_insert("co1", 500);
  const auto variant = [&](const std::string& from, const std::string& to) {
    CaptureRecord r = good;
    const auto at = r.data.find(from);
    REQUIRE(at != std::string::npos);
    r.data.replace(at, from.size(), to);
    return r;
  };
  std::map<std::string, CaptureRecord> bad;  // error kind -> source message
  bad["invalid_json"] = good;
  bad["invalid_json"].data = "this is not json";
  bad["invalid_shape"] = variant(R"("record":{)", R"("record":"not an object","x":{)");
  bad["missing_field"] = variant(R"("chat_id":"chat-1",)", "");
  bad["invalid_token"] = variant(R"("agent_id":"agent-7")", R"("agent_id":"agent.7")");
  bad["table_mismatch"] = variant(R"("table_name":"messages")", R"("table_name":"chats")");
  bad["oversized"] = message_insert("co1", 501, std::string(2000, 'x'));
  std::map<std::string, std::uint64_t> source_seq;
  std::uint64_t n = 0;
  for (auto& [kind, r] : bad) {
    r.headers = {{"Nats-Msg-Id", "bad-" + std::to_string(++n)},
                 {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}};
    source_seq[kind] = probe.publish(r).seq;
  }
  // Two the service of this build does not produce itself: invalid_subject (CONTRACT.md
  // section 1) and a publish_rejected over a size limit (the same body would be refused again).
  const std::uint64_t subject_seq =
      publish_dead_letter(probe, config, 9001, ErrorKind::kInvalidJson,
                          "subject cdc.co1 does not fit cdc.{company}.{table}", "{}", "invalid_subject");
  const std::uint64_t rejected_seq =
      publish_dead_letter(probe, config, 9002, ErrorKind::kPublishRejected,
                          "payload of 70000 bytes exceeds the server's max_payload of 65536", good.data);
  const std::size_t total = bad.size() + 2;

  REQUIRE(eventually([&] { return count_rows(pg) == static_cast<long long>(total); }, 30s));
  REQUIRE(eventually([&] { return worker_idle(probe, config); }, 15s));
  {
    PgConnection c(pg.conninfo(), 2s);
    const PgResultPtr r = c.query(
        "SELECT error_kind, source_stream, source_subject, source_seq, company, table_name, event_id, error, attempts, "
        "headers->>'Nats-Msg-Id', headers->>'traceparent', encode(body, 'base64'), first_failed_at = last_failed_at, "
        "requeued_at IS NULL, body_truncated, dlq_stream, dlq_seq FROM exhausted_events ORDER BY dlq_seq");
    REQUIRE(PQntuples(r.get()) == static_cast<int>(total));
    std::set<std::string> kinds;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      const auto v = [&](int col) { return std::string(PQgetvalue(r.get(), i, col), PQgetlength(r.get(), i, col)); };
      const std::string kind = v(0);
      INFO("row " << i << " kind " << kind);
      kinds.insert(kind);
      CHECK(v(1) == config.ingest.stream);
      CHECK(v(2) == "cdc.co1.messages");
      CHECK(v(4) == "co1");
      CHECK(v(5) == "messages");
      CHECK_FALSE(v(7).empty());
      CHECK(v(8) == "0");
      CHECK(v(12) == "t");
      CHECK(v(13) == "t");
      CHECK(v(14) == "f");
      CHECK(v(15) == config.publish.dlq_stream);
      std::string b64 = v(11), body;
      std::erase(b64, '\n');
      REQUIRE(decode_base64(b64, body));
      if (kind == "invalid_subject") {
        CHECK(v(16) == std::to_string(subject_seq));
        CHECK(body == "{}");
        continue;
      }
      if (kind == "publish_rejected") {
        CHECK(v(16) == std::to_string(rejected_seq));
        CHECK(body == good.data);
        continue;
      }
      REQUIRE(bad.count(kind) == 1);
      CHECK(v(3) == std::to_string(source_seq[kind]));
      CHECK(body == bad[kind].data);  // the source body, byte for byte
      CHECK(v(9) == bad[kind].header("Nats-Msg-Id"));
      CHECK(v(10) == bad[kind].header("traceparent"));
    }
    CHECK(kinds == std::set<std::string>{"invalid_json", "invalid_shape", "missing_field", "invalid_token",
                                         "table_mismatch", "oversized", "invalid_subject", "publish_rejected"});
  }
  const auto [status, metrics] = http_get(worker.port, "/metrics");
  REQUIRE(status == 200);
  for (const char* kind : {"invalid_json", "invalid_shape", "missing_field", "invalid_token", "table_mismatch",
                           "oversized", "invalid_subject", "publish_rejected"}) {
    INFO(kind);
    CHECK(metric(metrics, "cdc_dlq_worker_exhausted_total", std::string("kind=\"") + kind + "\"") == 1);
  }
  CHECK(metric(metrics, "cdc_dlq_worker_rows_written_total") == static_cast<double>(total));
  CHECK(metric(metrics, "cdc_dlq_worker_retries_total") == 0);
  CHECK(http_get(worker.port, "/readyz").first == 200);

  // `list` shows the row with its body.
  {
    ServiceProcess list(CDC_REPLAY_BINARY,
                        {"exhausted", "list", "--postgres", pg.conninfo(), "--kind", "invalid_token", "-q"});
    REQUIRE(list.wait(30s) == std::optional<int>(0));
    const std::string out = list.output();
    CHECK(std::count(out.begin(), out.end(), '\n') == 1);
    CHECK(out.find("\"error_kind\":\"invalid_token\"") != std::string::npos);
    CHECK(out.find("agent.7") != std::string::npos);
  }
  // The fix: the service takes bodies up to 64 KiB. Then the oversized event is requeued and
  // published, once; the row says so.
  CHECK(service->terminate(15s) == 0);
  service = start_service(service_env(nats, redis, {{"DAISI_CDC_INGEST_MAX_MESSAGE_BYTES", "64KiB"}}));
  REQUIRE(probe.count(config.publish.stream) == 0);
  {
    ServiceProcess requeue(CDC_REPLAY_BINARY, {"exhausted", "requeue", "--postgres", pg.conninfo(), "--url", nats.url(),
                                               "--kind", "oversized"});
    REQUIRE(requeue.wait(30s) == std::optional<int>(0));
    INFO(requeue.output());
    CHECK(requeue.output().find("requeued: 1, failed: 0") != std::string::npos);
  }
  REQUIRE(probe.wait_for_count(config.publish.stream, 1, 20s) == 1);
  const auto out = probe.read_stream(config.publish.stream);
  CHECK(out.at(0).header("Nats-Msg-Id") == event_id_of(config, bad["oversized"]));
  CHECK(count_rows(pg, "error_kind = 'oversized' AND requeued_at IS NOT NULL AND requeue_count = 1") == 1);
  CHECK(count_rows(pg, "requeued_at IS NULL") == static_cast<long long>(total - 1));
  // A second run selects nothing: requeued rows are skipped unless --again.
  {
    ServiceProcess again(CDC_REPLAY_BINARY, {"exhausted", "requeue", "--postgres", pg.conninfo(), "--url", nats.url(),
                                             "--kind", "oversized"});
    REQUIRE(again.wait(30s) == std::optional<int>(0));
    CHECK(again.output().find("selected: 0") != std::string::npos);
  }
  REQUIRE(eventually([&] { return worker_idle(probe, config); }, 15s));
  CHECK(probe.count(config.publish.stream) == 1);
  CHECK(count_rows(pg) == static_cast<long long>(total));  // the requeue was no new dead letter
  CHECK(worker.process->terminate(15s) == 0);
  CHECK(service->terminate(15s) == 0);
}

TEST_CASE("dlq worker: a retry that keeps failing is exhausted after the configured attempts",
          "[integration][dlq_worker]") {
  NatsServer nats;
  RedisServer redis;
  PostgresServer pg;
  const Config config = base_config(nats, redis);
  JetStreamProbe probe(nats.url());
  create_streams(probe, config, {"wa.co1.>"});  // co2 never gets through
  auto service = start_service(service_env(nats, redis));
  Worker worker = start_worker(nats, pg,
                               {{"DAISI_CDC_DLQ_WORKER_MAX_ATTEMPTS", "2"},
                                {"DAISI_CDC_DLQ_WORKER_BACKOFF_BASE", "100ms"},
                                {"DAISI_CDC_DLQ_WORKER_BACKOFF_MAX", "150ms"}});
  const CaptureRecord r = message_insert("co2", 77);
  probe.publish(r);
  const std::string event_id = event_id_of(config, r);

  REQUIRE(eventually([&] { return count_rows(pg) == 1; }, 60s));
  REQUIRE(eventually([&] { return worker_idle(probe, config); }, 15s));
  const auto [status, metrics] = http_get(worker.port, "/metrics");
  CHECK(worker.process->terminate(15s) == 0);
  CHECK(service->terminate(15s) == 0);

  PgConnection c(pg.conninfo(), 2s);
  const PgResultPtr row = c.query(
      "SELECT error_kind, attempts, event_id, first_failed_at < last_failed_at, headers->>'Daisi-Dlq-Attempt', "
      "headers->>'Daisi-Dlq-Original-Msg-Id', source_subject, encode(body, 'escape') FROM exhausted_events");
  REQUIRE(PQntuples(row.get()) == 1);
  const auto v = [&](int col) { return std::string(PQgetvalue(row.get(), 0, col)); };
  CHECK(v(0) == "max_deliveries");
  CHECK(v(1) == "2");  // two retries, both failed
  CHECK(v(2) == event_id);
  CHECK(v(3) == "t");
  CHECK(v(4) == "2");
  CHECK(v(5) == r.header("Nats-Msg-Id"));
  CHECK(v(6) == r.subject);
  CHECK(v(7) == r.data);
  // Three dead letters of the event: the original failure and one per retry.
  std::vector<std::uint32_t> attempts;
  for (const auto& m : probe.read_stream(config.publish.dlq_stream)) {
    DlqRecord rec;
    REQUIRE(parse_dlq_record(m.data, rec));
    CHECK(rec.event_id == event_id);
    attempts.push_back(dlq_attempts_done(rec));
  }
  CHECK(attempts == std::vector<std::uint32_t>{0, 1, 2});
  CHECK(metric(metrics, "cdc_dlq_worker_retries_total", "kind=\"max_deliveries\"") == 2);
  CHECK(metric(metrics, "cdc_dlq_worker_exhausted_total", "kind=\"max_deliveries\"") == 1);
  CHECK(probe.count(config.publish.stream) == 0);
}

TEST_CASE("dlq worker: a retry the source stream cannot take now is tried again, not counted as an attempt",
          "[integration][dlq_worker]") {
  NatsServer nats;
  RedisServer redis;
  PostgresServer pg;
  const Config config = base_config(nats, redis);
  JetStreamProbe probe(nats.url());
  // No source stream yet: every retry finds no responders.
  probe.create_stream(config.publish.dlq_stream, {config.publish.dlq_subject_prefix + ".>"}, 5min);
  for (std::uint64_t i = 1; i <= 5; ++i) {
    publish_dead_letter(probe, config, i, ErrorKind::kMaxDeliveries, "no responders",
                        "{\"n\":" + std::to_string(i) + "}");
  }
  Worker worker = start_worker(nats, pg,
                               {{"DAISI_CDC_DLQ_WORKER_BACKOFF_BASE", "50ms"},
                                {"DAISI_CDC_DLQ_WORKER_RETRY_DELAY", "300ms"},
                                {"DAISI_CDC_DLQ_WORKER_PUBLISH_TIMEOUT", "500ms"}});
  REQUIRE(eventually(
      [&] { return metric(http_get(worker.port, "/metrics").second, "cdc_dlq_worker_retry_errors_total") >= 2; }, 20s));
  const ConsumerState waiting = probe.consumer_info(config.publish.dlq_stream, "cdc_dlq_worker");
  CHECK(waiting.ack_floor_stream_seq == 0);  // none acked while it cannot be stored
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  REQUIRE(probe.wait_for_count(config.ingest.stream, 5, 20s) == 5);
  REQUIRE(eventually([&] { return worker_idle(probe, config); }, 15s));
  const auto [status, metrics] = http_get(worker.port, "/metrics");
  CHECK(worker.process->terminate(15s) == 0);
  std::set<std::string> ids;
  for (const auto& m : probe.read_stream(config.ingest.stream)) {
    CHECK(m.header(std::string(kDlqAttemptHeader)) == "1");  // the failed publishes did not count
    ids.insert(m.header("Nats-Msg-Id"));
  }
  CHECK(ids == std::set<std::string>{"dlq-retry:cdc_dlq_stream:1:1", "dlq-retry:cdc_dlq_stream:2:1",
                                     "dlq-retry:cdc_dlq_stream:3:1", "dlq-retry:cdc_dlq_stream:4:1",
                                     "dlq-retry:cdc_dlq_stream:5:1"});
  CHECK(metric(metrics, "cdc_dlq_worker_retries_total", "kind=\"max_deliveries\"") == 5);
  CHECK(count_rows(pg) == 0);
}

TEST_CASE("dlq worker: PostgreSQL stopped mid-batch, nothing acked or lost, each row written once after it returns",
          "[integration][dlq_worker]") {
  NatsServer nats;
  RedisServer redis;
  PostgresServer pg;
  const Config config = base_config(nats, redis);
  JetStreamProbe probe(nats.url());
  create_streams(probe, config, {"wa.>"});
  Worker worker =
      start_worker(nats, pg, {{"DAISI_CDC_POSTGRES_BATCH_SIZE", "20"}, {"DAISI_CDC_DLQ_WORKER_ACK_WAIT", "2s"}});
  for (std::uint64_t i = 1; i <= 30; ++i)
    publish_dead_letter(probe, config, i, ErrorKind::kInvalidJson, "not JSON",
                        std::string("x").append(std::to_string(i)));
  REQUIRE(eventually([&] { return count_rows(pg) == 30; }, 20s));
  REQUIRE(eventually([&] { return worker_idle(probe, config); }, 10s));

  pg.kill();  // a crash, in the middle of whatever the worker does
  for (std::uint64_t i = 31; i <= 60; ++i)
    publish_dead_letter(probe, config, i, ErrorKind::kInvalidJson, "not JSON",
                        std::string("x").append(std::to_string(i)));
  REQUIRE(eventually(
      [&] { return metric(http_get(worker.port, "/metrics").second, "cdc_dlq_worker_batch_failures_total") >= 1; },
      20s));
  CHECK(http_get(worker.port, "/readyz").first == 503);
  CHECK(metric(http_get(worker.port, "/metrics").second, "cdc_dlq_worker_postgres_up") == 0);
  // Longer than the worker's AckWait: in-progress signals keep the batch from redelivery.
  std::this_thread::sleep_for(3s);
  const ConsumerState held = probe.consumer_info(config.publish.dlq_stream, "cdc_dlq_worker");
  CHECK(held.ack_floor_stream_seq == 30);  // nothing of the second group acked
  CHECK(held.num_pending + static_cast<std::uint64_t>(held.num_ack_pending) == 30);
  CHECK(metric(http_get(worker.port, "/metrics").second, "cdc_dlq_worker_exhausted_total") == 30);

  pg.start();
  REQUIRE(eventually([&] { return count_rows(pg) == 60; }, 30s));
  REQUIRE(eventually([&] { return worker_idle(probe, config); }, 15s));
  CHECK(count_rows(pg) == 60);
  PgConnection c(pg.conninfo(), 2s);
  const PgResultPtr r = c.query("SELECT count(DISTINCT dlq_seq), min(dlq_seq), max(dlq_seq) FROM exhausted_events");
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "60");
  CHECK(std::string(PQgetvalue(r.get(), 0, 1)) == "1");
  CHECK(std::string(PQgetvalue(r.get(), 0, 2)) == "60");
  REQUIRE(eventually([&] { return http_get(worker.port, "/readyz").first == 200; }, 10s));
  CHECK(metric(http_get(worker.port, "/metrics").second, "cdc_dlq_worker_exhausted_total") == 60);
  CHECK(worker.process->terminate(15s) == 0);
}

TEST_CASE("dlq worker: SIGKILLed mid-burst, after a restart no record is lost and no row doubled",
          "[integration][dlq_worker]") {
  NatsServer nats;
  RedisServer redis;
  PostgresServer pg;
  const Config config = base_config(nats, redis);
  JetStreamProbe probe(nats.url());
  create_streams(probe, config, {"wa.>"});
  constexpr long long kRecords = 6000;
  for (long long i = 1; i <= kRecords; ++i) {
    publish_dead_letter(probe, config, static_cast<std::uint64_t>(i), ErrorKind::kMissingField,
                        "record.chat_id is missing", "{\"n\":" + std::to_string(i) + "}");
  }
  const EnvOverrides extra{{"DAISI_CDC_POSTGRES_BATCH_SIZE", "50"},
                           {"DAISI_CDC_DLQ_WORKER_FETCH_BATCH", "50"},
                           {"DAISI_CDC_DLQ_WORKER_ACK_WAIT", "2s"}};
  Worker worker = start_worker(nats, pg, extra);
  {
    // Kill right after the first commits: poll on an open connection, not a new one each time.
    PgConnection watch(pg.conninfo(), 2s);
    watch.exec("SELECT 1 FROM exhausted_events LIMIT 0");  // the worker created the schema at start-up
    const auto deadline = Clock::now() + 20s;
    while (Clock::now() < deadline) {
      const PgResultPtr r = watch.query("SELECT count(*) FROM exhausted_events");
      if (std::stoll(PQgetvalue(r.get(), 0, 0)) > 0) break;
      std::this_thread::sleep_for(1ms);
    }
  }
  worker.process->kill();
  const long long at_kill = count_rows(pg);
  INFO("rows when the worker was killed: " << at_kill);
  REQUIRE(at_kill < kRecords);  // killed mid-burst, or the scenario proves nothing

  worker.process = start_worker_process(worker_env(nats, pg, worker.port, extra));
  REQUIRE(eventually([&] { return count_rows(pg) == kRecords; }, 60s));
  REQUIRE(eventually([&] { return worker_idle(probe, config); }, 20s));
  PgConnection c(pg.conninfo(), 2s);
  const PgResultPtr r =
      c.query("SELECT count(*), count(DISTINCT dlq_seq), count(DISTINCT source_seq) FROM exhausted_events");
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == std::to_string(kRecords));
  CHECK(std::string(PQgetvalue(r.get(), 0, 1)) == std::to_string(kRecords));
  CHECK(std::string(PQgetvalue(r.get(), 0, 2)) == std::to_string(kRecords));
  CHECK(worker.process->terminate(15s) == 0);
}

// Not run by ctest (hidden): rows per second into PostgreSQL for a burst of permanent dead
// letters, with a durable PostgreSQL (fsync on). ./cdc_integration_tests "[dlq_bench]" -s
TEST_CASE("dlq worker: burst throughput into PostgreSQL", "[.][dlq_bench]") {
  NatsServer nats;
  RedisServer redis;
  PostgresServerOptions options;
  options.fast = false;
  PostgresServer pg(options);
  const Config config = base_config(nats, redis);
  JetStreamProbe probe(nats.url());
  create_streams(probe, config, {"wa.>"});
  const long long records =
      std::getenv("CDC_DLQ_BENCH_RECORDS") != nullptr ? std::atoll(std::getenv("CDC_DLQ_BENCH_RECORDS")) : 20000;
  const std::string body(600, 'b');  // about a Sequin change's size
  for (long long i = 1; i <= records; ++i) {
    publish_dead_letter(probe, config, static_cast<std::uint64_t>(i), ErrorKind::kInvalidToken, "agent_id contains '.'",
                        body);
  }
  EnvOverrides extra;
  if (const char* b = std::getenv("CDC_DLQ_BENCH_BATCH"); b != nullptr) {
    extra["DAISI_CDC_POSTGRES_BATCH_SIZE"] = b;
    extra["DAISI_CDC_DLQ_WORKER_FETCH_BATCH"] = std::to_string(std::min(10000, std::atoi(b)));
  }
  const auto start = Clock::now();
  Worker worker = start_worker(nats, pg, extra);
  REQUIRE(eventually([&] { return count_rows(pg) == records; }, 300s));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const auto [status, metrics] = http_get(worker.port, "/metrics");
  const double batches = metric(metrics, "cdc_dlq_worker_batches_total");
  const double batch_seconds = metric(metrics, "cdc_dlq_worker_batch_seconds_sum");
  std::printf(
      "DLQ BENCH: %lld rows in %.2f s = %.0f rows/s (incl. worker start-up); %0.f batches, %.3f s inside "
      "transactions (%.0f rows/s while writing)\n",
      records, seconds, static_cast<double>(records) / seconds, batches, batch_seconds,
      static_cast<double>(records) / batch_seconds);
  CHECK(worker.process->terminate(15s) == 0);
}
