// Ordered scale-out (issue 12, CONTRACT.md sections 5 "Order" and 11): replicas own partitions
// of the source stream through leases in a JetStream KV bucket, every output subject keeps its
// source order, and consumers and output streams survive deletion.
//
// The nats-server of each test partitions the source subjects by a subject mapping
// (partition_mapping(P): cdc.<company>.<table> is stored as cdc.<company>.<table>.<p>); the
// feeder publishes the unpartitioned subjects, as Sequin does. Every scenario ends with the
// exact check of the fault suite (nothing missing, nothing doubled) and the order check
// (order_check.hpp: on every output subject the source sequence of the stored events increases).
//
// Short timings so the file runs in well under four minutes: AckWait and lease_ttl 2 s, a few
// thousand changes with the generator's producer repeats (3.5 %). The figures (drain time,
// take-over times) are printed with report() ("FAULTS partitions-...").

#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <cmath>

#include "faults_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace cdc::test::faults;

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kLeaseTtl = "2s";

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// The service's settings for P partitions: the partitioned layout above P = 1, pull, short
/// leases and checkpoints. `extra` overrides.
std::vector<std::string> partition_settings(std::uint32_t partitions, const EnvOverrides& extra = {}) {
  EnvOverrides env{{"DAISI_CDC_INGEST_PARTITIONS", std::to_string(partitions)},
                   {"DAISI_CDC_INGEST_MODE", "pull"},
                   {"DAISI_CDC_INGEST_LEASE_TTL", kLeaseTtl},
                   {"DAISI_CDC_INGEST_CHECKPOINT_INTERVAL", "500ms"}};
  if (partitions > 1) env["DAISI_CDC_INGEST_SUBJECT_LAYOUT"] = "cdc.{company}.{table}.{partition}";
  for (const auto& [k, v] : extra) env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env) {
    if (v) out.push_back(k + "=" + *v);
  }
  return out;
}

EnvOverrides to_overrides(const std::vector<std::string>& settings) {
  EnvOverrides env;
  for (const auto& s : settings) {
    const auto eq = s.find('=');
    env[s.substr(0, eq)] = s.substr(eq + 1);
  }
  return env;
}

/// Waits until the feeder has stored at least `n` records; false after `timeout`.
bool wait_fed(const Feeder& feeder, std::size_t n, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (feeder.stored() < n) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

/// Seconds until the partitions_owned gauges of `replicas` sum to `partitions`; NaN on timeout.
double wait_owned_by(ReplicaFleet& fleet, const std::vector<std::size_t>& replicas, std::uint32_t partitions,
                     Clock::time_point since, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    double sum = 0;
    for (const std::size_t i : replicas) {
      const double v = fleet.owned(i);
      sum += std::isnan(v) ? 0 : v;
    }
    if (sum == static_cast<double>(partitions)) return seconds_since(since);
    std::this_thread::sleep_for(50ms);
  }
  return std::numeric_limits<double>::quiet_NaN();
}

/// The sum of a counter over the replicas' last /metrics bodies (a missing series counts 0).
double sum_metric(const std::vector<std::string>& bodies, std::string_view name, std::string_view labels = {}) {
  double sum = 0;
  for (const auto& b : bodies) {
    const double v = metric(b, name, labels);
    if (!std::isnan(v)) sum += v;
  }
  return sum;
}

std::string per_replica(const std::vector<std::string>& bodies, std::string_view name, std::string_view labels = {}) {
  std::string text;
  for (const auto& b : bodies) {
    const double v = metric(b, name, labels);
    text.append(text.empty() ? "" : ",")
        .append(std::isnan(v) ? std::string("-") : std::to_string(static_cast<long>(v)));
  }
  return text;
}

