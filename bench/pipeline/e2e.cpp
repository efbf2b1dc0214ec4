// --mode e2e | relay | direct: against real nats-server -js and redis-server on loopback
// (started here on free ports in a temporary directory, or given with --nats-url /
// --redis-address), with the real service pipeline in process (Pipeline(Config, Ports) on
// make_service_ports: the service's NATS and Redis ports).
//
//   drain    a backlog of N generated messages is published into the source stream first; then
//            the consumer under test starts and the clock runs until every message is completed
//            (ours: the pipeline's ack + nak + term count; relay: its in-order acks)
//   latency  messages are published at a fixed rate while the consumer runs; each body carries
//            its intended send time inside `record`, which the service copies into row_data, so
//            a core subscriber on the output subjects measures source publish -> enriched event
//            (direct: the subscriber listens on the source subjects, no consumer in between)
//
// Each drain round recreates the source stream and publishes a fresh backlog (new commit LSNs
// and message ids, so neither Redis nor a duplicate window has seen it); with baselines the
// relay and ours drain the same backlog through their own durable consumers, and alternate
// who goes first from round to round.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "cdc/core/log.hpp"
#include "cdc/core/partitions.hpp"
#include "cdc/adapters/service_ports.hpp"
#include "cdc/pipeline/pipeline.hpp"
#include "cdc/pipeline/link.hpp"
#include "common/report.hpp"
#include "pipeline/harness.hpp"
#include "pipeline/js_tools.hpp"
#include "pipeline/local_servers.hpp"
#include "pipeline/relay.hpp"
#include "pipeline/stage_report.hpp"
#include "pipeline/thread_cpu.hpp"

namespace cdc::bench {
namespace {

constexpr std::int64_t kNsPerMs = 1'000'000;

struct Servers {
  std::optional<TempDir> dir;
  std::optional<LocalNats> nats;
  std::optional<LocalRedis> redis;
  std::string nats_url, redis_address;
  pid_t nats_pid = -1, redis_pid = -1;

  std::uint64_t nats_cpu() const { return nats_pid > 0 ? child_cpu_ns(nats_pid) : 0; }
  std::uint64_t redis_cpu() const { return redis_pid > 0 ? child_cpu_ns(redis_pid) : 0; }
};

/// CPU of the consumer under test (every thread of this process but the harness's own and
/// nats.c's process-wide ones: thread_cpu.hpp), nats.c's process-wide threads, nats-server and
/// redis-server over a window. Take the result before the consumer stops (its threads must
/// still be there).
struct CpuWindow {
  const Servers& servers;
  std::map<pid_t, std::uint64_t> consumer0, library0;
  std::uint64_t nats0, redis0;
  explicit CpuWindow(const Servers& s)
      : servers(s),
        consumer0(consumer_thread_cpu_ns()),
        library0(library_thread_cpu_ns()),
        nats0(s.nats_cpu()),
        redis0(s.redis_cpu()) {}
  struct Result {
    /// Per message. consumer_us: the consumer's own threads, plus nats.c's process-wide threads
    /// when `with_library` (a drain: the harness is idle, their work is the consumer's).
    double consumer_us = 0, library_us = 0, nats_us = 0, redis_us = 0;
  };
  Result per_message(std::uint64_t n, bool with_library) const {
    const double d = static_cast<double>(std::max<std::uint64_t>(n, 1)) * 1e3;
    const double library = static_cast<double>(cpu_delta_sum(library0, library_thread_cpu_ns())) / d;
    const double own = static_cast<double>(cpu_delta_sum(consumer0, consumer_thread_cpu_ns())) / d;
    return {with_library ? own + library : own, library, static_cast<double>(servers.nats_cpu() - nats0) / d,
            static_cast<double>(servers.redis_cpu() - redis0) / d};
  }
};

struct DrainResult {
  std::string who;  // "ours" | "relay" | "replicas"; compare: the participant's label
  int round = 0;
  std::uint64_t messages = 0;
  double seconds = 0;
  double rate = 0;
  CpuWindow::Result cpu;
  std::map<std::string, std::uint64_t> results;  // ours: processed / skipped / duplicate / dead_lettered / retried
  std::vector<std::pair<std::string, StageQuantiles>> stages;
  bool complete = true;
  std::uint64_t publish_errors = 0;  ///< relay: publishes that failed (their sources acked anyway)
  // --replicas: service processes
  int replicas = 0;  ///< 0 = the in-process pipeline
  int partitions = 1;
  double startup_seconds = 0;          ///< start of the processes -> first message delivered
  std::vector<double> replica_cpu_us;  ///< per message of the backlog, per replica process
};

struct LatencyResult {
  std::string who;  // "ours" | "direct" | "relay"; compare: the participant's label
  double rate = 0;
  std::uint64_t sent = 0, received = 0;
  std::uint64_t expected = 0;  ///< events that should arrive (ours: processed; direct: sent)
  std::uint64_t repeats = 0;   ///< deliveries on wa.> of a Nats-Msg-Id delivered before (stored once)
  double max_behind_ms = 0;
  std::uint64_t lane_switches = 0;  ///< ours: publish.write_mode adaptive's changes of connection
  std::unique_ptr<LogHistogram> latency;
  CpuWindow::Result cpu;
  std::vector<std::pair<std::string, StageQuantiles>> stages;
};

std::string fmt_repeats(std::uint64_t n) {
  return "  (+" + std::to_string(n) + " extra deliveries of a Nats-Msg-Id already delivered)";
}

std::uint64_t completions(Pipeline& p) {
  Metrics& m = p.metrics();
  return m.ack.acks.value() + m.ack.naks.value() + m.ack.terms.value();
}

std::map<std::string, std::uint64_t> result_counts(Pipeline& p) {
  static constexpr const char* kNames[] = {"processed", "skipped", "duplicate", "dead_lettered", "retried"};
  std::map<std::string, std::uint64_t> out;
  Metrics& m = p.metrics();
  for (std::size_t t = 0; t < m.table_labels().size(); ++t) {
    for (std::size_t k = 0; k < Metrics::kResults; ++k) out[kNames[k]] += m.ack.events[t][k].value();
  }
  // publish.write_mode adaptive: how often the publish stage changed connections.
  out["lane_switches"] = m.publish.lane_switches.value();
  return out;
}

/// Waits until `done()` reaches `target`, failing after `stall` without progress. False on a stall.
template <typename Done>
bool wait_for_count(Done done, std::uint64_t target, std::chrono::seconds stall, std::chrono::milliseconds poll) {
  std::uint64_t last = 0;
  auto last_change = std::chrono::steady_clock::now();
  while (true) {
    const std::uint64_t n = done();
    if (n >= target) return true;
    if (n != last) {
      last = n;
      last_change = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - last_change > stall) {
      return false;
    }
    std::this_thread::sleep_for(poll);
  }
}

class E2e {
 public:
  E2e(const HarnessOptions& o, Servers& servers, const Corpus& corpus, Config config)
      : o_(o),
        servers_(servers),
        corpus_(corpus),
        config_(std::move(config)),
        admin_(servers.nats_url, "bench-admin", o.publish_window) {
    const auto window = static_cast<std::int64_t>(config_.publish.duplicate_window.count()) * kNsPerMs;
    ensure_stream(admin_.js(), config_.publish.stream, {config_.publish.subject_prefix + ".>"}, window);
    ensure_stream(admin_.js(), config_.publish.dlq_stream, {config_.publish.dlq_subject_prefix + ".>"}, window);
  }

