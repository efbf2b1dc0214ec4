#include "cdc/core/config.hpp"

#include "cdc/core/dlq_worker_config.hpp"

#include <stdlib.h>  // setenv, mkstemp
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

using cdc::Config;
using cdc::ConfigError;
using cdc::Millis;

const std::string kSourceDir = CDC_SOURCE_DIR;

struct Outcome {
  bool thrown = false;
  std::string key;
  std::string what;
};

template <typename F>
Outcome outcome_of(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return {true, e.key(), e.what()};
  }
  return {false, "", "<no error>"};
}

Outcome load_error(const std::string& yaml, const std::vector<std::string>& env = {}) {
  return outcome_of([&] { (void)cdc::load_config_text(yaml, env); });
}

Outcome validate_error(const std::function<void(Config&)>& mutate) {
  Config c;
  mutate(c);
  return outcome_of([&] { cdc::validate(c); });
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Number of members of an aggregate (the technique of Boost.PFR), so the coverage test below
/// notices a field added to config.hpp without being documented.
struct AnyField {
  template <typename T>
  operator T() const;  // unevaluated use only
};

template <typename T, typename... Fields>
constexpr std::size_t field_count() {
  if constexpr (sizeof...(Fields) > 64) {
    return 0;
  } else if constexpr (requires { T{Fields{}..., AnyField{}}; }) {
    return field_count<T, Fields..., AnyField>();
  } else {
    return sizeof...(Fields);
  }
}

const std::map<std::string, std::size_t> kSectionFields = {
    {"nats", field_count<cdc::NatsConfig>()},       {"ingest", field_count<cdc::IngestConfig>()},
    {"publish", field_count<cdc::PublishConfig>()}, {"dedup", field_count<cdc::DedupConfig>()},
    {"redis", field_count<cdc::RedisConfig>()},     {"pipeline", field_count<cdc::PipelineConfig>()},
    {"metrics", field_count<cdc::MetricsConfig>()}, {"health", field_count<cdc::HealthConfig>()},
    {"guard", field_count<cdc::GuardConfig>()},     {"log", field_count<cdc::LogConfig>()},
};

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

#define SAME(field) CHECK(actual.field == expected.field)
void check_same(const Config& actual, const Config& expected) {
  SAME(nats.url);
  SAME(nats.name);
  SAME(nats.connect_timeout);
  SAME(nats.reconnect_wait);
  SAME(nats.max_reconnect);
  SAME(nats.write_mode);
  SAME(nats.stream_replicas);
  SAME(nats.io_buffer_size);
  SAME(nats.tls_ca);
  SAME(nats.tls_cert);
  SAME(nats.tls_key);
  SAME(nats.creds_file);
  SAME(nats.nkey);
  SAME(nats.nkey_seed_file);
  SAME(nats.user);
  SAME(nats.password);
  SAME(nats.password_file);
  SAME(nats.token);
  SAME(nats.token_file);
  SAME(ingest.stream);
  SAME(ingest.stream_subjects);
  SAME(ingest.consumer);
  SAME(ingest.subject_layout);
  SAME(ingest.company_prefix);
  SAME(ingest.filter_subject);
  SAME(ingest.mode);
  SAME(ingest.queue_group);
  SAME(ingest.partitions);
  SAME(ingest.lease_bucket);
  SAME(ingest.lease_ttl);
  SAME(ingest.replica_id);
  SAME(ingest.checkpoint_interval);
  SAME(ingest.ack_wait);
  SAME(ingest.max_ack_pending);
  SAME(ingest.max_deliver);
  SAME(ingest.fetch_batch);
  SAME(ingest.fetch_expires);
  SAME(ingest.create_streams);
  SAME(ingest.tables);
  SAME(ingest.key_columns);
  SAME(ingest.max_message_bytes);
  SAME(publish.stream);
  SAME(publish.subject_prefix);
  SAME(publish.duplicate_window);
  SAME(publish.dlq_stream);
  SAME(publish.dlq_subject_prefix);
  SAME(publish.max_pending);
  SAME(publish.write_mode);
  SAME(publish.batching_threshold);
  SAME(publish.ack_timeout);
  SAME(publish.max_retries);
  SAME(publish.retry_backoff);
  SAME(publish.retry_backoff_max);
  SAME(publish.nak_delay);
  SAME(dedup.enabled);
  SAME(dedup.key_prefix);
  SAME(dedup.ttl);
  SAME(dedup.pending_ttl);
  SAME(dedup.on_redis_error);
  SAME(dedup.batch);
  SAME(redis.address);
  SAME(redis.db);
  SAME(redis.connect_timeout);
  SAME(redis.command_timeout);
  SAME(redis.reconnect_backoff);
  SAME(redis.reconnect_backoff_max);
  SAME(redis.username);
  SAME(redis.password);
  SAME(redis.password_file);
  SAME(pipeline.ring_capacity);
  SAME(pipeline.batch_size);
  SAME(pipeline.wait_strategy);
  SAME(pipeline.drain_timeout);
  SAME(pipeline.cpu);
  SAME(pipeline.threads);
  SAME(metrics.enabled);
  SAME(metrics.bind);
  SAME(metrics.port);
  SAME(metrics.backlog_interval);
  SAME(health.stall_timeout);
  SAME(guard.max_failure_duration);
  SAME(log.level);
}
#undef SAME
constexpr std::size_t kKeysCompared = 82;

/// A non-default value for every key, as YAML and as an environment value, and the Config
/// they must both produce.
struct Override {
  std::string section;
  std::string key;
  std::string yaml;
  std::string env;
};

/// Keys of kOverrides set to their default value: the overrides are validated as a whole, and
/// with ingest.partitions 4 the filter must be empty and the mode pull.
const std::vector<std::string> kSameAsDefault = {"ingest.filter_subject", "ingest.mode"};

const std::vector<Override> kOverrides = {
    {"nats", "url", "nats://a:4222,tls://b:4443", "nats://a:4222,tls://b:4443"},
    {"nats", "name", "n1", "n1"},
    {"nats", "connect_timeout", "7s", "7s"},
    {"nats", "reconnect_wait", "250ms", "250ms"},
    {"nats", "max_reconnect", "10", "10"},
    {"nats", "write_mode", "batch", "batch"},
    {"nats", "stream_replicas", "3", "3"},
    {"nats", "io_buffer_size", "262144", "262144"},
    {"nats", "tls_ca", "/etc/ca.pem", "/etc/ca.pem"},
    {"nats", "tls_cert", "/etc/cert.pem", "/etc/cert.pem"},
    {"nats", "tls_key", "/etc/key.pem", "/etc/key.pem"},
    {"nats", "creds_file", "/run/secrets/nats.creds", "/run/secrets/nats.creds"},
    {"nats", "nkey", "UAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
     "UAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
    {"nats", "nkey_seed_file", "/run/secrets/seed", "/run/secrets/seed"},
    {"nats", "user", "u1", "u1"},
    {"nats", "password", "p1", "p1"},
    {"nats", "password_file", "/run/secrets/p", "/run/secrets/p"},
    {"nats", "token", "t1", "t1"},
    {"nats", "token_file", "/run/secrets/t", "/run/secrets/t"},
    {"ingest", "stream", "in_stream", "in_stream"},
    {"ingest", "stream_subjects", "[sequin.>, other.*]", "sequin.>,other.*"},
    {"ingest", "consumer", "c1", "c1"},
    {"ingest", "subject_layout", "sequin.{database}.{schema}.{table}.{action}.{partition}",
     "sequin.{database}.{schema}.{table}.{action}.{partition}"},
    {"ingest", "company_prefix", "daisi_", "daisi_"},
    {"ingest", "filter_subject", "\"\"", ""},
    {"ingest", "mode", "pull", "pull"},
    {"ingest", "queue_group", "qg", "qg"},
    {"ingest", "partitions", "4", "4"},
    {"ingest", "lease_bucket", "leases1", "leases1"},
    {"ingest", "lease_ttl", "20s", "20s"},
    {"ingest", "replica_id", "r1", "r1"},
    {"ingest", "checkpoint_interval", "2s", "2s"},
    {"ingest", "ack_wait", "45s", "45s"},
    {"ingest", "max_ack_pending", "100", "100"},
    {"ingest", "max_deliver", "-1", "-1"},
    {"ingest", "fetch_batch", "64", "64"},
    {"ingest", "fetch_expires", "2s", "2s"},
    {"ingest", "create_streams", "false", "false"},
    {"ingest", "tables", "[orders, messages]", "orders,messages"},
    {"ingest", "key_columns", "{orders: order_id}", "orders=order_id"},
    {"ingest", "max_message_bytes", "2MiB", "2MiB"},
    {"publish", "stream", "out", "out"},
    {"publish", "subject_prefix", "websocket", "websocket"},
    {"publish", "duplicate_window", "10m", "10m"},
    {"publish", "dlq_stream", "dlq", "dlq"},
    {"publish", "dlq_subject_prefix", "dead", "dead"},
    {"publish", "max_pending", "512", "512"},
    {"publish", "write_mode", "batch", "batch"},
    {"publish", "batching_threshold", "64", "64"},
    {"publish", "ack_timeout", "3s", "3s"},
    {"publish", "max_retries", "2", "2"},
    {"publish", "retry_backoff", "50ms", "50ms"},
    {"publish", "retry_backoff_max", "1s", "1s"},
    {"publish", "nak_delay", "0", "0"},
    {"dedup", "enabled", "false", "false"},
    {"dedup", "key_prefix", "'dd:'", "dd:"},
    {"dedup", "ttl", "10m", "10m"},
    {"dedup", "pending_ttl", "1m", "1m"},
    {"dedup", "on_redis_error", "block", "block"},
    {"dedup", "batch", "function", "function"},
    {"redis", "address", "redis.local:6380", "redis.local:6380"},
    {"redis", "db", "3", "3"},
    {"redis", "connect_timeout", "1s", "1s"},
    {"redis", "command_timeout", "500ms", "500ms"},
    {"redis", "reconnect_backoff", "200ms", "200ms"},
    {"redis", "reconnect_backoff_max", "10s", "10s"},
    {"redis", "username", "ru", "ru"},
    {"redis", "password", "rp", "rp"},
    {"redis", "password_file", "/run/secrets/rp", "/run/secrets/rp"},
    {"pipeline", "ring_capacity", "1024", "1024"},
    {"pipeline", "batch_size", "128", "128"},
    {"pipeline", "wait_strategy", "sleep", "sleep"},
    {"pipeline", "drain_timeout", "30s", "30s"},
    {"pipeline", "cpu", "{ingest: 0, ack: 1}", "ingest=0,ack=1"},
    {"pipeline", "threads", "[[ingest, parse], [dedup, publish, ack]]", "ingest,parse/dedup,publish,ack"},
    {"metrics", "enabled", "false", "false"},
    {"metrics", "bind", "127.0.0.1", "127.0.0.1"},
    {"metrics", "port", "9100", "9100"},
    {"metrics", "backlog_interval", "1s", "1s"},
    {"health", "stall_timeout", "30s", "30s"},
    {"guard", "max_failure_duration", "1h", "1h"},
    {"log", "level", "debug", "debug"},
};

Config overridden_config() {
  Config c;
  c.nats.url = "nats://a:4222,tls://b:4443";
  c.nats.name = "n1";
  c.nats.connect_timeout = Millis{7000};
  c.nats.reconnect_wait = Millis{250};
  c.nats.max_reconnect = 10;
  c.nats.write_mode = cdc::WriteMode::kBatch;
  c.nats.stream_replicas = 3;
  c.nats.io_buffer_size = 262144;
  c.nats.tls_ca = "/etc/ca.pem";
  c.nats.tls_cert = "/etc/cert.pem";
  c.nats.tls_key = "/etc/key.pem";
  c.nats.creds_file = "/run/secrets/nats.creds";
  c.nats.nkey = "UAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  c.nats.nkey_seed_file = "/run/secrets/seed";
  c.nats.user = "u1";
  c.nats.password = "p1";
  c.nats.password_file = "/run/secrets/p";
  c.nats.token = "t1";
  c.nats.token_file = "/run/secrets/t";
  c.ingest.stream = "in_stream";
  c.ingest.stream_subjects = {"sequin.>", "other.*"};
  c.ingest.consumer = "c1";
  c.ingest.subject_layout = "sequin.{database}.{schema}.{table}.{action}.{partition}";
  c.ingest.company_prefix = "daisi_";
  // filter_subject and mode keep their defaults: with ingest.partitions 4 (validated together)
  // the filter must be empty and the mode pull (kSameAsDefault).
  c.ingest.queue_group = "qg";
  c.ingest.partitions = 4;
  c.ingest.lease_bucket = "leases1";
  c.ingest.lease_ttl = Millis{20000};
  c.ingest.replica_id = "r1";
  c.ingest.checkpoint_interval = Millis{2000};
  c.ingest.ack_wait = Millis{45000};
  c.ingest.max_ack_pending = 100;
  c.ingest.max_deliver = -1;
  c.ingest.fetch_batch = 64;
  c.ingest.fetch_expires = Millis{2000};
  c.ingest.create_streams = false;
  c.ingest.tables = {"orders", "messages"};
  c.ingest.key_columns["orders"] = "order_id";  // maps merge into the defaults
  c.ingest.max_message_bytes = 2u << 20;
  c.publish.stream = "out";
  c.publish.subject_prefix = "websocket";
  c.publish.duplicate_window = Millis{600000};
  c.publish.dlq_stream = "dlq";
  c.publish.dlq_subject_prefix = "dead";
  c.publish.max_pending = 512;
  c.publish.write_mode = cdc::WriteMode::kBatch;
  c.publish.batching_threshold = 64;
  c.publish.ack_timeout = Millis{3000};
  c.publish.max_retries = 2;
  c.publish.retry_backoff = Millis{50};
  c.publish.retry_backoff_max = Millis{1000};
  c.publish.nak_delay = Millis{0};
  c.dedup.enabled = false;
  c.dedup.key_prefix = "dd:";
  c.dedup.ttl = Millis{600000};
  c.dedup.pending_ttl = Millis{60000};
  c.dedup.on_redis_error = cdc::RedisErrorPolicy::kBlock;
  c.dedup.batch = cdc::DedupBatchMode::kFunction;
  c.redis.address = "redis.local:6380";
  c.redis.db = 3;
  c.redis.connect_timeout = Millis{1000};
  c.redis.command_timeout = Millis{500};
  c.redis.reconnect_backoff = Millis{200};
  c.redis.reconnect_backoff_max = Millis{10000};
  c.redis.username = "ru";
  c.redis.password = "rp";
  c.redis.password_file = "/run/secrets/rp";
  c.pipeline.ring_capacity = 1024;
  c.pipeline.batch_size = 128;
  c.pipeline.wait_strategy = cdc::WaitStrategyKind::kSleep;
  c.pipeline.drain_timeout = Millis{30000};
  c.pipeline.cpu["ingest"] = 0;
  c.pipeline.cpu["ack"] = 1;
  c.pipeline.threads = {{"ingest", "parse"}, {"dedup", "publish", "ack"}};
  c.metrics.enabled = false;
  c.metrics.bind = "127.0.0.1";
  c.metrics.port = 9100;
  c.metrics.backlog_interval = Millis{1000};
  c.health.stall_timeout = Millis{30000};
  c.guard.max_failure_duration = Millis{3600000};
  c.log.level = "debug";
  return c;
}

struct YamlKeys {
  std::vector<std::string> sections;
  std::map<std::string, std::vector<std::string>> keys;
  std::vector<std::string> uncommented;  ///< keys with neither a comment line above nor inline
};

/// Reads section and key names from config.yaml's text: sections at column 0, keys indented by
/// exactly two spaces (map entries and list items below a key are indented further).
YamlKeys scan_yaml_keys(const std::string& text) {
  YamlKeys out;
  std::istringstream in(text);
  std::string line;
  std::string section;
  bool comment_above = false;
  const auto name_of = [](const std::string& s) {
    const auto colon = s.find(':');
    if (colon == std::string::npos || colon == 0) return std::string();
    const std::string name = s.substr(0, colon);
    const bool plain = std::all_of(name.begin(), name.end(), [](char c) { return std::islower(c) || c == '_'; });
    return plain ? name : std::string();
  };
  while (std::getline(in, line)) {
    if (line.empty()) {
      comment_above = false;
      continue;
    }
    const auto first = line.find_first_not_of(' ');
    if (first == std::string::npos) continue;
    if (line[first] == '#') {
      comment_above = true;
      continue;
    }
    if (first == 0) {
      section = name_of(line);
      if (!section.empty()) out.sections.push_back(section);
    } else if (first == 2) {
      const std::string key = name_of(line.substr(2));
      if (!key.empty() && !section.empty()) {
        out.keys[section].push_back(key);
        if (!comment_above && line.find(" #") == std::string::npos) out.uncommented.push_back(section + "." + key);
      }
    }
    comment_above = false;
  }
  return out;
}

std::string temp_file(const std::string& content) {
  char name[] = "/tmp/cdc_config_test_XXXXXX";
  const int fd = mkstemp(name);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  close(fd);
  return name;
}

}  // namespace

TEST_CASE("defaults are valid and an empty path loads them", "[config]") {
  const Config defaults;
  CHECK_NOTHROW(cdc::validate(defaults));
  check_same(cdc::load_config("", {}), defaults);
  check_same(cdc::load_config_text("", {}), defaults);
  check_same(cdc::load_config_text("# only a comment\n", {}), defaults);
  // A section written with nothing under it changes nothing.
  check_same(cdc::load_config_text("nats:\nlog:\n", {}), defaults);
}

TEST_CASE("pending_ttl 0 resolves to ingest.ack_wait", "[config]") {
  Config c = cdc::load_config_text("ingest:\n  ack_wait: 45s\n", {});
  CHECK(c.pending_ttl() == Millis{45000});
  c = cdc::load_config_text("ingest:\n  ack_wait: 45s\ndedup:\n  pending_ttl: 2m\n", {});
  CHECK(c.pending_ttl() == Millis{120000});
}

TEST_CASE("config.yaml holds exactly the defaults, and every key is in it and in the docs", "[config]") {
  const std::string yaml_path = kSourceDir + "/config.yaml";
  const std::string yaml = read_file(yaml_path);
  const std::string docs = read_file(kSourceDir + "/docs/configuration.md");
  REQUIRE_FALSE(yaml.empty());
  REQUIRE_FALSE(docs.empty());

  check_same(cdc::load_config(yaml_path, {}), Config{});

  const YamlKeys found = scan_yaml_keys(yaml);
  CHECK(field_count<Config>() == kSectionFields.size());
  CHECK(std::set<std::string>(found.sections.begin(), found.sections.end()).size() == found.sections.size());
  std::size_t total = 0;
  for (const auto& [section, count] : kSectionFields) {
    INFO("section " << section);
    const auto it = found.keys.find(section);
    REQUIRE(it != found.keys.end());
    // config.yaml loads without "unknown key" and has no duplicates, so equal counts mean every
    // member of the struct is listed.
    CHECK(it->second.size() == count);
    CHECK(std::set<std::string>(it->second.begin(), it->second.end()).size() == it->second.size());
    total += it->second.size();
    for (const auto& key : it->second) {
      const std::string dotted = section + "." + key;
      const std::string env = "DAISI_CDC_" + upper(section) + "_" + upper(key);
      INFO("key " << dotted);
      CHECK(docs.find("`" + dotted + "`") != std::string::npos);
      CHECK(docs.find("`" + env + "`") != std::string::npos);
    }
  }
  // + dlq_worker and postgres, daisi-dlq-worker's (checked in dlq_worker_test.cpp).
  CHECK(found.sections.size() == kSectionFields.size() + 2);
  CHECK(total == kKeysCompared);
  CHECK(found.uncommented == std::vector<std::string>{});
  for (const char* short_name :
       {"NATS_URL", "REDIS_ADDRESS", "DEDUP_TTL", "JS_ACK_WAIT", "JS_MAX_DELIVER", "LOG_LEVEL"}) {
    INFO(short_name);
    CHECK(docs.find(std::string("`") + short_name + "`") != std::string::npos);
  }
}

TEST_CASE("every key can be set from YAML", "[config]") {
  std::map<std::string, std::size_t> per_section;
  std::string yaml;
  std::string section;
  for (const auto& o : kOverrides) {
    if (o.section != section) yaml += o.section + ":\n";
    section = o.section;
    yaml += "  " + o.key + ": " + o.yaml + "\n";
    ++per_section[o.section];
  }
  for (const auto& [name, count] : kSectionFields) {
    INFO("section " << name);
    CHECK(per_section[name] == count);
  }
  const Config expected = overridden_config();
  check_same(cdc::load_config_text(yaml, {}), expected);

  const std::string path = temp_file(yaml);
  check_same(cdc::load_config(path, {}), expected);
  std::remove(path.c_str());
}

TEST_CASE("the deprecated send_asap keys set write_mode", "[config]") {
  CHECK(Config{}.nats.write_mode == cdc::WriteMode::kFlusher);
  CHECK(Config{}.publish.write_mode == cdc::WriteMode::kAdaptive);
  const Config from_yaml = cdc::load_config_text("nats:\n  send_asap: true\npublish:\n  send_asap: false\n", {});
  CHECK(from_yaml.nats.write_mode == cdc::WriteMode::kAsap);
  CHECK(from_yaml.publish.write_mode == cdc::WriteMode::kFlusher);
  const Config from_env =
      cdc::load_config_text("", {"DAISI_CDC_NATS_SEND_ASAP=false", "DAISI_CDC_PUBLISH_SEND_ASAP=true"});
  CHECK(from_env.nats.write_mode == cdc::WriteMode::kFlusher);
  CHECK(from_env.publish.write_mode == cdc::WriteMode::kAsap);
  // Not printed: --print-config shows write_mode, which the loader reads back.
  const std::string printed = cdc::config_to_yaml(from_yaml);
  CHECK(printed.find("send_asap") == std::string::npos);
  CHECK(printed.find("write_mode: asap") != std::string::npos);
  CHECK_THROWS_WITH(cdc::load_config_text("publish:\n  write_mode: sometimes\n", {}),
                    Catch::Contains("publish.write_mode") && Catch::Contains("batch, asap, flusher, adaptive"));
}

TEST_CASE("every key can be set from its DAISI_CDC_ variable", "[config]") {
  std::vector<std::string> env = {"PATH=/usr/bin", "HOME=/root", "not-an-assignment", "=odd"};
  for (const auto& o : kOverrides) {
    env.push_back("DAISI_CDC_" + upper(o.section) + "_" + upper(o.key) + "=" + o.env);
  }
  check_same(cdc::load_config_text("", env), overridden_config());
}

TEST_CASE("environment overrides from the brief", "[config]") {
  const Config c = cdc::load_config_text(
      "", {"DAISI_CDC_METRICS_PORT=9090", "DAISI_CDC_INGEST_ACK_WAIT=45s", "DAISI_CDC_INGEST_TABLES=messages, chats",
           "DAISI_CDC_INGEST_KEY_COLUMNS=messages=msg_id,chats=chat_id", "DAISI_CDC_PIPELINE_CPU=ingest=0,parse=1"});
  CHECK(c.metrics.port == 9090);
  CHECK(c.ingest.ack_wait == Millis{45000});
  CHECK(c.ingest.tables == std::vector<std::string>{"messages", "chats"});
  CHECK(c.ingest.key_columns ==
        std::map<std::string, std::string>{{"messages", "msg_id"}, {"chats", "chat_id"}, {"agents", "agent_id"}});
  CHECK(c.pipeline.cpu ==
        std::map<std::string, int>{{"ingest", 0}, {"parse", 1}, {"dedup", -1}, {"publish", -1}, {"ack", -1}});
}

TEST_CASE("short names set their keys", "[config]") {
  const Config c = cdc::load_config_text("", {"NATS_URL=nats://n1:4222,nats://n2:4222", "REDIS_ADDRESS=r1:6380",
                                              "DEDUP_TTL=2m", "JS_ACK_WAIT=1m", "JS_MAX_DELIVER=7", "LOG_LEVEL=WARN"});
  CHECK(c.nats.url == "nats://n1:4222,nats://n2:4222");
  CHECK(c.redis.address == "r1:6380");
  CHECK(c.dedup.ttl == Millis{120000});
  CHECK(c.ingest.ack_wait == Millis{60000});
  CHECK(c.ingest.max_deliver == 7);
  CHECK(c.log.level == "warn");
}

TEST_CASE("precedence: defaults < YAML < short names < DAISI_CDC_", "[config]") {
  const std::string yaml = "nats:\n  url: nats://yaml:4222\n  name: from-yaml\nlog:\n  level: error\n";
  CHECK(cdc::load_config_text(yaml, {}).nats.url == "nats://yaml:4222");
  CHECK(cdc::load_config_text(yaml, {"NATS_URL=nats://short:4222"}).nats.url == "nats://short:4222");
  // The long name wins whatever the order of the environment.
  CHECK(cdc::load_config_text(yaml, {"DAISI_CDC_NATS_URL=nats://long:4222", "NATS_URL=nats://short:4222"}).nats.url ==
        "nats://long:4222");
  CHECK(cdc::load_config_text(yaml, {"NATS_URL=nats://short:4222", "DAISI_CDC_NATS_URL=nats://long:4222"}).nats.url ==
        "nats://long:4222");
  // Keys nobody overrides keep the YAML value.
  const Config c = cdc::load_config_text(yaml, {"LOG_LEVEL=debug", "DAISI_CDC_LOG_LEVEL=trace"});
  CHECK(c.nats.name == "from-yaml");
  CHECK(c.log.level == "trace");
  // The first occurrence of a repeated variable wins, as with getenv().
  CHECK(cdc::load_config_text("", {"DAISI_CDC_METRICS_PORT=1111", "DAISI_CDC_METRICS_PORT=2222"}).metrics.port == 1111);
}

TEST_CASE("empty environment values", "[config]") {
  const std::string yaml = "nats:\n  url: nats://yaml:4222\ningest:\n  company_prefix: daisi_\n";
  // An empty short name counts as unset.
  CHECK(cdc::load_config_text(yaml, {"NATS_URL="}).nats.url == "nats://yaml:4222");
  // An empty DAISI_CDC_ variable sets the empty value.
  CHECK(cdc::load_config_text(yaml, {"DAISI_CDC_INGEST_COMPANY_PREFIX="}).ingest.company_prefix.empty());
  const Outcome e = load_error(yaml, {"DAISI_CDC_NATS_URL="});
  CHECK(e.what == "DAISI_CDC_NATS_URL: must not be empty");
}

TEST_CASE("unknown sections and keys are errors naming them", "[config]") {
  Outcome e = load_error("nats:\n  ulr: nats://x:4222\n");
  CHECK(e.key == "nats.ulr");
  CHECK(e.what == "nats.ulr: unknown key (did you mean 'url'?)");

  e = load_error("nats:\n  colour: blue\n");
  CHECK(e.what == "nats.colour: unknown key");

  e = load_error("natz:\n  url: nats://x:4222\n");
  CHECK(e.key == "natz");
  CHECK(e.what.rfind("natz: unknown section (did you mean 'nats'?)", 0) == 0);

  e = load_error("", {"DAISI_CDC_NATS_ULR=nats://x:4222"});
  CHECK(e.key == "DAISI_CDC_NATS_ULR");
  CHECK(e.what.find("unknown variable") != std::string::npos);
  CHECK(e.what.find("'DAISI_CDC_NATS_URL'") != std::string::npos);

  e = load_error("", {"DAISI_CDC_WHATEVER=1"});
  CHECK(e.key == "DAISI_CDC_WHATEVER");

  // A key in the wrong section is unknown there.
  e = load_error("nats:\n  ack_wait: 30s\n");
  CHECK(e.key == "nats.ack_wait");
}

TEST_CASE("structural errors in the YAML", "[config]") {
  CHECK(load_error("- a\n- b\n").key == "config");
  CHECK(load_error("nats: 5\n").what == "nats: expected a map of keys, got '5'");
  CHECK(load_error("nats:\n  - url\n").what == "nats: expected a map of keys, got a list");
  CHECK(load_error("metrics:\n  port: 1\n  port: 2\n").what == "metrics.port: duplicate key");
  CHECK(load_error("log:\n  level: info\nlog:\n  level: warn\n").what == "log: duplicate section");
}

TEST_CASE("type errors name the key and the expected type", "[config]") {
  struct Case {
    std::string yaml;
    std::string what;
  };
  const std::vector<Case> cases = {
      {"metrics:\n  port: abc\n", "metrics.port: expected an integer 1-65535, got 'abc'"},
      {"metrics:\n  port: 70000\n", "metrics.port: expected an integer 1-65535, got '70000'"},
      {"metrics:\n  port: 80.5\n", "metrics.port: expected an integer 1-65535, got '80.5'"},
      {"metrics:\n  port: [1]\n", "metrics.port: expected an integer 1-65535, got a list"},
      {"metrics:\n  port:\n", "metrics.port: expected an integer 1-65535, got null"},
      {"ingest:\n  max_ack_pending: 0\n", "ingest.max_ack_pending: expected an integer >= 1, got '0'"},
      {"ingest:\n  max_deliver: -2\n", "ingest.max_deliver: expected an integer >= -1, got '-2'"},
      {"metrics:\n  enabled: maybe\n", "metrics.enabled: expected true or false, got 'maybe'"},
      {"ingest:\n  tables: messages\n", "ingest.tables: expected a list, got 'messages'"},
      {"ingest:\n  tables: [[a]]\n", "ingest.tables: expected a list of strings, got an element that is a list"},
      {"ingest:\n  key_columns: [a, b]\n", "ingest.key_columns: expected a map of table: value, got a list"},
      {"nats:\n  url: [nats://a:4222]\n", "nats.url: expected a string, got a list"},
      {"nats:\n  url: {a: b}\n", "nats.url: expected a string, got a map"},
      {"ingest:\n  mode: stream\n", "ingest.mode: expected one of push, pull, got 'stream'"},
      {"dedup:\n  on_redis_error: drop\n", "dedup.on_redis_error: expected one of publish, block, got 'drop'"},
      {"dedup:\n  batch: lua\n", "dedup.batch: expected one of auto, function, pipeline, got 'lua'"},
      {"pipeline:\n  wait_strategy: spin\n",
       "pipeline.wait_strategy: expected one of busy_spin, yield, sleep, blocking (or its old name park), got 'spin'"},
      {"log:\n  level: verbose\n", "log.level: expected one of trace, debug, info, warn, error, got 'verbose'"},
      {"ingest:\n  ack_wait: 30\n", "ingest.ack_wait: duration needs a unit (ms, s, m, h), got '30'"},
      {"ingest:\n  max_message_bytes: 1MB\n",
       "ingest.max_message_bytes: expected a byte size like 1048576, 512KiB or 1MiB, got '1MB'"},
      {"pipeline:\n  cpu: {parse: x}\n", "pipeline.cpu: stage 'parse': expected an integer from -1 to 1023, got 'x'"},
      {"pipeline:\n  cpu: {parse: 1024}\n",
       "pipeline.cpu: stage 'parse': expected an integer from -1 to 1023, got '1024'"},
      {"pipeline:\n  ring_capacity: -64\n", "pipeline.ring_capacity: expected an integer 64-1048576, got '-64'"},
      {"ingest:\n  key_columns: {orders: ''}\n", "ingest.key_columns: empty key column for table 'orders'"},
  };
  for (const auto& c : cases) {
    INFO(c.yaml);
    const Outcome e = load_error(c.yaml);
    CHECK(e.what == c.what);
  }
}

TEST_CASE("choices are case-insensitive and stored lower-case", "[config]") {
  const Config c = cdc::load_config_text(
      "ingest:\n  mode: PULL\npipeline:\n  wait_strategy: Busy_Spin\nlog:\n  level: WARN\n"
      "dedup:\n  on_redis_error: Block\nmetrics:\n  enabled: No\n",
      {});
  CHECK(c.ingest.mode == cdc::IngestMode::kPull);
  CHECK(c.pipeline.wait_strategy == cdc::WaitStrategyKind::kBusySpin);
  CHECK(c.log.level == "warn");
  CHECK(c.dedup.on_redis_error == cdc::RedisErrorPolicy::kBlock);
  CHECK_FALSE(c.metrics.enabled);
  // park is the old name of blocking: existing files keep loading, --print-config says blocking.
  const Config parked = cdc::load_config_text("pipeline:\n  wait_strategy: PARK\n", {});
  CHECK(parked.pipeline.wait_strategy == cdc::WaitStrategyKind::kBlocking);
  CHECK(cdc::config_to_yaml(parked).find("wait_strategy: blocking") != std::string::npos);
  for (const char* kind : {"busy_spin", "yield", "sleep", "blocking", "park"}) {
    cdc::WaitStrategyKind expected{};
    REQUIRE(cdc::parse_wait_kind(kind, expected));
    CHECK(cdc::load_config_text(std::string("pipeline:\n  wait_strategy: ") + kind + "\n", {}).pipeline.wait_strategy ==
          expected);
  }
}

TEST_CASE("parse_duration accepts units, combinations and 0", "[config]") {
  const std::vector<std::pair<std::string, long long>> good = {
      {"0", 0},         {"0s", 0},
      {"0ms", 0},       {"1ms", 1},
      {"500ms", 500},   {"30s", 30000},
      {"5m", 300000},   {"1h", 3600000},
      {"1m30s", 90000}, {"1h1m1s1ms", 3661001},
      {"1.5s", 1500},   {"0.25s", 250},
      {"2000us", 2},    {"3000000ns", 3},
      {" 30s ", 30000}, {"1000\xC2\xB5s", 1},
      {"90m", 5400000}, {"48h", 172800000},
  };
  for (const auto& [text, ms] : good) {
    INFO(text);
    CHECK(cdc::parse_duration("k", text) == Millis{ms});
  }
}

TEST_CASE("parse_duration rejects bad durations with the key and the value", "[config]") {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"30", "k: duration needs a unit (ms, s, m, h), got '30'"},
      {"250us", "k: durations are whole milliseconds; use 0 or a multiple of 1ms, got '250us'"},
      {"1500us", "k: durations are whole milliseconds; use 0 or a multiple of 1ms, got '1500us'"},
      {"1.5ms", "k: durations are whole milliseconds; use 0 or a multiple of 1ms, got '1.5ms'"},
      {"1ns", "k: durations are whole milliseconds; use 0 or a multiple of 1ms, got '1ns'"},
      {"-5s", "k: duration must not be negative, got '-5s'"},
      {"", "k: expected a duration like 500ms, 30s, 5m or 1h, got ''"},
      {"s", "k: expected a duration like 500ms, 30s, 5m or 1h, got 's'"},
      {"5x", "k: expected a duration like 500ms, 30s, 5m or 1h (units: ms, s, m, h), got '5x'"},
      {"5 s", "k: expected a duration like 500ms, 30s, 5m or 1h (units: ms, s, m, h), got '5 s'"},
      {"5S", "k: expected a duration like 500ms, 30s, 5m or 1h (units: ms, s, m, h), got '5S'"},
      {"1e3s", "k: expected a duration like 500ms, 30s, 5m or 1h (units: ms, s, m, h), got '1e3s'"},
      {"+5s", "k: expected a duration like 500ms, 30s, 5m or 1h, got '+5s'"},
      {"5min", "k: expected a duration like 500ms, 30s, 5m or 1h, got '5min'"},
      {"99999999999999999999h", "k: duration too large, got '99999999999999999999h'"},
  };
  for (const auto& [text, what] : bad) {
    INFO(text);
    const std::string& input = text;  // clang 14 (clang-tidy) cannot capture a structured binding
    const Outcome e = outcome_of([&] { (void)cdc::parse_duration("k", input); });
    CHECK(e.key == "k");
    CHECK(e.what == what);
  }
}

