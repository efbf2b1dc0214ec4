// Scale-out (issue 7): three replicas of the service share one durable push consumer (one queue
// group) on a 3-node JetStream cluster whose three streams the first replica creates as R3
// (nats.stream_replicas = 3). While a capture streams in, one NATS node is SIGKILLed (the
// durable consumer's leader when a surviving replica is connected to it, else the node replica
// 1 consumes through: a replica has to fail over to another node either way) and later one
// service replica (replica 0) is SIGKILLed. Neither comes back: the cluster runs on
// with two of three nodes (R3 keeps a quorum), the two surviving replicas take over what the
// dead one held once AckWait expires. wa_stream must hold every expected event exactly once,
// cdc_dlq_stream exactly the expected dead letters, and the consumer nothing pending.

#include <catch2/catch.hpp>

#include <signal.h>

#include <sstream>

#include "faults_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace cdc::test::faults;

namespace {

using Clock = std::chrono::steady_clock;

/// The server a replica's `connection` ("consume" or "publish") is on, from its last
/// "nats connected" / "nats reconnected" log line; "" when there is none.
std::string server_of(const std::string& output, std::string_view connection) {
  const std::string conn = "\"connection\":\"" + std::string(connection) + "\"";
  std::string server;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("\"msg\":\"nats connected\"") == std::string::npos &&
        line.find("\"msg\":\"nats reconnected\"") == std::string::npos) {
      continue;
    }
    if (line.find(conn) == std::string::npos) continue;
    const auto at = line.find("\"server\":\"");
    if (at == std::string::npos) continue;
    const auto start = at + 10;
    server = line.substr(start, line.find('"', start) - start);
  }
  return server;
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

/// A counter of a /metrics body, -1 when the series is missing (metric() returns NaN then).
long counter(const std::string& body, std::string_view name, std::string_view labels = {}) {
  const double v = metric(body, name, labels);
  return v == v ? static_cast<long>(v) : -1;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string fixed1(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", x);
  return buf;
}

}  // namespace

