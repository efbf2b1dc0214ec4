// The fleet against a real nats-server -js (CONTRACT.md section 11): two members in one process
// share P = 4 partitions by leases in the KV bucket; a crashed member's partitions are taken
// over after the lease (at once when nothing awaits an ack, after AckWait otherwise), a released
// one's at once; no partition is ever fetchable by both; a deleted consumer is recreated from the
// checkpoint; the start-up fit check names the server mapping to add.

#include <catch2/catch.hpp>

#include <atomic>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <set>
#include <thread>
#include <vector>

#include <unistd.h>

#include "cdc/adapters/nats/fleet.hpp"
#include "cdc/adapters/nats/nats_connection.hpp"
#include "cdc/core/config.hpp"
#include "cdc/core/metrics.hpp"
#include "cdc/core/partitions.hpp"
#include "pipeline_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t kPartitions = 4;

Config fleet_config(const NatsServer& nats, const std::string& replica) {
  Config c = load_config_text("", {});
  c.nats.url = nats.url();
  c.metrics.enabled = false;
  c.ingest.partitions = static_cast<int>(kPartitions);
  c.ingest.subject_layout = "cdc.{company}.{table}.{partition}";
  c.ingest.lease_ttl = 1500ms;
  c.ingest.ack_wait = 4000ms;
  c.ingest.checkpoint_interval = 200ms;
  c.ingest.replica_id = replica;
  validate(c);
  return c;
}

/// Polls `condition` every 5 ms; false after `timeout`.
bool wait_for(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

/// The partitions `fleet` may fetch now (nonzero epoch).
std::set<std::uint32_t> active(const Fleet& fleet) {
  std::set<std::uint32_t> out;
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    if (fleet.table().slot(p).epoch.load() != 0) out.insert(p);
  }
  return out;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// Watches the tables of up to two members every few hundred microseconds: a partition
/// fetchable by both at one instant is a violation.
class OverlapWatch {
 public:
  OverlapWatch() : thread_([this] { run(); }) {}
  ~OverlapWatch() {
    stop_ = true;
    thread_.join();
  }
  void watch(std::size_t i, const Fleet* fleet) {
    std::lock_guard<std::mutex> lock(mutex_);
    fleets_[i] = fleet;
  }
  [[nodiscard]] std::uint64_t overlaps() const { return overlaps_.load(); }
  [[nodiscard]] std::uint64_t samples() const { return samples_.load(); }

 private:
  void run() {
    while (!stop_) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (fleets_[0] != nullptr && fleets_[1] != nullptr) {
          for (std::uint32_t p = 0; p < kPartitions; ++p) {
            if (fleets_[0]->table().slot(p).epoch.load() != 0 && fleets_[1]->table().slot(p).epoch.load() != 0)
              overlaps_.fetch_add(1);
          }
          samples_.fetch_add(1);
        }
      }
      std::this_thread::sleep_for(200us);
    }
  }
  std::mutex mutex_;
  std::array<const Fleet*, 2> fleets_{};
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> overlaps_{0};
  std::atomic<std::uint64_t> samples_{0};
  std::thread thread_;
};

/// One message of partition `p`'s consumer fetched as its owner's source would (a pull request
/// on an inbox of its own), not acked yet.
NatsMsgPtr fetch_one(natsConnection* nc, const Config& config, std::uint32_t p) {
  const std::string api =
      "$JS.API.CONSUMER.MSG.NEXT." + config.ingest.stream + "." + partition_consumer(config.ingest, p);
  natsInbox* inbox = nullptr;
  REQUIRE(natsInbox_Create(&inbox) == NATS_OK);
  const std::string reply_to(inbox);
  natsInbox_Destroy(inbox);
  natsSubscription* raw_sub = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&raw_sub, nc, reply_to.c_str()) == NATS_OK);
  const NatsSubPtr sub(raw_sub);
  REQUIRE(natsConnection_PublishRequestString(nc, api.c_str(), reply_to.c_str(),
                                              "{\"batch\":1,\"expires\":2000000000}") == NATS_OK);
  natsMsg* raw = nullptr;
  REQUIRE(natsSubscription_NextMsg(&raw, sub.get(), 3000) == NATS_OK);
  NatsMsgPtr msg(raw);
  REQUIRE(natsMsg_GetReply(msg.get()) != nullptr);
  REQUIRE(std::string(natsMsg_GetReply(msg.get())).rfind("$JS.ACK.", 0) == 0);
  return msg;
}