TEST_CASE("byte sizes take plain integers and KiB/MiB", "[config]") {
  const auto bytes = [](const std::string& v) {
    return cdc::load_config_text("ingest:\n  max_message_bytes: " + v + "\n", {}).ingest.max_message_bytes;
  };
  CHECK(bytes("1MiB") == (1u << 20));
  CHECK(bytes("512KiB") == 512u * 1024);
  CHECK(bytes("2048") == 2048u);
  CHECK(bytes("1KiB") == 1024u);
  CHECK(bytes("64MiB") == 64u << 20);
  for (const char* v : {"1MB", "1.5MiB", "-1", "MiB", "1 MiB", "1mib", "0x400"}) {
    INFO(v);
    CHECK(load_error(std::string("ingest:\n  max_message_bytes: ") + v + "\n").key == "ingest.max_message_bytes");
  }
  CHECK(load_error("ingest:\n  max_message_bytes: 512\n").what ==
        "ingest.max_message_bytes: must be 1KiB-64MiB, got 512");
  CHECK(load_error("ingest:\n  max_message_bytes: 65MiB\n").what ==
        "ingest.max_message_bytes: must be 1KiB-64MiB, got 65MiB");
  CHECK(load_error("", {"DAISI_CDC_INGEST_MAX_MESSAGE_BYTES=1023"}).what ==
        "DAISI_CDC_INGEST_MAX_MESSAGE_BYTES: must be 1KiB-64MiB, got 1023");
}

