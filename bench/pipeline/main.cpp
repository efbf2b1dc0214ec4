// cdc_pipeline_bench: the pipeline harness (issue 4). See harness.hpp for the modes and
// bench/README.md for how to run them and what they measure.

#include <nats/nats.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cdc/core/log.hpp"
#include "pipeline/harness.hpp"

int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape): an escaping error ends the tool
  cdc::bench::HarnessOptions o;
  CLI::App app{"cdc_pipeline_bench: throughput and latency of the CDC pipeline, in process or end to end"};
  app.add_option("--mode", o.mode,
                 "inprocess | e2e | relay | direct | compare (issue 14's table: relays, service and variants, "
                 "drains and latency in one run)")
      ->check(CLI::IsMember({"inprocess", "e2e", "relay", "direct", "compare"}))
      ->capture_default_str();
  app.add_option("--events", o.events, "events per run (default 1,000,000 in-process, 200,000 per drain)");
  app.add_option("--capture", o.capture, "corpus capture file (default: cdc-replay gen, else the sample)");
  app.add_option("--gen-count", o.gen_count, "messages in the generated corpus (replayed with fresh ids)")
      ->capture_default_str();
  app.add_option("--config", o.config_path, "service configuration YAML (default: built-in defaults)");

  auto* inproc = "in-process";
  app.add_option("--rate", o.rates,
                 "fixed rates (events/s): in-process, runs after the max-rate run; end to end, the latency runs "
                 "(default 2000 10000)");
  app.add_flag("--half-rate", o.half_rate, "in-process: also run at half the measured maximum")->group(inproc);
  app.add_option("--puback-delay-us", o.puback_delay_us, "mock JetStream: PubAck delay")
      ->group(inproc)
      ->capture_default_str();
  app.add_option("--fail-pct", o.fail_pct, "mock JetStream: % of PubAcks that are transient 503s")->group(inproc);
  app.add_option("--redis-rtt-us", o.redis_rtt_us, "fake Redis: reply delay")->group(inproc)->capture_default_str();

  auto* pipe = "pipeline overrides";
  app.add_option("--ring-capacity", o.ring_capacity, "pipeline.ring_capacity")->group(pipe);
  app.add_option("--batch-size", o.batch_size, "pipeline.batch_size")->group(pipe);
  app.add_option("--wait-strategy", o.wait_strategy, "pipeline.wait_strategy")->group(pipe);
  app.add_option("--max-pending", o.max_pending, "publish.max_pending")->group(pipe);
  app.add_option("--retry-backoff-ms", o.retry_backoff_ms, "publish.retry_backoff")->group(pipe);
  app.add_option("--ingest-mode", o.ingest_mode, "ingest.mode: push | pull")->group(pipe);
  app.add_option("--send-asap", o.send_asap,
                 "the consume connection's write mode: 1 = asap, 0 = flusher (nats.send_asap's meaning)")
      ->group(pipe);
  app.add_option("--publish-send-asap", o.publish_send_asap,
                 "the publish connection's write mode: 1 = asap, 0 = flusher")
      ->group(pipe);
  app.add_option("--cpu", o.cpus, "pin a stage: <stage>=<cpu> (repeatable)")->group(pipe);
  app.add_option("--threads", o.threads,
                 "pipeline.threads: stages sharing a thread, threads split by '/', e.g. "
                 "\"ingest,parse/dedup,publish,ack\" (default: one thread per stage)")
      ->group(pipe);

  auto* e2e = "end to end";
  app.add_option("--nats-url", o.nats_url, "use this NATS server instead of starting one")->group(e2e);
  app.add_option("--redis-address", o.redis_address, "use this Redis (host:port) instead of starting one")->group(e2e);
  app.add_option("--latency-seconds", o.latency_seconds, "length of each latency run (default 10 s, compare 20 s)")
      ->group(e2e);
  app.add_option("--warmup-seconds", o.warmup_seconds, "first seconds of a latency run not recorded")
      ->group(e2e)
      ->capture_default_str();
  app.add_flag("--with-baselines", o.with_baselines, "also run the relay drain and the direct path, report ratios")
      ->group(e2e);
  app.add_flag("--relay-latency", o.relay_latency, "e2e: also measure the relay's latency at the fixed rates")
      ->group(e2e);
  app.add_flag("--relay-eager", o.relay_eager,
               "relay and e2e modes: the eager relay (SendAsap) instead of the batching one (nats.c's flusher)")
      ->group(e2e);
  app.add_flag("--skip-drain", o.skip_drain, "no backlog drain")->group(e2e);
  app.add_flag("--skip-latency", o.skip_latency, "no fixed-rate latency runs")->group(e2e);
  app.add_option("--rounds", o.rounds,
                 "drain rounds (the order of who drains rotates per round); medians reported (default 1, compare 3)")
      ->group(e2e);
  app.add_option("--replicas", o.replicas,
                 "e2e drain by R daisi-cdc-consumer processes sharing the partitions instead of the in-process "
                 "pipeline; a list (\"1,3\") drains once per entry")
      ->delimiter(',')
      ->check(CLI::Range(1, 64))
      ->group(e2e);
  app.add_option("--partitions", o.partitions,
                 "ingest.partitions P for --replicas; the nats-server started here maps cdc.*.* to P partitions")
      ->check(CLI::Range(1, 1024))
      ->group(e2e)
      ->capture_default_str();
  app.add_option("--service-binary", o.service_binary,
                 "daisi-cdc-consumer for --replicas (default: the one built here)")
      ->group(e2e);
  app.add_option("--publish-window", o.publish_window, "async publishes in flight while loading")
      ->group(e2e)
      ->capture_default_str();

  auto* cmp = "compare";
  app.add_option("--variant", o.variants,
                 "compare: also a service configuration differing from the default by config keys, "
                 "NAME:section.key=value[,section.key=value...] (repeatable)")
      ->group(cmp);
  app.add_flag("--variant-latency", o.variant_latency, "compare: also the variants' latency runs")->group(cmp);
  app.add_option("--markdown", o.markdown_path, "compare: write the table as markdown")->group(cmp);

  app.add_option("--json", o.json_path, "write the results as JSON");
  app.add_option("--svg", o.svg_path, "write the latency chart as SVG");
  app.add_flag("-v,--verbose", o.verbose, "service logs at info level (default: errors only)");
  CLI11_PARSE(app, argc, argv);

  // Errors only by default: the service's warnings at each pipeline's shutdown ("nats
  // disconnected") would be noise between the results.
  cdc::log::set_level(o.verbose ? cdc::log::Level::kInfo : cdc::log::Level::kError);
  signal(SIGPIPE, SIG_IGN);
  nats_Open(-1);
  int code = 0;
  try {
    if (o.mode == "inprocess") code = cdc::bench::run_inprocess(o);
    else if (o.mode == "compare") code = cdc::bench::run_compare(o);
    else code = cdc::bench::run_e2e(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cdc_pipeline_bench: %s\n", e.what());
    code = 1;
  }
  nats_Close();
  return code;
}
