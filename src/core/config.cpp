#include "cdc/core/config.hpp"

#include "cdc/core/subject.hpp"
#include "cdc/core/dlq_worker_config.hpp"

#include <unistd.h>  // environ

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <string_view>
#include <utility>

namespace cdc {
namespace {

__extension__ typedef unsigned __int128 u128;  // exact duration arithmetic; -Wpedantic-clean

constexpr std::string_view kEnvPrefix = "DAISI_CDC_";
constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
constexpr std::size_t kGiB = 1024 * kMiB;

// ---------------------------------------------------------------------------------------------
// Text helpers

std::string_view trim(std::string_view s) noexcept {
  const auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

std::string join(const std::vector<std::string_view>& items, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += sep;
    out += items[i];
  }
  return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

/// " (did you mean 'x'?)" for the closest candidate within two edits, else "".
std::string suggestion(std::string_view wrong, const std::vector<std::string>& candidates) {
  std::size_t best = 3;
  std::string_view pick;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(lower(wrong), lower(c));
    if (d < best) {
      best = d;
      pick = c;
    }
  }
  return pick.empty() ? std::string() : " (did you mean " + quoted(pick) + "?)";
}

std::string format_duration(Millis d) {
  const auto ms = d.count();
  if (ms == 0) return "0";
  if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string format_bytes(std::size_t n) {
  if (n != 0 && n % kMiB == 0) return std::to_string(n / kMiB) + "MiB";
  if (n != 0 && n % kKiB == 0) return std::to_string(n / kKiB) + "KiB";
  return std::to_string(n);
}

/// A subject, wildcards allowed: '.'-separated tokens, '*' a whole token, '>' the whole last one.
bool valid_subject(std::string_view s) noexcept {
  if (s.empty()) return false;
  const auto tokens = split(s, '.');
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const auto t = tokens[i];
    if (t == "*") continue;
    if (t == ">" && i + 1 == tokens.size()) continue;
    if (!is_valid_token(t)) return false;
  }
  return true;
}

/// Stream and durable consumer names: no '.', '*', '>', whitespace, control, or path separators
/// (the server uses stream names as directory names).
bool valid_name(std::string_view s) noexcept {
  return is_valid_token(s) && s.find_first_of("/\\") == std::string_view::npos;
}

bool has_whitespace(std::string_view s) noexcept {
  return std::any_of(s.begin(), s.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
}

std::size_t count_of(std::string_view haystack, std::string_view needle) noexcept {
  std::size_t n = 0;
  for (std::size_t pos = haystack.find(needle); pos != std::string_view::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Values: one YAML node or one environment string, with the name errors should carry.

struct Value {
  const YAML::Node* node;   ///< from config.yaml, or nullptr when from the environment
  std::string_view env;     ///< the environment value when node == nullptr
  const std::string& name;  ///< "section.key" or the variable name
};

[[noreturn]] void fail(const Value& v, const std::string& problem) { throw ConfigError(v.name, problem); }

std::string shape_of(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return quoted(n.Scalar());
  }
}

/// Scalar text of a value, or a type error naming what was expected.
std::string scalar(const Value& v, const std::string& expected) {
  if (v.node == nullptr) return std::string(trim(v.env));
  if (v.node->IsScalar()) return v.node->Scalar();
  fail(v, "expected " + expected + ", got " + shape_of(*v.node));
}

struct IntRange {
  long long min;
  long long max;
  /// "1-65535", ">= 1", "from -1 to 1023"
  [[nodiscard]] std::string bounds() const {
    if (max == INT_MAX) return ">= " + std::to_string(min);
    if (min < 0) return "from " + std::to_string(min) + " to " + std::to_string(max);
    return std::to_string(min) + "-" + std::to_string(max);
  }
  [[nodiscard]] std::string describe() const { return "an integer " + bounds(); }
  [[nodiscard]] bool contains(long long x) const noexcept { return x >= min && x <= max; }
};

constexpr IntRange kPortRange{1, 65535};
constexpr IntRange kCpuRange{-1, 1023};
constexpr IntRange kRingRange{64, 1 << 20};
constexpr IntRange kMaxPendingRange{1, 65535};
constexpr IntRange kPositive{1, INT_MAX};
constexpr IntRange kNonNegative{0, INT_MAX};
constexpr IntRange kMinusOneOrMore{-1, INT_MAX};
constexpr IntRange kStreamReplicas{1, 5};  // JetStream's limit

long long parse_int(const Value& v, std::string_view text, IntRange range) {
  long long x = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, x);
  if (text.empty() || ec != std::errc() || ptr != end || !range.contains(x)) {
    fail(v, "expected " + range.describe() + ", got " + quoted(text));
  }
  return x;
}

struct Choice {
  std::string_view text;
  int value;
};

template <typename E>
E parse_choice(const Value& v, std::initializer_list<Choice> choices) {
  std::vector<std::string_view> names;
  for (const auto& c : choices) names.push_back(c.text);
  const std::string text = scalar(v, "one of " + join(names, ", "));
  const std::string key = lower(text);
  for (const auto& c : choices) {
    if (c.text == key) return static_cast<E>(c.value);
  }
  fail(v, "expected one of " + join(names, ", ") + ", got " + quoted(text));
}

std::vector<std::string> parse_list(const Value& v) {
  std::vector<std::string> out;
  if (v.node == nullptr) {
    const auto text = trim(v.env);
    if (text.empty()) return out;
    for (const auto item : split(text, ',')) {
      const auto t = trim(item);
      if (t.empty()) fail(v, "empty element in comma-separated list " + quoted(v.env));
      out.emplace_back(t);
    }
    return out;
  }
  if (v.node->IsNull()) return out;
  if (!v.node->IsSequence()) fail(v, "expected a list, got " + shape_of(*v.node));
  for (const auto& item : *v.node) {
    if (!item.IsScalar()) fail(v, "expected a list of strings, got an element that is " + shape_of(item));
    out.push_back(item.Scalar());
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_pairs(const Value& v, std::string_view what) {
  std::vector<std::pair<std::string, std::string>> out;
  std::set<std::string> seen;
  const auto add = [&](std::string k, std::string val) {
    if (k.empty()) fail(v, "empty " + std::string(what) + " name");
    if (!seen.insert(k).second) fail(v, "duplicate entry " + quoted(k));
    out.emplace_back(std::move(k), std::move(val));
  };
  if (v.node == nullptr) {
    const auto text = trim(v.env);
    if (text.empty()) return out;
    for (const auto item : split(text, ',')) {
      const auto eq = item.find('=');
      if (eq == std::string_view::npos) {
        fail(v, "expected comma-separated " + std::string(what) + "=value pairs, got " + quoted(trim(item)));
      }
      add(std::string(trim(item.substr(0, eq))), std::string(trim(item.substr(eq + 1))));
    }
    return out;
  }
  if (v.node->IsNull()) return out;
  if (!v.node->IsMap()) fail(v, "expected a map of " + std::string(what) + ": value, got " + shape_of(*v.node));
  for (const auto& kv : *v.node) {
    if (!kv.first.IsScalar() || !kv.second.IsScalar()) {
      fail(v, "expected a map of " + std::string(what) + ": value with plain values");
    }
    add(kv.first.Scalar(), kv.second.Scalar());
  }
  return out;
}

// One assign() per field type; the field table below picks the overload by the member's type.

void assign(std::string& out, const Value& v) {
  if (v.node != nullptr && v.node->IsNull()) {
    out.clear();  // "key:" with nothing after it reads as empty, as operators expect
    return;
  }
  out = scalar(v, "a string");
}

void assign(bool& out, const Value& v) {
  const std::string text = scalar(v, "true or false");
  const std::string t = lower(text);
  if (t == "true" || t == "yes" || t == "on" || t == "1") {
    out = true;
  } else if (t == "false" || t == "no" || t == "off" || t == "0") {
    out = false;
  } else {
    fail(v, "expected true or false, got " + quoted(text));
  }
}

template <typename Int>
requires std::is_integral_v<Int>
void assign(Int& out, const Value& v, IntRange range) {
  out = static_cast<Int>(parse_int(v, scalar(v, range.describe()), range));
}

void assign(Millis& out, const Value& v) {
  out = parse_duration(v.name, scalar(v, "a duration like 500ms, 30s, 5m or 1h"));
}

struct ByteSize {};

void assign(std::size_t& out, const Value& v, ByteSize) {
  const std::string raw = scalar(v, "a byte size like 1048576, 512KiB or 1MiB");
  const std::string_view text = trim(raw);
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])) != 0) ++digits;
  const std::string_view unit = text.substr(digits);
  std::size_t mult = 0;
  if (unit.empty()) mult = 1;
  else if (unit == "KiB") mult = kKiB;
  else if (unit == "MiB") mult = kMiB;
  else if (unit == "GiB") mult = kGiB;
  std::size_t n = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits, n);
  if (digits == 0 || mult == 0 || ec != std::errc() || ptr != text.data() + digits) {
    fail(v, "expected a byte size like 1048576, 512KiB or 1MiB, got " + quoted(raw));
  }
  if (n > std::numeric_limits<std::size_t>::max() / mult) fail(v, "byte size too large, got " + quoted(raw));
  out = n * mult;
}

