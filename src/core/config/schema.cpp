#include "schema.hpp"

namespace cdc::config_detail {
namespace {

// The YAML form of a value (--print-config): what the loader reads back.
template <typename T>
const T& yaml_value(const T& v) {
  return v;
}
std::string yaml_value(Millis d) { return format_duration(d); }
std::string yaml_value(IngestMode m) { return m == IngestMode::kPush ? "push" : "pull"; }
std::string yaml_value(RedisErrorPolicy p) { return p == RedisErrorPolicy::kPublish ? "publish" : "block"; }
std::string yaml_value(WriteMode m) { return std::string(to_string(m)); }
std::string yaml_value(DedupBatchMode m) {
  return m == DedupBatchMode::kAuto ? "auto" : m == DedupBatchMode::kFunction ? "function" : "pipeline";
}
std::string yaml_value(WaitStrategyKind k) { return std::string(to_string(k)); }
YAML::Node yaml_value(const std::vector<std::vector<std::string>>& groups) {
  YAML::Node node(groups);
  node.SetStyle(YAML::EmitterStyle::Flow);  // [[ingest, parse], [dedup, publish, ack]], as documented
  return node;
}

}  // namespace

// A key kept for configurations written before `write_mode`: it sets write_mode
// (true = asap, false = flusher) and is neither printed nor compared (write_mode is).
#define CDC_SEND_ASAP_ALIAS(SECTION)                                                                                                 \
  Field {                                                                                                                            \
#SECTION, "send_asap",                                                                                                           \
        [](Config & c,                                                                                                               \
           const Value&                                                                                                              \
               v) { assign_send_asap(c.SECTION.write_mode, v); },                                                                    \
                                                               [](const Config&,                                                     \
                                                                  const Config&) { return true; },                                   \
                                                                                                [](Config&,                          \
                                                                                                   const Config&) {},                \
                                                                                                                   [](const Config&, \
                                                                                                                      YAML::         \
                                                                                                                          Node&) {}  \
  }

#define CDC_FIELD(SECTION, KEY, ...)                                                        \
  Field {                                                                                   \
#SECTION, #KEY,                                                                           \
        [](Config& c, const Value& v) { assign(c.SECTION.KEY, v __VA_OPT__(, ) __VA_ARGS__); }, \
        [](const Config& a, const Config& b) { return a.SECTION.KEY == b.SECTION.KEY; },      \
        [](Config& to, const Config& from) { to.SECTION.KEY = from.SECTION.KEY; },            \
        [](const Config& c, YAML::Node& n) { n[#SECTION][#KEY] = yaml_value(c.SECTION.KEY); } \
  }

const std::vector<Field>& fields() {
  static const std::vector<Field> table = {
      CDC_FIELD(nats, url),
      CDC_FIELD(nats, name),
      CDC_FIELD(nats, connect_timeout),
      CDC_FIELD(nats, reconnect_wait),
      CDC_FIELD(nats, max_reconnect, kMinusOneOrMore),
      CDC_FIELD(nats, write_mode),
      CDC_SEND_ASAP_ALIAS(nats),
      CDC_FIELD(nats, stream_replicas, kStreamReplicas),
      CDC_FIELD(nats, io_buffer_size, kIoBufferRange),
      CDC_FIELD(nats, tls_ca),
      CDC_FIELD(nats, tls_cert),
      CDC_FIELD(nats, tls_key),
      CDC_FIELD(nats, creds_file),
      CDC_FIELD(nats, nkey),
      CDC_FIELD(nats, nkey_seed_file),
      CDC_FIELD(nats, user),
      CDC_FIELD(nats, password),
      CDC_FIELD(nats, password_file),
      CDC_FIELD(nats, token),
      CDC_FIELD(nats, token_file),

      CDC_FIELD(ingest, stream),
      CDC_FIELD(ingest, stream_subjects),
      CDC_FIELD(ingest, consumer),
      CDC_FIELD(ingest, subject_layout),
      CDC_FIELD(ingest, company_prefix),
      CDC_FIELD(ingest, filter_subject),
      CDC_FIELD(ingest, mode),
      CDC_FIELD(ingest, queue_group),
      CDC_FIELD(ingest, partitions, kPartitions),
      CDC_FIELD(ingest, lease_bucket),
      CDC_FIELD(ingest, lease_ttl),
      CDC_FIELD(ingest, replica_id),
      CDC_FIELD(ingest, checkpoint_interval),
      CDC_FIELD(ingest, ack_wait),
      CDC_FIELD(ingest, max_ack_pending, kPositive),
      CDC_FIELD(ingest, max_deliver, kMinusOneOrMore),
      CDC_FIELD(ingest, fetch_batch, kPositive),
      CDC_FIELD(ingest, fetch_expires),
      CDC_FIELD(ingest, create_streams),
      CDC_FIELD(ingest, tables),
      CDC_FIELD(ingest, key_columns),
      CDC_FIELD(ingest, max_message_bytes, ByteSize{}),

      CDC_FIELD(publish, stream),
      CDC_FIELD(publish, subject_prefix),
      CDC_FIELD(publish, duplicate_window),
      CDC_FIELD(publish, dlq_stream),
      CDC_FIELD(publish, dlq_subject_prefix),
      CDC_FIELD(publish, max_pending, kMaxPendingRange),
      CDC_FIELD(publish, write_mode),
      CDC_SEND_ASAP_ALIAS(publish),
      CDC_FIELD(publish, batching_threshold, kPositive),
      CDC_FIELD(publish, ack_timeout),
      CDC_FIELD(publish, max_retries, kNonNegative),
      CDC_FIELD(publish, retry_backoff),
      CDC_FIELD(publish, retry_backoff_max),
      CDC_FIELD(publish, nak_delay),

      CDC_FIELD(dedup, enabled),
      CDC_FIELD(dedup, key_prefix),
      CDC_FIELD(dedup, ttl),
      CDC_FIELD(dedup, pending_ttl),
      CDC_FIELD(dedup, on_redis_error),
      CDC_FIELD(dedup, batch),

      CDC_FIELD(redis, address),
      CDC_FIELD(redis, db, kNonNegative),
      CDC_FIELD(redis, connect_timeout),
      CDC_FIELD(redis, command_timeout),
      CDC_FIELD(redis, reconnect_backoff),
      CDC_FIELD(redis, reconnect_backoff_max),
      CDC_FIELD(redis, username),
      CDC_FIELD(redis, password),
      CDC_FIELD(redis, password_file),

      CDC_FIELD(pipeline, ring_capacity, kRingRange),
      CDC_FIELD(pipeline, batch_size, kPositive),
      CDC_FIELD(pipeline, wait_strategy),
      CDC_FIELD(pipeline, drain_timeout),
      CDC_FIELD(pipeline, cpu, kCpuRange),
      CDC_FIELD(pipeline, threads),

      CDC_FIELD(metrics, enabled),
      CDC_FIELD(metrics, bind),
      CDC_FIELD(metrics, port, kPortRange),
      CDC_FIELD(metrics, backlog_interval),

      CDC_FIELD(health, stall_timeout),

      CDC_FIELD(guard, max_failure_duration),

      CDC_FIELD(log, level, LogLevel{}),
  };
  return table;
}

#undef CDC_FIELD
#undef CDC_SEND_ASAP_ALIAS

std::string dotted(const Field& f) { return std::string(f.section) + "." + std::string(f.key); }

std::string env_name(const Field& f) { return std::string(kEnvPrefix) + upper(f.section) + "_" + upper(f.key); }

const Field* find_field(std::string_view section, std::string_view key) {
  for (const auto& f : fields()) {
    if (f.section == section && f.key == key) return &f;
  }
  return nullptr;
}

std::vector<std::string> section_names() {
  std::vector<std::string> out;
  for (const auto& f : fields()) {
    if (out.empty() || out.back() != f.section) out.emplace_back(f.section);
  }
  return out;
}

constexpr ShortName kShortNames[] = {
    {"NATS_URL", "nats", "url"},           {"REDIS_ADDRESS", "redis", "address"},       {"DEDUP_TTL", "dedup", "ttl"},
    {"JS_ACK_WAIT", "ingest", "ack_wait"}, {"JS_MAX_DELIVER", "ingest", "max_deliver"}, {"LOG_LEVEL", "log", "level"},
};

std::span<const ShortName> short_names() noexcept { return kShortNames; }

const std::vector<std::string>& stage_names() {
  static const std::vector<std::string> kStages = {"ingest", "parse", "dedup", "publish", "ack"};
  return kStages;
}

}  // namespace cdc::config_detail
