// daisi-dlq-worker's pure parts: its configuration sections, and its decisions about one
// dead-letter record (classification, backoff, retry identity and headers).

#include <catch2/catch.hpp>

#include <cctype>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include "cdc/core/config.hpp"
#include "cdc/core/dead_letter.hpp"
#include "cdc/core/dlq_record.hpp"
#include "cdc/core/dlq_worker_config.hpp"

using namespace cdc;
using namespace std::chrono_literals;

namespace {

std::string record_json(ErrorKind kind, const std::string& error,
                        const std::vector<std::pair<std::string, std::string>>& headers, const std::string& body) {
  DeadLetter d;
  d.source_subject = "cdc.co1.messages";
  d.source_stream = "cdc_events_stream";
  d.source_seq = 12;
  d.delivery_attempts = 3;
  d.error_kind = kind;
  d.error = error;
  d.has_event_id = true;
  d.event_id = "27635224.0:co1:messages:m1";
  d.failed_at_unix_ns = 1'795'000'000'500'000'000;
  d.headers = &headers;
  d.data = body;
  std::string out;
  build_dead_letter_payload(d, out);
  return out;
}

}  // namespace

TEST_CASE("dlq worker config: defaults, file and environment", "[unit][dlq_worker]") {
  const DlqWorkerSettings d = load_dlq_worker_config_text("", {});
  CHECK(d.dlq_worker.consumer == "cdc_dlq_worker");
  CHECK(d.dlq_worker.max_attempts == 5);
  CHECK(d.dlq_worker.backoff_base == 60s);
  CHECK(d.dlq_worker.backoff_max == 15min);
  CHECK(d.dlq_worker.metrics_port == 8081);
  CHECK(d.dlq_worker.retry_kinds == std::vector<std::string>{"max_deliveries", "publish_rejected"});
  CHECK(d.postgres.batch_size == 1000);
  CHECK(d.postgres.flush_interval == 500ms);

  const std::string yaml =
      "nats:\n  url: nats://x:4222\ndlq_worker:\n  max_attempts: 3\n  backoff_base: 2s\n"
      "  retry_kinds: [max_deliveries]\npostgres:\n  conninfo: host=db dbname=cdc\n  batch_size: 10\n";
  const DlqWorkerSettings s =
      load_dlq_worker_config_text(yaml, {"DAISI_CDC_DLQ_WORKER_MAX_ATTEMPTS=7",
                                         "DAISI_CDC_POSTGRES_FLUSH_INTERVAL=50ms", "DAISI_CDC_NATS_URL=nats://y:1"});
  CHECK(s.dlq_worker.max_attempts == 7);  // the environment wins
  CHECK(s.dlq_worker.backoff_base == 2s);
  CHECK(s.dlq_worker.retry_kinds == std::vector<std::string>{"max_deliveries"});
  CHECK(s.postgres.conninfo == "host=db dbname=cdc");
  CHECK(s.postgres.batch_size == 10);
  CHECK(s.postgres.flush_interval == 50ms);
}

TEST_CASE("dlq worker config: errors name the key", "[unit][dlq_worker]") {
  const auto error_of = [](const std::string& yaml, const std::vector<std::string>& env = {}) {
    try {
      (void)load_dlq_worker_config_text(yaml, env);
    } catch (const ConfigError& e) {
      return e.key();
    }
    return std::string("no error");
  };
  CHECK(error_of("dlq_worker:\n  max_attemps: 3\n") == "dlq_worker.max_attemps");
  CHECK(error_of("postgres:\n  batch_size: 0\n") == "postgres.batch_size");
  CHECK(error_of("dlq_worker:\n  retry_kinds: [invalid_json]\n") == "dlq_worker.retry_kinds");
  CHECK(error_of("dlq_worker:\n  backoff_base: 2m\n  backoff_max: 1m\n") == "dlq_worker.backoff_max");
  CHECK(error_of("", {"DAISI_CDC_POSTGRES_BATCHSIZE=3"}) == "DAISI_CDC_POSTGRES_BATCHSIZE");
  CHECK(error_of("", {"DAISI_CDC_DLQ_WORKER_BACKOFF_BASE=soon"}) == "DAISI_CDC_DLQ_WORKER_BACKOFF_BASE");
}