void assign(std::vector<std::string>& out, const Value& v) { out = parse_list(v); }

/// Maps merge: entries given replace the same entries, the others keep their current value.
void assign(std::map<std::string, std::string>& out, const Value& v) {
  for (auto& [k, val] : parse_pairs(v, "table")) {
    if (val.empty()) fail(v, "empty key column for table " + quoted(k));
    out[k] = std::move(val);
  }
}

void assign(std::map<std::string, int>& out, const Value& v, IntRange range) {
  for (auto& [k, val] : parse_pairs(v, "stage")) {
    long long x = 0;
    const char* end = val.data() + val.size();
    const auto [ptr, ec] = std::from_chars(val.data(), end, x);
    if (val.empty() || ec != std::errc() || ptr != end || !range.contains(x)) {
      fail(v, "stage " + quoted(k) + ": expected " + range.describe() + ", got " + quoted(val));
    }
    out[k] = static_cast<int>(x);
  }
}

void assign(IngestMode& out, const Value& v) {
  out = parse_choice<IngestMode>(
      v, {{"push", static_cast<int>(IngestMode::kPush)}, {"pull", static_cast<int>(IngestMode::kPull)}});
}

void assign(RedisErrorPolicy& out, const Value& v) {
  out = parse_choice<RedisErrorPolicy>(v, {{"publish", static_cast<int>(RedisErrorPolicy::kPublish)},
                                           {"block", static_cast<int>(RedisErrorPolicy::kBlock)}});
}