TEST_CASE("errors from the environment name the variable", "[config]") {
  struct Case {
    std::vector<std::string> env;
    std::string what;
  };
  const std::vector<Case> cases = {
      {{"DAISI_CDC_METRICS_PORT=abc"}, "DAISI_CDC_METRICS_PORT: expected an integer 1-65535, got 'abc'"},
      {{"JS_ACK_WAIT=30"}, "JS_ACK_WAIT: duration needs a unit (ms, s, m, h), got '30'"},
      {{"JS_MAX_DELIVER=0"}, "JS_MAX_DELIVER: must be -1 (unlimited) or at least 1, got 0"},
      {{"LOG_LEVEL=loud"}, "LOG_LEVEL: expected one of trace, debug, info, warn, error, got 'loud'"},
      {{"REDIS_ADDRESS=redis"}, "REDIS_ADDRESS: must be host:port with a port 1-65535, got 'redis'"},
      {{"DAISI_CDC_PIPELINE_RING_CAPACITY=1000"}, "DAISI_CDC_PIPELINE_RING_CAPACITY: must be a power of two, got 1000"},
      {{"DAISI_CDC_PUBLISH_DUPLICATE_WINDOW=1m"},
       "DAISI_CDC_PUBLISH_DUPLICATE_WINDOW: must be at least dedup.ttl (5m), got 1m"},
      // The rule is broken by DEDUP_TTL, but the key that fails is publish.duplicate_window,
      // which still has its default.
      {{"DEDUP_TTL=10m"}, "publish.duplicate_window: must be at least dedup.ttl (10m), got 5m"},
      {{"DAISI_CDC_INGEST_TABLES=messages,,chats"},
       "DAISI_CDC_INGEST_TABLES: empty element in comma-separated list 'messages,,chats'"},
      {{"DAISI_CDC_INGEST_KEY_COLUMNS=messages"},
       "DAISI_CDC_INGEST_KEY_COLUMNS: expected comma-separated table=value pairs, got 'messages'"},
      {{"DAISI_CDC_INGEST_KEY_COLUMNS=a=x,a=y"}, "DAISI_CDC_INGEST_KEY_COLUMNS: duplicate entry 'a'"},
      {{"DAISI_CDC_PIPELINE_CPU=render=1"},
       "DAISI_CDC_PIPELINE_CPU: unknown stage 'render'; stages are ingest, parse, dedup, publish, ack"},
      {{"DAISI_CDC_PIPELINE_CPU=parse=x"},
       "DAISI_CDC_PIPELINE_CPU: stage 'parse': expected an integer from -1 to 1023, got 'x'"},
      {{"DAISI_CDC_INGEST_TABLES=orders"},
       "ingest.key_columns: no key column for table 'orders' (listed in ingest.tables)"},
      {{"DAISI_CDC_METRICS_ENABLED=sometimes"}, "DAISI_CDC_METRICS_ENABLED: expected true or false, got 'sometimes'"},
  };
  for (const auto& c : cases) {
    INFO(c.env.front());
    CHECK(load_error("", c.env).what == c.what);
  }
}