TEST_CASE("dlq worker config: the service's loader accepts the worker's sections and variables", "[unit][dlq_worker]") {
  const std::string yaml = "dlq_worker:\n  max_attempts: 3\npostgres:\n  conninfo: host=db\nlog:\n  level: debug\n";
  const Config c =
      load_config_text(yaml, {"DAISI_CDC_POSTGRES_BATCH_SIZE=5", "DAISI_CDC_DLQ_WORKER_METRICS_PORT=9000"});
  CHECK(c.log.level == "debug");
  // Still strict about its own.
  CHECK_THROWS_AS(load_config_text("postgress:\n  conninfo: x\n", {}), ConfigError);
}

TEST_CASE("dlq worker config: the repository's config.yaml is valid for both loaders", "[unit][dlq_worker]") {
  const std::string path = std::string(CDC_SOURCE_DIR) + "/config.yaml";
  CHECK_NOTHROW(load_config(path, {}));
  const DlqWorkerSettings s = load_dlq_worker_config(path, {});
  const DlqWorkerSettings d = load_dlq_worker_config_text("", {});
  // config.yaml shows every key with its default.
  CHECK(s.dlq_worker.max_attempts == d.dlq_worker.max_attempts);
  CHECK(s.dlq_worker.backoff_base == d.dlq_worker.backoff_base);
  CHECK(s.dlq_worker.backoff_max == d.dlq_worker.backoff_max);
  CHECK(s.dlq_worker.metrics_port == d.dlq_worker.metrics_port);
  CHECK(s.postgres.batch_size == d.postgres.batch_size);
  CHECK(s.postgres.flush_interval == d.postgres.flush_interval);
  CHECK(s.postgres.conninfo == d.postgres.conninfo);
}

TEST_CASE("dlq worker: conninfo passwords are redacted", "[unit][dlq_worker]") {
  CHECK(redact_conninfo("host=db password=s3cret user=x") == "host=db password=*** user=x");
  CHECK(redact_conninfo("host=db password = 'a b' user=x") == "host=db password = *** user=x");
  CHECK(redact_conninfo("postgresql://u:s3cret@db/cdc") == "postgresql://u:***@db/cdc");
  CHECK(redact_conninfo("postgresql://u@db/cdc?password=s3cret&sslmode=require") ==
        "postgresql://u@db/cdc?password=***&sslmode=require");
  CHECK(redact_conninfo("host=db user=x") == "host=db user=x");
}

TEST_CASE("dlq worker: records parse and classify", "[unit][dlq_worker]") {
  DlqWorkerConfig config;
  DlqRecord r;
  REQUIRE(parse_dlq_record(
      record_json(ErrorKind::kMaxDeliveries, "no responders", {{"Nats-Msg-Id", "abc"}}, "body\x01"), r));
  CHECK(r.source_subject == "cdc.co1.messages");
  CHECK(r.source_seq == 12);
  CHECK(r.delivery_attempts == 3);
  CHECK(r.error_kind == "max_deliveries");
  CHECK(r.event_id == "27635224.0:co1:messages:m1");
  CHECK(r.body == "body\x01");
  CHECK(r.failed_at_ns == 1'795'000'000'500'000'000);
  CHECK(dlq_attempts_done(r) == 0);
  CHECK(classify_dlq_record(r, config) == DlqAction::kRetry);

  for (const ErrorKind k : {ErrorKind::kInvalidJson, ErrorKind::kInvalidShape, ErrorKind::kMissingField,
                            ErrorKind::kInvalidToken, ErrorKind::kTableMismatch, ErrorKind::kOversized}) {
    REQUIRE(parse_dlq_record(record_json(k, "bad", {}, "x"), r));
    CHECK(classify_dlq_record(r, config) == DlqAction::kPermanent);
  }
  std::string subject = record_json(ErrorKind::kInvalidJson, "bad subject", {}, "x");
  subject.replace(subject.find("invalid_json"), 12, "invalid_subject");
  REQUIRE(parse_dlq_record(subject, r));
  CHECK(classify_dlq_record(r, config) == DlqAction::kPermanent);

  // publish_rejected: retried unless a size limit refused it.
  REQUIRE(parse_dlq_record(
      record_json(ErrorKind::kPublishRejected, "jetstream error 400 (10077): maximum messages exceeded", {}, "x"), r));
  CHECK(classify_dlq_record(r, config) == DlqAction::kRetry);
  REQUIRE(parse_dlq_record(
      record_json(ErrorKind::kPublishRejected, "payload of 9 bytes exceeds the server's max_payload of 8", {}, "x"),
      r));
  CHECK(classify_dlq_record(r, config) == DlqAction::kPermanent);
  REQUIRE(parse_dlq_record(record_json(ErrorKind::kPublishRejected,
                                       "jetstream error 400 (10054): message size exceeds maximum allowed", {}, "x"),
                           r));
  CHECK(classify_dlq_record(r, config) == DlqAction::kPermanent);

  // The attempt header decides exhaustion.
  REQUIRE(
      parse_dlq_record(record_json(ErrorKind::kMaxDeliveries, "x", {{std::string(kDlqAttemptHeader), "4"}}, "x"), r));
  CHECK(classify_dlq_record(r, config) == DlqAction::kRetry);
  REQUIRE(
      parse_dlq_record(record_json(ErrorKind::kMaxDeliveries, "x", {{std::string(kDlqAttemptHeader), "5"}}, "x"), r));
  CHECK(dlq_attempts_done(r) == 5);
  CHECK(classify_dlq_record(r, config) == DlqAction::kExhausted);
  config.retry_kinds.clear();
  CHECK(classify_dlq_record(r, config) == DlqAction::kPermanent);

  CHECK_FALSE(parse_dlq_record("not json", r));
  CHECK(r.problem == "record is not JSON");
  CHECK_FALSE(parse_dlq_record(R"({"source_subject":"cdc.a.b","error_kind":"invalid_json"})", r));
  CHECK(r.problem == "record has no data_base64");
}