  /// Fresh source stream (its consumers go with it) holding a fresh backlog of `n` messages.
  void load_backlog(std::uint64_t n) {
    fresh_source();
    NatsClient loader(servers_.nats_url, "bench-loader", o_.publish_window);
    const double s = publish_backlog(loader, corpus_, pass_, n);
    pass_ += corpus_.passes(n);
    const std::uint64_t stored = stream_messages(admin_.js(), config_.ingest.stream);
    std::printf("backlog         %llu messages published in %.2f s (%.0f msg/s); stream holds %llu\n",
                static_cast<unsigned long long>(n), s, static_cast<double>(n) / s,
                static_cast<unsigned long long>(stored));
    if (stored != n)
      throw std::runtime_error("source stream holds " + std::to_string(stored) + " messages, expected " +
                               std::to_string(n));
  }

  /// The service pipeline with configuration `c` drains the backlog.
  DrainResult drain_ours(std::uint64_t n, int round, const Config& c, const std::string& who = "ours") {
    DrainResult r;
    r.who = who;
    r.round = round;
    r.messages = n;
    const CpuWindow cpu(servers_);
    const std::int64_t t0 = now_ns();
    {
      Pipeline p(c, make_service_ports(c));
      p.start();
      r.complete =
          wait_for_count([&] { return completions(p); }, n, std::chrono::seconds(60), std::chrono::milliseconds(1));
      const std::int64_t t1 = p.health().last_completion_ns;
      r.cpu = cpu.per_message(n, /*with_library=*/true);
      r.seconds = static_cast<double>(t1 - t0) / 1e9;
      r.results = result_counts(p);
      r.stages = stage_quantiles(p.metrics());
      p.stop();
    }
    r.rate = r.complete && r.seconds > 0 ? static_cast<double>(n) / r.seconds : 0;
    print_drain(r);
    return r;
  }