TEST_CASE("validate enforces the rules, naming the key, the problem and the value", "[config]") {
  struct Case {
    std::string what;  ///< expected what(), or "" for a configuration that must pass
    std::function<void(Config&)> mutate;
  };
  const auto small_ring = [](Config& c, std::size_t cap) {
    c.pipeline.ring_capacity = cap;
    c.pipeline.batch_size = 1;
    c.publish.max_pending = 1;
    c.ingest.fetch_batch = 1;
  };
  const std::vector<Case> cases = {
      // pipeline
      {"pipeline.ring_capacity: must be a power of two, got 1000", [](Config& c) { c.pipeline.ring_capacity = 1000; }},
      {"pipeline.ring_capacity: must be a power of two, got 0", [](Config& c) { c.pipeline.ring_capacity = 0; }},
      {"pipeline.ring_capacity: must be a power of two between 64 and 1048576, got 32",
       [&](Config& c) { small_ring(c, 32); }},
      {"pipeline.ring_capacity: must be a power of two between 64 and 1048576, got 2097152",
       [](Config& c) { c.pipeline.ring_capacity = 1 << 21; }},
      {"", [&](Config& c) { small_ring(c, 64); }},
      {"", [](Config& c) { c.pipeline.ring_capacity = 1 << 20; }},
      {"pipeline.batch_size: must be 1-8192 (pipeline.ring_capacity), got 0",
       [](Config& c) { c.pipeline.batch_size = 0; }},
      {"pipeline.batch_size: must be 1-8192 (pipeline.ring_capacity), got 8193",
       [](Config& c) { c.pipeline.batch_size = 8193; }},
      {"", [](Config& c) { c.pipeline.batch_size = 8192; }},
      {"pipeline.cpu: unknown stage 'render'; stages are ingest, parse, dedup, publish, ack",
       [](Config& c) { c.pipeline.cpu["render"] = 1; }},
      {"pipeline.cpu: unknown stage 'parser' (did you mean 'parse'?); stages are ingest, parse, dedup, publish, ack",
       [](Config& c) { c.pipeline.cpu["parser"] = 1; }},
      {"pipeline.cpu: stage 'parse': must be -1 (no affinity) or a CPU 0-1023, got 1024",
       [](Config& c) { c.pipeline.cpu["parse"] = 1024; }},
      {"pipeline.cpu: stage 'ack': must be -1 (no affinity) or a CPU 0-1023, got -2",
       [](Config& c) { c.pipeline.cpu["ack"] = -2; }},
      {"", [](Config& c) { c.pipeline.cpu["parse"] = 1023; }},
      {"pipeline.cpu: missing stage 'ingest' (-1 = no affinity)", [](Config& c) { c.pipeline.cpu.erase("ingest"); }},
      {"pipeline.drain_timeout: must not be negative, got -1ms",
       [](Config& c) { c.pipeline.drain_timeout = Millis{-1}; }},
      // ports and addresses
      {"metrics.port: must be 1-65535, got 0", [](Config& c) { c.metrics.port = 0; }},
      {"metrics.port: must be 1-65535, got 65536", [](Config& c) { c.metrics.port = 65536; }},
      {"", [](Config& c) { c.metrics.port = 65535; }},
      {"metrics.bind: must be a non-empty address without whitespace, got ''", [](Config& c) { c.metrics.bind = ""; }},
      {"redis.address: must be host:port with a port 1-65535, got 'localhost'",
       [](Config& c) { c.redis.address = "localhost"; }},
      {"redis.address: must be host:port with a port 1-65535, got 'localhost:0'",
       [](Config& c) { c.redis.address = "localhost:0"; }},
      {"redis.address: must be host:port with a port 1-65535, got 'localhost:65536'",
       [](Config& c) { c.redis.address = "localhost:65536"; }},
      {"redis.address: must be host:port with a port 1-65535, got 'localhost:abc'",
       [](Config& c) { c.redis.address = "localhost:abc"; }},
      {"redis.address: must be host:port with a port 1-65535, got ':6379'",
       [](Config& c) { c.redis.address = ":6379"; }},
      {"redis.address: must be host:port with a port 1-65535, got '::1:6379'",
       [](Config& c) { c.redis.address = "::1:6379"; }},
      {"", [](Config& c) { c.redis.address = "[::1]:6379"; }},
      {"", [](Config& c) { c.redis.address = "redis.internal:16379"; }},
      {"redis.db: must be >= 0, got -1", [](Config& c) { c.redis.db = -1; }},
      {"redis.reconnect_backoff_max: must be at least redis.reconnect_backoff (100ms), got 50ms",
       [](Config& c) { c.redis.reconnect_backoff_max = Millis{50}; }},
      {"redis.command_timeout: must be at least 1ms, got 0", [](Config& c) { c.redis.command_timeout = Millis{0}; }},
      {"nats.url: must not be empty", [](Config& c) { c.nats.url = ""; }},
      {"nats.url: each comma-separated server must look like nats://host:port or tls://host:port, got "
       "'http://x:4222' in 'http://x:4222'",
       [](Config& c) { c.nats.url = "http://x:4222"; }},
      {"nats.url: each comma-separated server must look like nats://host:port or tls://host:port, got 'b:4222' in "
       "'nats://a:4222,b:4222'",
       [](Config& c) { c.nats.url = "nats://a:4222,b:4222"; }},
      {"nats.url: each comma-separated server must look like nats://host:port or tls://host:port, got '' in "
       "'nats://a:4222,'",
       [](Config& c) { c.nats.url = "nats://a:4222,"; }},
      {"", [](Config& c) { c.nats.url = "nats://a:4222, tls://b:4443"; }},
      {"nats.connect_timeout: must be at least 1ms, got 0", [](Config& c) { c.nats.connect_timeout = Millis{0}; }},
      {"nats.max_reconnect: must be >= -1, got -2", [](Config& c) { c.nats.max_reconnect = -2; }},
      {"nats.io_buffer_size: must be 0-67108864, got -1", [](Config& c) { c.nats.io_buffer_size = -1; }},
      {"", [](Config& c) { c.nats.io_buffer_size = 0; }},
      // ingest
      {"ingest.max_ack_pending: must be >= 1, got 0", [](Config& c) { c.ingest.max_ack_pending = 0; }},
      {"ingest.max_deliver: must be -1 (unlimited) or at least 1, got 0", [](Config& c) { c.ingest.max_deliver = 0; }},
      {"ingest.max_deliver: must be -1 (unlimited) or at least 1, got -2",
       [](Config& c) { c.ingest.max_deliver = -2; }},
      {"", [](Config& c) { c.ingest.max_deliver = -1; }},
      {"", [](Config& c) { c.ingest.max_deliver = 1; }},
      {"ingest.ack_wait: must be at least 1s, got 999ms", [](Config& c) { c.ingest.ack_wait = Millis{999}; }},
      {"", [](Config& c) { c.ingest.ack_wait = Millis{1000}; }},
      {"ingest.fetch_batch: must be 1-8192 (pipeline.ring_capacity), got 0",
       [](Config& c) { c.ingest.fetch_batch = 0; }},
      {"ingest.fetch_batch: must be 1-8192 (pipeline.ring_capacity), got 8193",
       [](Config& c) { c.ingest.fetch_batch = 8193; }},
      {"ingest.fetch_expires: must be at least 1ms, got 0", [](Config& c) { c.ingest.fetch_expires = Millis{0}; }},
      {"ingest.max_message_bytes: must be 1KiB-64MiB, got 1023", [](Config& c) { c.ingest.max_message_bytes = 1023; }},
      {"ingest.max_message_bytes: must be 1KiB-64MiB, got 67108865",
       [](Config& c) { c.ingest.max_message_bytes = (64u << 20) + 1; }},
      {"", [](Config& c) { c.ingest.max_message_bytes = 1024; }},
      {"", [](Config& c) { c.ingest.max_message_bytes = 64u << 20; }},
      {"ingest.tables: must list at least one table", [](Config& c) { c.ingest.tables.clear(); }},
      {"ingest.tables: must be a valid subject token (non-empty, at most 128 bytes, no '.', '*', '>', whitespace or "
       "control characters), got 'a.b'",
       [](Config& c) {
         c.ingest.tables = {"a.b"};
         c.ingest.key_columns["a.b"] = "id";
       }},
      {"ingest.tables: table 'chats' is listed twice",
       [](Config& c) {
         c.ingest.tables = {"chats", "chats"};
       }},
      {"ingest.key_columns: no key column for table 'orders' (listed in ingest.tables)",
       [](Config& c) { c.ingest.tables.push_back("orders"); }},
      {"ingest.key_columns: no key column for table 'chats' (listed in ingest.tables)",
       [](Config& c) { c.ingest.key_columns["chats"] = ""; }},
      {"", [](Config& c) { c.ingest.key_columns["unused"] = "id"; }},
      {"ingest.subject_layout: must contain {table} once and exactly one of {company} or {schema}, got 'cdc.{table}'",
       [](Config& c) { c.ingest.subject_layout = "cdc.{table}"; }},
      {"ingest.subject_layout: must contain {table} once and exactly one of {company} or {schema}, got "
       "'cdc.{company}.{schema}.{table}'",
       [](Config& c) { c.ingest.subject_layout = "cdc.{company}.{schema}.{table}"; }},
      {"ingest.subject_layout: must contain {table} once and exactly one of {company} or {schema}, got 'cdc.{company}'",
       [](Config& c) { c.ingest.subject_layout = "cdc.{company}"; }},
      {"", [](Config& c) { c.ingest.subject_layout = "sequin.{database}.{schema}.{table}.{action}"; }},
      {"ingest.stream: must be a non-empty name without '.', '*', '>', '/', '\\', whitespace or control characters, "
       "got 'cdc.events'",
       [](Config& c) { c.ingest.stream = "cdc.events"; }},
      {"ingest.stream: must be a non-empty name without '.', '*', '>', '/', '\\', whitespace or control characters, "
       "got ''",
       [](Config& c) { c.ingest.stream = ""; }},
      {"ingest.consumer: must be a non-empty name without '.', '*', '>', '/', '\\', whitespace or control characters, "
       "got 'cdc consumers'",
       [](Config& c) { c.ingest.consumer = "cdc consumers"; }},
      {"ingest.stream_subjects: must list at least one subject", [](Config& c) { c.ingest.stream_subjects.clear(); }},
      {"ingest.stream_subjects: invalid subject 'cdc..x'", [](Config& c) { c.ingest.stream_subjects = {"cdc..x"}; }},
      {"ingest.stream_subjects: invalid subject 'cdc.>.x'", [](Config& c) { c.ingest.stream_subjects = {"cdc.>.x"}; }},
      {"ingest.filter_subject: must be empty (derived from ingest.subject_layout) or a valid subject, got 'cdc. x'",
       [](Config& c) { c.ingest.filter_subject = "cdc. x"; }},
      {"", [](Config& c) { c.ingest.filter_subject = "cdc.*.messages"; }},
      {"ingest.queue_group: must be a non-empty name without whitespace in push mode, got ''",
       [](Config& c) {
         c.ingest.mode = cdc::IngestMode::kPush;
         c.ingest.queue_group = "";
       }},
      {"", [](Config& c) { c.ingest.queue_group = ""; }},
      // partitions
      {"ingest.partitions: must be 1-1024, got 0", [](Config& c) { c.ingest.partitions = 0; }},
      {"ingest.subject_layout: must end in .{partition} with ingest.partitions 8 (the server's subject mapping adds "
       "the partition token), e.g. 'cdc.{company}.{table}.{partition}', got 'cdc.{company}.{table}'",
       [](Config& c) { c.ingest.partitions = 8; }},
      {"",
       [](Config& c) {
         c.ingest.partitions = 8;
         c.ingest.subject_layout = "cdc.{company}.{table}.{partition}";
       }},
      {"ingest.subject_layout: has {partition} but ingest.partitions is 1 (unpartitioned); set ingest.partitions "
       "to the server mapping's partition count, got 'cdc.{company}.{table}.{partition}'",
       [](Config& c) { c.ingest.subject_layout = "cdc.{company}.{table}.{partition}"; }},
      {"ingest.mode: must be pull with ingest.partitions > 1 (partitions are leased pull consumers)",
       [](Config& c) {
         c.ingest.partitions = 8;
         c.ingest.subject_layout = "cdc.{company}.{table}.{partition}";
         c.ingest.mode = cdc::IngestMode::kPush;
       }},
      {"ingest.lease_ttl: must be at least 1s, got 500ms", [](Config& c) { c.ingest.lease_ttl = Millis{500}; }},
      // publish and dedup
      {"publish.stream: must be a non-empty name without '.', '*', '>', '/', '\\', whitespace or control characters, "
       "got '>'",
       [](Config& c) { c.publish.stream = std::string(1, '>'); }},  // not = ">": GCC 12 -O3 -Wrestrict (bug 105329)
      {"publish.dlq_stream: must be a non-empty name without '.', '*', '>', '/', '\\', whitespace or control "
       "characters, got 'dlq*'",
       [](Config& c) { c.publish.dlq_stream = "dlq*"; }},
      {"publish.dlq_stream: must differ from publish.stream, got 'wa_stream'",
       [](Config& c) { c.publish.dlq_stream = "wa_stream"; }},
      {"publish.subject_prefix: must be a valid subject token (non-empty, at most 128 bytes, no '.', '*', '>', "
       "whitespace or control characters), got 'wa.v2'",
       [](Config& c) { c.publish.subject_prefix = "wa.v2"; }},
      {"publish.dlq_subject_prefix: must be a valid subject token (non-empty, at most 128 bytes, no '.', '*', '>', "
       "whitespace or control characters), got ''",
       [](Config& c) { c.publish.dlq_subject_prefix = ""; }},
      {"publish.duplicate_window: must be at least dedup.ttl (5m), got 4m",
       [](Config& c) { c.publish.duplicate_window = Millis{240000}; }},
      {"", [](Config& c) { c.publish.duplicate_window = c.dedup.ttl; }},
      {"publish.max_pending: must be 1-65535, got 0", [](Config& c) { c.publish.max_pending = 0; }},
      {"publish.max_pending: must be 1-65535, got 65536",
       [](Config& c) {
         c.pipeline.ring_capacity = 1 << 20;
         c.publish.max_pending = 65536;
       }},
      {"publish.max_pending: must be at most pipeline.ring_capacity (1024), got 2048",
       [](Config& c) {
         c.pipeline.ring_capacity = 1024;
         c.publish.max_pending = 2048;
       }},
      {"publish.batching_threshold: must be >= 1, got 0", [](Config& c) { c.publish.batching_threshold = 0; }},
      {"nats.write_mode: adaptive is a publish.write_mode only (the publish stage chooses per batch); use asap, "
       "flusher or batch for the consume connection",
       [](Config& c) { c.nats.write_mode = cdc::WriteMode::kAdaptive; }},
      {"", [](Config& c) { c.publish.write_mode = cdc::WriteMode::kAsap; }},
      {"publish.retry_backoff_max: must be at least publish.retry_backoff (100ms), got 99ms",
       [](Config& c) { c.publish.retry_backoff_max = Millis{99}; }},
      {"publish.max_retries: must be >= 0, got -1", [](Config& c) { c.publish.max_retries = -1; }},
      {"dedup.ttl: must be at least 1s, got 500ms", [](Config& c) { c.dedup.ttl = Millis{500}; }},
      {"dedup.pending_ttl: must be at least 1s, got 500ms", [](Config& c) { c.dedup.pending_ttl = Millis{500}; }},
      {"", [](Config& c) { c.dedup.pending_ttl = Millis{1000}; }},
      {"log.level: must be one of trace, debug, info, warn, error, got 'verbose'",
       [](Config& c) { c.log.level = "verbose"; }},
  };
  for (const auto& c : cases) {
    INFO("expecting: " << (c.what.empty() ? "valid" : c.what));
    const Outcome e = validate_error(c.mutate);
    if (c.what.empty()) {
      CHECK_FALSE(e.thrown);
      CHECK(e.what == "<no error>");
    } else {
      CHECK(e.what == c.what);
      CHECK(e.key == c.what.substr(0, c.what.find(':')));
    }
  }
}

