#include "values.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <limits>
#include <set>

namespace cdc::config_detail {
namespace {

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

}  // namespace

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

std::string IntRange::bounds() const {
  if (max == INT_MAX) return ">= " + std::to_string(min);
  if (min < 0) return "from " + std::to_string(min) + " to " + std::to_string(max);
  return std::to_string(min) + "-" + std::to_string(max);
}

long long parse_int(const Value& v, std::string_view text, IntRange range) {
  long long x = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, x);
  if (text.empty() || ec != std::errc() || ptr != end || !range.contains(x)) {
    fail(v, "expected " + range.describe() + ", got " + quoted(text));
  }
  return x;
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
void assign(Millis& out, const Value& v) {
  out = parse_duration(v.name, scalar(v, "a duration like 500ms, 30s, 5m or 1h"));
}

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

void assign(std::vector<std::vector<std::string>>& out, const Value& v) {
  std::vector<std::vector<std::string>> groups;
  if (v.node == nullptr) {
    const auto text = trim(v.env);
    // Empty = the default (one thread per stage), as an empty list is for other list keys.
    if (!text.empty()) {
      const auto parts = split(text, '/');
      for (std::size_t i = 0; i < parts.size(); ++i) {
        auto& group = groups.emplace_back();
        for (const auto item : split(parts[i], ',')) {
          const auto name = trim(item);
          if (name.empty()) {
            fail(v, "empty name in group " + std::to_string(i + 1) + " of " + quoted(v.env) +
                        " (groups are separated by '/', names by ',')");
          }
          group.emplace_back(name);
        }
      }
    }
  } else if (!v.node->IsNull()) {
    if (!v.node->IsSequence()) fail(v, "expected a list of lists, got " + shape_of(*v.node));
    for (const auto& item : *v.node) {
      if (!item.IsSequence()) fail(v, "expected a list of lists, got an element that is " + shape_of(item));
      auto& group = groups.emplace_back();
      for (const auto& name : item) {
        if (!name.IsScalar()) fail(v, "expected lists of names, got an element that is " + shape_of(name));
        group.push_back(name.Scalar());
      }
    }
  }
  out = std::move(groups);
}

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

void assign(WriteMode& out, const Value& v) {
  // The names are to_string(WriteMode)'s.
  out = parse_choice<WriteMode>(v, {{"batch", static_cast<int>(WriteMode::kBatch)},
                                    {"asap", static_cast<int>(WriteMode::kAsap)},
                                    {"flusher", static_cast<int>(WriteMode::kFlusher)},
                                    {"adaptive", static_cast<int>(WriteMode::kAdaptive)}});
}

}  // namespace cdc::config_detail

namespace cdc {
std::string_view to_string(WriteMode mode) noexcept {
  switch (mode) {
    case WriteMode::kAsap: return "asap";
    case WriteMode::kFlusher: return "flusher";
    case WriteMode::kAdaptive: return "adaptive";
    case WriteMode::kBatch: break;
  }
  return "batch";
}
}  // namespace cdc

namespace cdc::config_detail {

void assign_send_asap(WriteMode& out, const Value& v) {
  bool asap = false;
  assign(asap, v);
  out = asap ? WriteMode::kAsap : WriteMode::kFlusher;
}

void assign(DedupBatchMode& out, const Value& v) {
  out = parse_choice<DedupBatchMode>(v, {{"auto", static_cast<int>(DedupBatchMode::kAuto)},
                                         {"function", static_cast<int>(DedupBatchMode::kFunction)},
                                         {"pipeline", static_cast<int>(DedupBatchMode::kPipeline)}});
}

void assign(WaitStrategyKind& out, const Value& v) {
  const std::string expected = "one of busy_spin, yield, sleep, blocking (or its old name park)";
  const std::string text = scalar(v, expected);
  if (!parse_wait_kind(lower(text), out)) {
    fail(v, "expected " + expected + ", got " + quoted(text));
  }
}

void assign(std::string& out, const Value& v, LogLevel) {
  const std::string text = scalar(v, "one of trace, debug, info, warn, error");
  const std::string level = lower(text);
  if (std::find(std::begin(kLogLevels), std::end(kLogLevels), level) == std::end(kLogLevels)) {
    fail(v, "expected one of trace, debug, info, warn, error, got " + quoted(text));
  }
  out = level;
}

}  // namespace cdc::config_detail

namespace cdc {
namespace {
__extension__ typedef unsigned __int128 u128;  // exact duration arithmetic; -Wpedantic-clean
}  // namespace

using config_detail::quoted;
using config_detail::trim;

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

}  // namespace cdc