void ack(natsConnection* nc, natsMsg* msg) {
  REQUIRE(natsConnection_PublishString(nc, natsMsg_GetReply(msg), "+ACK") == NATS_OK);
  REQUIRE(natsConnection_FlushTimeout(nc, 2000) == NATS_OK);
}

std::uint64_t stored_checkpoint(JetStreamProbe& probe, const Config& config, std::uint32_t p) {
  kvStore* raw = nullptr;
  REQUIRE(js_KeyValue(&raw, probe.jetstream(), config.ingest.lease_bucket.c_str()) == NATS_OK);
  std::unique_ptr<kvStore, void (*)(kvStore*)> kv(raw, kvStore_Destroy);
  kvEntry* e = nullptr;
  if (kvStore_Get(&e, kv.get(), ("ckpt." + std::to_string(p)).c_str()) != NATS_OK) return 0;
  const std::string value(kvEntry_ValueString(e), static_cast<std::size_t>(kvEntry_ValueLen(e)));
  kvEntry_Destroy(e);
  return std::stoull(value);
}

/// CPU seconds (user + system) of this process's threads named `name`; -1 when there is none.
double thread_cpu_seconds(const std::string& name) {
  double total = -1;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string line;
    if (!std::getline(comm, line) || line != name) continue;
    std::ifstream stat(task.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
    std::istringstream rest(text.substr(text.rfind(')') + 2));
    std::vector<std::string> fields{std::istream_iterator<std::string>(rest), std::istream_iterator<std::string>()};
    if (fields.size() < 13) continue;
    total = std::max(total, 0.0);
    total += static_cast<double>(std::stoull(fields[11]) + std::stoull(fields[12])) /
             static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return total;
}

}  // namespace