TEST_CASE("load_config reports unreadable files and YAML syntax errors", "[config]") {
  Outcome e = outcome_of([] { (void)cdc::load_config("/nonexistent/dir/config.yaml", {}); });
  CHECK(e.key == "config");
  CHECK(e.what == "config: cannot read /nonexistent/dir/config.yaml: No such file or directory");

  e = outcome_of([] { (void)cdc::load_config(kSourceDir, {}); });
  CHECK(e.what == "config: cannot read " + kSourceDir + ": Is a directory");

  const std::string path = temp_file("nats:\n  url: nats://a:4222\nmetrics:\n  port: [8080\n");
  e = outcome_of([&] { (void)cdc::load_config(path, {}); });
  std::remove(path.c_str());
  CHECK(e.key == "config");
  INFO(e.what);
  CHECK(e.what.rfind("config: " + path + ":5:1: ", 0) == 0);
  CHECK(e.what.size() > ("config: " + path + ":5:1: ").size());

  e = load_error("a: b\n  c: d\n");
  CHECK(e.key == "config");
  CHECK(e.what.rfind("config: <text>:2:4: ", 0) == 0);
}

TEST_CASE("load_config applies the environment on top of the file", "[config]") {
  const std::string path = temp_file("metrics:\n  port: 9000\n  bind: 127.0.0.1\n");
  const Config c = cdc::load_config(path, {"DAISI_CDC_METRICS_PORT=9001"});
  std::remove(path.c_str());
  CHECK(c.metrics.port == 9001);
  CHECK(c.metrics.bind == "127.0.0.1");
}