TEST_CASE("dlq worker: backoff doubles from the base up to the cap", "[unit][dlq_worker]") {
  CHECK(dlq_backoff(1, 60s, 15min) == 60s);
  CHECK(dlq_backoff(2, 60s, 15min) == 120s);
  CHECK(dlq_backoff(3, 60s, 15min) == 240s);
  CHECK(dlq_backoff(4, 60s, 15min) == 480s);
  CHECK(dlq_backoff(5, 60s, 15min) == 15min);
  CHECK(dlq_backoff(60, 60s, 15min) == 15min);
  CHECK(dlq_backoff(1000, 1ms, 10s) == 10s);
}

TEST_CASE("dlq worker: retry identity and headers", "[unit][dlq_worker]") {
  CHECK(dlq_retry_msg_id("cdc_dlq_stream", 42, 1) == "dlq-retry:cdc_dlq_stream:42:1");
  CHECK(dlq_retry_msg_id("cdc_dlq_stream", 42, 2) != dlq_retry_msg_id("cdc_dlq_stream", 42, 1));
  DlqRecord r;
  REQUIRE(parse_dlq_record(
      record_json(ErrorKind::kMaxDeliveries, "x", {{"Nats-Msg-Id", "orig"}, {"traceparent", "tp"}}, "b"), r));
  const HeaderList first = dlq_retry_headers(r, 1, "dlq-retry:s:1:1");
  CHECK(*find_header(first, "Nats-Msg-Id") == "dlq-retry:s:1:1");
  CHECK(*find_header(first, kDlqAttemptHeader) == "1");
  CHECK(*find_header(first, kDlqOriginalMsgIdHeader) == "orig");
  CHECK(*find_header(first, kDlqFirstFailedHeader) == r.failed_at);
  CHECK(*find_header(first, "traceparent") == "tp");
  // The next dead letter carries these headers back; the second retry keeps the first's
  // bookkeeping and counts on.
  DlqRecord again = r;
  again.headers = first;
  again.failed_at = "2030-01-01T00:00:00Z";
  const HeaderList second = dlq_retry_headers(again, 2, "dlq-retry:s:9:2");
  CHECK(*find_header(second, kDlqAttemptHeader) == "2");
  CHECK(*find_header(second, kDlqOriginalMsgIdHeader) == "orig");
  CHECK(*find_header(second, kDlqFirstFailedHeader) == r.failed_at);
  std::size_t attempt_headers = 0;
  for (const auto& h : second) attempt_headers += h.first == kDlqAttemptHeader ? 1 : 0;
  CHECK(attempt_headers == 1);

  const HeaderList requeue = dlq_requeue_headers(second, "requeue:s:9:1");
  CHECK(*find_header(requeue, "Nats-Msg-Id") == "requeue:s:9:1");
  CHECK(find_header(requeue, kDlqAttemptHeader) == nullptr);
  CHECK(find_header(requeue, kDlqFirstFailedHeader) == nullptr);
  CHECK(*find_header(requeue, kDlqOriginalMsgIdHeader) == "orig");
  CHECK(headers_to_json({{"a", "1"}, {"b", "x\"y"}, {"a", "2"}}) == R"({"a":"1","b":"x\"y"})");
}