TEST_CASE(
    "fleet members split the partitions, take over a crashed member's after the lease, a released "
    "member's at once, never both at one instant",
    "[integration][fleet]") {
  NatsServer nats;
  JetStreamProbe probe(nats.url());
  const Config ca = fleet_config(nats, "a");
  const Config cb = fleet_config(nats, "b");
  NatsConnection conn_a(ca.nats, "consume");
  NatsConnection conn_b(cb.nats, "consume");
  ensure_jetstream_objects(conn_a, ca, "");
  for (std::uint32_t p = 0; p < kPartitions; ++p)
    REQUIRE(probe.consumer_exists(ca.ingest.stream, partition_consumer(ca.ingest, p)));

  OverlapWatch overlap;
  Metrics ma({"messages"});
  Metrics mb({"messages"});
  Fleet a(conn_a, ca);
  auto b = std::make_unique<Fleet>(conn_b, cb);
  a.attach(ma);
  b->attach(mb);
  overlap.watch(0, &a);
  overlap.watch(1, b.get());
  a.start();
  b->start();

  // Even split by the spread rule: members sorted ["a", "b"], p -> members[p % 2].
  REQUIRE(wait_for(
      [&] {
        return active(a) == std::set<std::uint32_t>{0, 2} && active(*b) == std::set<std::uint32_t>{1, 3};
      },
      15s));
  CHECK(a.owned() == 2);
  CHECK(b->owned() == 2);
  CHECK(a.ready());
  CHECK(b->ready());
  CHECK(ma.fleet.owned.value() == 2);
  CHECK(mb.fleet.partitions.value() == kPartitions);

  // b holds one message of partition 1 unacknowledged, then crashes (no release).
  probe.publish("cdc.acme.messages.1", "{}");
  const NatsMsgPtr held = fetch_one(conn_b.get(), cb, 1);
  REQUIRE(wait_for(
      [&] { return probe.consumer_info(ca.ingest.stream, partition_consumer(ca.ingest, 1)).num_ack_pending == 1; },
      5s));
  const std::uint64_t acquired_before = ma.fleet.acquisitions.value();
  const std::uint64_t rebalances_before = ma.fleet.rebalances.value();
  const auto crashed = Clock::now();
  overlap.watch(1, nullptr);
  b->stop();
  CHECK(active(*b).empty());  // a stopped member fetches nothing
  // Partition 3 has nothing the crashed owner could still ack: taken and fetched after the lease.
  REQUIRE(wait_for([&] { return active(a).count(3) == 1; }, 10s));
  const double p3 = seconds_since(crashed);
  CHECK(p3 >= 0.9);  // not before the lease could have expired (ttl 1.5 s, fence at 1.2 s)
  CHECK(p3 < 3.5);   // and without waiting AckWait (4 s)
  // Partition 1's lease is taken too (its last renewal may have come a little later than 3's),
  // but not fetched yet.
  CHECK(wait_for([&] { return a.owned() == 4; }, 1s));
  CHECK(active(a).count(1) == 0);
  // Partition 1 has a message awaiting the old owner's ack: fetched only after AckWait.
  REQUIRE(wait_for([&] { return active(a).count(1) == 1; }, 15s));
  const double p1 = seconds_since(crashed);
  CHECK(p1 >= 4.0);
  CHECK(p1 < 8.0);
  CHECK(ma.fleet.acquisitions.value() == acquired_before + 2);
  CHECK(ma.fleet.rebalances.value() == rebalances_before + 1);
  CHECK(ma.fleet.losses.value() == 0);
  INFO("take-over after a crash: " << p3 << " s (nothing pending), " << p1 << " s (AckWait)");

  // The message the crashed member held, acked now by the new owner's source (redelivered).
  ack(conn_a.get(), fetch_one(conn_a.get(), ca, 1).get());
  REQUIRE(wait_for(
      [&] { return probe.consumer_info(ca.ingest.stream, partition_consumer(ca.ingest, 1)).num_ack_pending == 0; },
      5s));

  // A new member joins: a hands over (nothing in flight), the newcomer fetches at once.
  b.reset();
  Config cb2 = fleet_config(nats, "b2");
  b = std::make_unique<Fleet>(conn_b, cb2);
  b->attach(mb);
  overlap.watch(1, b.get());
  b->start();
  REQUIRE(wait_for(
      [&] {
        return active(a) == std::set<std::uint32_t>{0, 2} && active(*b) == std::set<std::uint32_t>{1, 3};
      },
      15s));
  CHECK(ma.fleet.releases.value() >= 2);

  // Graceful stop: released at once, taken at once (well within the lease).
  const auto released = Clock::now();
  b->release_all();
  CHECK(active(*b).empty());
  CHECK(b->owned() == 0);
  REQUIRE(wait_for([&] { return active(a).size() == kPartitions; }, 10s));
  const double handover = seconds_since(released);
  CHECK(handover < 1.0);
  INFO("take-over after a release: " << handover << " s");
  overlap.watch(1, nullptr);
  b->stop();
  b.reset();

  CHECK(overlap.samples() > 10);  // the watch ran while both members were up
  CHECK(overlap.overlaps() == 0);
  a.stop();
  CHECK(active(a).empty());
}