TEST_CASE("process_environment returns NAME=VALUE strings of environ", "[config]") {
  REQUIRE(setenv("CDC_CONFIG_TEST_PROBE", "a=b", 1) == 0);
  const auto env = cdc::process_environment();
  unsetenv("CDC_CONFIG_TEST_PROBE");
  CHECK(std::count(env.begin(), env.end(), "CDC_CONFIG_TEST_PROBE=a=b") == 1);
}

TEST_CASE("changed_keys names every key whose value differs, in declaration order", "[config][reload]") {
  const Config defaults;
  CHECK(cdc::changed_keys(defaults, defaults).empty());
  const Config other = overridden_config();
  CHECK(cdc::changed_keys(other, other).empty());
  std::vector<std::string> all;
  for (const auto& o : kOverrides) {
    const std::string key = o.section + "." + o.key;
    if (std::find(kSameAsDefault.begin(), kSameAsDefault.end(), key) == kSameAsDefault.end()) all.push_back(key);
  }
  CHECK(cdc::changed_keys(defaults, other) == all);
  CHECK(cdc::changed_keys(other, defaults) == all);
}

TEST_CASE("a reload applies the reloadable keys and lists the others as needing a restart", "[config][reload]") {
  const Config running;
  const Config next = overridden_config();
  const cdc::ReloadPlan plan = cdc::plan_reload(running, next);
  const std::vector<std::string> reloadable = {
      "ingest.tables",        "ingest.key_columns",         "ingest.max_message_bytes",
      "health.stall_timeout", "guard.max_failure_duration", "log.level"};
  CHECK(plan.apply == reloadable);
  CHECK(plan.restart.size() == kOverrides.size() - reloadable.size() - kSameAsDefault.size());
  for (const auto& key : plan.restart) {
    INFO(key);
    CHECK_FALSE(cdc::reloadable(key));
  }
  for (const auto& key : reloadable) CHECK(cdc::reloadable(key));
  CHECK(std::find(plan.restart.begin(), plan.restart.end(), "nats.url") != plan.restart.end());
  CHECK(std::find(plan.restart.begin(), plan.restart.end(), "pipeline.ring_capacity") != plan.restart.end());

  // The result: the running configuration with only the reloadable keys taken from the file.
  Config expected;
  expected.ingest.tables = next.ingest.tables;
  expected.ingest.key_columns = next.ingest.key_columns;
  expected.ingest.max_message_bytes = next.ingest.max_message_bytes;
  expected.health.stall_timeout = next.health.stall_timeout;
  expected.guard.max_failure_duration = next.guard.max_failure_duration;
  expected.log.level = next.log.level;
  check_same(plan.result, expected);
  CHECK_NOTHROW(cdc::validate(plan.result));

  // Nothing changed: nothing to do.
  const cdc::ReloadPlan same = cdc::plan_reload(running, running);
  CHECK(same.apply.empty());
  CHECK(same.restart.empty());
  check_same(same.result, running);

  // A key that needs a restart keeps its running value, so the next reload reports it again.
  Config only_url = running;
  only_url.nats.url = "nats://elsewhere:4222";
  const cdc::ReloadPlan url = cdc::plan_reload(running, only_url);
  CHECK(url.apply.empty());
  CHECK(url.restart == std::vector<std::string>{"nats.url"});
  CHECK(url.result.nats.url == running.nats.url);
  CHECK(cdc::plan_reload(url.result, only_url).restart == std::vector<std::string>{"nats.url"});
}