void assign(WaitStrategyKind& out, const Value& v) {
  const std::string expected = "one of busy_spin, yield, sleep, blocking (or its old name park)";
  const std::string text = scalar(v, expected);
  if (!parse_wait_kind(lower(text), out)) {
    fail(v, "expected " + expected + ", got " + quoted(text));
  }
}

struct LogLevel {};
constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error"};

void assign(std::string& out, const Value& v, LogLevel) {
  const std::string text = scalar(v, "one of trace, debug, info, warn, error");
  const std::string level = lower(text);
  if (std::find(std::begin(kLogLevels), std::end(kLogLevels), level) == std::end(kLogLevels)) {
    fail(v, "expected one of trace, debug, info, warn, error, got " + quoted(text));
  }
  out = level;
}

// ---------------------------------------------------------------------------------------------
// The field table: every key of config.hpp, in declaration order.

// The YAML form of a value (--print-config): what the loader reads back.
template <typename T>
const T& yaml_value(const T& v) {
  return v;
}
std::string yaml_value(Millis d) { return format_duration(d); }
std::string yaml_value(IngestMode m) { return m == IngestMode::kPush ? "push" : "pull"; }
std::string yaml_value(RedisErrorPolicy p) { return p == RedisErrorPolicy::kPublish ? "publish" : "block"; }
std::string yaml_value(WaitStrategyKind k) { return std::string(to_string(k)); }

struct Field {
  std::string_view section;
  std::string_view key;
  void (*set)(Config&, const Value&);
  bool (*same)(const Config&, const Config&);  ///< equal values in both (reload)
  void (*copy)(Config&, const Config&);        ///< takes the value of the second (reload)
  void (*print)(const Config&, YAML::Node&);   ///< adds section: key: value (--print-config)
};

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
      CDC_FIELD(nats, send_asap),
      CDC_FIELD(nats, stream_replicas, kStreamReplicas),
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
      CDC_FIELD(publish, send_asap),
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

/// The contract's short names (section 10), applied above config.yaml and below DAISI_CDC_*.
struct ShortName {
  std::string_view env;
  std::string_view section;
  std::string_view key;
};
constexpr ShortName kShortNames[] = {
    {"NATS_URL", "nats", "url"},           {"REDIS_ADDRESS", "redis", "address"},       {"DEDUP_TTL", "dedup", "ttl"},
    {"JS_ACK_WAIT", "ingest", "ack_wait"}, {"JS_MAX_DELIVER", "ingest", "max_deliver"}, {"LOG_LEVEL", "log", "level"},
};

/// Where each overridden key got its value: "section.key" -> variable name. Errors found later
/// by validate() name the variable, since that is what the operator has to fix.
using Sources = std::map<std::string, std::string>;

/// Where --check-config collects every error; nullptr: the first one is thrown (start-up, SIGHUP).
using Errors = std::vector<ConfigError>;

/// Runs `step`; a ConfigError it throws goes to `errors` when collecting, on to the caller otherwise.
template <typename Step>
void collect(Errors* errors, Step&& step) {
  if (errors == nullptr) return step();
  try {
    step();
  } catch (const ConfigError& e) {
    errors->push_back(e);
  }
}

// ---------------------------------------------------------------------------------------------
// Loading

void apply_yaml(Config& config, const YAML::Node& root, const std::string& origin, Errors* errors) {
  if (root.IsNull()) return;  // empty file: defaults
  if (!root.IsMap()) {
    throw ConfigError("config", origin + ": expected a map of sections at the top level, got " + shape_of(root));
  }
  const auto sections = section_names();
  std::set<std::string> seen_sections;
  for (const auto& entry : root) {
    collect(errors, [&] {
      if (!entry.first.IsScalar()) throw ConfigError("config", origin + ": section names must be plain strings");
      const std::string section = entry.first.Scalar();
      if (is_dlq_worker_section(section)) return;  // daisi-dlq-worker's (dlq_worker_config.cpp)
      if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
        const std::vector<std::string_view> names(sections.begin(), sections.end());
        throw ConfigError(section,
                          "unknown section" + suggestion(section, sections) + "; sections are " + join(names, ", "));
      }
      if (!seen_sections.insert(section).second) throw ConfigError(section, "duplicate section");
      const YAML::Node& body = entry.second;
      if (body.IsNull()) return;
      if (!body.IsMap()) throw ConfigError(section, "expected a map of keys, got " + shape_of(body));
      std::set<std::string> seen_keys;
      for (const auto& kv : body) {
        collect(errors, [&] {
          if (!kv.first.IsScalar()) throw ConfigError(section, "key names must be plain strings");
          const std::string key = kv.first.Scalar();
          const std::string name = section + "." + key;
          const Field* field = find_field(section, key);
          if (field == nullptr) {
            std::vector<std::string> keys;
            for (const auto& f : fields()) {
              if (f.section == section) keys.emplace_back(f.key);
            }
            throw ConfigError(name, "unknown key" + suggestion(key, keys));
          }
          if (!seen_keys.insert(key).second) throw ConfigError(name, "duplicate key");
          const YAML::Node& node = kv.second;
          field->set(config, Value{&node, {}, name});
        });
      }
    });
  }
}