TEST_CASE("a deleted partition consumer is recreated from the checkpoint and not from the start",
          "[integration][fleet]") {
  NatsServer nats;
  JetStreamProbe probe(nats.url());
  const Config ca = fleet_config(nats, "a");
  NatsConnection conn(ca.nats, "consume");
  ensure_jetstream_objects(conn, ca, "");
  Metrics m({"messages"});
  Fleet a(conn, ca);
  a.attach(m);
  a.start();
  REQUIRE(wait_for([&] { return active(a).size() == kPartitions; }, 10s));

  // Idle, holding every partition: renewals every 300 ms and consumer reads every 200 ms are
  // all the thread does; it waits on the bucket watcher, never polls.
  const double cpu_before = thread_cpu_seconds("cdc-fleet");
  REQUIRE(cpu_before >= 0);  // the thread is there to be measured
  std::this_thread::sleep_for(2s);
  const double fleet_cpu = thread_cpu_seconds("cdc-fleet") - cpu_before;
  INFO("fleet thread CPU over 2 s idle: " << fleet_cpu << " s");
  CHECK(fleet_cpu < 0.1);

  // Three changes of partition 2, consumed and acknowledged as the source would.
  for (int i = 0; i < 3; ++i) probe.publish("cdc.acme.messages.2", "{\"n\":" + std::to_string(i) + "}");
  const std::string consumer = partition_consumer(ca.ingest, 2);
  for (int i = 0; i < 3; ++i) ack(conn.get(), fetch_one(conn.get(), ca, 2).get());
  const std::uint64_t last = probe.stream_state(ca.ingest.stream).last_seq;
  REQUIRE(last == 3);
  REQUIRE(wait_for([&] { return stored_checkpoint(probe, ca, 2) == last; }, 5s));
  REQUIRE(wait_for([&] { return m.fleet.checkpoint_lag[2].value() == 0 && m.fleet.partition_backlog[2].value() == 0; },
                   5s));

  // An operator deletes the consumer; one more change arrives meanwhile.
  REQUIRE(js_DeleteConsumer(probe.jetstream(), ca.ingest.stream.c_str(), consumer.c_str(), nullptr, nullptr) ==
          NATS_OK);
  probe.publish("cdc.acme.messages.2", "{\"n\":3}");
  REQUIRE(wait_for([&] { return m.fleet.consumers_recreated.value() == 1; }, 10s));
  REQUIRE(probe.consumer_exists(ca.ingest.stream, consumer));
  jsConsumerInfo* raw = nullptr;
  REQUIRE(js_GetConsumerInfo(&raw, probe.jetstream(), ca.ingest.stream.c_str(), consumer.c_str(), nullptr, nullptr) ==
          NATS_OK);
  NatsConsumerInfoPtr info(raw);
  CHECK(info->Config->DeliverPolicy == js_DeliverByStartSequence);
  CHECK(info->Config->OptStartSeq == last + 1);
  CHECK(std::string(info->Config->FilterSubject) == "cdc.*.*.2");
  CHECK(info->NumPending == 1);  // only the change after the checkpoint: nothing replayed
  // The one message it delivers is the new one.
  const NatsMsgPtr next = fetch_one(conn.get(), ca, 2);
  CHECK(std::string(natsMsg_GetData(next.get()), static_cast<std::size_t>(natsMsg_GetDataLength(next.get()))) ==
        "{\"n\":3}");
  ack(conn.get(), next.get());
  CHECK(m.fleet.consumer_missing.value() == 0);
  CHECK(a.ready());
  a.release_all();
  a.stop();

  // Without create_streams a missing consumer is reported (metric, not ready), never created.
  Config cc = fleet_config(nats, "c");
  cc.ingest.create_streams = false;
  Metrics mc({"messages"});
  Fleet c(conn, cc);
  c.attach(mc);
  c.start();
  REQUIRE(wait_for([&] { return active(c).size() == kPartitions; }, 10s));  // released: taken at once
  REQUIRE(c.ready());
  const std::string consumer1 = partition_consumer(cc.ingest, 1);
  REQUIRE(js_DeleteConsumer(probe.jetstream(), cc.ingest.stream.c_str(), consumer1.c_str(), nullptr, nullptr) ==
          NATS_OK);
  REQUIRE(wait_for([&] { return mc.fleet.consumer_missing.value() == 1; }, 5s));
  CHECK_FALSE(c.ready());
  std::this_thread::sleep_for(500ms);  // a few consumer reads later: still not created
  CHECK_FALSE(probe.consumer_exists(cc.ingest.stream, consumer1));
  CHECK(mc.fleet.consumers_recreated.value() == 0);
  c.stop();
}

