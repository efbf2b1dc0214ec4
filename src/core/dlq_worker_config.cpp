// The dead-letter worker's sections of config.yaml (docs/configuration.md, "dlq_worker" and
// "postgres"). The service's loading machinery (config/load.hpp, config/values.hpp), so the same
// rules: unknown keys are errors naming the key, environment variables
// DAISI_CDC_<SECTION>_<KEY> override the file, lists from the environment are comma-separated.

#include "cdc/core/dlq_worker_config.hpp"

#include <algorithm>

#include "config/load.hpp"

namespace cdc {
namespace {

constexpr std::string_view kWorkerPrefix = "DAISI_CDC_DLQ_WORKER_";
constexpr std::string_view kPostgresPrefix = "DAISI_CDC_POSTGRES_";

/// Error kinds of CONTRACT.md section 6 (retry_kinds may only name these).
constexpr std::string_view kKinds[] = {"invalid_json",  "invalid_shape",  "missing_field",
                                       "invalid_token", "table_mismatch", "invalid_subject",
                                       "oversized",     "max_deliveries", "publish_rejected"};

using config_detail::Value;

struct Key {
  std::string_view section;
  std::string_view key;
  void (*set)(DlqWorkerSettings&, const Value&);
};

// The same parsers as the service's keys (config/values.hpp), picked by the member's type.
#define CDC_WORKER_KEY(SECTION, KEY, ...)                                                                              \
  Key {                                                                                                                \
#SECTION, #KEY, [](DlqWorkerSettings & s, const Value& v) { assign(s.SECTION.KEY, v __VA_OPT__(, ) __VA_ARGS__); } \
  }

const std::vector<Key>& keys() {
  using config_detail::IntRange;
  static const std::vector<Key> table = {
      CDC_WORKER_KEY(dlq_worker, consumer),
      CDC_WORKER_KEY(dlq_worker, retry_kinds),
      CDC_WORKER_KEY(dlq_worker, max_attempts, IntRange{0, 1000}),
      CDC_WORKER_KEY(dlq_worker, backoff_base),
      CDC_WORKER_KEY(dlq_worker, backoff_max),
      CDC_WORKER_KEY(dlq_worker, ack_wait),
      CDC_WORKER_KEY(dlq_worker, max_ack_pending, IntRange{1, 10000000}),
      CDC_WORKER_KEY(dlq_worker, fetch_batch, IntRange{1, 10000}),
      CDC_WORKER_KEY(dlq_worker, fetch_expires),
      CDC_WORKER_KEY(dlq_worker, publish_timeout),
      CDC_WORKER_KEY(dlq_worker, retry_delay),
      CDC_WORKER_KEY(dlq_worker, backlog_interval),
      CDC_WORKER_KEY(dlq_worker, metrics_bind),
      CDC_WORKER_KEY(dlq_worker, metrics_port, IntRange{0, 65535}),
      CDC_WORKER_KEY(postgres, conninfo),
      CDC_WORKER_KEY(postgres, batch_size, IntRange{1, 100000}),
      CDC_WORKER_KEY(postgres, flush_interval),
      CDC_WORKER_KEY(postgres, connect_timeout),
      CDC_WORKER_KEY(postgres, reconnect_backoff_max),
  };
  return table;
}

#undef CDC_WORKER_KEY

std::string env_name(const Key& k) {
  return "DAISI_CDC_" + config_detail::upper(k.section) + "_" + config_detail::upper(k.key);
}

void apply_yaml(DlqWorkerSettings& s, const YAML::Node& root) {
  if (!root.IsMap()) return;  // the service's loader reports the shape of the file
  for (const auto& entry : root) {
    if (!entry.first.IsScalar()) continue;
    const std::string section = entry.first.Scalar();
    if (!is_dlq_worker_section(section)) continue;
    config_detail::apply_section(s, section, entry.second, keys(), nullptr);
  }
}

void apply_env(DlqWorkerSettings& s, const std::vector<std::string>& env) {
  std::vector<std::string> known;
  for (const auto& k : keys()) known.push_back(env_name(k));
  for (const auto& [name, value] : config_detail::environment_variables(env)) {
    if (!is_dlq_worker_variable(name)) continue;
    const auto it = std::find(known.begin(), known.end(), name);
    if (it == known.end()) {
      throw ConfigError(
          name, "unknown variable: no configuration key has this name" + config_detail::suggestion(name, known));
    }
    keys()[static_cast<std::size_t>(it - known.begin())].set(s, Value{nullptr, value, name});
  }
}

void validate(const DlqWorkerSettings& s) {
  const DlqWorkerConfig& w = s.dlq_worker;
  const auto bad_name = [](const std::string& n) {
    return n.empty() || n.size() > 128 || std::any_of(n.begin(), n.end(), [](char c) {
             const auto u = static_cast<unsigned char>(c);
             return u <= 0x20 || u == 0x7f || c == '.' || c == '*' || c == '>' || c == '/' || c == '\\';
           });
  };
  if (bad_name(w.consumer)) {
    throw ConfigError("dlq_worker.consumer",
                      "must be a non-empty name without '.', '*', '>', '/', '\\', whitespace "
                      "or control characters, got '" +
                          w.consumer + "'");
  }
  for (const auto& kind : w.retry_kinds) {
    if (kind != "max_deliveries" && kind != "publish_rejected") {
      const bool known = std::find(std::begin(kKinds), std::end(kKinds), kind) != std::end(kKinds);
      throw ConfigError(
          "dlq_worker.retry_kinds",
          known ? "'" + kind + "' can never succeed on a retry (only max_deliveries and publish_rejected can)"
                : "unknown error kind '" + kind + "'");
    }
  }
  if (w.backoff_base < Millis{1}) throw ConfigError("dlq_worker.backoff_base", "must be at least 1ms");
  if (w.backoff_max < w.backoff_base) {
    throw ConfigError("dlq_worker.backoff_max", "must be at least dlq_worker.backoff_base");
  }
  if (w.ack_wait < Millis{1000}) throw ConfigError("dlq_worker.ack_wait", "must be at least 1s");
  if (w.fetch_expires < Millis{1}) throw ConfigError("dlq_worker.fetch_expires", "must be at least 1ms");
  if (w.fetch_expires >= w.ack_wait)
    throw ConfigError("dlq_worker.fetch_expires", "must be shorter than dlq_worker.ack_wait");
  if (w.publish_timeout < Millis{1}) throw ConfigError("dlq_worker.publish_timeout", "must be at least 1ms");
  if (w.retry_delay < Millis{1}) throw ConfigError("dlq_worker.retry_delay", "must be at least 1ms");
  if (w.backlog_interval.count() != 0 && w.backlog_interval < Millis{100}) {
    throw ConfigError("dlq_worker.backlog_interval", "must be 0 (off) or at least 100ms");
  }
  if (w.metrics_bind.empty()) throw ConfigError("dlq_worker.metrics_bind", "must not be empty");
  const PostgresConfig& p = s.postgres;
  if (config_detail::trim(p.conninfo).empty()) throw ConfigError("postgres.conninfo", "must not be empty");
  if (p.flush_interval < Millis{1}) throw ConfigError("postgres.flush_interval", "must be at least 1ms");
  // The batch waits unacknowledged: it must be written well within the consumer's AckWait
  // (in-progress signals keep it alive meanwhile, but a flush interval that long is a mistake).
  if (p.flush_interval >= w.ack_wait) {
    throw ConfigError("postgres.flush_interval", "must be shorter than dlq_worker.ack_wait");
  }
  if (p.connect_timeout < Millis{1000})
    throw ConfigError("postgres.connect_timeout", "must be at least 1s (libpq counts seconds)");
  if (p.reconnect_backoff_max < Millis{100})
    throw ConfigError("postgres.reconnect_backoff_max", "must be at least 100ms");
}

DlqWorkerSettings load(const std::string& text, const std::string& origin, const std::vector<std::string>& env) {
  DlqWorkerSettings s;
  apply_yaml(s, config_detail::parse_yaml(text, origin));
  apply_env(s, env);
  validate(s);
  return s;
}

}  // namespace

bool is_dlq_worker_section(std::string_view section) noexcept {
  return section == "dlq_worker" || section == "postgres";
}

bool is_dlq_worker_variable(std::string_view name) noexcept {
  return name.substr(0, kWorkerPrefix.size()) == kWorkerPrefix ||
         name.substr(0, kPostgresPrefix.size()) == kPostgresPrefix;
}

std::string redact_conninfo(std::string_view conninfo) {
  std::string out(conninfo);
  // URI: postgresql://user:secret@host/db
  if (const auto scheme = out.find("://"); scheme != std::string::npos) {
    const auto at = out.find('@', scheme + 3);
    const auto colon = out.find(':', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at)
      out.replace(colon + 1, at - colon - 1, "***");
    for (std::size_t p = out.find("password=", scheme); p != std::string::npos; p = out.find("password=", p + 1)) {
      const auto end = out.find('&', p);
      out.replace(p + 9, (end == std::string::npos ? out.size() : end) - p - 9, "***");
    }
    return out;
  }
  // keyword=value form; the value may be quoted.
  for (std::size_t p = out.find("password"); p != std::string::npos; p = out.find("password", p + 1)) {
    std::size_t v = p + 8;
    while (v < out.size() && out[v] == ' ') ++v;
    if (v >= out.size() || out[v] != '=') continue;
    ++v;
    while (v < out.size() && out[v] == ' ') ++v;
    std::size_t end = v;
    if (end < out.size() && out[end] == '\'') {
      ++end;
      while (end < out.size() && out[end] != '\'') end += out[end] == '\\' ? 2 : 1;
      end = std::min(end + 1, out.size());
    } else {
      while (end < out.size() && out[end] != ' ') ++end;
    }
    out.replace(v, end - v, "***");
  }
  return out;
}

DlqWorkerSettings load_dlq_worker_config_text(const std::string& yaml_text, const std::vector<std::string>& env) {
  return load(yaml_text, "<text>", env);
}

DlqWorkerSettings load_dlq_worker_config(const std::string& path, const std::vector<std::string>& env) {
  if (path.empty()) return load(std::string(), "<defaults>", env);
  return load(config_detail::read_file("config", path), path, env);
}

}  // namespace cdc
