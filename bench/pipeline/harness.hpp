#pragma once
/// cdc_pipeline_bench: options and the entry point of each mode.
///
///   inprocess  the real Pipeline(Config, Ports) on in-process mocks (mock_jetstream.hpp,
///              fake_redis.hpp): throughput at maximum rate, latency at fixed rates
///   e2e        the real Pipeline on make_service_ports() (NATS and Redis adapters) against
///              nats-server -js and redis-server on loopback: backlog drain, and publish -> enriched-event latency at
///              fixed rates;
///              --with-baselines adds the relay drain and the direct publish -> subscribe latency
///              in the same run, and reports the ratios the targets are defined on
///   relay      the bare nats.c relay alone: backlog drain and latency at the fixed rates
///   direct     the direct publish -> subscribe latency alone
///   compare    issue 14's table in one run: drains of the batching relay, the eager relay, the
///              service (default configuration) and each --variant, rounds rotated, medians;
///              then latency at the fixed rates of the eager relay, the batching relay and the
///              service (and the variants with --variant-latency); ratios, CPU per message,
///              extra deliveries; a markdown table with --markdown

#include <cstdint>
#include <string>
#include <vector>

#include "cdc/core/config.hpp"
#include "common/corpus.hpp"

namespace cdc::bench {

struct HarnessOptions {
  std::string mode = "inprocess";
  std::uint64_t events = 0;  ///< 0: 1,000,000 in-process, 200,000 for drains
  std::string capture;       ///< corpus; empty: `cdc-replay gen`, else the sample capture
  std::uint64_t gen_count = 50000;
  std::string config_path;  ///< service configuration (YAML); defaults otherwise

  // in-process
  /// Fixed rates (events/s). In-process: runs after the max-rate run. End to end: the latency
  /// runs (default 2000 and 10000).
  std::vector<double> rates;
  bool half_rate = false;  ///< in-process: also run at half the measured maximum
  int puback_delay_us = 0;
  double fail_pct = 0;
  int redis_rtt_us = 0;

  // pipeline overrides (0 / empty / -1: keep the configuration's value)
  std::size_t ring_capacity = 0;
  int batch_size = 0;
  std::string wait_strategy;
  int max_pending = 0;
  int retry_backoff_ms = -1;
  std::string ingest_mode;        ///< push | pull
  int send_asap = -1;             ///< nats.send_asap: 0 or 1
  int publish_send_asap = -1;     ///< publish.send_asap: 0 or 1
  std::vector<std::string> cpus;  ///< stage=cpu, e.g. parse=1
  std::string threads;            ///< pipeline.threads as "ingest,parse/dedup,publish,ack" ("" = one per stage)

  // end to end
  std::string nats_url;        ///< empty: start nats-server -js
  std::string redis_address;   ///< empty: start redis-server
  double latency_seconds = 0;  ///< 0: 10 s (e2e, relay, direct), 20 s (compare)
  double warmup_seconds = 1;
  bool with_baselines = false;
  bool relay_latency = false;  ///< e2e: also the relay's latency at the fixed rates (always in relay mode)
  bool relay_eager = false;    ///< relay / e2e: the eager relay (SendAsap) instead of the batching one
  bool skip_drain = false;
  bool skip_latency = false;
  int rounds = 0;  ///< 0: 1 (e2e), 3 (compare)
  int publish_window = 1000;
  /// e2e drain by service processes instead of the in-process pipeline: one drain per entry,
  /// that many replicas (daisi-cdc-consumer children sharing the partitions; "1,3" compares).
  std::vector<int> replicas;
  int partitions = 1;          ///< ingest.partitions for the replicas; the local nats-server gets the mapping
  std::string service_binary;  ///< empty: the daisi-cdc-consumer built with the harness

  // compare
  std::vector<std::string> variants;  ///< "NAME:key=value[,key=value...]" (parse_variant)
  bool variant_latency = false;       ///< also the variants' latency runs

  // output
  std::string markdown_path;  ///< compare: the table as markdown
  std::string json_path;
  std::string svg_path;
  bool verbose = false;
};

/// A service configuration that differs from the default by configuration keys (--variant).
struct Variant {
  std::string name;
  std::vector<std::pair<std::string, std::string>> keys;  ///< "section.key", value as in the environment
  [[nodiscard]] std::string text() const;                 ///< "key=value, key=value"
  /// The keys as the service's environment overrides (DAISI_CDC_<SECTION>_<KEY>=value), so
  /// load_config() parses and validates them as it does at start-up: any key of the schema
  /// works, including ones added later.
  [[nodiscard]] std::vector<std::string> environment() const;
};
/// "NAME:key=value[,key=value...]"; a piece without '=' continues the previous value, so list
/// values keep their commas ("threads:pipeline.threads=ingest,parse/dedup,publish,ack"). Throws
/// std::invalid_argument on a malformed text (keys are checked by service_config()).
Variant parse_variant(const std::string& text);

/// Loads the configuration (or defaults) with the environment `env` (only that, not the
/// process's), applies the command-line overrides; validates. Throws ConfigError.
Config service_config(const HarnessOptions& options, const std::vector<std::string>& env = {});
/// "ingest,parse/dedup,publish,ack" -> {{ingest, parse}, {dedup, publish, ack}} (--threads).
std::vector<std::vector<std::string>> parse_thread_mapping(const std::string& text);
/// pipeline.threads for reports: "ingest,parse / dedup,publish,ack" or "one thread per stage".
std::string thread_mapping_text(const Config& config);

/// The corpus: --capture, else one generated with cdc-replay gen into `tmp_dir`, else the sample.
Corpus prepare_corpus(const HarnessOptions& options, const std::string& tmp_dir);

/// "2026-11-22T11:30:00Z", load average and CPU count, for reports.
std::string utc_now();
std::string load_average();

int run_inprocess(const HarnessOptions& options);
int run_e2e(const HarnessOptions& options);
int run_compare(const HarnessOptions& options);

}  // namespace cdc::bench