TEST_CASE("the start-up fit check stops a misfit with the server mapping to add", "[integration][fleet]") {
  NatsServer nats;
  JetStreamProbe probe(nats.url());
  Config c = fleet_config(nats, "a");
  NatsConnection conn(c.nats, "consume");
  // The producer's subjects are stored as they are: no mapping on the server.
  probe.create_stream(c.ingest.stream, {"cdc.>"});
  probe.publish("cdc.acme.messages", "{}");
  try {
    ensure_jetstream_objects(conn, c, "");
    FAIL("no error for an unpartitioned stream with ingest.partitions 4");
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(e.key() == "ingest.partitions");
    CHECK_THAT(what, Catch::Contains("stores unpartitioned subjects (cdc.acme.messages)"));
    CHECK_THAT(what, Catch::Contains(
                         "mappings = { \"cdc.*.*\": \"cdc.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(4,1,2)}}\" }"));
    CHECK_THAT(what, Catch::Contains("cdc.{company}.{table}.{partition}"));
  }
  // Once the mapping is in force the latest subjects carry the partition: it fits.
  probe.publish("cdc.acme.messages.3", "{}");
  CHECK_NOTHROW(check_partition_fit(conn.js(), c));
  // The other way round: an unpartitioned service on a partitioned stream.
  Config one = load_config_text("", {});
  one.nats.url = nats.url();
  CHECK_THROWS_WITH(check_partition_fit(conn.js(), one), Catch::Contains("ingest.partitions is 1 but stream"));
}

TEST_CASE("a partition still waiting out a take-over is handed on only when its wait is over", "[integration][fleet]") {
  NatsServer nats;
  JetStreamProbe probe(nats.url());
  const Config ca = fleet_config(nats, "a");
  const Config cb = fleet_config(nats, "b");
  NatsConnection conn_a(ca.nats, "consume");
  NatsConnection conn_b(cb.nats, "consume");
  ensure_jetstream_objects(conn_a, ca, "");
  OverlapWatch overlap;
  Fleet a(conn_a, ca);
  auto b = std::make_unique<Fleet>(conn_b, cb);
  a.start();
  b->start();
  REQUIRE(wait_for([&] { return active(*b) == std::set<std::uint32_t>{1, 3}; }, 15s));
  probe.publish("cdc.acme.messages.1", "{}");
  const NatsMsgPtr held = fetch_one(conn_b.get(), cb, 1);  // b's, never acked
  const auto crashed = Clock::now();
  b->stop();
  b.reset();
  // a takes partition 1 over but must wait AckWait (4 s) before anyone fetches it...
  REQUIRE(wait_for([&] { return a.owned() == 4; }, 10s));
  REQUIRE(active(a).count(1) == 0);
  // ...and a member joining now, to which partition 1 belongs, gets it only after that wait.
  const Config cc = fleet_config(nats, "c");
  Fleet c(conn_b, cc);
  overlap.watch(0, &a);
  overlap.watch(1, &c);
  c.start();
  REQUIRE(wait_for([&] { return active(c).count(1) == 1; }, 15s));
  const double p1 = seconds_since(crashed);
  INFO("partition 1 fetched by the newcomer " << p1 << " s after the crash");
  CHECK(p1 >= 4.0);
  REQUIRE(wait_for(
      [&] {
        return active(a) == std::set<std::uint32_t>{0, 2} && active(c) == std::set<std::uint32_t>{1, 3};
      },
      10s));
  CHECK(overlap.overlaps() == 0);
  overlap.watch(1, nullptr);
  c.release_all();
  c.stop();
  a.release_all();
  a.stop();
}

namespace {

/// The process log sent to a pipe while it lives, read by a thread of its own.
class LogPipe {
 public:
  LogPipe() {
    REQUIRE(pipe(fds_) == 0);
    cdc::log::start(4096, fds_[1]);
    reader_ = std::thread([this] {
      char buf[4096];
      ssize_t n = 0;
      while ((n = read(fds_[0], buf, sizeof buf)) > 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        text_.append(buf, static_cast<std::size_t>(n));
      }
    });
  }
  ~LogPipe() {
    cdc::log::stop();
    close(fds_[1]);
    reader_.join();
    close(fds_[0]);
  }
  LogPipe(const LogPipe&) = delete;
  LogPipe& operator=(const LogPipe&) = delete;
  /// Lines containing `needle`.
  std::vector<std::string> lines_with(const std::string& needle) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> out;
    std::istringstream in(text_);
    for (std::string line; std::getline(in, line);) {
      if (line.find(needle) != std::string::npos) out.push_back(line);
    }
    return out;
  }