void apply_env(Config& config, const std::vector<std::string>& env, Sources& sources, Errors* errors) {
  // First occurrence of a name wins, as with getenv().
  std::map<std::string, std::string, std::less<>> vars;
  for (const auto& entry : env) {
    const auto eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    vars.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }

  for (const auto& s : kShortNames) {
    const auto it = vars.find(s.env);
    // An empty short name counts as unset: these generic names are often passed through empty
    // (compose files, `${NATS_URL}`); DAISI_CDC_* variables are ours and taken literally.
    if (it == vars.end() || trim(it->second).empty()) continue;
    const Field* field = find_field(s.section, s.key);
    sources[dotted(*field)] = it->first;
    collect(errors, [&] { field->set(config, Value{nullptr, it->second, it->first}); });
  }

  std::vector<std::string> known;
  for (const auto& f : fields()) known.push_back(env_name(f));
  for (const auto& var : vars) {
    const auto& name = var.first;  // not a structured binding: clang 14 (tidy) cannot capture one
    const auto& value = var.second;
    if (name.compare(0, kEnvPrefix.size(), kEnvPrefix) != 0) continue;
    if (is_dlq_worker_variable(name)) continue;  // daisi-dlq-worker's
    collect(errors, [&] {
      const auto it = std::find(known.begin(), known.end(), name);
      if (it == known.end()) {
        throw ConfigError(name, "unknown variable: no configuration key has this name" + suggestion(name, known));
      }
      const Field& field = fields()[static_cast<std::size_t>(it - known.begin())];
      sources[dotted(field)] = name;
      field.set(config, Value{nullptr, value, name});
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Validation

class Checker {
 public:
  Checker(const Sources& sources, Errors* errors) : sources_(sources), errors_(errors) {}

  /// A ConfigError for `key`, named as the variable that set it when one did: thrown, or added
  /// to the errors when collecting (every rule below is an independent check, so validation
  /// goes on after a failed one).
  void fail(const std::string& key, const std::string& problem) const {
    const auto it = sources_.find(key);
    ConfigError error(it == sources_.end() ? key : it->second, problem);
    if (errors_ == nullptr) throw error;
    errors_->push_back(std::move(error));
  }

  void range(const std::string& key, long long value, IntRange r) const {
    if (!r.contains(value)) fail(key, "must be " + r.bounds() + ", got " + std::to_string(value));
  }
  void at_least(const std::string& key, Millis value, Millis min) const {
    if (value < min) fail(key, "must be at least " + format_duration(min) + ", got " + format_duration(value));
  }
  void zero_or_at_least(const std::string& key, Millis value, Millis min) const {
    if (value.count() != 0 && value < min) {
      fail(key, "must be 0 (off) or at least " + format_duration(min) + ", got " + format_duration(value));
    }
  }
  void non_negative(const std::string& key, Millis value) const {
    if (value.count() < 0) fail(key, "must not be negative, got " + std::to_string(value.count()) + "ms");
  }
  void stream_name(const std::string& key, const std::string& value) const {
    if (!valid_name(value)) {
      fail(key,
           "must be a non-empty name without '.', '*', '>', '/', '\\', whitespace or control "
           "characters, got " +
               quoted(value));
    }
  }
  void token(const std::string& key, const std::string& value) const {
    if (!is_valid_token(value)) {
      fail(key,
           "must be a valid subject token (non-empty, at most 128 bytes, no '.', '*', '>', "
           "whitespace or control characters), got " +
               quoted(value));
    }
  }

 private:
  const Sources& sources_;
  Errors* errors_;
};

void validate_nats(const Checker& check, const NatsConfig& n) {
  if (trim(n.url).empty()) check.fail("nats.url", "must not be empty");
  for (const auto part : split(n.url, ',')) {
    const auto url = trim(part);
    const bool scheme_ok = url.rfind("nats://", 0) == 0 || url.rfind("tls://", 0) == 0;
    const std::size_t scheme_len = url.rfind("nats://", 0) == 0 ? 7 : 6;
    if (!scheme_ok || url.size() == scheme_len || has_whitespace(url)) {
      check.fail("nats.url", "each comma-separated server must look like nats://host:port or tls://host:port, got " +
                                 quoted(redact_url(url)) + " in " + quoted(redact_url(n.url)));
    }
  }
  check.at_least("nats.connect_timeout", n.connect_timeout, Millis{1});
  check.non_negative("nats.reconnect_wait", n.reconnect_wait);
  check.range("nats.max_reconnect", n.max_reconnect, kMinusOneOrMore);
  check.range("nats.stream_replicas", n.stream_replicas, kStreamReplicas);

  // Secrets never appear in these messages: only key names.
  if (!n.tls_cert.empty() && n.tls_key.empty()) check.fail("nats.tls_key", "must be set with nats.tls_cert");
  if (n.tls_cert.empty() && !n.tls_key.empty()) check.fail("nats.tls_cert", "must be set with nats.tls_key");
  const bool has_password = !n.password.empty() || !n.password_file.empty();
  if (!n.user.empty() && !has_password)
    check.fail("nats.password", "must be set (or nats.password_file) with nats.user");
  if (n.user.empty() && has_password) check.fail("nats.user", "must be set with nats.password / nats.password_file");
  if (!n.nkey_seed_file.empty() && n.nkey.empty())
    check.fail("nats.nkey", "must be set (the public user NKey) with nats.nkey_seed_file");
  if (n.nkey_seed_file.empty() && !n.nkey.empty()) check.fail("nats.nkey_seed_file", "must be set with nats.nkey");
  if (!n.nkey.empty() && (n.nkey.front() != 'U' || n.nkey.size() != 56)) {
    check.fail("nats.nkey", "must be a public user NKey (56 characters starting with U)");
  }
}

void validate_ingest(const Checker& check, const IngestConfig& in, std::size_t ring_capacity) {
  check.stream_name("ingest.stream", in.stream);
  if (in.stream_subjects.empty()) check.fail("ingest.stream_subjects", "must list at least one subject");
  for (const auto& s : in.stream_subjects) {
    if (!valid_subject(s)) check.fail("ingest.stream_subjects", "invalid subject " + quoted(s));
  }
  check.stream_name("ingest.consumer", in.consumer);

  const std::size_t tables = count_of(in.subject_layout, "{table}");
  const std::size_t owners = count_of(in.subject_layout, "{company}") + count_of(in.subject_layout, "{schema}");
  if (tables != 1 || owners != 1) {
    check.fail("ingest.subject_layout",
               "must contain {table} once and exactly one of {company} or {schema}, got " + quoted(in.subject_layout));
  }
  if (!in.filter_subject.empty() && !valid_subject(in.filter_subject)) {
    check.fail("ingest.filter_subject", "must be empty (derived from ingest.subject_layout) or a valid subject, got " +
                                            quoted(in.filter_subject));
  }
  if (in.mode == IngestMode::kPush && (in.queue_group.empty() || has_whitespace(in.queue_group))) {
    check.fail("ingest.queue_group",
               "must be a non-empty name without whitespace in push mode, got " + quoted(in.queue_group));
  }
  check.at_least("ingest.ack_wait", in.ack_wait, Millis{1000});
  check.range("ingest.max_ack_pending", in.max_ack_pending, kPositive);
  if (in.max_deliver != -1 && in.max_deliver < 1) {
    check.fail("ingest.max_deliver", "must be -1 (unlimited) or at least 1, got " + std::to_string(in.max_deliver));
  }
  if (in.fetch_batch < 1 || static_cast<std::size_t>(in.fetch_batch) > ring_capacity) {
    check.fail("ingest.fetch_batch", "must be 1-" + std::to_string(ring_capacity) + " (pipeline.ring_capacity), got " +
                                         std::to_string(in.fetch_batch));
  }
  check.at_least("ingest.fetch_expires", in.fetch_expires, Millis{1});

  if (in.tables.empty()) check.fail("ingest.tables", "must list at least one table");
  std::set<std::string> seen;
  for (const auto& t : in.tables) {
    check.token("ingest.tables", t);
    if (!seen.insert(t).second) check.fail("ingest.tables", "table " + quoted(t) + " is listed twice");
    const auto it = in.key_columns.find(t);
    if (it == in.key_columns.end() || it->second.empty()) {
      check.fail("ingest.key_columns", "no key column for table " + quoted(t) + " (listed in ingest.tables)");
    }
  }
  if (in.max_message_bytes < kKiB || in.max_message_bytes > 64 * kMiB) {
    check.fail("ingest.max_message_bytes", "must be 1KiB-64MiB, got " + format_bytes(in.max_message_bytes));
  }
}

void validate_publish(const Checker& check, const PublishConfig& p, const Config& c) {
  check.stream_name("publish.stream", p.stream);
  check.token("publish.subject_prefix", p.subject_prefix);
  if (p.duplicate_window < c.dedup.ttl) {
    check.fail("publish.duplicate_window", "must be at least dedup.ttl (" + format_duration(c.dedup.ttl) + "), got " +
                                               format_duration(p.duplicate_window));
  }
  check.stream_name("publish.dlq_stream", p.dlq_stream);
  check.token("publish.dlq_subject_prefix", p.dlq_subject_prefix);
  if (p.dlq_stream == p.stream) {
    check.fail("publish.dlq_stream", "must differ from publish.stream, got " + quoted(p.dlq_stream));
  }
  check.range("publish.max_pending", p.max_pending, kMaxPendingRange);
  if (static_cast<std::size_t>(p.max_pending) > c.pipeline.ring_capacity) {
    check.fail("publish.max_pending", "must be at most pipeline.ring_capacity (" +
                                          std::to_string(c.pipeline.ring_capacity) + "), got " +
                                          std::to_string(p.max_pending));
  }
  check.at_least("publish.ack_timeout", p.ack_timeout, Millis{1});
  check.range("publish.max_retries", p.max_retries, kNonNegative);
  check.at_least("publish.retry_backoff", p.retry_backoff, Millis{1});
  if (p.retry_backoff_max < p.retry_backoff) {
    check.fail("publish.retry_backoff_max", "must be at least publish.retry_backoff (" +
                                                format_duration(p.retry_backoff) + "), got " +
                                                format_duration(p.retry_backoff_max));
  }
  check.non_negative("publish.nak_delay", p.nak_delay);
}

void validate_redis(const Checker& check, const RedisConfig& r) {
  // host:port, or [v6-address]:port
  const std::string& a = r.address;
  const auto colon = a.rfind(':');
  bool ok = colon != std::string::npos && colon > 0 && !has_whitespace(a);
  if (ok && a.front() == '[') ok = colon >= 3 && a[colon - 1] == ']';
  else if (ok) ok = a.find(':') == colon;
  const std::string port = ok ? a.substr(colon + 1) : std::string();
  long long p = 0;
  const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (!ok || port.empty() || ec != std::errc() || ptr != port.data() + port.size() || !kPortRange.contains(p)) {
    check.fail("redis.address", "must be host:port with a port 1-65535, got " + quoted(a));
  }
  check.range("redis.db", r.db, kNonNegative);
  if (!r.username.empty() && r.password.empty() && r.password_file.empty()) {
    check.fail("redis.password", "must be set (or redis.password_file) with redis.username");
  }
  if (has_whitespace(r.username)) check.fail("redis.username", "must not contain whitespace");
  check.at_least("redis.connect_timeout", r.connect_timeout, Millis{1});
  check.at_least("redis.command_timeout", r.command_timeout, Millis{1});
  check.at_least("redis.reconnect_backoff", r.reconnect_backoff, Millis{1});
  if (r.reconnect_backoff_max < r.reconnect_backoff) {
    check.fail("redis.reconnect_backoff_max", "must be at least redis.reconnect_backoff (" +
                                                  format_duration(r.reconnect_backoff) + "), got " +
                                                  format_duration(r.reconnect_backoff_max));
  }
}

void validate_pipeline(const Checker& check, const PipelineConfig& p) {
  const std::size_t cap = p.ring_capacity;
  if (cap == 0 || (cap & (cap - 1)) != 0) {
    check.fail("pipeline.ring_capacity", "must be a power of two, got " + std::to_string(cap));
  }
  if (cap < static_cast<std::size_t>(kRingRange.min) || cap > static_cast<std::size_t>(kRingRange.max)) {
    check.fail("pipeline.ring_capacity", "must be a power of two between 64 and 1048576, got " + std::to_string(cap));
  }
  if (p.batch_size < 1 || static_cast<std::size_t>(p.batch_size) > cap) {
    check.fail("pipeline.batch_size",
               "must be 1-" + std::to_string(cap) + " (pipeline.ring_capacity), got " + std::to_string(p.batch_size));
  }
  WaitStrategyKind parsed{};
  if (!parse_wait_kind(to_string(p.wait_strategy), parsed) || parsed != p.wait_strategy) {
    check.fail("pipeline.wait_strategy", "unknown wait strategy " + std::to_string(static_cast<int>(p.wait_strategy)));
  }
  check.non_negative("pipeline.drain_timeout", p.drain_timeout);
  static const std::vector<std::string> kStages = {"ingest", "parse", "dedup", "publish", "ack"};
  for (const auto& [stage, cpu] : p.cpu) {
    if (std::find(kStages.begin(), kStages.end(), stage) == kStages.end()) {
      check.fail("pipeline.cpu", "unknown stage " + quoted(stage) + suggestion(stage, kStages) +
                                     "; stages are ingest, parse, dedup, publish, ack");
    }
    if (!kCpuRange.contains(cpu)) {
      check.fail("pipeline.cpu",
                 "stage " + quoted(stage) + ": must be -1 (no affinity) or a CPU 0-1023, got " + std::to_string(cpu));
    }
  }
  // The stages look their entry up with at(); the loader merges into the defaults, so only a
  // Config built in code can miss one.
  for (const auto& stage : kStages) {
    if (p.cpu.count(stage) == 0) check.fail("pipeline.cpu", "missing stage " + quoted(stage) + " (-1 = no affinity)");
  }
}

void validate_all(const Config& c, const Sources& sources, Errors* errors = nullptr) {
  const Checker check(sources, errors);
  validate_nats(check, c.nats);
  validate_pipeline(check, c.pipeline);  // before the rules that compare against ring_capacity
  validate_ingest(check, c.ingest, c.pipeline.ring_capacity);
  check.at_least("dedup.ttl", c.dedup.ttl, Millis{1000});
  if (c.dedup.pending_ttl.count() != 0) check.at_least("dedup.pending_ttl", c.dedup.pending_ttl, Millis{1000});
  validate_publish(check, c.publish, c);
  validate_redis(check, c.redis);
  if (c.metrics.bind.empty() || has_whitespace(c.metrics.bind)) {
    check.fail("metrics.bind", "must be a non-empty address without whitespace, got " + quoted(c.metrics.bind));
  }
  check.range("metrics.port", c.metrics.port, kPortRange);
  check.zero_or_at_least("metrics.backlog_interval", c.metrics.backlog_interval, Millis{100});
  check.zero_or_at_least("health.stall_timeout", c.health.stall_timeout, Millis{1000});
  check.zero_or_at_least("guard.max_failure_duration", c.guard.max_failure_duration, Millis{1000});
  if (std::find(std::begin(kLogLevels), std::end(kLogLevels), c.log.level) == std::end(kLogLevels)) {
    check.fail("log.level", "must be one of trace, debug, info, warn, error, got " + quoted(c.log.level));
  }
}

Config load(const std::string& text, const std::string& origin, const std::vector<std::string>& env,
            Errors* errors = nullptr) {
  Config config;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError("config", origin + ":" + std::to_string(e.mark.line + 1) + ":" +
                                    std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  apply_yaml(config, root, origin, errors);
  Sources sources;
  apply_env(config, env, sources, errors);
  validate_all(config, sources, errors);
  return config;
}

}  // namespace

Millis parse_duration(const std::string& key, const std::string& raw) {
  const std::string_view text = trim(raw);
  const std::string expected = "expected a duration like 500ms, 30s, 5m or 1h";
  if (text == "0") return Millis{0};
  if (text.empty()) throw ConfigError(key, expected + ", got " + quoted(raw));
  if (text.front() == '-') throw ConfigError(key, "duration must not be negative, got " + quoted(raw));
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    throw ConfigError(key, "duration needs a unit (ms, s, m, h), got " + quoted(raw));
  }

  struct Unit {
    std::string_view name;
    std::uint64_t ns;
  };
  // Longest names first so "ms" is not read as "m".
  static constexpr Unit kUnits[] = {{"ns", 1},
                                    {"us", 1000},
                                    {"\xC2\xB5s", 1000},  // micro sign
                                    {"\xCE\xBCs", 1000},  // greek mu
                                    {"ms", 1000000},
                                    {"h", 3600000000000ULL},
                                    {"m", 60000000000ULL},
                                    {"s", 1000000000ULL}};
  constexpr u128 kMaxNs = static_cast<u128>(std::numeric_limits<std::int64_t>::max());

  u128 total = 0;
  bool exact = true;  // false once some part is finer than a nanosecond
  std::size_t i = 0;
  const auto digit = [&](std::size_t at) { return at < text.size() && text[at] >= '0' && text[at] <= '9'; };
  while (i < text.size()) {
    // <digits>[.<digits>]<unit>, repeated ("1m30s", "1.5s").
    u128 whole = 0;
    std::size_t n_whole = 0;
    for (; digit(i); ++i, ++n_whole) {
      if (n_whole < 21) whole = whole * 10 + static_cast<unsigned>(text[i] - '0');
    }
    u128 frac = 0;
    u128 scale = 1;
    std::size_t n_frac = 0;
    if (i < text.size() && text[i] == '.') {
      for (++i; digit(i); ++i, ++n_frac) {
        if (n_frac < 18) {
          frac = frac * 10 + static_cast<unsigned>(text[i] - '0');
          scale *= 10;
        } else if (text[i] != '0') {
          exact = false;
        }
      }
    }
    if (n_whole == 0 && n_frac == 0) throw ConfigError(key, expected + ", got " + quoted(raw));
    if (n_whole > 20) throw ConfigError(key, "duration too large, got " + quoted(raw));
    const Unit* unit = nullptr;
    for (const auto& u : kUnits) {
      if (text.substr(i, u.name.size()) == u.name) {
        unit = &u;
        break;
      }
    }
    if (unit == nullptr) {
      throw ConfigError(key, expected + " (units: ms, s, m, h), got " + quoted(raw));
    }
    i += unit->name.size();
    const u128 frac_ns = frac * unit->ns;
    if (frac_ns % scale != 0) exact = false;
    total += whole * unit->ns + frac_ns / scale;
    if (total > kMaxNs) throw ConfigError(key, "duration too large, got " + quoted(raw));
  }
  if (!exact || total % 1000000 != 0) {
    throw ConfigError(key, "durations are whole milliseconds; use 0 or a multiple of 1ms, got " + quoted(raw));
  }
  return Millis{static_cast<Millis::rep>(total / 1000000)};
}

void validate(const Config& config) { validate_all(config, Sources{}); }

Config load_config_text(const std::string& yaml_text, const std::vector<std::string>& env) {
  return load(yaml_text, "<text>", env);
}

namespace {

/// The text of the configuration file at `path`; throws ConfigError("config", ...).
std::string read_config_file(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) throw ConfigError("config", "cannot read " + path + ": " + std::strerror(errno));
  std::string text;
  char buf[8192];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, file)) > 0) text.append(buf, n);
  const int err = std::ferror(file) != 0 ? errno : 0;
  std::fclose(file);
  if (err != 0) throw ConfigError("config", "cannot read " + path + ": " + std::strerror(err));
  return text;
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& env) {
  if (path.empty()) return load(std::string(), "<defaults>", env);
  return load(read_config_file(path), path, env);
}