TEST_CASE("health, guard and backlog durations: 0 turns them off, small values are errors", "[config]") {
  const Config off = cdc::load_config_text(
      "metrics:\n  backlog_interval: 0\nhealth:\n  stall_timeout: 0\nguard:\n  max_failure_duration: 0\n", {});
  CHECK(off.metrics.backlog_interval == Millis{0});
  CHECK(off.health.stall_timeout == Millis{0});
  CHECK(off.guard.max_failure_duration == Millis{0});
  CHECK(load_error("health:\n  stall_timeout: 500ms\n").what ==
        "health.stall_timeout: must be 0 (off) or at least 1s, got 500ms");
  CHECK(load_error("guard:\n  max_failure_duration: 999ms\n").what ==
        "guard.max_failure_duration: must be 0 (off) or at least 1s, got 999ms");
  CHECK(load_error("metrics:\n  backlog_interval: 50ms\n").what ==
        "metrics.backlog_interval: must be 0 (off) or at least 100ms, got 50ms");
  CHECK(load_error("", {"DAISI_CDC_GUARD_MAX_FAILURE_DURATION=10"}).what ==
        "DAISI_CDC_GUARD_MAX_FAILURE_DURATION: duration needs a unit (ms, s, m, h), got '10'");
  CHECK(load_error("", {"DAISI_CDC_HEALTH_STALL_TIMEOUT=100ms"}).what ==
        "DAISI_CDC_HEALTH_STALL_TIMEOUT: must be 0 (off) or at least 1s, got 100ms");
  const Config c =
      cdc::load_config_text("", {"DAISI_CDC_HEALTH_STALL_TIMEOUT=3s", "DAISI_CDC_GUARD_MAX_FAILURE_DURATION=1h"});
  CHECK(c.health.stall_timeout == Millis{3000});
  CHECK(c.guard.max_failure_duration == Millis{3600000});
}

TEST_CASE("nats.stream_replicas: 1-5, default 1, from YAML and DAISI_CDC_NATS_STREAM_REPLICAS", "[config]") {
  CHECK(Config{}.nats.stream_replicas == 1);
  CHECK(cdc::load_config_text("", {}).nats.stream_replicas == 1);
  CHECK(cdc::load_config_text("nats:\n  stream_replicas: 3\n", {}).nats.stream_replicas == 3);
  CHECK(cdc::load_config_text("nats:\n  stream_replicas: 5\n", {}).nats.stream_replicas == 5);
  CHECK(cdc::load_config_text("", {"DAISI_CDC_NATS_STREAM_REPLICAS=3"}).nats.stream_replicas == 3);
  // The environment wins over the file.
  CHECK(cdc::load_config_text("nats:\n  stream_replicas: 5\n", {"DAISI_CDC_NATS_STREAM_REPLICAS=1"})
            .nats.stream_replicas == 1);
  CHECK(load_error("nats:\n  stream_replicas: 0\n").what == "nats.stream_replicas: expected an integer 1-5, got '0'");
  CHECK(load_error("nats:\n  stream_replicas: 6\n").what == "nats.stream_replicas: expected an integer 1-5, got '6'");
  CHECK(load_error("nats:\n  stream_replicas: -1\n").what == "nats.stream_replicas: expected an integer 1-5, got '-1'");
  CHECK(load_error("nats:\n  stream_replicas: three\n").what ==
        "nats.stream_replicas: expected an integer 1-5, got 'three'");
  CHECK(load_error("nats:\n  stream_replicas: [3]\n").what ==
        "nats.stream_replicas: expected an integer 1-5, got a list");
  CHECK(load_error("", {"DAISI_CDC_NATS_STREAM_REPLICAS=7"}).what ==
        "DAISI_CDC_NATS_STREAM_REPLICAS: expected an integer 1-5, got '7'");
  CHECK(load_error("", {"DAISI_CDC_NATS_STREAM_REPLICAS="}).what ==
        "DAISI_CDC_NATS_STREAM_REPLICAS: expected an integer 1-5, got ''");
  // A Config built in code is checked by validate().
  CHECK(validate_error([](Config& c) { c.nats.stream_replicas = 0; }).what ==
        "nats.stream_replicas: must be 1-5, got 0");
  CHECK(validate_error([](Config& c) { c.nats.stream_replicas = 6; }).what ==
        "nats.stream_replicas: must be 1-5, got 6");
  CHECK_FALSE(validate_error([](Config& c) { c.nats.stream_replicas = 5; }).thrown);
  // Only the streams' creation reads it: a change needs a restart, as every nats key.
  CHECK_FALSE(cdc::reloadable("nats.stream_replicas"));
}

TEST_CASE("security keys: pairs are validated, secret files are read, URLs are redacted", "[config][security]") {
  CHECK(load_error("nats:\n  tls_cert: /c.pem\n").what == "nats.tls_key: must be set with nats.tls_cert");
  CHECK(load_error("nats:\n  tls_key: /k.pem\n").what == "nats.tls_cert: must be set with nats.tls_key");
  CHECK(load_error("nats:\n  user: u\n").key == "nats.password");
  CHECK(load_error("", {"DAISI_CDC_NATS_PASSWORD=s3cret"}).key == "nats.user");
  CHECK(load_error("nats:\n  nkey_seed_file: /s\n").key == "nats.nkey");
  CHECK(load_error("redis:\n  username: u\n").key == "redis.password");

  const std::string secret = temp_file("hunter2\n");
  Config c = cdc::load_config_text(
      "nats:\n  user: u\n  password_file: " + secret + "\nredis:\n  password_file: " + secret + "\n", {});
  CHECK(c.nats.password.empty());
  cdc::resolve_secrets(c);
  CHECK(c.nats.password == "hunter2");
  CHECK(c.redis.password == "hunter2");

  Config both = cdc::load_config_text("nats:\n  user: u\n  password: x\n  password_file: " + secret + "\n", {});
  Outcome e = outcome_of([&] { cdc::resolve_secrets(both); });
  CHECK(e.key == "nats.password_file");
  CHECK(e.what.find("hunter2") == std::string::npos);
  Config two = cdc::load_config_text("nats:\n  user: u\n  password: x\n  token: t\n", {});
  CHECK(outcome_of([&] { cdc::resolve_secrets(two); }).key == "nats.creds_file");
  Config missing = cdc::load_config_text("nats:\n  tls_ca: /nonexistent/ca.pem\n", {});
  e = outcome_of([&] { cdc::resolve_secrets(missing); });
  CHECK(e.what == "nats.tls_ca: cannot read /nonexistent/ca.pem: No such file or directory");
  std::remove(secret.c_str());

  CHECK(cdc::redact_url("nats://u:pw@h1:4222,tls://h2:4443") == "nats://***@h1:4222,tls://h2:4443");
  CHECK(cdc::redact_url("nats://token@h:4222/x@y") == "nats://***@h:4222/x@y");
  CHECK(cdc::redact_url("nats://h:4222") == "nats://h:4222");
  CHECK(load_error("nats:\n  url: 'nats://u:pw@h:4222,http://x'\n").what.find("pw") == std::string::npos);
}

namespace {

/// A temp file holding `text`, removed on destruction.
struct TempYaml {
  std::string path;
  explicit TempYaml(const std::string& text) {
    char name[] = "/tmp/cdc-check-config-XXXXXX";
    const int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    close(fd);
    path = name;
  }
  ~TempYaml() { std::remove(path.c_str()); }
};

std::vector<std::string> keys_of(const std::vector<ConfigError>& errors) {
  std::vector<std::string> keys;
  for (const auto& e : errors) keys.push_back(e.key());
  return keys;
}

}  // namespace

TEST_CASE("check_config reports every error at once, from the file, the environment and the rules", "[config][check]") {
  const TempYaml file(
      "nats:\n  conect_timeout: 5s\n"  // unknown key (typo)
      "ingest:\n  ack_wait: soon\n"    // not a duration
      "  tables: [messages]\n  key_columns: {messages: id}\n"
      "pipeline:\n  ring_capacity: 1000\n"  // not a power of two
      "publish:\n  duplicate_window: 1m\n"  // shorter than dedup.ttl
      "bogus_section:\n  x: 1\n");          // unknown section
  Config out;
  const auto errors = cdc::check_config(file.path, {"DAISI_CDC_LOG_LEVL=debug", "REDIS_ADDRESS=nohostport"}, out);
  const auto keys = keys_of(errors);
  INFO([&] {
    std::string s;
    for (const auto& e : errors) s += std::string(e.what()) + "\n";
    return s;
  }());
  const auto has = [&](const std::string& k) { return std::find(keys.begin(), keys.end(), k) != keys.end(); };
  CHECK(has("nats.conect_timeout"));
  CHECK(has("ingest.ack_wait"));
  CHECK(has("pipeline.ring_capacity"));
  CHECK(has("publish.duplicate_window"));
  CHECK(has("bogus_section"));
  CHECK(has("DAISI_CDC_LOG_LEVL"));
  CHECK(has("REDIS_ADDRESS"));        // named as the variable that set it
  CHECK(has("publish.max_pending"));  // over the (invalid) ring_capacity of 1000: reported too
  CHECK(errors.size() == 8);
  // The same file through load_config stops at the first.
  CHECK_THROWS_AS(cdc::load_config(file.path, {}), ConfigError);
  // The valid keys took effect in `out`.
  CHECK(out.ingest.tables == std::vector<std::string>{"messages"});
}

TEST_CASE("check_config on a valid file, on defaults, and on unreadable files and secrets", "[config][check]") {
  Config out;
  CHECK(cdc::check_config(kSourceDir + "/config.yaml", {}, out).empty());
  CHECK(cdc::check_config("", {}, out).empty());
  auto errors = cdc::check_config("/nonexistent/config.yaml", {}, out);
  REQUIRE(errors.size() == 1);
  CHECK(std::string(errors[0].what()).find("cannot read /nonexistent/config.yaml: No such file or directory") !=
        std::string::npos);
  // YAML syntax: one error with the position.
  const TempYaml broken("nats: [unclosed\n");
  errors = cdc::check_config(broken.path, {}, out);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].key() == "config");
  // Secret files are checked too, each one.
  errors = cdc::check_config(
      "", {"DAISI_CDC_NATS_TLS_CA=/nonexistent/ca.pem", "DAISI_CDC_REDIS_PASSWORD_FILE=/nonexistent/pw"}, out);
  CHECK(keys_of(errors) == std::vector<std::string>{"nats.tls_ca", "redis.password_file"});
}