 private:
  int fds_[2] = {-1, -1};
  std::mutex mutex_;
  std::string text_;
  std::thread reader_;
};

std::int64_t unconsumed(const Metrics& m) { return m.fleet.unconsumed.value(); }

}  // namespace

TEST_CASE("messages on subjects no partition consumer takes are reported by the owner of partition 0",
          "[integration][fleet]") {
  NatsServerOptions options;
  options.config_lines = {partition_mapping(kPartitions)};
  NatsServer nats(options);
  JetStreamProbe probe(nats.url());
  const Config ca = fleet_config(nats, "a");
  const Config cb = fleet_config(nats, "b");
  NatsConnection conn_a(ca.nats, "consume");
  NatsConnection conn_b(cb.nats, "consume");
  ensure_jetstream_objects(conn_a, ca, "");
  // Mapped by the server (3 tokens): a partition's consumer takes it. Not mapped (4 tokens, no
  // partition): stored as published, taken by no consumer.
  probe.publish("cdc.acme.messages", "{}");
  probe.publish("cdc.acme.messages.v2", "{}");

  Fleet::set_stray_check_interval_for_tests(200ms);
  LogPipe logs;
  Metrics ma({"messages"});
  Metrics mb({"messages"});
  Fleet a(conn_a, ca);
  Fleet b(conn_b, cb);
  a.attach(ma);
  b.attach(mb);
  a.start();
  REQUIRE(wait_for([&] { return active(a).count(0) == 1; }, 10s));
  b.start();
  // Members sorted ["a", "b"]: partition 0 stays with a.
  REQUIRE(wait_for([&] { return active(b) == std::set<std::uint32_t>{1, 3}; }, 15s));

  REQUIRE(wait_for([&] { return unconsumed(ma) == 1; }, 5s));
  REQUIRE(wait_for([&] { return !logs.lines_with("no partition consumer takes").empty(); }, 5s));
  auto lines = logs.lines_with("no partition consumer takes");
  CHECK(lines.size() == 1);
  CHECK_THAT(lines.front(), Catch::Contains("\"level\":\"error\""));
  CHECK_THAT(lines.front(), Catch::Contains("cdc.acme.messages.v2=1"));
  CHECK_THAT(lines.front(),
             Catch::Contains("cdc-replay capture --stream " + ca.ingest.stream + " --subject 'cdc.acme.messages.v2'"));
  CHECK_THAT(lines.front(),
             Catch::Contains("--subject-map 'cdc.acme.messages.v2=cdc.{company}.{table}' --drop-msg-id"));
  CHECK_THAT(ma.render(ScrapeState{}), Catch::Contains("cdc_consumer_unconsumed_messages 1\n"));

  // The set changes: one more line, the gauge follows. Unchanged: no repeat.
  probe.publish("cdc.x", "{}");
  probe.publish("cdc.x", "{}");
  REQUIRE(wait_for([&] { return unconsumed(ma) == 3; }, 5s));
  REQUIRE(wait_for([&] { return logs.lines_with("no partition consumer takes").size() == 2; }, 5s));
  CHECK_THAT(logs.lines_with("no partition consumer takes").back(), Catch::Contains("cdc.x=2"));
  std::this_thread::sleep_for(600ms);  // three more checks, no new line expected
  CHECK(logs.lines_with("no partition consumer takes").size() == 2);
  // b does not own partition 0 (and has had time for several checks): it reports 0.
  CHECK(unconsumed(mb) == 0);
  CHECK_THAT(mb.render(ScrapeState{}), Catch::Contains("cdc_consumer_unconsumed_messages 0\n"));

  // a leaves: b owns partition 0 now and reports the same; a reports 0.
  a.release_all();
  a.stop();
  REQUIRE(wait_for([&] { return unconsumed(mb) == 3; }, 15s));
  CHECK(unconsumed(ma) == 0);
  b.release_all();
  b.stop();
  Fleet::set_stray_check_interval_for_tests(0ms);
}
