// The dead-letter worker's sections of config.yaml (docs/configuration.md, "dlq_worker" and
// "postgres"). Same rules as the service's loader: unknown keys are errors naming the key,
// environment variables DAISI_CDC_<SECTION>_<KEY> override the file, lists from the
// environment are comma-separated.

#include "cdc/core/dlq_worker_config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <set>

namespace cdc {
namespace {

constexpr std::string_view kWorkerPrefix = "DAISI_CDC_DLQ_WORKER_";
constexpr std::string_view kPostgresPrefix = "DAISI_CDC_POSTGRES_";

/// Error kinds of CONTRACT.md section 6 (retry_kinds may only name these).
constexpr std::string_view kKinds[] = {"invalid_json",  "invalid_shape",  "missing_field",
                                       "invalid_token", "table_mismatch", "invalid_subject",
                                       "oversized",     "max_deliveries", "publish_rejected"};

std::string trimmed(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return std::string(s);
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

/// One value: a YAML node (from the file) or an environment string.
struct Raw {
  const YAML::Node* node = nullptr;
  std::string env;
  std::string name;  ///< "section.key" or the variable name
};

std::string scalar(const Raw& v, const char* expected) {
  if (v.node == nullptr) return trimmed(v.env);
  if (!v.node->IsScalar()) throw ConfigError(v.name, std::string("expected ") + expected);
  return trimmed(v.node->Scalar());
}

int to_int(const Raw& v, long long min, long long max) {
  const std::string text = scalar(v, "an integer");
  long long n = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    throw ConfigError(v.name, "expected an integer, got '" + text + "'");
  }
  if (n < min || n > max) {
    throw ConfigError(v.name, "must be " + std::to_string(min) + "-" + std::to_string(max) + ", got " + text);
  }
  return static_cast<int>(n);
}

Millis to_duration(const Raw& v) { return parse_duration(v.name, scalar(v, "a duration like 500ms, 30s, 5m or 1h")); }

std::string to_text(const Raw& v) { return scalar(v, "a string"); }

std::vector<std::string> to_list(const Raw& v) {
  std::vector<std::string> out;
  if (v.node != nullptr && v.node->IsSequence()) {
    for (const auto& item : *v.node) {
      if (!item.IsScalar()) throw ConfigError(v.name, "expected a list of strings");
      out.push_back(trimmed(item.Scalar()));
    }
    return out;
  }
  if (v.node != nullptr && v.node->IsNull()) return out;
  const std::string text = scalar(v, "a list");
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    std::string item =
        trimmed(std::string_view(text).substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (!item.empty()) out.push_back(std::move(item));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

struct Key {
  std::string_view section;
  std::string_view key;
  std::function<void(DlqWorkerSettings&, const Raw&)> set;
};

const std::vector<Key>& keys() {
  static const std::vector<Key> table = {
      {"dlq_worker", "consumer", [](auto& s, const Raw& v) { s.dlq_worker.consumer = to_text(v); }},
      {"dlq_worker", "retry_kinds", [](auto& s, const Raw& v) { s.dlq_worker.retry_kinds = to_list(v); }},
      {"dlq_worker", "max_attempts", [](auto& s, const Raw& v) { s.dlq_worker.max_attempts = to_int(v, 0, 1000); }},
      {"dlq_worker", "backoff_base", [](auto& s, const Raw& v) { s.dlq_worker.backoff_base = to_duration(v); }},
      {"dlq_worker", "backoff_max", [](auto& s, const Raw& v) { s.dlq_worker.backoff_max = to_duration(v); }},
      {"dlq_worker", "ack_wait", [](auto& s, const Raw& v) { s.dlq_worker.ack_wait = to_duration(v); }},
      {"dlq_worker", "max_ack_pending",
       [](auto& s, const Raw& v) { s.dlq_worker.max_ack_pending = to_int(v, 1, 10000000); }},
      {"dlq_worker", "fetch_batch", [](auto& s, const Raw& v) { s.dlq_worker.fetch_batch = to_int(v, 1, 10000); }},
      {"dlq_worker", "fetch_expires", [](auto& s, const Raw& v) { s.dlq_worker.fetch_expires = to_duration(v); }},
      {"dlq_worker", "publish_timeout", [](auto& s, const Raw& v) { s.dlq_worker.publish_timeout = to_duration(v); }},
      {"dlq_worker", "retry_delay", [](auto& s, const Raw& v) { s.dlq_worker.retry_delay = to_duration(v); }},
      {"dlq_worker", "backlog_interval", [](auto& s, const Raw& v) { s.dlq_worker.backlog_interval = to_duration(v); }},
      {"dlq_worker", "metrics_bind", [](auto& s, const Raw& v) { s.dlq_worker.metrics_bind = to_text(v); }},
      {"dlq_worker", "metrics_port", [](auto& s, const Raw& v) { s.dlq_worker.metrics_port = to_int(v, 0, 65535); }},
      {"postgres", "conninfo", [](auto& s, const Raw& v) { s.postgres.conninfo = to_text(v); }},
      {"postgres", "batch_size", [](auto& s, const Raw& v) { s.postgres.batch_size = to_int(v, 1, 100000); }},
      {"postgres", "flush_interval", [](auto& s, const Raw& v) { s.postgres.flush_interval = to_duration(v); }},
      {"postgres", "connect_timeout", [](auto& s, const Raw& v) { s.postgres.connect_timeout = to_duration(v); }},
      {"postgres", "reconnect_backoff_max",
       [](auto& s, const Raw& v) { s.postgres.reconnect_backoff_max = to_duration(v); }},
  };
  return table;
}

const Key* find_key(std::string_view section, std::string_view key) {
  for (const auto& k : keys()) {
    if (k.section == section && k.key == key) return &k;
  }
  return nullptr;
}

std::string env_name(const Key& k) { return "DAISI_CDC_" + upper(k.section) + "_" + upper(k.key); }

void apply_yaml(DlqWorkerSettings& s, const YAML::Node& root) {
  if (!root.IsMap()) return;  // the service's loader reports the shape of the file
  for (const auto& entry : root) {
    if (!entry.first.IsScalar()) continue;
    const std::string section = entry.first.Scalar();
    if (!is_dlq_worker_section(section)) continue;
    const YAML::Node& body = entry.second;
    if (body.IsNull()) continue;
    if (!body.IsMap()) throw ConfigError(section, "expected a map of keys");
    std::set<std::string> seen;
    for (const auto& kv : body) {
      const std::string key = kv.first.Scalar();
      const std::string name = section + "." + key;
      const Key* k = find_key(section, key);
      if (k == nullptr) {
        std::string known;
        for (const auto& candidate : keys()) {
          if (candidate.section == section) known += (known.empty() ? "" : ", ") + std::string(candidate.key);
        }
        throw ConfigError(name, "unknown key; keys of " + section + " are " + known);
      }
      if (!seen.insert(key).second) throw ConfigError(name, "duplicate key");
      const YAML::Node node = kv.second;
      k->set(s, Raw{&node, {}, name});
    }
  }
}

void apply_env(DlqWorkerSettings& s, const std::vector<std::string>& env) {
  std::map<std::string, std::string> vars;  // first occurrence wins, as with getenv()
  for (const auto& entry : env) {
    const auto eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    vars.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  for (const auto& [name, value] : vars) {
    if (!is_dlq_worker_variable(name)) continue;
    const Key* found = nullptr;
    for (const auto& k : keys()) {
      if (env_name(k) == name) found = &k;
    }
    if (found == nullptr) throw ConfigError(name, "unknown variable: no configuration key has this name");
    found->set(s, Raw{nullptr, value, name});
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
  if (trimmed(p.conninfo).empty()) throw ConfigError("postgres.conninfo", "must not be empty");
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
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError("config", origin + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  apply_yaml(s, root);
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
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) throw ConfigError("config", "cannot read " + path + ": " + std::strerror(errno));
  std::string text;
  char buf[8192];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, file)) > 0) text.append(buf, n);
  std::fclose(file);
  return load(text, path, env);
}

}  // namespace cdc