/// Number of messages stored so far per partition (the source subject's last token).
std::vector<std::size_t> messages_per_partition(const JetStreamProbe& probe, const Config& config,
                                                std::uint32_t partitions) {
  std::vector<std::size_t> out(partitions, 0);
  for (const auto& m : probe.read_stream(config.ingest.stream)) {
    const auto dot = m.subject.rfind('.');
    const std::string last = m.subject.substr(dot + 1);
    if (last.empty() || last.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto p = std::stoul(last);
    if (p < partitions) ++out[p];
  }
  return out;
}

enum class Fault : std::uint8_t { kNone, kSigkill, kSigterm };

/// One node, `replicas` replicas, P partitions, a capture fed at `rate`; with a fault, at a third
/// of the feed replica 1 is SIGKILLed (and a new replica started) or SIGTERMed (not waited for;
/// the others take its partitions).
void run_single_node(const std::string& name, Fault fault, std::uint32_t partitions = 8, std::size_t replicas = 3,
                     std::size_t events = 4000, double rate = 800) {
  const auto started = Clock::now();
  NatsServerOptions nats_options;
  nats_options.config_lines = {partition_mapping(partitions)};
  NatsServer nats(nats_options);
  RedisServer redis;
  TempDir dir("cdc-partitions");

  const auto settings = partition_settings(partitions);
  const Config config = load_config_text("", settings);
  REQUIRE(config.ingest.partitions == static_cast<int>(partitions));
  // Captures carry the unpartitioned subjects: their outcome is the default layout's.
  const Config plain = load_config_text("", {});
  auto records = generate(dir, name, events, 1200 + partitions * 10 + static_cast<std::uint64_t>(fault));
  const Expected want = expect(plain, records);
  REQUIRE(want.duplicates > 0);  // the producer repeats are there
  REQUIRE(want.dead_letter_total() == 0);

  ReplicaFleet fleet(service_env(nats.url(), redis.address(), 0, to_overrides(settings)));
  for (std::size_t i = 0; i < replicas; ++i) fleet.start();
  const double max_each = std::ceil(static_cast<double>(partitions) / static_cast<double>(replicas));
  INFO("owned: " << fleet.owned_text());
  REQUIRE(fleet.wait_spread(partitions, max_each, 30s));
  const std::string spread_before = fleet.owned_text();

  const auto feed_started = Clock::now();
  Feeder feeder(nats.url(), records, rate);
  feeder.start();

  std::string fault_text;
  double takeover_s = std::numeric_limits<double>::quiet_NaN();
  double owned_again_s = std::numeric_limits<double>::quiet_NaN();
  double victim_exit_s = std::numeric_limits<double>::quiet_NaN();
  std::optional<int> victim_code;
  std::string victim_metrics;
  std::size_t victim = 0;
  std::size_t fed_at_fault = 0;
  if (fault != Fault::kNone) {
    REQUIRE(wait_fed(feeder, records.size() / 3, 60s));
    victim = 1;
    victim_metrics = fleet.metrics(victim);
    const double victim_owned = metric(victim_metrics, "cdc_consumer_partitions_owned");
    fed_at_fault = feeder.stored();
    const auto at = Clock::now();
    if (fault == Fault::kSigkill) {
      CHECK(fleet.kill(victim) == 128 + SIGKILL);
    } else {
      fleet.sigterm(victim);
    }
    // Floors right after the stop: a SIGKILLed replica acks nothing more, so a floor that moves
    // is its partition's new owner at work (after SIGTERM the leaving replica's own last acks
    // may move them too: its figure is the re-owning time below).
    const auto floors = partition_floors(nats.url(), config);
    // A crashed replica is replaced (as its pod would be); a stopped one is not: scaling in, its
    // partitions go to the others at once, and the figure is that hand-over alone.
    if (fault == Fault::kSigkill) fleet.start();
    std::vector<std::size_t> others;
    for (std::size_t i = 0; i < fleet.size(); ++i) {
      if (i != victim) others.push_back(i);
    }
    owned_again_s = wait_owned_by(fleet, others, partitions, at, 60s);
    takeover_s = wait_partitions_flowing(nats.url(), config, floors, at, 60s);
    if (fault == Fault::kSigterm) {
      victim_code = fleet.process(victim).wait(30s);
      victim_exit_s = seconds_since(at);
    }
    fault_text =
        std::string(fault == Fault::kSigkill ? " SIGKILL" : " SIGTERM")
            .append(" replica-1 (owned ")
            .append(std::isnan(victim_owned) ? std::string("?") : std::to_string(static_cast<long>(victim_owned)))
            .append(") at fed=")
            .append(std::to_string(fed_at_fault))
            .append(": partitions owned by the others after ")
            .append(fixed1(owned_again_s))
            .append("s, every partition flowing after ")
            .append(fixed1(takeover_s))
            .append("s");
    if (fault == Fault::kSigterm) fault_text.append(", exited after ").append(fixed1(victim_exit_s)).append("s");
  }

  REQUIRE(feeder.wait(120s));
  const bool settled = wait_settled_partitions(nats.url(), config, want.event_ids.size(), 0, 90s);
  const double drain_s = seconds_since(feed_started);
  const double spread_max = std::ceil(static_cast<double>(partitions) / static_cast<double>(fleet.live().size()));
  const bool spread_after = fleet.wait_spread(partitions, spread_max, 20s);
  const std::string owned_after = fleet.owned_text();
  std::vector<std::string> bodies;
  for (const std::size_t i : fleet.live()) bodies.push_back(fleet.metrics(i));
  if (!victim_metrics.empty()) bodies.push_back(victim_metrics);
  INFO("partitions:\n" << partition_report(nats.url(), config) << "logs:" << fleet.logs());
  REQUIRE(settled);

  JetStreamProbe probe(nats.url());
  const Outcome o = collect(probe, config, to_publish(want));
  const OrderCheck order = check_stream_order(probe, config);
  const double processed = sum_metric(bodies, "cdc_consumer_events_total", "result=\"processed\"");
  std::string live_codes;
  for (const std::size_t i : fleet.live()) {
    const int code = fleet.terminate(i, 30s);
    live_codes.append(live_codes.empty() ? "" : ",").append(std::to_string(code));
    CHECK(code == 0);
  }
  report("partitions-" + name,
         "events=" + std::to_string(records.size()) + " repeats=" + std::to_string(want.duplicates) +
             " partitions=" + std::to_string(partitions) + " replicas=" + std::to_string(replicas) + " owned_before=[" +
             spread_before + "]" + fault_text + " owned_after=[" + owned_after + "] drain=" + fixed1(drain_s) +
             "s (feed at " + std::to_string(static_cast<long>(rate)) +
             "/s) processed_per_replica=" + per_replica(bodies, "cdc_consumer_events_total", "result=\"processed\"") +
             " lease_acquisitions=" + per_replica(bodies, "cdc_consumer_lease_acquisitions_total") +
             " lease_losses=" + per_replica(bodies, "cdc_consumer_lease_losses_total") +
             " rebalances=" + per_replica(bodies, "cdc_consumer_rebalances_total") + " order: " + order.summary() +
             " total=" + fixed1(seconds_since(started)) + "s " + figures(o));

  if (fault != Fault::kNone) {
    // How the hand-over went, from the replicas' own log lines (for the report).
    std::string lines;
    for (const char* needle : {"\"fleet: lease released\"", "\"fleet: lease taken over", "\"fleet: lease lost",
                               "\"fleet: fetching partition\""}) {
      lines += fleet.grep(needle, 40);
    }
    std::fputs(("fleet log lines:\n" + lines).c_str(), stdout);
  }
  CHECK_OUTPUT_EXACT(o);
  CHECK(o.dead_letters == 0);
  INFO(order.summary());
  CHECK(order.ok());
  CHECK(order.events == want.event_ids.size());
  CHECK(spread_after);
  // Every event processed once at least (a stopped replica's last counts are not all readable).
  if (fault == Fault::kNone) CHECK(processed >= static_cast<double>(want.event_ids.size()));
  CHECK(sum_metric(bodies, "cdc_consumer_lease_acquisitions_total") >= partitions);
  if (fault == Fault::kSigkill) {
    CHECK(std::isfinite(takeover_s));
    // A crashed owner's partitions wait for the lease to expire: a lease loss is not the
    // survivors' (they lost nothing), but a rebalance happened when the member left.
    CHECK(sum_metric(bodies, "cdc_consumer_rebalances_total") >= 1);
  }
  if (fault == Fault::kSigterm) {
    CHECK(victim_code == std::optional<int>(0));
    CHECK(std::isfinite(owned_again_s));
    CHECK(std::isfinite(takeover_s));
  }
}

}  // namespace