  /// --replicas: `replicas` daisi-cdc-consumer processes drain the backlog through the
  /// partition consumers, sharing the partitions by their leases. The clock runs from their start
  /// (process start-up, leases and consumers included; `startup_seconds` says how much of it was
  /// before the first delivery) until every partition consumer has nothing pending or unacked.
  DrainResult drain_fleet(std::uint64_t n, int round, int replicas) {
    DrainResult r;
    r.who = "replicas";
    r.round = round;
    r.messages = n;
    r.replicas = replicas;
    r.partitions = config_.ingest.partitions;
    // The source stream is new: so are the leases and checkpoints (a checkpoint of the old
    // stream would point past the new one's messages).
    {
      jsErrCode err = static_cast<jsErrCode>(0);
      js_DeleteStream(admin_.js(), ("KV_" + config_.ingest.lease_bucket).c_str(), nullptr, &err);
    }
    const std::string binary = o_.service_binary.empty() ? std::string(CDC_SERVICE_BINARY) : o_.service_binary;
    const CpuWindow cpu(servers_);
    const std::int64_t t0 = now_ns();
    std::vector<std::unique_ptr<ChildProcess>> children;
    for (int i = 0; i < replicas; ++i) {
      std::vector<std::string> argv{"env",
                                    "NATS_URL=" + servers_.nats_url,
                                    "REDIS_ADDRESS=" + servers_.redis_address,
                                    "DAISI_CDC_INGEST_PARTITIONS=" + std::to_string(config_.ingest.partitions),
                                    "DAISI_CDC_INGEST_SUBJECT_LAYOUT=" + config_.ingest.subject_layout,
                                    "DAISI_CDC_INGEST_MODE=pull",
                                    "DAISI_CDC_INGEST_REPLICA_ID=bench-" + std::to_string(i),
                                    "DAISI_CDC_METRICS_PORT=" + std::to_string(free_port()),
                                    "DAISI_CDC_METRICS_BIND=127.0.0.1",
                                    std::string("LOG_LEVEL=") + (o_.verbose ? "info" : "error"),
                                    binary};
      if (!o_.config_path.empty()) argv.insert(argv.end(), {"--config", o_.config_path});
      children.push_back(std::make_unique<ChildProcess>(
          argv, servers_.dir->path() + "/replica-" + std::to_string(i) + "-round-" + std::to_string(round) + ".log"));
    }
    std::int64_t first_delivery_ns = 0;
    std::int64_t t1 = 0;
    std::uint64_t last_floor_sum = 0;
    std::int64_t last_change_ns = now_ns();
    r.complete = false;
    while (true) {
      bool done = true;
      std::uint64_t floor_sum = 0;
      bool delivered = false;
      for (int p = 0; p < config_.ingest.partitions; ++p) {
        const std::string name = partition_consumer(config_.ingest, static_cast<std::uint32_t>(p));
        jsConsumerInfo* ci = nullptr;
        jsErrCode err = static_cast<jsErrCode>(0);
        if (js_GetConsumerInfo(&ci, admin_.js(), config_.ingest.stream.c_str(), name.c_str(), nullptr, &err) !=
            NATS_OK) {
          done = false;  // not created yet
          continue;
        }
        floor_sum += ci->AckFloor.Stream;
        delivered = delivered || ci->Delivered.Stream > 0;
        done = done && ci->NumPending == 0 && ci->NumAckPending == 0;
        jsConsumerInfo_Destroy(ci);
      }
      const std::int64_t now = now_ns();
      if (delivered && first_delivery_ns == 0) first_delivery_ns = now;
      if (done && delivered) {
        t1 = now;
        r.complete = true;
        break;
      }
      if (floor_sum != last_floor_sum) {
        last_floor_sum = floor_sum;
        last_change_ns = now;
      } else if (now - last_change_ns > 60'000 * kNsPerMs) {
        break;  // stalled
      }
      bool any_running = false;
      for (auto& c : children) any_running = any_running || c->running();
      if (!any_running) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    r.seconds = static_cast<double>((t1 != 0 ? t1 : now_ns()) - t0) / 1e9;
    r.startup_seconds = first_delivery_ns != 0 ? static_cast<double>(first_delivery_ns - t0) / 1e9 : 0;
    r.cpu = cpu.per_message(n, /*with_library=*/true);
    for (auto& c : children) {
      r.replica_cpu_us.push_back(static_cast<double>(c->running() ? child_cpu_ns(c->pid()) : 0) /
                                 (static_cast<double>(std::max<std::uint64_t>(n, 1)) * 1e3));
    }
    for (auto& c : children) c->stop(std::chrono::milliseconds(15000));
    r.rate = r.complete && r.seconds > 0 ? static_cast<double>(n) / r.seconds : 0;
    print_drain(r);
    return r;
  }

  /// The relay (`eager`: SendAsap; else nats.c's flusher) drains the backlog.
  DrainResult drain_relay(std::uint64_t n, int round, bool eager, const std::string& who = "relay") {
    DrainResult r;
    r.who = who;
    r.round = round;
    r.messages = n;
    const CpuWindow cpu(servers_);
    const std::int64_t t0 = now_ns();
    {
      Relay relay(relay_options(eager));
      relay.start();
      r.complete =
          wait_for_count([&] { return relay.acked(); }, n, std::chrono::seconds(60), std::chrono::milliseconds(1));
      r.seconds = static_cast<double>(relay.last_ack_ns() - t0) / 1e9;
      r.cpu = cpu.per_message(n, /*with_library=*/true);
      relay.stop();
      r.publish_errors = relay.publish_errors();
    }
    r.rate = r.complete && r.seconds > 0 ? static_cast<double>(n) / r.seconds : 0;
    print_drain(r);
    return r;
  }

  enum class Path : std::uint8_t {
    kService,  ///< the pipeline with `service` running, subscriber on the output subjects
    kRelay,    ///< the relay running (eager or batching), subscriber on the output subjects
    kDirect,   ///< nothing in between, subscriber on the source subjects
  };

  /// Publishes at `rate` for --latency-seconds through `path` and records source publish ->
  /// arrival on a core subscription.
  LatencyResult latency(Path path, double rate, const Config* service, bool eager, const std::string& who) {
    LatencyResult r;
    r.who = who;
    r.rate = rate;
    fresh_source();
    const std::string subject =
        path == Path::kDirect
            ? (config_.ingest.stream_subjects.empty() ? "cdc.>" : config_.ingest.stream_subjects.front())
            : config_.publish.subject_prefix + ".>";
    // The harness's connections first, so that the threads they start are told apart from the
    // consumer's (thread_cpu.hpp). Nothing is recorded until the consumer runs.
    const auto expected = static_cast<std::size_t>(rate * o_.latency_seconds * 1.1) + 1024;
    LatencySubscriber sub(servers_.nats_url, subject, std::numeric_limits<std::int64_t>::max(), /*by_msg_id=*/true,
                          expected);
    // The source publishes with SendAsap, as promptly as a producer that flushes per message:
    // nats.c's ~1 ms flusher would otherwise be part of every path measured here, the direct one
    // included, and hide what the consumer in between adds.
    NatsClient source(servers_.nats_url, "bench-source", o_.publish_window, /*send_asap=*/true);
    std::unique_ptr<Pipeline> pipeline;
    std::unique_ptr<Relay> relay;
    if (path == Path::kService) {
      pipeline = std::make_unique<Pipeline>(*service, make_service_ports(*service));
      pipeline->start();
    } else if (path == Path::kRelay) {
      relay = std::make_unique<Relay>(relay_options(eager));
      relay->start();
    }
    sub.record_from(now_ns() + static_cast<std::int64_t>(o_.warmup_seconds * 1e9));
    const CpuWindow cpu(servers_);
    const RatePublishResult pub = publish_at_rate(source, corpus_, pass_, rate, o_.latency_seconds);
    pass_ += corpus_.passes(pub.sent);
    r.sent = pub.sent;
    r.max_behind_ms = static_cast<double>(pub.max_behind_ns) / 1e6;
    // Let the consumer finish what was published, then give the last events time to arrive.
    if (pipeline)
      wait_for_count([&] { return completions(*pipeline); }, pub.sent, std::chrono::seconds(30),
                     std::chrono::milliseconds(5));
    if (relay)
      wait_for_count([&] { return relay->acked(); }, pub.sent, std::chrono::seconds(30), std::chrono::milliseconds(5));
    if (path == Path::kDirect)
      wait_for_count([&] { return sub.received(); }, pub.sent, std::chrono::seconds(10), std::chrono::milliseconds(5));
    std::uint64_t seen = sub.received();
    for (int quiet = 0; quiet < 3;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const std::uint64_t now = sub.received();
      quiet = now == seen ? quiet + 1 : 0;
      seen = now;
    }
    r.cpu = cpu.per_message(pub.sent, /*with_library=*/false);
    sub.close();
    r.received = sub.received();
    r.repeats = sub.repeats();
    r.latency = std::make_unique<LogHistogram>(sub.latency());
    r.expected = r.sent;
    if (pipeline) {
      const auto results = result_counts(*pipeline);
      r.expected = results.at("processed");
      r.lane_switches = results.at("lane_switches");
      r.stages = stage_quantiles(pipeline->metrics());
      pipeline->stop();
    }
    if (relay) relay->stop();
    print_latency(r);
    return r;
  }

 private:
  [[nodiscard]] RelayOptions relay_options(bool eager) const {
    RelayOptions ro;
    ro.url = servers_.nats_url;
    ro.stream = config_.ingest.stream;
    ro.out_prefix = config_.publish.subject_prefix;
    ro.send_asap = eager;
    return ro;
  }

  void fresh_source() {
    // The service's checkpoints (ingest.lease_bucket) go with the old stream: a checkpoint left
    // by an earlier drain would start the next pipeline's consumer past the new backlog.
    jsErrCode err = static_cast<jsErrCode>(0);
    js_DeleteStream(admin_.js(), ("KV_" + config_.ingest.lease_bucket).c_str(), nullptr, &err);  // may not exist
    recreate_stream(admin_.js(), config_.ingest.stream, config_.ingest.stream_subjects, 0);
    purge_stream(admin_.js(), config_.publish.stream);
  }

  static void print_drain(const DrainResult& r) {
    if (r.replicas > 0) {
      std::string per;
      double sum = 0;
      for (const double us : r.replica_cpu_us) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%s%.1f", per.empty() ? "" : " + ", us);
        per += buf;
        sum += us;
      }
      std::printf(
          "drain %d replica(s), P=%d, round %d: %llu messages in %.3f s = %.0f msg/s%s (first delivery after %.2f s); "
          "CPU per message: replicas %s = %.1f us, nats-server %.1f us, redis-server %.1f us\n",
          r.replicas, r.partitions, r.round, static_cast<unsigned long long>(r.messages), r.seconds, r.rate,
          r.complete ? "" : " (INCOMPLETE: stalled or exited)", r.startup_seconds, per.c_str(), sum, r.cpu.nats_us,
          r.cpu.redis_us);
      std::fflush(stdout);
      return;
    }
    std::printf(
        "drain %-9s round %d: %llu messages in %.3f s = %.0f msg/s%s; CPU per message: consumer %.1f us, "
        "nats-server %.1f us, redis-server %.1f us%s\n",
        r.who.c_str(), r.round, static_cast<unsigned long long>(r.messages), r.seconds, r.rate,
        r.complete ? "" : " (INCOMPLETE: stalled)", r.cpu.consumer_us, r.cpu.nats_us, r.cpu.redis_us,
        r.publish_errors > 0
            ? std::string("; ").append(std::to_string(r.publish_errors)).append(" PUBLISHES FAILED").c_str()
            : "");
    if (!r.results.empty()) {
      std::printf(
          "                processed %llu, skipped %llu, duplicate %llu, dead-lettered %llu, retried %llu, "
          "publish lane switches %llu\n",
          static_cast<unsigned long long>(r.results.at("processed")),
          static_cast<unsigned long long>(r.results.at("skipped")),
          static_cast<unsigned long long>(r.results.at("duplicate")),
          static_cast<unsigned long long>(r.results.at("dead_lettered")),
          static_cast<unsigned long long>(r.results.at("retried")),
          static_cast<unsigned long long>(r.results.at("lane_switches")));
    }
    std::fflush(stdout);
  }

