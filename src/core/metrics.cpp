#include "cdc/core/metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace cdc {
namespace {

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  append_help_text(help, out);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

/// One sample line: name{labels} value.
void sample_line(std::string& out, std::string_view name, std::string_view labels, std::string_view value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

void sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t v) {
  sample_line(out, name, labels, std::to_string(v));
}

void sample_signed(std::string& out, std::string_view name, std::string_view labels, std::int64_t v) {
  sample_line(out, name, labels, std::to_string(v));
}

void sample_double(std::string& out, std::string_view name, std::string_view labels, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  sample_line(out, name, labels, buf);
}

std::string label(std::string_view key, std::string_view value) {
  std::string s(key);
  s += "=\"";
  append_label_value(value, s);
  s += '"';
  return s;
}

/// One family with a sample per connection in use (labelled `connection`); `value` picks what
/// each connection reports.
template <typename Value>
void per_connection(std::string& out, std::string_view name, std::string_view type, std::string_view help,
                    const std::array<ScrapeState::Connection, 2>& connections, Value value) {
  family(out, name, type, help);
  for (const auto& c : connections) {
    if (c.present) sample(out, name, label("connection", c.name), value(c));
  }
}

std::string labels2(std::string_view k1, std::string_view v1, std::string_view k2, std::string_view v2) {
  return label(k1, v1) + "," + label(k2, v2);
}

constexpr std::array<EventResult, 4> kContractResults{EventResult::kProcessed, EventResult::kSkipped,
                                                      EventResult::kDuplicate, EventResult::kDeadLettered};

std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void append_label_value(std::string_view s, std::string& out) {
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

void append_help_text(std::string_view s, std::string& out) {
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

void Histogram::render(std::string& out, std::string_view name, std::string_view labels) const {
  std::string bucket(name);
  bucket += "_bucket";
  std::string l;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= kBuckets; ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    l.assign(labels);
    if (!l.empty()) l += ',';
    l += "le=\"";
    l += i < kBuckets ? kLe[i] : std::string_view("+Inf");
    l += '"';
    sample(out, bucket, l, cumulative);
  }
  sample_double(out, std::string(name) + "_sum", labels, sum_seconds());
  // _count is the +Inf bucket as rendered, not count_: the writer may be between its stores.
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
    if (cumulative >= rank) return i < kBuckets ? static_cast<double>(kBoundsNs[i]) / 1e9 : INFINITY;
  }
  return INFINITY;
}

Metrics::Metrics(std::vector<std::string> tables) : labels_(std::move(tables)) {
  labels_.emplace_back("_other");
  ack.events = std::vector<std::array<Counter, kResults>>(labels_.size());
  ack.processing = std::vector<Histogram>(labels_.size());
  monitor.backlog.set(-1);
  monitor.ack_pending.set(-1);
  monitor.redis_evicted_keys.set(-1);
  monitor.redis_policy.set(-1);
}

void Metrics::FleetSide::resize(std::uint32_t count) {
  partition_backlog = std::vector<Gauge>(count);
  checkpoint_lag = std::vector<Gauge>(count);
  for (std::uint32_t p = 0; p < count; ++p) {
    partition_backlog[p].set(-1);
    checkpoint_lag[p].set(-1);
  }
  partitions.set(static_cast<std::int64_t>(count));
}

std::size_t Metrics::table_index(std::string_view table) const noexcept {
  for (std::size_t i = 0; i + 1 < labels_.size(); ++i) {
    if (labels_[i] == table) return i;
  }
  return labels_.size() - 1;
}

std::string Metrics::render(const ScrapeState& state) const {
  std::string out;
  out.reserve(32768);

  // -- The contract's families (CONTRACT.md section 7).
  family(out, "cdc_consumer_events_total", "counter", "Source messages completed, by table and result.");
  for (std::size_t t = 0; t < labels_.size(); ++t) {
    for (EventResult r : kContractResults) {
      sample(out, "cdc_consumer_events_total", labels2("table", labels_[t], "result", to_string(r)),
             ack.events[t][static_cast<std::size_t>(r)].value());
    }
  }
  family(out, "cdc_consumer_publish_errors_total", "counter",
         "Publish attempts that failed: not sent, negative PubAck, or no PubAck in time.");
  sample(out, "cdc_consumer_publish_errors_total", "",
         publish.publish_errors.value() + publish.timeouts.value() + puback.errors.value());
  family(out, "cdc_consumer_processing_seconds", "histogram",
         "Delivery to source acknowledgement (ack or term), by table.");
  for (std::size_t t = 0; t < labels_.size(); ++t) {
    ack.processing[t].render(out, "cdc_consumer_processing_seconds", label("table", labels_[t]));
  }
  family(out, "cdc_consumer_redis_hit_total", "counter", "Dedup look-ups that found a mark (hit) or not (miss).");
  sample(out, "cdc_consumer_redis_hit_total", "result=\"hit\"", dedup.hit.value());
  sample(out, "cdc_consumer_redis_hit_total", "result=\"miss\"", dedup.miss.value());
  family(out, "cdc_consumer_lag_seconds", "gauge",
         "Longest delivery to completion (ack, nak or term) latency over the last 10 seconds.");
  sample_double(out, "cdc_consumer_lag_seconds", "", static_cast<double>(ack.lag.max(steady_now_ns())) / 1e9);

  // -- Outcomes.
  family(out, "cdc_consumer_retries_total", "counter", "Source messages NAKed for redelivery.");
  std::uint64_t retried = 0;
  for (std::size_t t = 0; t < labels_.size(); ++t)
    retried += ack.events[t][static_cast<std::size_t>(EventResult::kRetried)].value();
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
  family(out, "cdc_consumer_source_completion_errors_total", "counter",
         "Acks, NAKs and terms that could not be sent (the connection was down).");
  sample(out, "cdc_consumer_source_completion_errors_total", "", ack.completion_errors.value());
  family(out, "cdc_consumer_last_completion_timestamp_seconds", "gauge",
         "Unix time of the last source completion (0 = none yet).");
  sample_double(out, "cdc_consumer_last_completion_timestamp_seconds", "",
                static_cast<double>(ack.last_completion_unix_ms.value()) / 1e3);
  family(out, "cdc_consumer_invalid_messages_total", "counter", "Messages the parse stage found invalid.");
  sample(out, "cdc_consumer_invalid_messages_total", "", parse.invalid.value());
  family(out, "cdc_consumer_skipped_messages_total", "counter",
         "Messages skipped because their table is not in ingest.tables, by table (the first 64 names; "
         "later ones under _other).");
  for (std::size_t i = 0, n = parse.skipped_tables.size(); i < n; ++i) {
    sample(out, "cdc_consumer_skipped_messages_total", label("table", parse.skipped_tables.name(i)),
           parse.skipped_tables.value(i));
  }
  sample(out, "cdc_consumer_skipped_messages_total", label("table", NamedCounters::kOverflow),
         parse.skipped_tables.overflow());

  // -- Per-stage latency.
  family(out, "cdc_consumer_stage_latency_seconds", "histogram",
         "Time from intake to the moment an event leaves each stage.");
  parse.stage.render(out, "cdc_consumer_stage_latency_seconds", "stage=\"parse\"");
  dedup.stage.render(out, "cdc_consumer_stage_latency_seconds", "stage=\"dedup\"");
  publish.stage.render(out, "cdc_consumer_stage_latency_seconds", "stage=\"publish\"");
  ack.stage.render(out, "cdc_consumer_stage_latency_seconds", "stage=\"ack\"");

  // -- Publishing.
  family(out, "cdc_consumer_publishes_total", "counter", "Publishes sent (events and dead letters, every attempt).");
  sample(out, "cdc_consumer_publishes_total", "", publish.published.value());
  family(out, "cdc_consumer_publish_retries_total", "counter", "Publish attempts repeated after a transient failure.");
  sample(out, "cdc_consumer_publish_retries_total", "", publish.retries.value());
  family(out, "cdc_consumer_publish_timeouts_total", "counter", "Publishes whose PubAck did not arrive in time.");
  sample(out, "cdc_consumer_publish_timeouts_total", "", publish.timeouts.value());
  family(out, "cdc_consumer_publish_fenced_total", "counter",
         "Events not published because this replica no longer holds their partition's lease (NAKed for the next "
         "owner).");
  sample(out, "cdc_consumer_publish_fenced_total", "", publish.fenced.value());
  family(out, "cdc_consumer_repeats_held_total", "counter",
         "Repeats of an event still awaiting its outcome in the publish stage, held instead of published again "
         "(then acked as duplicates, or NAKed when the first copy was not stored).");
  sample(out, "cdc_consumer_repeats_held_total", "", publish.repeats_held.value());
  family(out, "cdc_consumer_publish_batching", "gauge",
         "1 while the publish stage writes through the batching connection (publish.write_mode adaptive, under "
         "load), 0 through the eager one.");
  sample_signed(out, "cdc_consumer_publish_batching", "", publish.batching.value());
  family(out, "cdc_consumer_publish_lane_switches_total", "counter",
         "Changes between the eager and the batching publish connection (publish.write_mode adaptive).");
  sample(out, "cdc_consumer_publish_lane_switches_total", "", publish.lane_switches.value());
  if (!state.output_streams[0].empty()) {
    family(out, "cdc_consumer_output_stream_missing", "gauge",
           "1 while the output or dead-letter stream is missing (publishes are held and retried, not dead-lettered).");
    for (std::size_t i = 0; i < state.output_streams.size(); ++i) {
      sample_signed(out, "cdc_consumer_output_stream_missing", label("stream", state.output_streams[i]),
                    monitor.output_stream_missing[i].value());
    }
    family(out, "cdc_consumer_streams_recreated_total", "counter",
           "Output or dead-letter streams the service recreated after they went missing (ingest.create_streams).");
    for (std::size_t i = 0; i < state.output_streams.size(); ++i) {
      sample(out, "cdc_consumer_streams_recreated_total", label("stream", state.output_streams[i]),
             monitor.streams_recreated[i].value());
    }
  }
  family(out, "cdc_consumer_pubacks_total", "counter", "PubAcks received, by outcome.");
  sample(out, "cdc_consumer_pubacks_total", "result=\"stored\"", puback.acks.value());
  sample(out, "cdc_consumer_pubacks_total", "result=\"duplicate\"", puback.duplicates.value());
  sample(out, "cdc_consumer_pubacks_total", "result=\"error\"", puback.errors.value());
  sample(out, "cdc_consumer_pubacks_total", "result=\"stale\"", puback.stale.value());
  family(out, "cdc_consumer_publish_in_flight", "gauge",
         "Events in the publish stage awaiting a final outcome (PubAck, retry).");
  sample_signed(out, "cdc_consumer_publish_in_flight", "", std::max<std::int64_t>(0, publish.in_flight.value()));
  family(out, "cdc_consumer_publish_ack_seconds", "histogram", "Publish to PubAck latency.");
  puback.latency.render(out, "cdc_consumer_publish_ack_seconds", "");

  // -- Redis.
  family(out, "cdc_consumer_redis_errors_total", "counter",
         "Redis commands that failed (not sent, error reply or connection lost), by connection.");
  sample(out, "cdc_consumer_redis_errors_total", "connection=\"dedup\"", dedup.errors.value());
  sample(out, "cdc_consumer_redis_errors_total", "connection=\"mark\"", ack.redis_mark_errors.value());
  family(out, "cdc_consumer_redis_round_trip_seconds", "histogram", "Dedup command round trip to Redis.");
  dedup.round_trip.render(out, "cdc_consumer_redis_round_trip_seconds", "");

  // -- Pipeline state, read at scrape time.
  family(out, "cdc_consumer_ring_occupancy", "gauge", "Events queued in each ring.");
  for (std::size_t i = 0; i < ScrapeState::kRings.size(); ++i) {
    sample(out, "cdc_consumer_ring_occupancy", label("ring", ScrapeState::kRings[i]), state.ring_occupancy[i]);
  }
  family(out, "cdc_consumer_ring_capacity", "gauge", "Capacity of every ring (the event pool size).");
  sample(out, "cdc_consumer_ring_capacity", "", state.ring_capacity);
  family(out, "cdc_consumer_in_flight", "gauge", "Events between intake and completion.");
  sample(out, "cdc_consumer_in_flight", "", state.in_flight);
  family(out, "cdc_consumer_up", "gauge", "1 while the pipeline runs.");
  sample(out, "cdc_consumer_up", "", state.running ? 1 : 0);
  family(out, "cdc_consumer_ready", "gauge", "1 when /readyz answers 200.");
  sample(out, "cdc_consumer_ready", "", state.ready ? 1 : 0);
  family(out, "cdc_consumer_stalled", "gauge",
         "1 when /healthz fails: work pending and nothing completed for health.stall_timeout.");
  sample(out, "cdc_consumer_stalled", "", state.stalled ? 1 : 0);
  family(
      out, "cdc_consumer_failing_seconds", "gauge",
      "How long processing has been failing without a success (the panic guard exits at guard.max_failure_duration).");
  sample_double(out, "cdc_consumer_failing_seconds", "", static_cast<double>(monitor.failing_ms.value()) / 1e3);
  family(out, "cdc_consumer_guard_max_failure_seconds", "gauge",
         "guard.max_failure_duration in force: the panic guard exits when failing_seconds reaches it (0 = off).");
  sample_double(out, "cdc_consumer_guard_max_failure_seconds", "",
                static_cast<double>(state.guard_max_failure_ms) / 1e3);

  using Conn = ScrapeState::Connection;
  const auto up = [](const Conn& c) -> std::uint64_t { return c.up ? 1 : 0; };
  const auto reconnects = [](const Conn& c) { return c.reconnects; };
  const auto failures = [](const Conn& c) { return c.failures; };
  per_connection(out, "cdc_consumer_nats_connected", "gauge", "1 when the NATS connection is up, by connection.",
                 state.nats, up);
  per_connection(out, "cdc_consumer_nats_reconnects_total", "counter", "NATS reconnections, by connection.", state.nats,
                 reconnects);
  per_connection(out, "cdc_consumer_nats_disconnects_total", "counter", "NATS disconnections, by connection.",
                 state.nats, failures);
  per_connection(out, "cdc_consumer_redis_up", "gauge", "1 when the Redis connection is up, by connection.",
                 state.redis, up);
  per_connection(out, "cdc_consumer_redis_reconnects_total", "counter", "Redis reconnections, by connection.",
                 state.redis, reconnects);
  per_connection(out, "cdc_consumer_redis_connect_failures_total", "counter",
                 "Failed Redis connection attempts, by connection.", state.redis, failures);

  // -- Redis memory policy and evictions, read with INFO by the monitor thread (absent until read).
  if (monitor.redis_evicted_keys.value() >= 0) {
    family(out, "cdc_consumer_redis_evicted_keys", "gauge",
           "Keys Redis has evicted since it started (INFO stats evicted_keys); dedup marks among them mean possible "
           "duplicates.");
    sample_signed(out, "cdc_consumer_redis_evicted_keys", "", monitor.redis_evicted_keys.value());
  }
  if (const std::int64_t p = monitor.redis_policy.value();
      p >= 0 && static_cast<std::size_t>(p) < kRedisPolicies.size()) {
    family(out, "cdc_consumer_redis_maxmemory_policy", "gauge",
           "Redis maxmemory-policy (INFO memory maxmemory_policy): 1 for the policy in force.");
    sample(out, "cdc_consumer_redis_maxmemory_policy", label("policy", kRedisPolicies[static_cast<std::size_t>(p)]), 1);
  }

  // -- Consumer backlog, read from JetStream by the monitor thread (absent until first read).
  if (monitor.backlog.value() >= 0) {
    family(out, "cdc_consumer_backlog_messages", "gauge",
           "Messages of the durable consumer not yet delivered (JetStream num_pending), for autoscaling.");
    sample_signed(out, "cdc_consumer_backlog_messages", "", monitor.backlog.value());
    family(out, "cdc_consumer_ack_pending_messages", "gauge",
           "Messages delivered to the durable consumer and not yet acknowledged (JetStream num_ack_pending).");
    sample_signed(out, "cdc_consumer_ack_pending_messages", "", monitor.ack_pending.value());
    family(out, "cdc_consumer_backlog_timestamp_seconds", "gauge", "Unix time the backlog was last read.");
    sample_double(out, "cdc_consumer_backlog_timestamp_seconds", "",
                  static_cast<double>(monitor.backlog_unix_ms.value()) / 1e3);
  }
  family(out, "cdc_consumer_backlog_errors_total", "counter", "Failed reads of the consumer backlog.");
  sample(out, "cdc_consumer_backlog_errors_total", "", monitor.backlog_errors.value());

  // -- Operations.
  // -- Partition leases (pull mode with a fleet).
  if (fleet.partitions.value() > 0) render_fleet(out);

  family(out, "cdc_consumer_config_reloads_total", "counter", "SIGHUP configuration reloads, by result.");
  sample(out, "cdc_consumer_config_reloads_total", "result=\"applied\"", control.reloads_ok.value());
  sample(out, "cdc_consumer_config_reloads_total", "result=\"failed\"", control.reloads_failed.value());
  family(out, "cdc_consumer_log_dropped_total", "counter", "Log lines dropped because the log queue was full.");
  sample(out, "cdc_consumer_log_dropped_total", "", state.log_dropped);
  family(out, "cdc_consumer_build_info", "gauge",
         "Build information: version, git revision and dependency versions; the value is always 1.");
  std::string build = label("version", state.version);
  build += ',';
  build += label("revision", state.revision);
  for (const auto& [name, version] : state.dependencies) {
    if (name.empty()) continue;
    build += ',';  // appended piecewise: `"," + label(...)` trips GCC 12's -Wrestrict at -O3 (bug 105329)
    build += label(name, version);
  }
  sample(out, "cdc_consumer_build_info", build, 1);
  if (state.process) render_process(out);
  return out;
}

void Metrics::render_process(std::string& out) {
  // /proc/self/stat: the fields after "(comm)" (which may hold spaces), 1-based as in proc(5).
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  std::vector<std::string> fields;
  if (const auto close = stat.rfind(')'); close != std::string::npos) {
    std::istringstream rest(stat.substr(close + 1));
    fields = {"pid", "comm"};
    for (std::string f; rest >> f;) fields.push_back(f);
  }
  const auto field = [&](std::size_t n, double& v) {
    if (n > fields.size()) return false;
    try {
      v = std::stod(fields[n - 1]);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  };
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  double utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
  if (field(14, utime) && field(15, stime) && ticks > 0) {
    family(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
    sample_double(out, "process_cpu_seconds_total", "", (utime + stime) / ticks);
  }
  double boot = -1;
  std::ifstream proc_stat("/proc/stat");
  for (std::string line; std::getline(proc_stat, line);) {
    if (line.rfind("btime ", 0) == 0) boot = std::stod(line.substr(6));
  }
  if (field(22, start) && boot >= 0 && ticks > 0) {
    family(out, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
    sample_double(out, "process_start_time_seconds", "", boot + start / ticks);
  }
  if (field(23, vsize)) {
    family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    sample_double(out, "process_virtual_memory_bytes", "", vsize);
  }
  if (field(24, rss)) {
    family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    sample_double(out, "process_resident_memory_bytes", "", rss * static_cast<double>(sysconf(_SC_PAGESIZE)));
  }
  if (DIR* dir = opendir("/proc/self/fd")) {
    std::uint64_t fds = 0;
    while (const dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') ++fds;
    }
    closedir(dir);
    family(out, "process_open_fds", "gauge", "Number of open file descriptors.");
    sample(out, "process_open_fds", "", fds > 0 ? fds - 1 : 0);  // less the directory's own
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    sample_double(out, "process_max_fds", "", static_cast<double>(limit.rlim_cur));
  }
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

void Metrics::render_fleet(std::string& out) const {
  family(out, "cdc_consumer_partitions", "gauge", "Source partitions (ingest.partitions).");
  sample_signed(out, "cdc_consumer_partitions", "", fleet.partitions.value());
  family(out, "cdc_consumer_partitions_owned", "gauge", "Source partitions this replica holds the lease of.");
  sample_signed(out, "cdc_consumer_partitions_owned", "", fleet.owned.value());
  family(out, "cdc_consumer_lease_acquisitions_total", "counter", "Partition leases acquired (free or taken over).");
  sample(out, "cdc_consumer_lease_acquisitions_total", "", fleet.acquisitions.value());
  family(out, "cdc_consumer_lease_losses_total", "counter",
         "Partition leases lost: not renewed in time (fenced) or taken by another replica.");
  sample(out, "cdc_consumer_lease_losses_total", "", fleet.losses.value());
  family(out, "cdc_consumer_lease_releases_total", "counter",
         "Partition leases released (hand-over on a rebalance, graceful stop).");
  sample(out, "cdc_consumer_lease_releases_total", "", fleet.releases.value());
  family(out, "cdc_consumer_rebalances_total", "counter",
         "Changes of the partitions this replica should own (members joined or left).");
  sample(out, "cdc_consumer_rebalances_total", "", fleet.rebalances.value());
  family(out, "cdc_consumer_consumers_recreated_total", "counter",
         "Partition consumers created again after they disappeared (from the checkpoint).");
  sample(out, "cdc_consumer_consumers_recreated_total", "", fleet.consumers_recreated.value());
  family(out, "cdc_consumer_consumer_missing", "gauge", "Owned partitions whose durable consumer is missing now.");
  sample_signed(out, "cdc_consumer_consumer_missing", "", fleet.consumer_missing.value());
  family(out, "cdc_consumer_partition_backlog", "gauge",
         "Owned partitions: messages not yet delivered plus delivered and not yet acknowledged.");
  for (std::size_t p = 0; p < fleet.partition_backlog.size(); ++p) {
    const std::int64_t v = fleet.partition_backlog[p].value();
    if (v >= 0) sample_signed(out, "cdc_consumer_partition_backlog", label("partition", std::to_string(p)), v);
  }
  family(out, "cdc_consumer_checkpoint_lag", "gauge",
         "Owned partitions: the consumer's acknowledged stream sequence minus the stored checkpoint.");
  for (std::size_t p = 0; p < fleet.checkpoint_lag.size(); ++p) {
    const std::int64_t v = fleet.checkpoint_lag[p].value();
    if (v >= 0) sample_signed(out, "cdc_consumer_checkpoint_lag", label("partition", std::to_string(p)), v);
  }
  family(out, "cdc_consumer_unconsumed_messages", "gauge",
         "Messages in the source stream on subjects no partition consumer takes (off the layout, "
         "never consumed); reported by the replica that owns partition 0, 0 on the others.");
  sample_signed(out, "cdc_consumer_unconsumed_messages", "", fleet.unconsumed.value());
}

}  // namespace cdc