namespace {

std::string read_whole(const std::string& key, const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) throw ConfigError(key, "cannot read " + path + ": " + std::strerror(errno));
  std::string text;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, file)) > 0) text.append(buf, n);
  const int err = std::ferror(file) != 0 ? errno : 0;
  std::fclose(file);
  if (err != 0) throw ConfigError(key, "cannot read " + path + ": " + std::strerror(err));
  return text;
}

void check_readable(const std::string& key, const std::string& path) {
  if (!path.empty()) (void)read_whole(key, path);
}

/// The secret in `path`: the whole file less one trailing "\n" or "\r\n"; must not be empty.
void read_secret(const std::string& key, const std::string& path, std::string& out) {
  if (path.empty()) return;
  std::string text = read_whole(key, path);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (text.empty()) throw ConfigError(key, path + " is empty");
  out = std::move(text);
}

/// resolve_secrets(), each check on its own when collecting `errors`.
void resolve_secrets(Config& config, Errors* errors) {
  NatsConfig& n = config.nats;
  // Exclusive choices are start-up rules (validate() accepts every key set at once).
  collect(errors, [&] {
    if (!n.password.empty() && !n.password_file.empty()) {
      throw ConfigError("nats.password_file", "set nats.password or nats.password_file, not both");
    }
  });
  collect(errors, [&] {
    if (!n.token.empty() && !n.token_file.empty()) {
      throw ConfigError("nats.token_file", "set nats.token or nats.token_file, not both");
    }
  });
  collect(errors, [&] {
    if (!config.redis.password.empty() && !config.redis.password_file.empty()) {
      throw ConfigError("redis.password_file", "set redis.password or redis.password_file, not both");
    }
  });
  const int methods = (n.creds_file.empty() ? 0 : 1) + (n.nkey_seed_file.empty() ? 0 : 1) + (n.user.empty() ? 0 : 1) +
                      (n.token.empty() && n.token_file.empty() ? 0 : 1);
  collect(errors, [&] {
    if (methods > 1) {
      throw ConfigError("nats.creds_file",
                        "choose one authentication method: nats.creds_file, nats.nkey_seed_file, "
                        "nats.user with a password, or nats.token");
    }
  });
  collect(errors, [&] { check_readable("nats.tls_ca", n.tls_ca); });
  collect(errors, [&] { check_readable("nats.tls_cert", n.tls_cert); });
  collect(errors, [&] { check_readable("nats.tls_key", n.tls_key); });
  collect(errors, [&] { check_readable("nats.creds_file", n.creds_file); });
  collect(errors, [&] { check_readable("nats.nkey_seed_file", n.nkey_seed_file); });
  collect(errors, [&] { read_secret("nats.password_file", n.password_file, n.password); });
  collect(errors, [&] { read_secret("nats.token_file", n.token_file, n.token); });
  collect(errors, [&] { read_secret("redis.password_file", config.redis.password_file, config.redis.password); });
}

}  // namespace

