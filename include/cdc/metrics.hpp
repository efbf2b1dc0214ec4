#pragma once
/// Metrics registry (CONTRACT.md section 7). Every counter and histogram has exactly one writer
/// thread, so updates are a relaxed load + store (no read-modify-write, no lock); a scrape on
/// the HTTP thread reads them with relaxed loads and renders the Prometheus text format 0.0.4.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cdc/event.hpp"
#include "cdc/ring_buffer.hpp"
#include "cdc/transform.hpp"

namespace cdc {

/// Monotonic counter with a single writer thread.
class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept {
    // relaxed: single writer; readers only need an eventually consistent value.
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

/// Gauge, any writer (last store wins).
class Gauge {
 public:
  void set(std::int64_t v) noexcept { v_.store(v, std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> v_{0};
};

/// Latency histogram in seconds with fixed buckets, single writer thread.
class Histogram {
 public:
  static constexpr std::array<double, 17> kBounds{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                  0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1.0,
                                                  2.5,     5.0,    10.0};
  void observe_ns(std::int64_t ns) noexcept;
  /// Appends the _bucket/_sum/_count lines for `name` with `labels` ("" or `table="x"`).
  void render(std::string& out, std::string_view name, std::string_view labels) const;
  [[nodiscard]] std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  /// Approximate quantile from the buckets (upper bound of the bucket holding it), seconds.
  [[nodiscard]] double quantile(double q) const noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};  // last = +Inf
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_ns_{0};
};

/// Appends `s` escaped for a Prometheus label value (\\, \", \n).
void append_label_value(std::string_view s, std::string& out);

/// Everything the pipeline counts. Members are grouped by writer thread on separate cache lines.
class Metrics {
 public:
  static constexpr std::size_t kResults = 5;  // EventResult values
  static constexpr std::size_t kErrorKinds = 9;

  explicit Metrics(std::vector<std::string> tables);

  /// Index of `table` in the configured tables; the last index ("_other") otherwise.
  [[nodiscard]] std::size_t table_index(std::string_view table) const noexcept;
  [[nodiscard]] const std::vector<std::string>& table_labels() const noexcept { return labels_; }

  /// Ack stage.
  struct alignas(kCacheLine) AckSide {
    std::vector<std::array<Counter, kResults>> events;  // [table][result]
    std::vector<Histogram> processing;                  // [table], delivery -> source ack
    std::array<Counter, kErrorKinds> dead_letters;      // [error kind]
    Counter acks, naks, terms;
    Counter redis_mark_errors;
    Gauge lag_ns;               // max delivery -> ack over the last interval
    Gauge last_ack_unix_ms;
  } ack;

  /// Publish stage.
  struct alignas(kCacheLine) PublishSide {
    Counter published, publish_errors, retries, rejected, timeouts;
    Gauge in_flight;
    Histogram publish_latency;  // publish -> PubAck
  } publish;

  /// PubAck callback thread (nats.c).
  struct alignas(kCacheLine) PubAckSide {
    Counter acks, errors, duplicates, stale;
  } puback;

  /// Dedup stage.
  struct alignas(kCacheLine) DedupSide {
    Counter hit, miss, errors, held;
    Histogram round_trip;
  } dedup;

  /// Parse stage.
  struct alignas(kCacheLine) ParseSide {
    Counter parsed, invalid;
  } parse;

  /// Renders the text exposition; `extra` may append more families (gauges read at scrape).
  [[nodiscard]] std::string render(const std::function<void(std::string&)>& extra = {}) const;

 private:
  std::vector<std::string> labels_;  // tables + "_other"
};

}  // namespace cdc