TEST_CASE("scale-out: 3 replicas on a 3-node JetStream cluster (R3), a node and a replica SIGKILLed mid-stream",
          "[integration][faults][scale]") {
  const auto started = Clock::now();
  NatsCluster cluster;
  RedisServer redis;
  TempDir dir("cdc-scale");
  const double cluster_s = seconds_since(started);

  Config config = load_config_text("", {"DAISI_CDC_NATS_STREAM_REPLICAS=3"});
  config.nats.url = cluster.url();
  config.redis.address = redis.address();
  auto records = generate(dir, "scale-out", 4000, 71, {"--bad-pct", "1", "--no-oversized"});
  const Expected want = expect(config, records);
  REQUIRE(want.dead_letter_total() > 0);

  // Three replicas, one configuration but the metrics port and the connection name. The first
  // creates the three R3 streams and the R3 durable consumer; the others find them.
  constexpr std::size_t kReplicas = 3;
  std::vector<std::uint16_t> ports;
  std::vector<std::unique_ptr<ServiceProcess>> replicas;
  for (std::size_t i = 0; i < kReplicas; ++i) {
    ports.push_back(free_port());
    replicas.push_back(start_service(service_env(
        cluster.url(), redis.address(), ports.back(),
        {{"DAISI_CDC_NATS_STREAM_REPLICAS", "3"}, {"DAISI_CDC_NATS_NAME", "cdc-replica-" + std::to_string(i)}})));
  }
  {
    JetStreamProbe probe(cluster.url());
    for (const auto& name : {config.ingest.stream, config.publish.stream, config.publish.dlq_stream}) {
      INFO("stream " << name);
      CHECK(probe.stream_state(name).replicas == 3);
    }
  }

  // The node to kill: the durable consumer's leader when a surviving replica (1 or 2) has a
  // connection on it (the consumer and a replica's link fail over at once), else the node replica
  // 1 consumes through. Either way a surviving replica has to move to another node.
  const auto on_node = [&](std::size_t node) {
    std::vector<std::string> links;  // "replica/connection" with a connection on `node`
    for (std::size_t r = 1; r < kReplicas; ++r) {
      for (const char* role : {"consume", "publish"}) {
        if (cluster.index_of(server_of(replicas[r]->output(), role)) == node) {
          links.push_back(std::to_string(r) + "/" + role);
        }
      }
    }
    return links;
  };
  std::size_t victim_node = 0;
  std::string why;
  {
    JetStreamProbe probe(cluster.url());
    const std::size_t leader =
        cluster.index_of(probe.consumer_info(config.ingest.stream, config.ingest.consumer).leader);
    if (leader < cluster.size() && !on_node(leader).empty()) {
      victim_node = leader;
      why = "consumer leader";
    } else {
      victim_node = cluster.index_of(server_of(replicas[1]->output(), "consume"));
      why = "replica 1 consumes through it";
    }
  }
  REQUIRE(victim_node < cluster.size());
  const std::vector<std::string> moved = on_node(victim_node);  // links that must fail over
  REQUIRE(!moved.empty());
  std::string moved_text;
  for (const auto& m : moved) moved_text += (moved_text.empty() ? "" : ",") + m;

  const auto feed_started = Clock::now();
  Feeder feeder(cluster.url(), records, 1000);
  feeder.start();

  // A third of the way in: SIGKILL the node. Note who led what at that moment.
  REQUIRE(wait_fed(feeder, records.size() / 3, 60s));
  std::string leaders;
  {
    JetStreamProbe probe(cluster.url());
    leaders = "source=" + probe.stream_state(config.ingest.stream).leader +
              " consumer=" + probe.consumer_info(config.ingest.stream, config.ingest.consumer).leader +
              " wa=" + probe.stream_state(config.publish.stream).leader;
  }
  const std::size_t fed_at_node_kill = feeder.stored();
  const double node_kill_s = seconds_since(feed_started);
  cluster.kill(victim_node);

  // Two thirds of the way in: SIGKILL replica 0, after reading what it has done so far.
  REQUIRE(wait_fed(feeder, 2 * records.size() / 3, 60s));
  const auto [status0, metrics0] = http_get(ports[0], "/metrics");
  const std::size_t fed_at_replica_kill = feeder.stored();
  const double replica_kill_s = seconds_since(feed_started);
  CHECK(replicas[0]->kill() == 128 + SIGKILL);

  REQUIRE(feeder.wait(120s));
  const bool settled =
      wait_settled(cluster.running_url(), config, want.event_ids.size(), want.dead_letter_total(), 90s);
  const double settle_s = seconds_since(feed_started);
  std::vector<std::string> metrics(kReplicas);
  metrics[0] = metrics0;
  for (std::size_t i = 1; i < kReplicas; ++i) metrics[i] = http_get(ports[i], "/metrics").second;
  // Where each link that was on the killed node is now.
  std::vector<std::pair<std::string, std::string>> after;
  for (const auto& m : moved) {
    const std::size_t r = static_cast<std::size_t>(m[0] - '0');
    after.emplace_back(m, server_of(replicas[r]->output(), m.substr(2)));
  }
  for (std::size_t i = 1; i < kReplicas; ++i) CHECK(replicas[i]->terminate(30s) == 0);
  REQUIRE(settled);

  JetStreamProbe probe(cluster.running_url());
  const Outcome o = collect(probe, config, to_publish(want));
  // Read from leaders (a leaderless stream's follower answers with its own, maybe stale, state).
  const std::string source_leader = probe.stream_state(config.ingest.stream).leader;
  const std::string consumer_leader = probe.consumer_info(config.ingest.stream, config.ingest.consumer).leader;
  const std::string wa_leader = probe.stream_state(config.publish.stream).leader;
  const std::string leaders_after = "source=" + source_leader + " consumer=" + consumer_leader + " wa=" + wa_leader;
  std::string processed;
  std::string reconnects;
  for (std::size_t i = 0; i < kReplicas; ++i) {
    processed +=
        (i == 0 ? "" : ",") + std::to_string(counter(metrics[i], "cdc_consumer_events_total", "result=\"processed\""));
    reconnects += (i == 0 ? "" : ",") + std::to_string(counter(metrics[i], "cdc_consumer_nats_reconnects_total"));
  }
  report("scale-out",
         "events=" + std::to_string(records.size()) + " nodes=" + std::to_string(cluster.size()) +
             " replicas=" + std::to_string(kReplicas) + " kills=2 (node " + cluster.server_name(victim_node) + " [" +
             why + "; links on it " + moved_text + "; leaders " + leaders + " -> " + leaders_after +
             "] at fed=" + std::to_string(fed_at_node_kill) + " t=" + fixed1(node_kill_s) +
             "s, replica 0 at fed=" + std::to_string(fed_at_replica_kill) + " t=" + fixed1(replica_kill_s) +
             "s) processed_per_replica=" + processed + " (replica 0 until its kill) reconnects_per_replica=" +
             reconnects + " feeder_retries=" + std::to_string(feeder.retries()) + " settled_after=" + fixed1(settle_s) +
             "s cluster_start=" + fixed1(cluster_s) + "s total=" + fixed1(seconds_since(started)) + "s " + figures(o));

  CHECK_OUTPUT_EXACT(o);
  for (const auto* leader : {&source_leader, &consumer_leader, &wa_leader}) {
    const std::size_t node = cluster.index_of(*leader);
    CHECK(node < cluster.size());
    CHECK(node != victim_node);
  }
  CHECK(o.kinds == want.dead_letters);
  const ConsumerState cs = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  CHECK(cs.num_pending == 0);
  CHECK(cs.num_ack_pending == 0);
  // The replicas shared the consumer: each did part of the work (replica 0 before its kill).
  CHECK(status0 == 200);
  for (std::size_t i = 0; i < kReplicas; ++i) {
    INFO("replica " << i);
    CHECK(metric(metrics[i], "cdc_consumer_events_total", "result=\"processed\"") > 0);
  }
  // Every surviving replica's link on the killed node went on through another node.
  for (const auto& [link, server] : after) {
    INFO("replica/connection " << link << " is on '" << server << "' after the kill");
    const std::size_t r = static_cast<std::size_t>(link[0] - '0');
    CHECK(metric(metrics[r], "cdc_consumer_nats_reconnects_total") >= 1);
    const std::size_t node = cluster.index_of(server);
    CHECK(node < cluster.size());
    CHECK(node != victim_node);
  }
}
