#pragma once
/// Results of the pipeline harness: a small JSON writer, latency summaries, and an SVG chart of
/// latency distributions (HdrHistogram's percentile plot: x = percentile on a log(1/(1-p))
/// scale, so the tail gets as much room as the median; y = latency on a log scale).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/log_histogram.hpp"

namespace cdc::bench {

/// "850 ns", "12.4 µs", "1.23 ms", "2.50 s".
std::string format_ns(double ns);

/// Minimal streaming JSON writer (commas and escaping handled; no validation of nesting).
class JsonWriter {
 public:
  JsonWriter& begin_object(std::string_view key = {});
  JsonWriter& end_object();
  JsonWriter& begin_array(std::string_view key = {});
  JsonWriter& end_array();
  JsonWriter& field(std::string_view key, std::string_view value);
  JsonWriter& field(std::string_view key, const char* value) { return field(key, std::string_view(value)); }
  JsonWriter& field(std::string_view key, double value);
  JsonWriter& field(std::string_view key, std::uint64_t value);
  JsonWriter& field(std::string_view key, std::int64_t value);
  JsonWriter& field(std::string_view key, int value) { return field(key, static_cast<std::int64_t>(value)); }
  JsonWriter& field(std::string_view key, bool value);
  /// The latency summary of `h` (ns): count, mean, min, p50, p90, p99, p99_9, p99_99, max.
  JsonWriter& histogram(std::string_view key, const LogHistogram& h);
  [[nodiscard]] const std::string& str() const noexcept { return out_; }

 private:
  void prefix(std::string_view key);
  std::string out_;
  std::vector<bool> first_{true};
};

/// One curve of the chart.
struct ChartSeries {
  std::string name;
  const LogHistogram* histogram = nullptr;  ///< values in ns
};

/// Writes the percentile-distribution chart; throws std::runtime_error when the file cannot be written.
void write_latency_svg(const std::string& path, const std::string& title, const std::string& subtitle,
                       const std::vector<ChartSeries>& series);

/// Writes `text` to `path`; throws std::runtime_error on failure.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace cdc::bench
