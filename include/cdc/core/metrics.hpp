#pragma once
/// Metrics registry (CONTRACT.md section 7). Every counter and histogram has exactly one writer
/// thread, so an update is a relaxed load + store (no read-modify-write, no lock); the members
/// a thread writes are grouped on cache lines of their own. A scrape on the HTTP thread reads
/// them with relaxed loads and renders the Prometheus text format 0.0.4
/// (docs/operations.md lists every family).
///
/// Defining CDC_METRICS_OFF turns every update into a no-op (benchmarks measure the cost of the
/// metrics that way); rendering still works and shows zeros.

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cdc/core/ring_buffer.hpp"
#include "cdc/core/transform.hpp"

namespace cdc {

/// Result label of cdc_consumer_events_total.
enum class EventResult : std::uint8_t { kProcessed, kSkipped, kDuplicate, kDeadLettered, kRetried };
std::string_view to_string(EventResult result) noexcept;

/// Monotonic counter with a single writer thread.
class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept {
#ifndef CDC_METRICS_OFF
    // relaxed: single writer; readers only need an eventually consistent value.
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
#else
    (void)n;
#endif
  }
  [[nodiscard]] std::uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

/// Gauge with a single writer thread (last store wins).
class Gauge {
 public:
  void set(std::int64_t v) noexcept {
#ifndef CDC_METRICS_OFF
    v_.store(v, std::memory_order_relaxed);
#else
    (void)v;
#endif
  }
  [[nodiscard]] std::int64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> v_{0};
};

/// Latency histogram with fixed buckets (50 us to 10 s), single writer thread.
class Histogram {
 public:
  static constexpr std::size_t kBuckets = 17;  ///< finite buckets; +Inf comes on top
  /// Upper bounds in nanoseconds, and the same as Prometheus `le` label values in seconds.
  static constexpr std::array<std::int64_t, kBuckets> kBoundsNs{
      50'000,      100'000,       250'000,       500'000,       1'000'000,     2'500'000,
      5'000'000,   10'000'000,    25'000'000,    50'000'000,    100'000'000,   250'000'000,
      500'000'000, 1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
  static constexpr std::array<std::string_view, kBuckets> kLe{"5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                                              "0.005", "0.01",   "0.025",   "0.05",   "0.1",   "0.25",
                                                              "0.5",   "1",      "2.5",     "5",      "10"};

  /// Records one latency; negative values count as 0.
  void observe_ns(std::int64_t ns) noexcept {
#ifndef CDC_METRICS_OFF
    if (ns < 0) ns = 0;
    std::size_t i = 0;
    while (i < kBuckets && ns > kBoundsNs[i]) ++i;
    // relaxed: single writer; a scrape may see buckets, sum and count a few events apart.
    bump(buckets_[i], 1);
    bump(sum_ns_, static_cast<std::uint64_t>(ns));
    bump(count_, 1);
#else
    (void)ns;
#endif
  }
  /// Appends the _bucket/_sum/_count samples of `name` with `labels` ("" or `table="x"`).
  /// Buckets are cumulative and _count equals the +Inf bucket, whatever a concurrent writer does.
  void render(std::string& out, std::string_view name, std::string_view labels) const;
  [[nodiscard]] std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  [[nodiscard]] double sum_seconds() const noexcept {
    return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  }
  /// Approximate quantile from the buckets (upper bound of the bucket holding it), seconds.
  [[nodiscard]] double quantile(double q) const noexcept;

 private:
  static void bump(std::atomic<std::uint64_t>& a, std::uint64_t n) noexcept {
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::array<std::atomic<std::uint64_t>, kBuckets + 1> buckets_{};  // not cumulative; last = +Inf
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_ns_{0};
};

/// Largest value observed over the last kSeconds seconds, in one-second slots: one writer
/// thread observes, any thread reads. Backs cdc_consumer_lag_seconds.
class WindowMax {
 public:
  static constexpr std::int64_t kSeconds = 10;

  /// Writer thread. `now_ns` is the steady clock, `value` >= 0 (capped at 2^48 - 1, ~78 h in ns).
  void observe(std::int64_t now_ns, std::int64_t value) noexcept {
#ifndef CDC_METRICS_OFF
    const auto sec = static_cast<std::uint64_t>(now_ns / 1'000'000'000);
    std::atomic<std::uint64_t>& slot = slots_[sec % kSeconds];
    const std::uint64_t word = slot.load(std::memory_order_relaxed);
    const std::uint64_t v = value <= 0 ? 0 : std::min<std::uint64_t>(static_cast<std::uint64_t>(value), kValueMask);
    // relaxed: single writer; the slot's second and maximum travel together in one word.
    if ((word >> kTagShift) != (sec & kTagMask)) {
      slot.store(((sec & kTagMask) << kTagShift) | v, std::memory_order_relaxed);
    } else if (v > (word & kValueMask)) {
      slot.store((word & ~kValueMask) | v, std::memory_order_relaxed);
    }
#else
    (void)now_ns;
    (void)value;
#endif
  }
  /// Any thread: the maximum over the slots of the last kSeconds seconds (0 when none).
  [[nodiscard]] std::int64_t max(std::int64_t now_ns) const noexcept {
    const auto sec = static_cast<std::uint64_t>(now_ns / 1'000'000'000);
    std::uint64_t best = 0;
    for (const auto& slot : slots_) {
      const std::uint64_t word = slot.load(std::memory_order_relaxed);
      const std::uint64_t age = (sec - (word >> kTagShift)) & kTagMask;
      if (age < static_cast<std::uint64_t>(kSeconds)) best = std::max(best, word & kValueMask);
    }
    return static_cast<std::int64_t>(best);
  }

 private:
  static constexpr unsigned kTagShift = 48;
  static constexpr std::uint64_t kTagMask = 0xffff;
  static constexpr std::uint64_t kValueMask = (std::uint64_t{1} << kTagShift) - 1;
  std::array<std::atomic<std::uint64_t>, kSeconds> slots_{};  // (second & 0xffff) << 48 | max
};

/// Counters keyed by a name (a table), with a bounded label set: the first kSlots distinct names
/// get a counter each, later names (and names over kMaxName bytes) count under kOverflow. One
/// writer thread: a name is copied into a fixed slot and the slot published with a release store
/// of the slot count, so counting neither allocates nor locks; any thread renders.
class NamedCounters {
 public:
  static constexpr std::size_t kSlots = 64;
  static constexpr std::size_t kMaxName = 128;
  static constexpr std::string_view kOverflow = "_other";

  /// Writer thread.
  void inc(std::string_view name) noexcept {
#ifndef CDC_METRICS_OFF
    const std::size_t used = used_.load(std::memory_order_relaxed);  // only this thread stores it
    if (last_ < used && slots_[last_].name() == name) {
      slots_[last_].count.inc();
      return;
    }
    for (std::size_t i = 0; i < used; ++i) {
      if (slots_[i].name() == name) {
        last_ = i;
        slots_[i].count.inc();
        return;
      }
    }
    if (used == kSlots || name.size() > kMaxName || name == kOverflow) {
      overflow_.inc();
      return;
    }
    Slot& s = slots_[used];
    std::copy(name.begin(), name.end(), s.text.begin());
    s.length = name.size();
    s.count.inc();
    last_ = used;
    // release: the slot's name and first count are written before a reader sees the slot.
    used_.store(used + 1, std::memory_order_release);
#else
    (void)name;
#endif
  }
  /// Any thread: the names seen so far, in order of first appearance.
  [[nodiscard]] std::size_t size() const noexcept { return used_.load(std::memory_order_acquire); }
  [[nodiscard]] std::string_view name(std::size_t i) const noexcept { return slots_[i].name(); }
  [[nodiscard]] std::uint64_t value(std::size_t i) const noexcept { return slots_[i].count.value(); }
  [[nodiscard]] std::uint64_t overflow() const noexcept { return overflow_.value(); }

 private:
  struct Slot {
    std::array<char, kMaxName> text{};
    std::size_t length = 0;
    Counter count;
    [[nodiscard]] std::string_view name() const noexcept { return {text.data(), length}; }
  };
  std::array<Slot, kSlots> slots_{};
  std::atomic<std::size_t> used_{0};
  std::size_t last_ = 0;  // writer only: the slot hit last (skips come in runs of one table)
  Counter overflow_;
};

/// Redis maxmemory-policy values, in the order of cdc_consumer_redis_maxmemory_policy's index;
/// the last stands for a value this build does not know.
inline constexpr std::array<std::string_view, 9> kRedisPolicies{"noeviction",     "allkeys-lru",     "allkeys-lfu",
                                                                "allkeys-random", "volatile-lru",    "volatile-lfu",
                                                                "volatile-ttl",   "volatile-random", "other"};

/// Per-event "intake -> leaves this stage" latency with one clock read per batch: the stage
/// notes each event's intake time as it hands the event on (the event then belongs to the next
/// stage, so the time is copied here), and observes them all at end_of_batch. Stage thread only.
class StageTimer {
 public:
  StageTimer(Histogram& histogram, std::size_t capacity) : histogram_(histogram), received_(capacity, 0) {}
  void note(std::int64_t received_ns) noexcept {
#ifndef CDC_METRICS_OFF
    if (n_ < received_.size()) received_[n_++] = received_ns;
#else
    (void)received_ns;
#endif
  }
  /// End of batch: observes every noted event against `now_ns`.
  void flush(std::int64_t now_ns) noexcept {
    for (std::size_t i = 0; i < n_; ++i) histogram_.observe_ns(now_ns - received_[i]);
    n_ = 0;
  }
  [[nodiscard]] bool empty() const noexcept { return n_ == 0; }

 private:
  Histogram& histogram_;
  std::vector<std::int64_t> received_;
  std::size_t n_ = 0;
};

/// Appends `s` escaped for a Prometheus label value (\\, \", \n).
void append_label_value(std::string_view s, std::string& out);
/// Appends `s` escaped for a HELP line (\\, \n).
void append_help_text(std::string_view s, std::string& out);

/// Values the registry does not own, read by the pipeline at scrape time (rings, connections,
/// health). Filled on the scraping thread.
struct ScrapeState {
  static constexpr std::array<std::string_view, 5> kRings{"free", "parse", "dedup", "publish", "ack"};
  std::array<std::size_t, kRings.size()> ring_occupancy{};
  std::size_t ring_capacity = 0;
  std::size_t in_flight = 0;  ///< events between intake and completion
  bool running = false;
  bool ready = false;
  bool stalled = false;
  struct Connection {
    std::string_view name;  ///< "consume" / "publish" for NATS, "dedup" / "mark" for Redis
    bool present = false;   ///< false: not used (in-process ports, dedup disabled)
    bool up = false;
    std::uint64_t reconnects = 0;
    std::uint64_t failures = 0;  ///< NATS: disconnections; Redis: failed connection attempts
  };
  std::array<Connection, 2> nats{{{"consume"}, {"publish"}}};
  std::array<Connection, 2> redis{{{"dedup"}, {"mark"}}};
  std::uint64_t log_dropped = 0;
  std::string_view version = "unknown";
  std::string_view revision = "unknown";  ///< git revision at configure time
  /// Dependency versions for build_info: label name, version.
  std::array<std::pair<std::string_view, std::string_view>, 4> dependencies{};
  std::int64_t guard_max_failure_ms = 0;  ///< guard.max_failure_duration in force (0 = off)
  bool process = true;                    ///< add the process_* families (read from /proc)
  /// Names of the output and dead-letter streams (publish.stream, publish.dlq_stream); empty:
  /// the stream families are left out.
  std::array<std::string_view, 2> output_streams{};
};

/// Everything the pipeline counts. Members are grouped by writer thread on separate cache lines.
class Metrics {
 public:
  static constexpr std::size_t kResults = 5;  // EventResult values
  static constexpr std::size_t kErrorKinds = 10;

  explicit Metrics(std::vector<std::string> tables);

  /// Index of `table` in the tables given at construction; the last index ("_other") otherwise.
  [[nodiscard]] std::size_t table_index(std::string_view table) const noexcept;
  [[nodiscard]] const std::vector<std::string>& table_labels() const noexcept { return labels_; }

  /// Ack stage.
  struct alignas(kCacheLine) AckSide {
    std::vector<std::array<Counter, kResults>> events;  // [table][result]
    std::vector<Histogram> processing;                  // [table], delivery -> source ack (not NAKs)
    std::array<Counter, kErrorKinds> dead_letters;      // [error kind]
    Counter acks, naks, terms;
    Counter completion_errors;  // ack/nak/term that could not be sent
    Counter redis_mark_errors;
    WindowMax lag;  // delivery -> completion, last 10 s
    Gauge last_completion_unix_ms;
    Histogram stage;  // intake -> completion sent, every result
  } ack;

  /// Publish stage.
  struct alignas(kCacheLine) PublishSide {
    Counter published, publish_errors, retries, timeouts;
    Counter fenced;   // events not published: their partition's lease was lost (fencing)
    Gauge in_flight;  // events taken by the stage and not yet final
    Histogram stage;  // intake -> outcome final (leaves the stage)
    // Repeats of an event still in the stage's window, held instead of published again.
    Counter repeats_held;
    // publish.write_mode adaptive: 1 while the batching lane is in use; changes of lane.
    Gauge batching;
    Counter lane_switches;
  } publish;

  /// PubAck callback thread (nats.c).
  struct alignas(kCacheLine) PubAckSide {
    Counter acks, errors, duplicates, stale;
    Counter no_responders;  // no stream answered (or 503 / stream not found): the monitor checks the streams
    Histogram latency;      // publish -> PubAck
  } puback;

  /// Dedup stage.
  struct alignas(kCacheLine) DedupSide {
    Counter hit, miss, errors;
    Histogram round_trip;
    Histogram stage;  // intake -> dedup answer known (leaves the stage)
  } dedup;

  /// Parse stage.
  struct alignas(kCacheLine) ParseSide {
    Counter parsed, invalid, rules_reloaded;
    Histogram stage;               // intake -> parsed
    NamedCounters skipped_tables;  // skipped (table not kept), by table name
  } parse;

  /// Pipeline monitor thread (backlog, liveness, panic guard).
  struct alignas(kCacheLine) MonitorSide {
    Gauge backlog;             // JetStream num_pending of the durable consumer; -1 = not known yet
    Gauge ack_pending;         // JetStream num_ack_pending
    Gauge backlog_unix_ms;     // when the two were read
    Counter backlog_errors;    // failed consumer-info requests
    Gauge failing_ms;          // how long processing has been failing continuously (panic guard)
    Gauge redis_evicted_keys;  // Redis INFO stats evicted_keys; -1 = not read yet
    Gauge redis_policy;        // index in kRedisPolicies of INFO memory maxmemory_policy; -1 = not read yet
    /// Output (0) and dead-letter (1) stream: 1 while missing (ScrapeState::output_streams names them).
    std::array<Gauge, 2> output_stream_missing;
    std::array<Counter, 2> streams_recreated;  // recreated by the service (ingest.create_streams)
    /// Steady-clock ns at which the last output stream check that answered began (0 = none yet):
    /// a publish that found no stream before it, with the stream present, was not an outage.
    Gauge streams_checked_ns;
    /// Steady-clock ns of the last check, asked for by a "no responders", that found both streams
    /// present (0 = none): no stream takes some subject, so its failures are not an outage.
    Gauge streams_present_despite_ns;
  } monitor;

  /// Main thread (SIGHUP).
  struct alignas(kCacheLine) ControlSide {
    Counter reloads_ok, reloads_failed;
  } control;

  /// Fleet thread (cdc/adapters/nats/fleet.hpp): partition leases, consumers, checkpoints.
  /// Rendered only once a fleet attached (partitions > 0).
  struct alignas(kCacheLine) FleetSide {
    Gauge partitions;  // P; 0 = no fleet (push mode, in-process ports)
    Gauge owned;       // partitions this replica owns now
    Counter acquisitions, losses, releases, rebalances;
    Counter consumers_recreated;
    Gauge consumer_missing;  // owned partitions whose consumer is missing now
    // Per partition, -1 = not owned or not read yet (left out of the exposition).
    std::vector<Gauge> partition_backlog;  // num_pending + num_ack_pending
    std::vector<Gauge> checkpoint_lag;     // ack floor - stored checkpoint
    // Messages on stored subjects no partition consumer takes (malformed with P > 1); set by the
    // replica that owns partition 0, 0 on every other one.
    Gauge unconsumed;
    /// Start-up zone, before the first scrape: sizes the per-partition series.
    void resize(std::uint32_t count);
  } fleet;

  /// Renders the text exposition of every family; `state` adds what the registry does not own.
  [[nodiscard]] std::string render(const ScrapeState& state) const;

  /// Appends the standard process_* families (process_start_time_seconds, process_cpu_seconds_total,
  /// process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
  /// process_max_fds), read from /proc/self now; a value /proc does not give is left out.
  static void render_process(std::string& out);

 private:
  void render_fleet(std::string& out) const;

  std::vector<std::string> labels_;  // tables + "_other"
};

}  // namespace cdc