TEST_CASE("config_to_yaml prints every key in a form the loader reads back, secrets redacted", "[config][print]") {
  const Config c = cdc::load_config(kSourceDir + "/config.yaml", {"DAISI_CDC_INGEST_TABLES=messages,chats",
                                                                  "DAISI_CDC_NATS_SEND_ASAP=true", "JS_ACK_WAIT=45s"});
  const std::string yaml = cdc::config_to_yaml(c);
  INFO(yaml);
  const Config back = cdc::load_config_text(yaml, {});
  CHECK(cdc::changed_keys(c, back).empty());
  CHECK(back.ingest.ack_wait == Millis{45000});
  CHECK(back.ingest.tables == std::vector<std::string>{"messages", "chats"});
  CHECK(yaml.find("ack_wait: 45s") != std::string::npos);

  const Config secret = cdc::load_config_text(
      "nats:\n  url: nats://alice:s3cr3t-pw@nats.example:4222\n  user: alice\n  password: hunter2-pw\n"
      "redis:\n  username: bob\n  password: redis-pw-42\n",
      {"DAISI_CDC_NATS_TOKEN_FILE=/run/secrets/token"});
  const std::string printed = cdc::config_to_yaml(secret);
  INFO(printed);
  for (const char* s : {"s3cr3t-pw", "hunter2-pw", "redis-pw-42"}) CHECK(printed.find(s) == std::string::npos);
  CHECK(printed.find("<redacted>") != std::string::npos);
  CHECK(printed.find("nats://***@nats.example:4222") != std::string::npos);
  CHECK(printed.find("user: alice") != std::string::npos);
  CHECK(printed.find("/run/secrets/token") != std::string::npos);  // a path, not the secret
  // Unset secrets stay empty rather than looking set.
  CHECK(cdc::config_to_yaml(Config{}).find("<redacted>") == std::string::npos);
}

TEST_CASE("pipeline.threads: groups from YAML and from DAISI_CDC_PIPELINE_THREADS, empty by default",
          "[config][threads]") {
  using Groups = std::vector<std::vector<std::string>>;
  CHECK(Config{}.pipeline.threads.empty());
  CHECK(cdc::load_config_text("pipeline:\n  threads: []\n", {}).pipeline.threads.empty());
  CHECK(cdc::load_config_text("pipeline:\n  threads:\n", {}).pipeline.threads.empty());
  CHECK(cdc::load_config_text("", {"DAISI_CDC_PIPELINE_THREADS="}).pipeline.threads.empty());
  CHECK(cdc::load_config_text("pipeline:\n  threads: [[ingest, parse, dedup, publish, ack]]\n", {}).pipeline.threads ==
        Groups{{"ingest", "parse", "dedup", "publish", "ack"}});
  CHECK(cdc::load_config_text("pipeline:\n  threads:\n    - [ingest]\n    - [parse, dedup]\n    - [publish, ack]\n", {})
            .pipeline.threads == Groups{{"ingest"}, {"parse", "dedup"}, {"publish", "ack"}});
  // The environment wins over the file; blanks around names are dropped.
  CHECK(cdc::load_config_text("pipeline:\n  threads: [[ingest, parse, dedup, publish, ack]]\n",
                              {"DAISI_CDC_PIPELINE_THREADS= ingest , parse / dedup,publish,ack "})
            .pipeline.threads == Groups{{"ingest", "parse"}, {"dedup", "publish", "ack"}});
  CHECK(cdc::load_config_text("", {"DAISI_CDC_PIPELINE_THREADS=ingest/parse/dedup/publish/ack"}).pipeline.threads ==
        Groups{{"ingest"}, {"parse"}, {"dedup"}, {"publish"}, {"ack"}});
}

TEST_CASE("pipeline.threads: every stage once, in pipeline order, no empty group, one CPU per thread",
          "[config][threads]") {
  struct Case {
    std::string yaml;
    std::string what;  ///< expected what(), or "" for a configuration that must load
  };
  const std::string all = "stages are ingest, parse, dedup, publish, ack";
  const std::vector<Case> cases = {
      {"threads: [[ingest, parse], [dedup, publish, ack]]", ""},
      {"threads: [[ingest, parse, dedup, publish, ack]]", ""},
      {"threads: [[ingest], [parse], [dedup], [publish], [ack]]", ""},
      {"threads: [[ingest, parse], [dedup, publish, ak]]",
       "pipeline.threads: unknown stage 'ak' (did you mean 'ack'?); " + all},
      {"threads: [[ingest, parse], [dedup, publish, ack, render]]", "pipeline.threads: unknown stage 'render'; " + all},
      {"threads: [[ingest, parse], [parse, dedup, publish, ack]]",
       "pipeline.threads: stage 'parse' is listed twice: each stage runs on exactly one thread"},
      {"threads: [[ingest, parse], [dedup, publish]]",
       "pipeline.threads: missing stage 'ack': when pipeline.threads is set, every stage (ingest, parse, dedup, "
       "publish, ack) appears exactly once"},
      {"threads: [[ingest, parse], [], [dedup, publish, ack]]",
       "pipeline.threads: group 2 is empty: each thread runs at least one stage"},
      {"threads: [[parse, ingest], [dedup, publish, ack]]",
       "pipeline.threads: list the stages in pipeline order (ingest, parse, dedup, publish, ack), got [[parse, "
       "ingest], [dedup, publish, ack]]"},
      {"threads: [[ingest, parse, ack], [dedup, publish]]",
       "pipeline.threads: list the stages in pipeline order (ingest, parse, dedup, publish, ack), got [[ingest, "
       "parse, ack], [dedup, publish]]"},
      // CPUs: -1 mixes with N, two different CPUs on one thread do not.
      {"cpu: {ingest: 1}\n  threads: [[ingest, parse], [dedup, publish, ack]]", ""},
      {"cpu: {ingest: 1, parse: 1, dedup: 0}\n  threads: [[ingest, parse], [dedup, publish, ack]]", ""},
      {"cpu: {ingest: 1, parse: 0}\n  threads: [[ingest], [parse], [dedup], [publish], [ack]]", ""},
      {"cpu: {dedup: 0, ack: 1}\n  threads: [[ingest, parse], [dedup, publish, ack]]",
       "pipeline.threads: stages 'dedup' and 'ack' share a thread but pipeline.cpu pins them to different CPUs (0 "
       "and 1); give them the same CPU, or -1"},
      // Type errors.
      {"threads: ingest", "pipeline.threads: expected a list of lists, got 'ingest'"},
      {"threads: [ingest, parse]", "pipeline.threads: expected a list of lists, got an element that is 'ingest'"},
      {"threads: [[ingest, [parse]]]", "pipeline.threads: expected lists of names, got an element that is a list"},
  };
  for (const auto& c : cases) {
    INFO(c.yaml);
    const Outcome e = load_error("pipeline:\n  " + c.yaml + "\n");
    CHECK(e.what == (c.what.empty() ? "<no error>" : c.what));
  }
  // From the environment: errors name the variable.
  CHECK(load_error("", {"DAISI_CDC_PIPELINE_THREADS=ingest,parse//dedup,publish,ack"}).what ==
        "DAISI_CDC_PIPELINE_THREADS: empty name in group 2 of 'ingest,parse//dedup,publish,ack' (groups are "
        "separated by '/', names by ',')");
  CHECK(load_error("", {"DAISI_CDC_PIPELINE_THREADS=ingest,,parse/dedup,publish,ack"}).key ==
        "DAISI_CDC_PIPELINE_THREADS");
  CHECK(load_error("", {"DAISI_CDC_PIPELINE_THREADS=ingest,parse/dedup,publish"}).what ==
        "DAISI_CDC_PIPELINE_THREADS: missing stage 'ack': when pipeline.threads is set, every stage (ingest, parse, "
        "dedup, publish, ack) appears exactly once");
  // validate() on a Config built in code applies the same rules.
  CHECK(validate_error([](Config& c) {
          c.pipeline.threads = {{"ingest", "parse", "dedup", "publish"}};
        }).key == "pipeline.threads");
  CHECK(validate_error([](Config& c) {
          c.pipeline.threads = {{"ingest", "parse"}, {"dedup", "publish", "ack"}};
        }).what == "<no error>");
}

TEST_CASE("pipeline.threads needs a restart, and --print-config reads back", "[config][threads][reload]") {
  CHECK_FALSE(cdc::reloadable("pipeline.threads"));
  const Config running;
  const Config next = cdc::load_config_text("pipeline:\n  threads: [[ingest, parse], [dedup, publish, ack]]\n", {});
  const cdc::ReloadPlan plan = cdc::plan_reload(running, next);
  CHECK(plan.apply.empty());
  CHECK(plan.restart == std::vector<std::string>{"pipeline.threads"});
  CHECK(plan.result.pipeline.threads.empty());  // the running layout stays until a restart

  for (const Config& c : {running, next}) {
    const std::string yaml = cdc::config_to_yaml(c);
    INFO(yaml);
    CHECK(cdc::load_config_text(yaml, {}).pipeline.threads == c.pipeline.threads);
  }
  CHECK(cdc::config_to_yaml(running).find("threads: []") != std::string::npos);
}

TEST_CASE("daisi-dlq-worker's sections are read by the service's parsers and loader", "[config][dlq_worker]") {
  const auto error_of = [](const std::string& yaml, const std::vector<std::string>& env = {}) {
    try {
      (void)cdc::load_dlq_worker_config_text(yaml, env);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  // The service's messages: did-you-mean suggestions, ranges, types, positions of syntax errors.
  CHECK(error_of("dlq_worker:\n  max_attemps: 3\n") ==
        "dlq_worker.max_attemps: unknown key (did you mean 'max_attempts'?)");
  CHECK(error_of("", {"DAISI_CDC_POSTGRES_BATCHSIZE=3"}) ==
        "DAISI_CDC_POSTGRES_BATCHSIZE: unknown variable: no configuration key has this name (did you mean "
        "'DAISI_CDC_POSTGRES_BATCH_SIZE'?)");
  CHECK(error_of("postgres:\n  batch_size: 0\n") == "postgres.batch_size: expected an integer 1-100000, got '0'");
  CHECK(error_of("dlq_worker:\n  metrics_port: [1]\n") ==
        "dlq_worker.metrics_port: expected an integer 0-65535, got a list");
  CHECK(error_of("dlq_worker:\n  backoff_base: 90\n") ==
        "dlq_worker.backoff_base: duration needs a unit (ms, s, m, h), got '90'");
  CHECK(error_of("dlq_worker:\n  consumer: [a\n").rfind("config: <text>:", 0) == 0);
  CHECK(error_of("dlq_worker:\n  max_attempts: 3\n  max_attempts: 4\n") == "dlq_worker.max_attempts: duplicate key");
  // Lists as everywhere: YAML sequences, or comma-separated from the environment.
  CHECK(cdc::load_dlq_worker_config_text("", {"DAISI_CDC_DLQ_WORKER_RETRY_KINDS= max_deliveries "})
            .dlq_worker.retry_kinds == std::vector<std::string>{"max_deliveries"});
  CHECK(cdc::load_dlq_worker_config_text("dlq_worker:\n  retry_kinds: []\n", {}).dlq_worker.retry_kinds.empty());
}