  static void print_latency(const LatencyResult& r) {
    const LogHistogram& h = *r.latency;
    std::printf(
        "latency %-7s at %6.0f msg/s: sent %llu, arrived %llu of %llu (recorded %llu after warm-up); p50 %s  "
        "p95 %s  p99 %s  p99.9 %s  max %s; CPU per message: consumer %.1f us (nats.c's shared threads %.1f us), "
        "nats-server %.1f us, redis-server %.1f us%s%s%s\n",
        r.who.c_str(), r.rate, static_cast<unsigned long long>(r.sent), static_cast<unsigned long long>(r.received),
        static_cast<unsigned long long>(r.expected), static_cast<unsigned long long>(h.count()),
        format_ns(static_cast<double>(h.percentile(50))).c_str(),
        format_ns(static_cast<double>(h.percentile(95))).c_str(),
        format_ns(static_cast<double>(h.percentile(99))).c_str(),
        format_ns(static_cast<double>(h.percentile(99.9))).c_str(), format_ns(static_cast<double>(h.max())).c_str(),
        r.cpu.consumer_us, r.cpu.library_us, r.cpu.nats_us, r.cpu.redis_us,
        r.max_behind_ms > 5 ? "  (publisher fell behind its schedule)" : "",
        r.repeats > 0 ? fmt_repeats(r.repeats).c_str() : "",
        r.lane_switches > 0 ? ("  (publish lane switches: " + std::to_string(r.lane_switches) + ")").c_str() : "");
    if (!r.stages.empty()) print_stages(r.stages);
    std::fflush(stdout);
  }