void resolve_secrets(Config& config) { resolve_secrets(config, nullptr); }

std::vector<ConfigError> check_config(const std::string& path, const std::vector<std::string>& env, Config& out) {
  Errors errors;
  try {
    const std::string text = path.empty() ? std::string() : read_config_file(path);
    out = load(text, path.empty() ? "<defaults>" : path, env, &errors);
  } catch (const ConfigError& e) {
    errors.push_back(e);  // unreadable file or YAML syntax: nothing further can be checked
    return errors;
  }
  Config resolved = out;
  resolve_secrets(resolved, &errors);
  return errors;
}

std::string config_to_yaml(const Config& config) {
  YAML::Node root;
  for (const auto& f : fields()) f.print(config, root);
  // Secrets never leave the process: set or not is all that shows.
  for (const auto& [section, key] : {std::pair{"nats", "password"}, {"nats", "token"}, {"redis", "password"}}) {
    if (!root[section][key].as<std::string>().empty()) root[section][key] = "<redacted>";
  }
  root["nats"]["url"] = redact_url(config.nats.url);
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

std::string redact_url(std::string_view url) {
  std::string out;
  for (const auto part : split(url, ',')) {
    if (!out.empty()) out += ',';
    std::string_view u = part;
    const auto scheme = u.find("://");
    const std::size_t host_start = scheme == std::string_view::npos ? 0 : scheme + 3;
    const auto slash = u.find('/', host_start);
    const auto at = u.rfind('@', slash == std::string_view::npos ? u.size() : slash);
    if (at != std::string_view::npos && at >= host_start) {
      out += std::string(u.substr(0, host_start)) + "***@" + std::string(u.substr(at + 1));
    } else {
      out += std::string(u);
    }
  }
  return out;
}

std::vector<std::string> changed_keys(const Config& a, const Config& b) {
  std::vector<std::string> out;
  for (const auto& f : fields()) {
    if (!f.same(a, b)) out.push_back(dotted(f));
  }
  return out;
}

bool reloadable(std::string_view key) noexcept {
  static constexpr std::string_view kReloadable[] = {
      "log.level",     "health.stall_timeout", "guard.max_failure_duration",
      "ingest.tables", "ingest.key_columns",   "ingest.max_message_bytes",
  };
  return std::find(std::begin(kReloadable), std::end(kReloadable), key) != std::end(kReloadable);
}

ReloadPlan plan_reload(const Config& running, const Config& next) {
  ReloadPlan plan;
  plan.result = running;
  for (const auto& f : fields()) {
    if (f.same(running, next)) continue;
    const std::string key = dotted(f);
    if (reloadable(key)) {
      f.copy(plan.result, next);
      plan.apply.push_back(key);
    } else {
      plan.restart.push_back(key);
    }
  }
  return plan;
}

std::vector<std::string> process_environment() {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) out.emplace_back(*e);
  return out;
}

std::map<std::string, std::string> env_sources(const std::vector<std::string>& env) {
  Config scratch;
  Sources sources;
  apply_env(scratch, env, sources, nullptr);
  return sources;
}

}  // namespace cdc
