#pragma once
// Private to the configuration units: one value from config.yaml or the environment, and the
// parsers that turn it into a typed field (one assign() overload per field type, picked by the
// field table in schema.cpp). Every parser throws ConfigError naming the key or the variable.

#include <yaml-cpp/yaml.h>

#include <climits>
#include <cstddef>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "cdc/core/config.hpp"
#include "text.hpp"

namespace cdc::config_detail {

/// One YAML node or one environment string, with the name errors should carry.
struct Value {
  const YAML::Node* node;   ///< from config.yaml, or nullptr when from the environment
  std::string_view env;     ///< the environment value when node == nullptr
  const std::string& name;  ///< "section.key" or the variable name
};

[[noreturn]] void fail(const Value& v, const std::string& problem);
/// "null", "a list", "a map" or the quoted scalar: what a type error says was found.
std::string shape_of(const YAML::Node& n);
/// Scalar text of a value, or a type error naming what was expected.
std::string scalar(const Value& v, const std::string& expected);

struct IntRange {
  long long min;
  long long max;
  /// "1-65535", ">= 1", "from -1 to 1023"
  [[nodiscard]] std::string bounds() const;
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
constexpr IntRange kStreamReplicas{1, 5};        // JetStream's limit
constexpr IntRange kPartitions{1, 1024};         // ingest.partitions
constexpr IntRange kIoBufferRange{0, 64 << 20};  // nats.io_buffer_size: 0 = nats.c's default

long long parse_int(const Value& v, std::string_view text, IntRange range);
/// A list: a YAML sequence of scalars, or comma-separated from the environment.
std::vector<std::string> parse_list(const Value& v);

/// Tags that pick a parser where the field's type alone does not.
struct ByteSize {};
struct LogLevel {};
constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error"};

void assign(std::string& out, const Value& v);
void assign(bool& out, const Value& v);
template <typename Int>
requires std::is_integral_v<Int>
void assign(Int& out, const Value& v, IntRange range) {
  out = static_cast<Int>(parse_int(v, scalar(v, range.describe()), range));
}
void assign(Millis& out, const Value& v);
void assign(std::size_t& out, const Value& v, ByteSize);
void assign(std::vector<std::string>& out, const Value& v);
/// Groups of names: a YAML list of lists, or from the environment groups separated by '/' and
/// names by ',' ("ingest,parse/dedup,publish,ack"). Names are not checked here (validate.cpp).
void assign(std::vector<std::vector<std::string>>& out, const Value& v);
/// Maps merge: entries given replace the same entries, the others keep their current value.
void assign(std::map<std::string, std::string>& out, const Value& v);
void assign(std::map<std::string, int>& out, const Value& v, IntRange range);
void assign(IngestMode& out, const Value& v);
void assign(RedisErrorPolicy& out, const Value& v);
void assign(DedupBatchMode& out, const Value& v);
void assign(WaitStrategyKind& out, const Value& v);
void assign(WriteMode& out, const Value& v);
/// The deprecated boolean `send_asap` keys: true -> asap, false -> flusher.
void assign_send_asap(WriteMode& out, const Value& v);
void assign(std::string& out, const Value& v, LogLevel);

/// Where each overridden key got its value: "section.key" -> variable name. Errors found later
/// by validation name the variable, since that is what the operator has to fix.
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

}  // namespace cdc::config_detail