  const HarnessOptions& o_;
  Servers& servers_;
  const Corpus& corpus_;
  Config config_;
  NatsClient admin_;
  std::uint64_t pass_ = 0;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void json_cpu(JsonWriter& j, const CpuWindow::Result& c) {
  j.begin_object("cpu_us_per_message");
  j.field("consumer_threads", c.consumer_us)
      .field("nats_c_process_threads", c.library_us)
      .field("nats_server", c.nats_us)
      .field("redis_server", c.redis_us);
  j.end_object();
}

void json_runs(JsonWriter& j, const std::vector<DrainResult>& drains, const std::vector<LatencyResult>& latencies) {
  j.begin_array("drains");
  for (const auto& d : drains) {
    j.begin_object();
    j.field("who", d.who).field("round", d.round).field("messages", d.messages).field("seconds", d.seconds);
    j.field("messages_per_second", d.rate).field("complete", d.complete).field("publish_errors", d.publish_errors);
    if (d.replicas > 0) {
      j.field("replicas", d.replicas).field("partitions", d.partitions).field("startup_seconds", d.startup_seconds);
      j.begin_array("replica_cpu_us_per_message");
      for (const double us : d.replica_cpu_us) j.field({}, us);  // no key: an array element
      j.end_array();
    }
    json_cpu(j, d.cpu);
    if (!d.results.empty()) {
      j.begin_object("outcomes");
      for (const auto& [k, v] : d.results) j.field(k, v);
      j.end_object();
      json_stages(j, d.stages);
    }
    j.end_object();
  }
  j.end_array();
  j.begin_array("latency");
  for (const auto& l : latencies) {
    j.begin_object();
    j.field("who", l.who)
        .field("rate", l.rate)
        .field("sent", l.sent)
        .field("received", l.received)
        .field("expected", l.expected)
        .field("repeats", l.repeats);
    j.field("publisher_max_behind_ms", l.max_behind_ms);
    j.histogram("publish_to_arrival", *l.latency);
    json_cpu(j, l.cpu);
    if (!l.stages.empty()) json_stages(j, l.stages);
    j.end_object();
  }
  j.end_array();
}

/// Starts nats-server / redis-server unless given (--nats-url, --redis-address).
void start_servers(const HarnessOptions& o, Servers& servers, bool need_redis, int partitions) {
  servers.dir.emplace("cdc-bench-e2e");
  if (o.nats_url.empty()) {
    servers.nats.emplace(servers.dir->path(), partitions);
    servers.nats_url = servers.nats->url();
    servers.nats_pid = servers.nats->pid();
  } else {
    servers.nats_url = o.nats_url;
  }
  if (need_redis) {
    if (o.redis_address.empty()) {
      servers.redis.emplace(servers.dir->path());
      servers.redis_address = servers.redis->address();
      servers.redis_pid = servers.redis->pid();
    } else {
      servers.redis_address = o.redis_address;
    }
  }
}

void print_service_config(const char* label, const Config& config) {
  std::printf(
      "%-15s ingest %s, fetch %d, ring %zu, batch %d, wait %s, max_pending %d, write_mode consume %s publish %s, "
      "threads: %s\n",
      label, config.ingest.mode == IngestMode::kPush ? "push" : "pull", config.ingest.fetch_batch,
      config.pipeline.ring_capacity, config.pipeline.batch_size,
      std::string(to_string(config.pipeline.wait_strategy)).c_str(), config.publish.max_pending,
      std::string(to_string(config.nats.write_mode)).c_str(), std::string(to_string(config.publish.write_mode)).c_str(),
      thread_mapping_text(config).c_str());
}

}  // namespace

int run_e2e(const HarnessOptions& options) {
  HarnessOptions o = options;
  if (o.rounds <= 0) o.rounds = 1;
  if (o.latency_seconds <= 0) o.latency_seconds = 10;
  mark_harness_thread();
  mark_library_threads();
  Servers servers;
  const bool need_redis = o.mode == "e2e";
  start_servers(o, servers, need_redis, o.replicas.empty() ? 1 : o.partitions);
  Config config = service_config(o);
  if (!o.replicas.empty() && o.partitions > 1) {
    config.ingest.partitions = o.partitions;
    config.ingest.subject_layout = "cdc.{company}.{table}.{partition}";
  }
  config.nats.url = servers.nats_url;
  if (need_redis) config.redis.address = servers.redis_address;
  const Corpus corpus = prepare_corpus(o, servers.dir->path());
  const std::uint64_t n = o.events != 0 ? o.events : 200'000;
  const std::string load_before = load_average();
  std::printf("cdc_pipeline_bench --mode %s%s   %s   load %s\n", o.mode.c_str(),
              o.with_baselines ? " --with-baselines" : "", utc_now().c_str(), load_before.c_str());
  std::printf("servers         nats %s%s, redis %s%s\n", servers.nats_url.c_str(),
              servers.nats ? " (started here)" : "", need_redis ? servers.redis_address.c_str() : "-",
              servers.redis ? " (started here)" : "");
  std::printf("corpus          %s: %zu messages, %.0f B mean body, %.0f%% on processed tables\n", corpus.path().c_str(),
              corpus.size(), corpus.mean_body_bytes(), corpus.allowed_fraction() * 100);
  std::printf(
      "service         ingest %s, ring %zu, batch %d, wait %s, max_pending %d, write_mode consume %s publish %s\n",
      config.ingest.mode == IngestMode::kPush ? "push" : "pull", config.pipeline.ring_capacity,
      config.pipeline.batch_size, std::string(to_string(config.pipeline.wait_strategy)).c_str(),
      config.publish.max_pending, std::string(to_string(config.nats.write_mode)).c_str(),
      std::string(to_string(config.publish.write_mode)).c_str());
  std::printf("threads         %s\n", thread_mapping_text(config).c_str());
  std::fflush(stdout);

  E2e e2e(o, servers, corpus, config);
  const bool ours = o.mode == "e2e";
  const bool relay = o.mode == "relay" || (ours && o.with_baselines);
  const bool direct = o.mode == "direct" || (ours && o.with_baselines);
  const bool relay_latency = o.mode == "relay" || (ours && o.relay_latency);

  std::vector<DrainResult> drains;
  if (!o.skip_drain && (ours || relay)) {
    for (int round = 0; round < std::max(1, o.rounds); ++round) {
      e2e.load_backlog(n);
      const bool relay_first = round % 2 == 0;
      if (relay && relay_first) drains.push_back(e2e.drain_relay(n, round, o.relay_eager));
      if (ours && o.replicas.empty()) drains.push_back(e2e.drain_ours(n, round, config));
      for (std::size_t i = 0; ours && i < o.replicas.size(); ++i) {
        if (i > 0) e2e.load_backlog(n);
        drains.push_back(e2e.drain_fleet(n, round, o.replicas[i]));
      }
      if (relay && !relay_first) drains.push_back(e2e.drain_relay(n, round, o.relay_eager));
    }
  }
  std::vector<LatencyResult> latencies;
  if (!o.skip_latency && (ours || direct || relay_latency)) {
    const std::vector<double> rates = o.rates.empty() ? std::vector<double>{2000, 10000} : o.rates;
    for (const double rate : rates) {
      if (direct) latencies.push_back(e2e.latency(E2e::Path::kDirect, rate, nullptr, false, "direct"));
      if (relay_latency) latencies.push_back(e2e.latency(E2e::Path::kRelay, rate, nullptr, o.relay_eager, "relay"));
      if (ours) latencies.push_back(e2e.latency(E2e::Path::kService, rate, &config, false, "ours"));
    }
  }

  // Summary and targets (issue 4).
  std::vector<double> ours_rates, relay_rates;
  for (const auto& d : drains) {
    if (d.who == "ours") ours_rates.push_back(d.rate);
    if (d.who == "relay") relay_rates.push_back(d.rate);
  }
  const double ours_drain = median(ours_rates), relay_drain = median(relay_rates);
  std::printf("\nsummary\n");
  for (const auto& d : drains) {
    if (d.who == "replicas")
      std::printf("  drain %d replica(s) P=%d: %.0f msg/s (round %d)\n", d.replicas, d.partitions, d.rate, d.round);
  }
  if (!ours_rates.empty()) std::printf("  drain ours      %.0f msg/s (median of %zu)\n", ours_drain, ours_rates.size());
  if (!relay_rates.empty())
    std::printf("  drain relay     %.0f msg/s (median of %zu)\n", relay_drain, relay_rates.size());
  double drain_ratio = 0;
  if (ours_drain > 0 && relay_drain > 0) {
    drain_ratio = ours_drain / relay_drain;
    std::printf("  target: drain >= 90%% of the relay: %.1f%%  %s\n", drain_ratio * 100,
                drain_ratio >= 0.9 ? "MET" : "MISSED");
  }
  std::vector<std::pair<double, double>> p99_ratios;  // rate, ours/direct
  for (const auto& l : latencies) {
    if (l.who != "ours") continue;
    for (const auto& d : latencies) {
      if (d.who == "direct" && d.rate == l.rate && d.latency->count() > 0) {
        const double ratio =
            static_cast<double>(l.latency->percentile(99)) / static_cast<double>(d.latency->percentile(99));
        p99_ratios.emplace_back(l.rate, ratio);
        std::printf("  p99 at %.0f msg/s: ours %s, direct %s: %.2fx%s\n", l.rate,
                    format_ns(static_cast<double>(l.latency->percentile(99))).c_str(),
                    format_ns(static_cast<double>(d.latency->percentile(99))).c_str(), ratio,
                    l.rate == 10000 ? (ratio <= 2 ? "  target <= 2x: MET" : "  target <= 2x: MISSED") : "");
      }
    }
  }

  if (!o.json_path.empty()) {
    JsonWriter j;
    j.begin_object();
    j.field("harness", "cdc_pipeline_bench").field("mode", o.mode).field("with_baselines", o.with_baselines);
    j.field("date", utc_now()).field("load_before", load_before).field("load_after", load_average());
    j.field("nats_url", servers.nats_url).field("nats_started_here", servers.nats.has_value());
    j.begin_object("corpus");
    j.field("path", corpus.path()).field("messages", static_cast<std::uint64_t>(corpus.size()));
    j.field("mean_body_bytes", corpus.mean_body_bytes()).field("allowed_fraction", corpus.allowed_fraction());
    j.end_object();
    j.begin_object("service");
    j.field("ingest_mode", config.ingest.mode == IngestMode::kPush ? "push" : "pull");
    j.field("ring_capacity", static_cast<std::uint64_t>(config.pipeline.ring_capacity));
    j.field("batch_size", config.pipeline.batch_size).field("wait_strategy", to_string(config.pipeline.wait_strategy));
    j.field("threads", thread_mapping_text(config));
    j.field("max_pending", config.publish.max_pending)
        .field("write_mode", to_string(config.nats.write_mode))
        .field("publish_write_mode", to_string(config.publish.write_mode));
    j.end_object();
    json_runs(j, drains, latencies);
    j.begin_object("ratios");
    if (ours_drain > 0) j.field("drain_ours", ours_drain);
    if (relay_drain > 0) j.field("drain_relay", relay_drain);
    if (drain_ratio > 0) j.field("drain_ours_over_relay", drain_ratio);
    for (const auto& [rate, ratio] : p99_ratios)
      j.field("p99_ours_over_direct_at_" + std::to_string(static_cast<int>(rate)), ratio);
    j.end_object();
    j.end_object();
    write_text_file(o.json_path, j.str() + "\n");
    std::printf("wrote %s\n", o.json_path.c_str());
  }
  if (!o.svg_path.empty() && !latencies.empty()) {
    std::vector<ChartSeries> series;
    for (const auto& l : latencies) {
      char name[64];
      std::snprintf(name, sizeof name, "%s at %.0f msg/s", l.who.c_str(), l.rate);
      series.push_back({name, l.latency.get()});
    }
    std::string title = "Source publish -> enriched event on loopback";
    char buf[160];
    if (ours_drain > 0) {
      std::snprintf(buf, sizeof buf, "; drain %.0f msg/s", ours_drain);
      title += buf;
    }
    if (relay_drain > 0) {
      std::snprintf(buf, sizeof buf, " (relay %.0f, %.0f%%)", relay_drain, drain_ratio * 100);
      title += buf;
    }
    write_latency_svg(o.svg_path, title,
                      utc_now() + ", load " + load_before + ", " + std::to_string(n) + "-message backlog, " +
                          std::to_string(static_cast<int>(o.latency_seconds)) + " s per latency run",
                      series);
    std::printf("wrote %s\n", o.svg_path.c_str());
  }
  for (const auto& d : drains) {
    if (!d.complete) return 1;
  }
  return 0;
}

// --mode compare: issue 14's table in one run.

namespace {

struct Participant {
  enum class Kind : std::uint8_t { kRelayBatching, kRelayEager, kService };
  std::string label;  ///< "relay, batching", "relay, eager", "service, default", "service, <variant>"
  Kind kind = Kind::kService;
  Config config;     ///< kService
  std::string keys;  ///< a variant's keys ("" = the default configuration)
  bool latency = true;
};

/// 52614 -> "52 614" (the notation).
std::string grouped(double value) {
  const auto v = static_cast<long long>(std::llround(value));
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(' ');
    out.push_back(digits[i]);
  }
  return v < 0 ? "-" + out : out;
}

/// ns -> milliseconds with three significant digits: "0.56", "8.95", "15.9", "143".
std::string ms(double ns) {
  const double v = ns / 1e6;
  char buf[32];
  std::snprintf(buf, sizeof buf, v < 10 ? "%.2f" : v < 100 ? "%.1f" : "%.0f", v);
  return buf;
}

std::string fixed(double v, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

struct DrainSummary {
  int runs = 0;
  bool complete = true;
  double rate = 0;
  CpuWindow::Result cpu;  ///< medians, each on its own
  std::string rounds;     ///< "52 100 / 51 800 / 53 000" in round order
};

DrainSummary summarize(const std::vector<DrainResult>& drains, const std::string& who) {
  DrainSummary s;
  std::vector<double> rate, consumer, nats, redis;
  for (const auto& d : drains) {
    if (d.who != who) continue;
    ++s.runs;
    s.complete = s.complete && d.complete && d.publish_errors == 0;
    rate.push_back(d.rate);
    consumer.push_back(d.cpu.consumer_us);
    nats.push_back(d.cpu.nats_us);
    redis.push_back(d.cpu.redis_us);
    s.rounds += (s.rounds.empty() ? "" : " / ") + grouped(d.rate);
  }
  s.rate = median(rate);
  s.cpu.consumer_us = median(consumer);
  s.cpu.nats_us = median(nats);
  s.cpu.redis_us = median(redis);
  return s;
}

const LatencyResult* find_latency(const std::vector<LatencyResult>& runs, const std::string& who, double rate) {
  for (const auto& l : runs) {
    if (l.who == who && l.rate == rate && l.latency->count() > 0) return &l;
  }
  return nullptr;
}

double pct(const LatencyResult& l, double p) { return static_cast<double>(l.latency->percentile(p)); }

std::string triple(const LatencyResult* l) {
  if (l == nullptr) return "";
  return ms(pct(*l, 50)) + " / " + ms(pct(*l, 95)) + " / " + ms(pct(*l, 99));
}

constexpr const char* kEager = "relay, eager";
constexpr const char* kBatching = "relay, batching";

struct Target {
  std::string what;
  double ratio = 0;
  double limit = 0;
  bool ge = false;  ///< ratio >= limit (drain) instead of <=
  [[nodiscard]] bool met() const { return ge ? ratio >= limit : ratio <= limit; }
};

/// The targets for one service participant, from what was measured.
std::vector<Target> targets(const Participant& p, const std::vector<DrainResult>& drains,
                            const std::vector<LatencyResult>& runs) {
  std::vector<Target> out;
  const DrainSummary relay = summarize(drains, kBatching);
  const DrainSummary ours = summarize(drains, p.label);
  if (relay.rate > 0 && ours.runs > 0)
    out.push_back({"drain >= 0.9 x the batching relay", ours.rate / relay.rate, 0.9, true});
  const LatencyResult* e2k = find_latency(runs, kEager, 2000);
  const LatencyResult* o2k = find_latency(runs, p.label, 2000);
  if (e2k != nullptr && o2k != nullptr) {
    out.push_back({"2 000/s: p50 <= 1.1 x the eager relay", pct(*o2k, 50) / pct(*e2k, 50), 1.1, false});
    out.push_back({"2 000/s: p99 <= 1.3 x the eager relay", pct(*o2k, 99) / pct(*e2k, 99), 1.3, false});
  }
  const LatencyResult* e10k = find_latency(runs, kEager, 10000);
  const LatencyResult* o10k = find_latency(runs, p.label, 10000);
  if (e10k != nullptr && o10k != nullptr)
    out.push_back({"10 000/s: p99 <= 1.3 x the eager relay", pct(*o10k, 99) / pct(*e10k, 99), 1.3, false});
  return out;
}

std::string markdown(const HarnessOptions& o, const std::vector<Participant>& parts, const std::vector<double>& rates,
                     const std::vector<DrainResult>& drains, const std::vector<LatencyResult>& runs, std::uint64_t n,
                     const std::string& header) {
  std::string md = header;
  // 1. The table.
  md += "\n| | drain msg/s";
  for (const double r : rates) md += " | p50 / p95 / p99 at " + grouped(r) + "/s (ms)";
  md += " |\n|---|---";
  for (std::size_t i = 0; i < rates.size(); ++i) md += "|---";
  md += "|\n";
  const DrainSummary relay = summarize(drains, kBatching);
  for (const auto& p : parts) {
    std::string name = p.label;
    if (p.kind == Participant::Kind::kRelayBatching) name = "relay, default nats.c flusher (batching)";
    if (p.kind == Participant::Kind::kRelayEager) name = "relay, `SendAsap` (eager)";
    if (!p.keys.empty()) name += " (`" + p.keys + "`)";
    md += "| " + name + " | ";
    const DrainSummary d = summarize(drains, p.label);
    if (d.runs > 0) {
      md += grouped(d.rate) + (d.complete ? "" : " (incomplete or publishes failed)");
      if (p.kind != Participant::Kind::kRelayBatching && relay.rate > 0)
        md += " (" + fixed(d.rate / relay.rate, 2) + ")";
    }
    for (const double r : rates) md += " | " + triple(find_latency(runs, p.label, r));
    md += " |\n";
  }
  // 2. Drains.
  if (!drains.empty()) {
    md += "\nDrains of a " + grouped(static_cast<double>(n)) + "-message backlog (a fresh one per drain), " +
          std::to_string(o.rounds) +
          " rounds with the order rotated, medians. CPU per message: the consumer's threads in the harness "
          "process (the service's stages and its nats.c / libuv threads, or the relay's), nats-server and "
          "redis-server, in us of CPU per source message.\n\n";
    md += "| consumer | msg/s | x batching relay | rounds (msg/s) | CPU/msg consumer | nats-server | redis-server |\n";
    md += "|---|---|---|---|---|---|---|\n";
    for (const auto& p : parts) {
      const DrainSummary d = summarize(drains, p.label);
      if (d.runs == 0) continue;
      md += "| " + p.label + " | " + grouped(d.rate) + (d.complete ? "" : " (incomplete or publishes failed)") + " | " +
            (relay.rate > 0 ? fixed(d.rate / relay.rate, 2) : "") + " | " + d.rounds + " | " +
            fixed(d.cpu.consumer_us, 1) + " us | " + fixed(d.cpu.nats_us, 1) + " us | " + fixed(d.cpu.redis_us, 1) +
            " us |\n";
    }
  }
  // 3. Latency.
  if (!runs.empty()) {
    md += "\nLatency: source publish -> arrival on a core subscription `wa.>`, " + fixed(o.latency_seconds, 0) +
          " s per run at a fixed rate (open loop; the first " + fixed(o.warmup_seconds, 0) +
          " s not recorded), one run each. Ratios: p50 and p99 over the eager relay's at the same rate. Extra "
          "deliveries: messages on `wa.>` whose `Nats-Msg-Id` was already delivered in the run.\n\n";
    md +=
        "| consumer | rate | p50 / p95 / p99 (ms) | p50 / p99 x eager relay | extra deliveries | arrived / expected | "
        "CPU/msg consumer, nats-server, redis-server (us) | publisher late by (ms) |\n";
    md += "|---|---|---|---|---|---|---|---|\n";
    for (const double r : rates) {
      for (const auto& l : runs) {
        if (l.rate != r) continue;
        std::string ratio;
        const LatencyResult* eager = find_latency(runs, kEager, r);
        if (eager != nullptr && l.who != kEager && l.latency->count() > 0)
          ratio = fixed(pct(l, 50) / pct(*eager, 50), 2) + " / " + fixed(pct(l, 99) / pct(*eager, 99), 2);
        md += "| " + l.who + " | " + grouped(r) + "/s | " + triple(l.latency->count() > 0 ? &l : nullptr) + " | " +
              ratio + " | " + std::to_string(l.repeats) + " | " + std::to_string(l.received) + " / " +
              std::to_string(l.expected) + " | " + fixed(l.cpu.consumer_us, 1) + ", " + fixed(l.cpu.nats_us, 1) + ", " +
              fixed(l.cpu.redis_us, 1) + " | " + fixed(l.max_behind_ms, 1) + " |\n";
      }
    }
  }
  // 4. Targets.
  md += "\nTargets (issue 14):\n\n";
  for (const auto& p : parts) {
    if (p.kind != Participant::Kind::kService) continue;
    for (const auto& t : targets(p, drains, runs)) {
      md += "- " + p.label + ": " + t.what + ": " + fixed(t.ratio, 2) + (t.met() ? " met" : " **missed**") + "\n";
    }
  }
  return md;
}

}  // namespace

int run_compare(const HarnessOptions& options) {
  HarnessOptions o = options;
  if (o.rounds <= 0) o.rounds = 3;
  if (o.latency_seconds <= 0) o.latency_seconds = 20;
  if (!o.replicas.empty()) throw std::invalid_argument("--replicas is not part of --mode compare");
  mark_harness_thread();
  mark_library_threads();

  // Every configuration first: a bad variant fails before any server starts.
  const Config base = service_config(o);
  std::vector<Participant> parts;
  parts.push_back({kBatching, Participant::Kind::kRelayBatching, {}, {}, true});
  parts.push_back({kEager, Participant::Kind::kRelayEager, {}, {}, true});
  parts.push_back({"service, default", Participant::Kind::kService, base, {}, true});
  for (const auto& text : o.variants) {
    const Variant v = parse_variant(text);
    Participant p{"service, " + v.name, Participant::Kind::kService, {}, v.text(), o.variant_latency};
    try {
      p.config = service_config(o, v.environment());
    } catch (const ConfigError& e) {
      throw std::invalid_argument("--variant " + v.name + ": " + e.what());
    }
    for (const auto& q : parts) {
      if (q.label == p.label) throw std::invalid_argument("--variant " + v.name + ": name given twice");
    }
    parts.push_back(std::move(p));
  }

  Servers servers;
  start_servers(o, servers, /*need_redis=*/true, 1);
  for (auto& p : parts) {
    p.config.nats.url = servers.nats_url;
    p.config.redis.address = servers.redis_address;
  }
  Config config = base;
  config.nats.url = servers.nats_url;
  config.redis.address = servers.redis_address;
  const Corpus corpus = prepare_corpus(o, servers.dir->path());
  const std::uint64_t n = o.events != 0 ? o.events : 200'000;
  const std::vector<double> rates = o.rates.empty() ? std::vector<double>{2000, 10000} : o.rates;
  const std::string started = utc_now();
  const std::string load_before = load_average();
  std::printf("cdc_pipeline_bench --mode compare   %s   load %s\n", started.c_str(), load_before.c_str());
  std::printf("servers         nats %s%s, redis %s%s\n", servers.nats_url.c_str(),
              servers.nats ? " (started here)" : "", servers.redis_address.c_str(),
              servers.redis ? " (started here)" : "");
  std::printf("corpus          %s: %zu messages, %.0f B mean body, %.0f%% on processed tables\n", corpus.path().c_str(),
              corpus.size(), corpus.mean_body_bytes(), corpus.allowed_fraction() * 100);
  print_service_config("service", config);
  for (const auto& p : parts) {
    if (p.keys.empty()) continue;
    std::printf("variant         %s: %s\n", p.label.c_str(), p.keys.c_str());
    print_service_config("", p.config);
  }
  std::fflush(stdout);

  E2e e2e(o, servers, corpus, config);
  std::vector<DrainResult> drains;
  if (!o.skip_drain) {
    for (int round = 0; round < o.rounds; ++round) {
      for (std::size_t k = 0; k < parts.size(); ++k) {
        const Participant& p = parts[(k + static_cast<std::size_t>(round)) % parts.size()];
        e2e.load_backlog(n);
        if (p.kind == Participant::Kind::kService) drains.push_back(e2e.drain_ours(n, round, p.config, p.label));
        else drains.push_back(e2e.drain_relay(n, round, p.kind == Participant::Kind::kRelayEager, p.label));
      }
    }
  }
  std::vector<LatencyResult> runs;
  if (!o.skip_latency) {
    for (const double rate : rates) {
      runs.push_back(e2e.latency(E2e::Path::kRelay, rate, nullptr, /*eager=*/true, kEager));
      runs.push_back(e2e.latency(E2e::Path::kRelay, rate, nullptr, /*eager=*/false, kBatching));
      for (const auto& p : parts) {
        if (p.kind == Participant::Kind::kService && p.latency)
          runs.push_back(e2e.latency(E2e::Path::kService, rate, &p.config, false, p.label));
      }
    }
  }

  const std::string load_after = load_average();
  std::string header = "cdc_pipeline_bench --mode compare, " + started + " to " + utc_now() + "; load " + load_before +
                       " before, " + load_after + " after; corpus " + std::to_string(corpus.size()) + " messages (" +
                       fixed(corpus.mean_body_bytes(), 0) + " B mean body).\n";
  const std::string md = markdown(o, parts, rates, drains, runs, n, header);
  std::printf("\n%s", md.c_str());
  if (!o.markdown_path.empty()) {
    write_text_file(o.markdown_path, md);
    std::printf("wrote %s\n", o.markdown_path.c_str());
  }
  if (!o.json_path.empty()) {
    JsonWriter j;
    j.begin_object();
    j.field("harness", "cdc_pipeline_bench").field("mode", "compare");
    j.field("started", started)
        .field("date", utc_now())
        .field("load_before", load_before)
        .field("load_after", load_after);
    j.field("nats_url", servers.nats_url).field("nats_started_here", servers.nats.has_value());
    j.field("backlog", n).field("rounds", o.rounds).field("latency_seconds", o.latency_seconds);
    j.begin_object("corpus");
    j.field("path", corpus.path()).field("messages", static_cast<std::uint64_t>(corpus.size()));
    j.field("mean_body_bytes", corpus.mean_body_bytes()).field("allowed_fraction", corpus.allowed_fraction());
    j.end_object();
    j.begin_array("participants");
    for (const auto& p : parts) {
      const DrainSummary d = summarize(drains, p.label);
      j.begin_object();
      j.field("who", p.label).field("variant_keys", p.keys);
      if (d.runs > 0) {
        j.field("drain_median_messages_per_second", d.rate).field("drain_complete", d.complete);
        const DrainSummary relay = summarize(drains, kBatching);
        if (relay.rate > 0) j.field("drain_over_batching_relay", d.rate / relay.rate);
        j.begin_object("drain_median_cpu_us_per_message");
        j.field("consumer_threads", d.cpu.consumer_us)
            .field("nats_server", d.cpu.nats_us)
            .field("redis_server", d.cpu.redis_us);
        j.end_object();
      }
      if (p.kind == Participant::Kind::kService) {
        j.begin_array("targets");
        for (const auto& t : targets(p, drains, runs)) {
          j.begin_object();
          j.field("what", t.what).field("ratio", t.ratio).field("limit", t.limit).field("met", t.met());
          j.end_object();
        }
        j.end_array();
      }
      j.end_object();
    }
    j.end_array();
    json_runs(j, drains, runs);
    j.end_object();
    write_text_file(o.json_path, j.str() + "\n");
    std::printf("wrote %s\n", o.json_path.c_str());
  }
  for (const auto& d : drains) {
    if (!d.complete) return 1;
  }
  return 0;
}

}  // namespace cdc::bench
