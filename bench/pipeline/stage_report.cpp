#include "pipeline/stage_report.hpp"

#include <cstdio>

namespace cdc::bench {
namespace {
StageQuantiles quantiles(const Histogram& h) { return {h.quantile(0.5), h.quantile(0.99), h.count()}; }
}  // namespace

std::vector<std::pair<std::string, StageQuantiles>> stage_quantiles(const Metrics& m) {
  return {{"parse", quantiles(m.parse.stage)},
          {"dedup", quantiles(m.dedup.stage)},
          {"redis_round_trip", quantiles(m.dedup.round_trip)},
          {"publish", quantiles(m.publish.stage)},
          {"publish_to_puback", quantiles(m.puback.latency)},
          {"ack", quantiles(m.ack.stage)},
          {"delivery_to_ack_messages", quantiles(m.ack.processing[m.table_index("messages")])}};
}

void print_stages(const std::vector<std::pair<std::string, StageQuantiles>>& stages) {
  std::printf("per stage       (service histograms: bucket upper bounds, p50 / p99)\n");
  for (const auto& [name, q] : stages) {
    if (q.count == 0) continue;
    std::printf("                %-26s <= %-9s / <= %s\n", name.c_str(), format_ns(q.p50_s * 1e9).c_str(),
                format_ns(q.p99_s * 1e9).c_str());
  }
}

void json_stages(JsonWriter& j, const std::vector<std::pair<std::string, StageQuantiles>>& stages) {
  j.begin_object("stage_latency_bucket_upper_bounds_s");
  for (const auto& [name, q] : stages) {
    j.begin_object(name);
    j.field("p50", q.p50_s).field("p99", q.p99_s).field("count", q.count);
    j.end_object();
  }
  j.end_object();
}

}  // namespace cdc::bench
