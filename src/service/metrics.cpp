#include "cdc/metrics.hpp"

#include <cmath>
#include <cstdio>

namespace cdc {
namespace {

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t v) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += std::to_string(v);
  out += '\n';
}

void sample_double(std::string& out, std::string_view name, std::string_view labels, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += buf;
  out += '\n';
}

std::string label(std::string_view key, std::string_view value) {
  std::string s(key);
  s += "=\"";
  append_label_value(value, s);
  s += '"';
  return s;
}

constexpr std::array<EventResult, 4> kContractResults{EventResult::kProcessed, EventResult::kSkipped,
                                                      EventResult::kDuplicate, EventResult::kDeadLettered};

}  // namespace

void append_label_value(std::string_view s, std::string& out) {
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

void Histogram::observe_ns(std::int64_t ns) noexcept {
  if (ns < 0) ns = 0;
  const double s = static_cast<double>(ns) / 1e9;
  std::size_t i = 0;
  while (i < kBounds.size() && s > kBounds[i]) ++i;
  // relaxed: single writer; a scrape may see count and buckets a few events apart.
  buckets_[i].store(buckets_[i].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  sum_ns_.store(sum_ns_.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
  count_.store(count_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void Histogram::render(std::string& out, std::string_view name, std::string_view labels) const {
  std::uint64_t cumulative = 0;
  const std::string bucket = std::string(name) + "_bucket";
  for (std::size_t i = 0; i <= kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    std::string l(labels);
    if (!l.empty()) l += ',';
    if (i < kBounds.size()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", kBounds[i]);
      l += "le=\"";
      l += buf;
      l += '"';
    } else {
      l += "le=\"+Inf\"";
    }
    sample(out, bucket, l, cumulative);
  }
  sample_double(out, std::string(name) + "_sum", labels,
                static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9);
  // _count equals the +Inf bucket, as Prometheus requires.
  sample(out, std::string(name) + "_count", labels, cumulative);
}

double Histogram::quantile(double q) const noexcept {
  std::uint64_t total = 0;
  for (const auto& b : buckets_) total += b.load(std::memory_order_relaxed);
  if (total == 0) return 0;
  const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    if (cumulative >= rank) return i < kBounds.size() ? kBounds[i] : INFINITY;
  }
  return INFINITY;
}

Metrics::Metrics(std::vector<std::string> tables) : labels_(std::move(tables)) {
  labels_.emplace_back("_other");
  ack.events = std::vector<std::array<Counter, kResults>>(labels_.size());
  ack.processing = std::vector<Histogram>(labels_.size());
}

std::size_t Metrics::table_index(std::string_view table) const noexcept {
  for (std::size_t i = 0; i + 1 < labels_.size(); ++i) {
    if (labels_[i] == table) return i;
  }
  return labels_.size() - 1;
}

std::string Metrics::render(const std::function<void(std::string&)>& extra) const {
  std::string out;
  out.reserve(16384);
  family(out, "cdc_consumer_events_total", "counter", "Source messages completed, by table and result.");
  for (std::size_t t = 0; t < labels_.size(); ++t) {
    for (EventResult r : kContractResults) {
      sample(out, "cdc_consumer_events_total", label("table", labels_[t]) + "," + label("result", to_string(r)),
             ack.events[t][static_cast<std::size_t>(r)].value());
    }
  }
  family(out, "cdc_consumer_publish_errors_total", "counter", "Publishes that failed (each attempt).");
  sample(out, "cdc_consumer_publish_errors_total", "", publish.publish_errors.value() + puback.errors.value());
  family(out, "cdc_consumer_processing_seconds", "histogram", "Delivery to source acknowledgement, by table.");
  for (std::size_t t = 0; t < labels_.size(); ++t) {
    ack.processing[t].render(out, "cdc_consumer_processing_seconds", label("table", labels_[t]));
  }
  family(out, "cdc_consumer_redis_hit_total", "counter", "Dedup look-ups that found a mark (hit) or not (miss).");
  sample(out, "cdc_consumer_redis_hit_total", "result=\"hit\"", dedup.hit.value());
  sample(out, "cdc_consumer_redis_hit_total", "result=\"miss\"", dedup.miss.value());
  family(out, "cdc_consumer_lag_seconds", "gauge", "Longest delivery to acknowledgement latency over the last interval.");
  sample_double(out, "cdc_consumer_lag_seconds", "", static_cast<double>(ack.lag_ns.value()) / 1e9);

  family(out, "cdc_consumer_retries_total", "counter", "Events completed with a NAK for redelivery.");
  std::uint64_t retried = 0;
  for (std::size_t t = 0; t < labels_.size(); ++t) retried += ack.events[t][static_cast<std::size_t>(EventResult::kRetried)].value();
  sample(out, "cdc_consumer_retries_total", "", retried);
  family(out, "cdc_consumer_dead_letters_total", "counter", "Dead letters published, by error kind.");
  for (std::size_t k = 1; k < kErrorKinds; ++k) {
    sample(out, "cdc_consumer_dead_letters_total", label("error_kind", to_string(static_cast<ErrorKind>(k))),
           ack.dead_letters[k].value());
  }
  family(out, "cdc_consumer_source_completions_total", "counter", "Source messages acked, NAKed and terminated.");
  sample(out, "cdc_consumer_source_completions_total", "kind=\"ack\"", ack.acks.value());
  sample(out, "cdc_consumer_source_completions_total", "kind=\"nak\"", ack.naks.value());
  sample(out, "cdc_consumer_source_completions_total", "kind=\"term\"", ack.terms.value());
  family(out, "cdc_consumer_publish_retries_total", "counter", "Publish attempts repeated after a transient failure.");
  sample(out, "cdc_consumer_publish_retries_total", "", publish.retries.value());
  family(out, "cdc_consumer_publish_timeouts_total", "counter", "Publishes whose PubAck did not arrive in time.");
  sample(out, "cdc_consumer_publish_timeouts_total", "", publish.timeouts.value());
  family(out, "cdc_consumer_pubacks_total", "counter", "PubAcks received, by outcome.");
  sample(out, "cdc_consumer_pubacks_total", "result=\"stored\"", puback.acks.value());
  sample(out, "cdc_consumer_pubacks_total", "result=\"duplicate\"", puback.duplicates.value());
  sample(out, "cdc_consumer_pubacks_total", "result=\"error\"", puback.errors.value());
  sample(out, "cdc_consumer_pubacks_total", "result=\"stale\"", puback.stale.value());
  family(out, "cdc_consumer_publish_in_flight", "gauge", "Publishes awaiting their PubAck.");
  sample(out, "cdc_consumer_publish_in_flight", "", static_cast<std::uint64_t>(std::max<std::int64_t>(0, publish.in_flight.value())));
  family(out, "cdc_consumer_publish_ack_seconds", "histogram", "Publish to PubAck latency.");
  publish.publish_latency.render(out, "cdc_consumer_publish_ack_seconds", "");
  family(out, "cdc_consumer_redis_errors_total", "counter", "Dedup commands that failed (Redis unreachable or error reply).");
  sample(out, "cdc_consumer_redis_errors_total", "", dedup.errors.value() + ack.redis_mark_errors.value());
  family(out, "cdc_consumer_redis_round_trip_seconds", "histogram", "Dedup batch round trip to Redis.");
  dedup.round_trip.render(out, "cdc_consumer_redis_round_trip_seconds", "");
  family(out, "cdc_consumer_invalid_messages_total", "counter", "Messages the parse stage found invalid.");
  sample(out, "cdc_consumer_invalid_messages_total", "", parse.invalid.value());
  if (extra) extra(out);
  return out;
}

std::string_view to_string(EventResult result) noexcept {
  switch (result) {
    case EventResult::kProcessed: return "processed";
    case EventResult::kSkipped: return "skipped";
    case EventResult::kDuplicate: return "duplicate";
    case EventResult::kDeadLettered: return "dead_lettered";
    case EventResult::kRetried: return "retried";
  }
  return "processed";
}

}  // namespace cdc