TEST_CASE("partitions: 3 replicas, P=8 on one node keep every subject's order and spread the partitions",
          "[integration][faults][partitions]") {
  run_single_node("spread", Fault::kNone);
}

TEST_CASE("partitions: a replica SIGKILLed mid-stream, a new one started, its partitions taken over in order",
          "[integration][faults][partitions]") {
  run_single_node("sigkill", Fault::kSigkill);
}

TEST_CASE("partitions: a replica SIGTERMed mid-stream hands its partitions over at once, in order",
          "[integration][faults][partitions]") {
  run_single_node("sigterm", Fault::kSigterm);
}

TEST_CASE("partitions: P=1 with 2 replicas is active-standby, the standby takes over after a SIGKILL",
          "[integration][faults][partitions]") {
  const auto started = Clock::now();
  NatsServer nats;  // P = 1: today's subjects, no mapping
  RedisServer redis;
  TempDir dir("cdc-partitions");
  const auto settings = partition_settings(1);
  const Config config = load_config_text("", settings);
  auto records = generate(dir, "standby", 4000, 1301);
  const Expected want = expect(config, records);
  REQUIRE(want.duplicates > 0);

  ReplicaFleet fleet(service_env(nats.url(), redis.address(), 0, to_overrides(settings)));
  fleet.start();
  // The first replica takes the only partition before the second one exists.
  {
    const auto deadline = Clock::now() + 20s;
    while (fleet.owned(0) != 1 && Clock::now() < deadline) std::this_thread::sleep_for(50ms);
  }
  REQUIRE(fleet.owned(0) == 1);
  fleet.start();
  REQUIRE(fleet.wait_spread(1, 1, 20s));
  CHECK(fleet.owned(0) == 1);
  CHECK(fleet.owned(1) == 0);

  const auto feed_started = Clock::now();
  Feeder feeder(nats.url(), records, 800);
  feeder.start();
  REQUIRE(wait_fed(feeder, records.size() / 3, 60s));
  // Before the kill the standby has consumed nothing (a series not rendered yet is 0 too).
  const std::string standby_before = fleet.metrics(1);
  const double standby_processed_before = metric(standby_before, "cdc_consumer_events_total", "result=\"processed\"");
  CHECK(metric(standby_before, "cdc_consumer_partitions_owned") == 0);
  CHECK_FALSE(standby_processed_before > 0);
  const std::string active_before = fleet.metrics(0);
  const std::size_t fed_at_kill = feeder.stored();
  const auto at = Clock::now();
  CHECK(fleet.kill(0) == 128 + SIGKILL);
  const auto floors = partition_floors(nats.url(), config);
  const double owned_s = wait_owned_by(fleet, {1}, 1, at, 60s);
  const double takeover_s = wait_partitions_flowing(nats.url(), config, floors, at, 60s);

  REQUIRE(feeder.wait(120s));
  const bool settled = wait_settled_partitions(nats.url(), config, want.event_ids.size(), 0, 90s);
  const double drain_s = seconds_since(feed_started);
  const std::string standby_after = fleet.metrics(1);
  INFO("partitions:\n" << partition_report(nats.url(), config) << "logs:" << fleet.logs());
  REQUIRE(settled);
  JetStreamProbe probe(nats.url());
  const Outcome o = collect(probe, config, to_publish(want));
  const OrderCheck order = check_stream_order(probe, config);
  CHECK(fleet.terminate(1, 30s) == 0);
  report("partitions-standby",
         "events=" + std::to_string(records.size()) + " repeats=" + std::to_string(want.duplicates) +
             " partitions=1 replicas=2 SIGKILL active at fed=" + std::to_string(fed_at_kill) + ": standby owns after " +
             fixed1(owned_s) + "s, flowing (take-over) after " + fixed1(takeover_s) + "s (lease_ttl " + kLeaseTtl +
             " + AckWait 2s) processed active/standby=" +
             std::to_string(
                 static_cast<long>(metric(active_before, "cdc_consumer_events_total", "result=\"processed\""))) +
             "/" +
             std::to_string(
                 static_cast<long>(metric(standby_after, "cdc_consumer_events_total", "result=\"processed\""))) +
             " drain=" + fixed1(drain_s) + "s order: " + order.summary() + " total=" + fixed1(seconds_since(started)) +
             "s " + figures(o));

  CHECK_OUTPUT_EXACT(o);
  INFO(order.summary());
  CHECK(order.ok());
  CHECK(std::isfinite(owned_s));
  CHECK(std::isfinite(takeover_s));
  CHECK(metric(standby_after, "cdc_consumer_partitions_owned") == 1);
  CHECK(metric(standby_after, "cdc_consumer_events_total", "result=\"processed\"") > 0);
  CHECK(metric(standby_after, "cdc_consumer_lease_acquisitions_total") >= 1);
}

