#pragma once
/// Structured logs (CONTRACT.md section 8): one JSON object per line on stdout, written by a
/// background thread from a bounded queue. Any thread may log; a full queue drops the line and
/// counts it instead of blocking a stage.

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <span>
#include <string_view>

namespace cdc::log {

enum class Level : std::uint8_t { kTrace, kDebug, kInfo, kWarn, kError };
bool parse_level(std::string_view text, Level& out) noexcept;
std::string_view to_string(Level level) noexcept;

/// One key/value of a log line. Strings are escaped; numbers written as they are.
struct Field {
  enum class Kind : std::uint8_t { kString, kInt, kUint, kDouble, kBool };
  std::string_view key;
  Kind kind;
  std::string_view s;
  std::int64_t i = 0;
  std::uint64_t u = 0;
  double d = 0;
  bool b = false;

  Field(std::string_view k, std::string_view v) : key(k), kind(Kind::kString), s(v) {}
  Field(std::string_view k, const char* v) : key(k), kind(Kind::kString), s(v) {}
  Field(std::string_view k, const std::string& v) : key(k), kind(Kind::kString), s(v) {}
  Field(std::string_view k, int v) : key(k), kind(Kind::kInt), i(v) {}
  Field(std::string_view k, long v) : key(k), kind(Kind::kInt), i(v) {}
  Field(std::string_view k, long long v) : key(k), kind(Kind::kInt), i(v) {}
  Field(std::string_view k, unsigned v) : key(k), kind(Kind::kUint), u(v) {}
  Field(std::string_view k, unsigned long v) : key(k), kind(Kind::kUint), u(v) {}
  Field(std::string_view k, unsigned long long v) : key(k), kind(Kind::kUint), u(v) {}
  Field(std::string_view k, double v) : key(k), kind(Kind::kDouble), d(v) {}
  Field(std::string_view k, bool v) : key(k), kind(Kind::kBool), b(v) {}
};

/// Process-wide level; relaxed atomics are enough (a level change may take effect a line late).
void set_level(Level level) noexcept;
Level level() noexcept;
inline bool enabled(Level l) noexcept { return l >= level(); }

/// Starts the writer thread (idempotent): lines go to a queue of at most `queue_capacity` lines
/// that the writer thread drains to `fd` (stdout; tests pass a pipe). Before start() and after
/// stop() lines are written synchronously by the caller.
void start(std::size_t queue_capacity = 65536, int fd = 1);
/// Writes what is queued and joins the writer thread.
void stop();
/// Lines dropped because the queue was full (cdc_consumer_log_dropped_total).
std::uint64_t dropped() noexcept;

/// Appends one line (a JSON object and '\n') with the contract's fields first: time (RFC 3339,
/// UTC, from `unix_ns`), level, msg, then `fields` in order. Pure; used by write() and tests.
void format(std::string& out, std::int64_t unix_ns, Level l, std::string_view msg, std::span<const Field> fields);
inline void format(std::string& out, std::int64_t unix_ns, Level l, std::string_view msg,
                   std::initializer_list<Field> fields) {
  format(out, unix_ns, l, msg, std::span<const Field>(fields.begin(), fields.size()));
}

/// Formats and queues one line. Never blocks on I/O while the writer runs: the caller only
/// formats into memory and enqueues; a full queue drops the line and counts it.
/// The span form is for lines whose fields are chosen at run time (e.g. left out when unknown).
void write(Level l, std::string_view msg, std::span<const Field> fields) noexcept;
inline void write(Level l, std::string_view msg, std::initializer_list<Field> fields = {}) noexcept {
  write(l, msg, std::span<const Field>(fields.begin(), fields.size()));
}

/// The trace id of a W3C `traceparent` header value ("00-<32 hex>-<16 hex>-<2 hex>"), or "" when
/// the value is not one. Log lines about one event carry it as `trace_id`.
std::string_view trace_id_from_traceparent(std::string_view traceparent) noexcept;

inline void trace(std::string_view m, std::initializer_list<Field> f = {}) noexcept {
  if (enabled(Level::kTrace)) write(Level::kTrace, m, f);
}
inline void debug(std::string_view m, std::initializer_list<Field> f = {}) noexcept {
  if (enabled(Level::kDebug)) write(Level::kDebug, m, f);
}
inline void info(std::string_view m, std::initializer_list<Field> f = {}) noexcept {
  if (enabled(Level::kInfo)) write(Level::kInfo, m, f);
}
inline void warn(std::string_view m, std::initializer_list<Field> f = {}) noexcept {
  if (enabled(Level::kWarn)) write(Level::kWarn, m, f);
}
inline void error(std::string_view m, std::initializer_list<Field> f = {}) noexcept {
  if (enabled(Level::kError)) write(Level::kError, m, f);
}

/// Lets at most `per_interval` lines through per interval; counts the rest so the next line
/// that passes can say how many were suppressed. Single-thread use (one per stage and reason).
class RateLimiter {
 public:
  explicit RateLimiter(std::int64_t interval_ns = 1'000'000'000, std::uint32_t per_interval = 5) noexcept
      : interval_ns_(interval_ns), per_interval_(per_interval) {}
  /// True when this line may be written; `suppressed` gets the count dropped since the last one.
  bool allow(std::uint64_t& suppressed) noexcept;
  /// The same at time `now_ns` (steady clock, nanoseconds): tests drive the windows themselves.
  bool allow(std::uint64_t& suppressed, std::int64_t now_ns) noexcept;

 private:
  std::int64_t interval_ns_;
  std::uint32_t per_interval_;
  std::int64_t window_start_ = 0;
  std::uint32_t in_window_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace cdc::log