TEST_CASE("dlq worker: RFC 3339 timestamps as the service writes them", "[unit][dlq_worker]") {
  CHECK(parse_rfc3339_utc("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339_utc("2026-11-22T10:00:01.5Z") == 1'795'341'601'500'000'000);
  std::string text;
  append_rfc3339(1'795'341'601'123'456'000, text);
  CHECK(parse_rfc3339_utc(text) == 1'795'341'601'123'456'000);
  CHECK_FALSE(parse_rfc3339_utc("2026-11-22 10:00:01Z"));
  CHECK_FALSE(parse_rfc3339_utc("2026-11-22T10:00:01"));
  CHECK_FALSE(parse_rfc3339_utc(""));
}

TEST_CASE("dlq worker config: every key is in config.yaml and in the docs", "[unit][dlq_worker]") {
  const auto read = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  const std::string yaml = read(std::string(CDC_SOURCE_DIR) + "/config.yaml");
  const std::string docs = read(std::string(CDC_SOURCE_DIR) + "/docs/configuration.md");
  REQUIRE_FALSE(docs.empty());
  const std::map<std::string, std::vector<std::string>> keys{
      {"dlq_worker",
       {"consumer", "retry_kinds", "max_attempts", "backoff_base", "backoff_max", "ack_wait", "max_ack_pending",
        "fetch_batch", "fetch_expires", "publish_timeout", "retry_delay", "backlog_interval", "metrics_bind",
        "metrics_port"}},
      {"postgres", {"conninfo", "batch_size", "flush_interval", "connect_timeout", "reconnect_backoff_max"}}};
  for (const auto& [section, names] : keys) {
    CHECK(yaml.find("\n" + section + ":\n") != std::string::npos);
    for (const auto& key : names) {
      INFO(section << "." << key);
      CHECK(yaml.find("\n  " + key + ": ") != std::string::npos);
      CHECK(docs.find("`" + section + "." + key + "`") != std::string::npos);
      std::string env = "DAISI_CDC_" + section + "_" + key;
      for (char& c : env) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      CHECK(docs.find("`" + env + "`") != std::string::npos);
    }
  }
}

TEST_CASE("dlq record: cdc-replay's reading needs no error_kind, the worker's does", "[unit][dlq_worker]") {
  // cdc-replay dlq lists and redrives with read_dlq_record (a redrive needs the source subject
  // and the body); the worker classifies by error_kind, so parse_dlq_record requires it.
  const std::string no_kind = R"({"source_subject":"cdc.co1.messages","source_seq":7,"data_base64":"eyJ9"})";
  DlqRecord r;
  REQUIRE(read_dlq_record(no_kind, r));
  CHECK(r.parsed);
  CHECK(r.source_subject == "cdc.co1.messages");
  CHECK(r.source_seq == 7);
  CHECK(r.body == "{\"}");
  CHECK_FALSE(parse_dlq_record(no_kind, r));
  CHECK_FALSE(r.parsed);
  CHECK(r.problem == "record has no error_kind");

  // Both refuse what cannot be redriven, with the same reasons.
  for (const auto& [json, problem] : std::vector<std::pair<std::string, std::string>>{
           {"[]", "record is not a JSON object"},
           {R"({"source_subject":"cdc.a.b"})", "record has no data_base64"},
           {R"({"source_subject":"cdc.a.b","data_base64":"!!"})", "data_base64 is not valid base64"},
           {R"({"data_base64":"eA=="})", "record has no source_subject"}}) {
    INFO(json);
    CHECK_FALSE(read_dlq_record(json, r));
    CHECK(r.problem == problem);
    CHECK_FALSE(parse_dlq_record(json, r));
    CHECK(r.problem == problem);
  }
}