TEST_CASE("partitions: a partition's durable consumer deleted mid-stream is recreated from the checkpoint",
          "[integration][faults][partitions]") {
  constexpr std::uint32_t kPartitions = 8;
  const auto started = Clock::now();
  NatsServerOptions nats_options;
  nats_options.config_lines = {partition_mapping(kPartitions)};
  NatsServer nats(nats_options);
  RedisServer redis;
  TempDir dir("cdc-partitions");
  // Short dedup and duplicate windows: an event republished more than 3 s after its first
  // publish is neither a Redis `d` hit nor a wa_stream duplicate, so a consumer recreated from
  // the start of the stream would show its partition's early events twice.
  const auto settings = partition_settings(kPartitions, {{"DAISI_CDC_DEDUP_TTL", "3s"},
                                                         {"DAISI_CDC_PUBLISH_DUPLICATE_WINDOW", "3s"},
                                                         {"DAISI_CDC_DEDUP_PENDING_TTL", "2s"}});
  const Config config = load_config_text("", settings);
  const Config plain = load_config_text("", {});
  auto records = generate(dir, "consumer-deleted", 4000, 1401);
  const Expected want = expect(plain, records);

  ReplicaFleet fleet(service_env(nats.url(), redis.address(), 0, to_overrides(settings)));
  fleet.start();
  fleet.start();
  REQUIRE(fleet.wait_spread(kPartitions, 4, 30s));

  const auto feed_started = Clock::now();
  Feeder feeder(nats.url(), records, 500);  // 8 s: the deletion comes > 3 s after the first events
  feeder.start();
  REQUIRE(wait_fed(feeder, records.size() * 5 / 8, 60s));
  std::uint32_t victim = 0;
  std::size_t victim_messages = 0;
  std::uint64_t victim_floor = 0;
  {
    JetStreamProbe probe(nats.url());
    const auto per = messages_per_partition(probe, config, kPartitions);
    victim = static_cast<std::uint32_t>(std::max_element(per.begin(), per.end()) - per.begin());
    victim_messages = per[victim];
    victim_floor =
        probe.consumer_info(config.ingest.stream, partition_consumer_name(config, victim)).ack_floor_stream_seq;
    probe.delete_consumer(config.ingest.stream, partition_consumer_name(config, victim));
  }
  const auto deleted_at = Clock::now();
  REQUIRE(victim_messages > 0);
  REQUIRE(victim_floor > 0);  // its early events were published and acked: a replay would double them

  double recreated_s = std::numeric_limits<double>::quiet_NaN();
  {
    const auto deadline = Clock::now() + 60s;
    while (Clock::now() < deadline) {
      JetStreamProbe probe(nats.url());
      if (probe.consumer_exists(config.ingest.stream, partition_consumer_name(config, victim))) {
        recreated_s = seconds_since(deleted_at);
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
  }
  REQUIRE(feeder.wait(120s));
  const bool settled = wait_settled_partitions(nats.url(), config, want.event_ids.size(), 0, 90s);
  const double drain_s = seconds_since(feed_started);
  std::vector<std::string> bodies;
  for (const std::size_t i : fleet.live()) bodies.push_back(fleet.metrics(i));
  INFO("partitions:\n" << partition_report(nats.url(), config) << "logs:" << fleet.logs());
  REQUIRE(settled);
  JetStreamProbe probe(nats.url());
  const Outcome o = collect(probe, config, to_publish(want));
  const OrderCheck order = check_stream_order(probe, config);
  const std::string lines = fleet.grep(partition_consumer_name(config, victim), 6);
  for (const std::size_t i : fleet.live()) CHECK(fleet.terminate(i, 30s) == 0);
  report("partitions-consumer-deleted",
         "events=" + std::to_string(records.size()) + " partitions=8 replicas=2 deleted " +
             partition_consumer_name(config, victim) + " (" + std::to_string(victim_messages) +
             " messages so far, ack floor " + std::to_string(victim_floor) +
             ") at t=" + fixed1(std::chrono::duration<double>(deleted_at - feed_started).count()) +
             "s: recreated after " + fixed1(recreated_s) + "s, drain=" + fixed1(drain_s) +
             "s dedup.ttl=3s duplicate_window=3s order: " + order.summary() +
             " total=" + fixed1(seconds_since(started)) + "s " + figures(o) + "\n" + lines);

  CHECK(std::isfinite(recreated_s));
  CHECK_OUTPUT_EXACT(o);
  CHECK(o.dead_letters == 0);
  INFO(order.summary());
  CHECK(order.ok());
}

TEST_CASE("partitions: wa_stream deleted mid-stream is recreated, traffic flows, nothing is dead-lettered",
          "[integration][faults][partitions]") {
  constexpr std::uint32_t kPartitions = 8;
  const auto started = Clock::now();
  NatsServerOptions nats_options;
  nats_options.config_lines = {partition_mapping(kPartitions)};
  NatsServer nats(nats_options);
  RedisServer redis;
  TempDir dir("cdc-partitions");
  // Two deliveries, one retry: a service that gave up on the missing stream would dead-letter
  // within a second or two, long before it is recreated.
  const auto settings = partition_settings(kPartitions, {{"DAISI_CDC_INGEST_MAX_DELIVER", "2"},
                                                         {"DAISI_CDC_PUBLISH_MAX_RETRIES", "1"},
                                                         {"DAISI_CDC_PUBLISH_RETRY_BACKOFF", "20ms"}});
  const Config config = load_config_text("", settings);
  const Config plain = load_config_text("", {});
  auto records = generate(dir, "wa-deleted", 4000, 1501);
  const Expected want = expect(plain, records);

  ReplicaFleet fleet(service_env(nats.url(), redis.address(), 0, to_overrides(settings)));
  fleet.start();
  fleet.start();
  REQUIRE(fleet.wait_spread(kPartitions, 4, 30s));

  const auto feed_started = Clock::now();
  Feeder feeder(nats.url(), records, 800);
  feeder.start();
  REQUIRE(wait_fed(feeder, records.size() / 2, 60s));
  std::uint64_t source_seq_at_delete = 0;
  {
    JetStreamProbe probe(nats.url());
    probe.delete_stream(config.publish.stream);
    // Every source message stored after this point is published after the deletion: its event
    // must be in the recreated stream. Earlier ones went (or may have gone) with the old stream.
    source_seq_at_delete = probe.stream_state(config.ingest.stream).last_seq;
  }
  const auto deleted_at = Clock::now();
  double recreated_s = std::numeric_limits<double>::quiet_NaN();
  {
    const auto deadline = Clock::now() + 60s;
    while (Clock::now() < deadline) {
      JetStreamProbe probe(nats.url());
      if (probe.stream_exists(config.publish.stream)) {
        recreated_s = seconds_since(deleted_at);
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
  }
  REQUIRE(feeder.wait(120s));

  // The events that must be in the recreated wa_stream: every one whose first source copy was
  // stored after the deletion.
  JetStreamProbe probe(nats.url());
  const std::vector<CaptureRecord> source = read_source_records(probe, config);
  const auto positions = source_positions(config, source);
  std::set<std::string> must_be_there;
  for (const auto& [id, seq] : positions) {
    if (seq > source_seq_at_delete) must_be_there.insert(id);
  }
  REQUIRE(!must_be_there.empty());

  const auto deadline = Clock::now() + 90s;
  bool settled = false;
  while (!settled && Clock::now() < deadline) {
    settled = wait_settled_partitions(nats.url(), config, must_be_there.size(), 0, 1s);
  }
  const double drain_s = seconds_since(feed_started);
  std::vector<std::string> bodies;
  for (const std::size_t i : fleet.live()) bodies.push_back(fleet.metrics(i));
  INFO("partitions:\n" << partition_report(nats.url(), config) << "logs:" << fleet.logs());
  REQUIRE(settled);

  std::size_t missing = 0;
  std::size_t duplicates = 0;
  std::set<std::string> seen;
  const auto stored = probe.read_stream(config.publish.stream);
  for (const auto& m : stored) {
    if (!seen.insert(m.header("Nats-Msg-Id")).second) ++duplicates;
  }
  for (const auto& id : must_be_there) missing += seen.count(id) == 0 ? 1 : 0;
  const std::uint64_t dead_letters =
      probe.stream_exists(config.publish.dlq_stream) ? probe.count(config.publish.dlq_stream) : 0;
  const OrderCheck order = check_stream_order(probe, config);
  const std::string lines = fleet.grep(config.publish.stream, 6);
  for (const std::size_t i : fleet.live()) CHECK(fleet.terminate(i, 30s) == 0);
  report("partitions-wa-deleted",
         "events=" + std::to_string(records.size()) + " partitions=8 replicas=2 wa_stream deleted at source seq " +
             std::to_string(source_seq_at_delete) + ": recreated after " + fixed1(recreated_s) + "s, stored " +
             std::to_string(stored.size()) + " (must hold " + std::to_string(must_be_there.size()) +
             " published after the deletion) missing=" + std::to_string(missing) +
             " duplicates=" + std::to_string(duplicates) + " dead_letters=" + std::to_string(dead_letters) +
             " drain=" + fixed1(drain_s) +
             "s dlq_published=" + per_replica(bodies, "cdc_consumer_events_total", "result=\"dead_lettered\"") +
             " order: " + order.summary() + " total=" + fixed1(seconds_since(started)) + "s\n" + lines);

  CHECK(std::isfinite(recreated_s));
  CHECK(missing == 0);
  CHECK(duplicates == 0);
  CHECK(dead_letters == 0);
  CHECK(sum_metric(bodies, "cdc_consumer_events_total", "result=\"dead_lettered\"") == 0);
  INFO(order.summary());
  CHECK(order.ok());
}
