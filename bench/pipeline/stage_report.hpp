#pragma once
/// Per-stage latency as the service itself measures it (Metrics histograms: Prometheus buckets,
/// so each figure is the upper bound of the bucket holding the quantile).

#include <string>
#include <utility>
#include <vector>

#include "cdc/core/metrics.hpp"
#include "common/report.hpp"

namespace cdc::bench {

struct StageQuantiles {
  double p50_s = 0, p99_s = 0;
  std::uint64_t count = 0;
};

/// parse, dedup, redis_round_trip, publish, publish_to_puback, ack (each "intake -> leaves the
/// stage"), and delivery_to_ack_messages, in pipeline order.
std::vector<std::pair<std::string, StageQuantiles>> stage_quantiles(const Metrics& m);
void print_stages(const std::vector<std::pair<std::string, StageQuantiles>>& stages);
void json_stages(JsonWriter& j, const std::vector<std::pair<std::string, StageQuantiles>>& stages);

}  // namespace cdc::bench
