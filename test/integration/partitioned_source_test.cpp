// The partitioned pull source alone, on a real nats-server whose subject mapping partitions
// cdc.<company>.<table> into 4 partitions, with a PartitionTable the test drives as the fleet
// would: only owned partitions are fetched, each in order; an idle source sits in one wait
// instead of polling; a fenced partition's messages are not handed out; stop() ends every pull
// request and returns (NAK) what it held, so the next owner gets it at once.

#include <catch2/catch.hpp>

#include <nats/nats.h>

#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "cdc/adapters/nats/nats_connection.hpp"
#include "cdc/adapters/nats/partition_table.hpp"
#include "cdc/adapters/nats/partitioned_source.hpp"
#include "cdc/core/config.hpp"
#include "cdc/core/jetstream_meta.hpp"
#include "cdc/core/log.hpp"
#include "cdc/core/partitions.hpp"
#include "eventually.hpp"
#include "jetstream_probe.hpp"
#include "servers.hpp"

namespace {

using namespace std::chrono_literals;
constexpr std::uint32_t kPartitions = 4;

cdc::test::NatsServerOptions mapped_server() {
  cdc::test::NatsServerOptions o;
  o.config_lines = {R"(mappings = { "cdc.*.*": "cdc.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(4,1,2)}}" })"};
  return o;
}

cdc::Config source_config(const cdc::test::NatsServer& nats) {
  cdc::Config c = cdc::load_config_text("", {});
  c.nats.url = nats.url();
  c.ingest.partitions = static_cast<int>(kPartitions);
  c.ingest.subject_layout = "cdc.{company}.{table}.{partition}";
  c.ingest.fetch_batch = 16;
  c.ingest.fetch_expires = cdc::Millis{500};
  return c;
}

void add_consumer(cdc::test::JetStreamProbe& probe, const cdc::Config& config, std::uint32_t p) {
  const std::string name = cdc::partition_consumer(config.ingest, p);
  const std::string filter = cdc::partition_filter(config.ingest, p);
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = name.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.DeliverPolicy = js_DeliverAll;
  cc.AckWait = 30'000'000'000LL;  // long: a message back within seconds was NAKed, not expired
  cc.FilterSubject = filter.c_str();
  cc.MaxWaiting = 512;
  jsConsumerInfo* info = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  REQUIRE(js_AddConsumer(&info, probe.jetstream(), config.ingest.stream.c_str(), &cc, nullptr, &err) == NATS_OK);
  jsConsumerInfo_Destroy(info);
}

/// The partition a stored subject carries (its last token).
std::uint32_t subject_partition(std::string_view subject) {
  std::uint32_t p = 0;
  const auto tail = subject.substr(subject.rfind('.') + 1);
  std::from_chars(tail.data(), tail.data() + tail.size(), p);
  return p;
}

/// Counts the pull requests sent to each partition's consumer (a core subscription sees them).
class RequestCounter {
 public:
  RequestCounter(cdc::test::JetStreamProbe& probe, const cdc::Config& config) {
    const std::string subject = "$JS.API.CONSUMER.MSG.NEXT." + config.ingest.stream + ".>";
    REQUIRE(natsConnection_Subscribe(&sub_, probe.connection(), subject.c_str(), &RequestCounter::on_msg, this) ==
            NATS_OK);
    REQUIRE(natsConnection_Flush(probe.connection()) == NATS_OK);
  }
  ~RequestCounter() {
    natsSubscription_Unsubscribe(sub_);
    natsSubscription_Destroy(sub_);
  }
  RequestCounter(const RequestCounter&) = delete;
  RequestCounter& operator=(const RequestCounter&) = delete;
  [[nodiscard]] int count(std::uint32_t p) const { return counts_[p].load(); }
  [[nodiscard]] int total() const {
    int n = 0;
    for (const auto& c : counts_) n += c.load();
    return n;
  }

 private:
  static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
    const std::string_view subject = natsMsg_GetSubject(msg);
    const auto dash = subject.rfind('-');
    std::uint32_t p = 0;
    if (dash != std::string_view::npos &&
        std::from_chars(subject.data() + dash + 1, subject.data() + subject.size(), p).ec == std::errc() &&
        p < kPartitions) {
      static_cast<RequestCounter*>(self)->counts_[p].fetch_add(1);
    }
    natsMsg_Destroy(msg);
  }
  natsSubscription* sub_ = nullptr;
  std::array<std::atomic<int>, kPartitions> counts_{};
};

struct Taken {
  std::string subject;
  std::string body;
  std::uint32_t partition;
  std::uint32_t epoch;
  std::uint64_t stream_seq;
  std::uint32_t deliveries;
};

/// Takes from the source until `want` messages came or `limit` passed; acks each one.
std::vector<Taken> take(cdc::MessageSource& source, cdc::NatsConnection& nats, std::size_t want,
                        std::chrono::milliseconds limit, int max = 32) {
  std::vector<Taken> out;
  std::vector<cdc::SourceMessage> batch(static_cast<std::size_t>(max));
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
    const int n = source.next_batch(batch.data(), max, 100ms);
    REQUIRE(n >= 0);
    for (int i = 0; i < n; ++i) {
      cdc::SourceMessage& m = batch[static_cast<std::size_t>(i)];
      cdc::AckSubjectInfo info;
      REQUIRE(cdc::parse_ack_subject(m.reply, info));
      out.push_back(
          Taken{std::string(m.subject), std::string(m.body), m.partition, m.epoch, info.stream_seq, info.deliveries});
      REQUIRE(natsConnection_Publish(nats.get(), std::string(m.reply).c_str(), "+ACK", 4) == NATS_OK);
      m.release();
    }
  }
  return out;
}

}  // namespace

TEST_CASE(
    "partitioned source fetches owned partitions only, in order, idles without polling, stop returns what it held",
    "[partitioned_source]") {
  cdc::log::set_level(cdc::log::Level::kError);
  cdc::test::NatsServer server(mapped_server());
  cdc::test::JetStreamProbe probe(server.url());
  const cdc::Config config = source_config(server);
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  for (std::uint32_t p = 0; p < kPartitions; ++p) add_consumer(probe, config, p);

  // 400 changes over 20 subjects, numbered per subject.
  std::map<std::string, int> per_subject;
  for (int i = 0; i < 400; ++i) {
    const std::string subject = "cdc.co" + std::to_string(i % 20) + ".messages";
    probe.publish(subject, std::to_string(per_subject[subject]++));
  }
  std::array<std::uint64_t, kPartitions> stored{};
  for (const auto& m : probe.read_stream(config.ingest.stream)) ++stored[subject_partition(m.subject)];
  INFO("stored per partition: " << stored[0] << " " << stored[1] << " " << stored[2] << " " << stored[3]);
  REQUIRE(stored[0] > 0);
  REQUIRE(stored[2] > 0);
  REQUIRE(stored[0] + stored[2] < 400);  // the others hold some too: the filter has something to leave out

  cdc::NatsConnection consume(config.nats, "consume");
  cdc::PartitionTable table(kPartitions);
  table.slot(0).epoch.store(3);
  table.slot(2).epoch.store(5);
  table.changed();
  RequestCounter requests(probe, config);
  auto source = cdc::make_partitioned_source(consume, config, table);

  // Owned partitions only, stamped with the slot's epoch, each subject in order.
  const std::vector<Taken> got = take(*source, consume, stored[0] + stored[2], 20s);
  REQUIRE(got.size() == stored[0] + stored[2]);
  std::map<std::string, int> next;
  std::array<std::uint64_t, kPartitions> last_seq{};
  for (const Taken& t : got) {
    REQUIRE((t.partition == 0 || t.partition == 2));
    CHECK(subject_partition(t.subject) == t.partition);
    CHECK(t.epoch == (t.partition == 0 ? 3U : 5U));
    CHECK(std::stoi(t.body) == next[t.subject]++);
    CHECK(t.stream_seq > last_seq[t.partition]);
    last_seq[t.partition] = t.stream_seq;
  }
  CHECK(requests.count(1) == 0);
  CHECK(requests.count(3) == 0);

  // Idle: one wait covers both partitions; each asks again only when its request expires
  // (fetch_expires 500 ms), so ~2 s idle sends about 2 x 4 requests, not a storm.
  const int before = requests.total();
  const auto idle_start = std::chrono::steady_clock::now();
  CHECK(take(*source, consume, 1, 2s).empty());
  const double idle_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - idle_start).count();
  const int idle_requests = requests.total() - before;
  INFO("requests while idle: " << idle_requests << " in " << idle_s << " s");
  CHECK(idle_requests >= 2);
  CHECK(idle_requests <= static_cast<int>(2 * (idle_s / 0.5 + 2)));

  // Fence partition 2: nothing more of it is handed out; partition 0 goes on.
  table.slot(2).epoch.store(0);
  table.changed();
  std::array<int, kPartitions> fresh{};
  for (int i = 0; i < 200; ++i) {
    const std::string subject = "cdc.co" + std::to_string(i % 20) + ".messages";
    const cdc::test::PublishResult r = probe.publish(subject, std::to_string(per_subject[subject]++));
    ++fresh[subject_partition(probe.get_message(config.ingest.stream, r.seq).subject)];
  }
  REQUIRE(fresh[0] > 0);
  REQUIRE(fresh[2] > 0);
  const std::vector<Taken> after = take(*source, consume, static_cast<std::size_t>(fresh[0]) + 1, 3s);
  CHECK(after.size() == static_cast<std::size_t>(fresh[0]));
  for (const Taken& t : after) CHECK(t.partition == 0);
  REQUIRE(cdc_test::eventually([&] { return table.slot(2).fetch_idle.load(); }, 3s));

  // stop() with nothing held: every request ends, none is left waiting on the server.
  source->stop();
  for (std::uint32_t p = 0; p < kPartitions; ++p) CHECK(table.slot(p).fetch_idle.load());
  const std::string consumer0 = cdc::partition_consumer(config.ingest, 0);
  CHECK(probe.consumer_info(config.ingest.stream, consumer0).num_waiting == 0);
  source.reset();

  // stop() holding messages: a request (expiring in 3 s) is open on partition 0 when 5 messages
  // arrive that nobody takes; stop waits for the request to end, then NAKs them: the next owner
  // gets them at once (AckWait is 30 s), as second deliveries.
  cdc::Config slow = config;
  slow.ingest.fetch_expires = cdc::Millis{3000};
  cdc::PartitionTable holder_table(kPartitions);
  holder_table.slot(0).epoch.store(7);
  holder_table.changed();
  auto holder = cdc::make_partitioned_source(consume, slow, holder_table);
  std::vector<cdc::SourceMessage> none(8);
  CHECK(holder->next_batch(none.data(), 8, 0ms) == 0);  // sends the request, takes nothing
  REQUIRE_FALSE(holder_table.slot(0).fetch_idle.load());
  int held = 0;
  for (int i = 0; held < 5 && i < 200; ++i) {
    const std::string subject = "cdc.co" + std::to_string(i % 20) + ".messages";
    const cdc::test::PublishResult r = probe.publish(subject, std::to_string(per_subject[subject]++));
    if (subject_partition(probe.get_message(config.ingest.stream, r.seq).subject) == 0) ++held;
  }
  REQUIRE(held == 5);
  REQUIRE(cdc_test::eventually(
      [&] { return probe.consumer_info(config.ingest.stream, consumer0).num_ack_pending == 5; }, 5s));
  const auto stop_start = std::chrono::steady_clock::now();
  holder->stop();
  const double stop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - stop_start).count();
  INFO("stop took " << stop_s << " s");
  CHECK(stop_s < 3.0 + 1.5);  // bounded by fetch_expires + a margin
  CHECK(holder_table.slot(0).fetch_idle.load());
  CHECK(probe.consumer_info(config.ingest.stream, consumer0).num_waiting == 0);
  holder.reset();

  cdc::PartitionTable next_owner(kPartitions);
  next_owner.slot(0).epoch.store(1);
  next_owner.changed();
  auto successor = cdc::make_partitioned_source(consume, config, next_owner);
  const std::vector<Taken> redelivered = take(*successor, consume, 5, 5s);
  REQUIRE(redelivered.size() == 5);
  for (const Taken& t : redelivered) CHECK(t.deliveries == 2);
  successor->stop();
}

TEST_CASE("partitioned source reports a partition whose consumer is missing", "[partitioned_source]") {
  cdc::log::set_level(cdc::log::Level::kError);
  cdc::test::NatsServer server(mapped_server());
  cdc::test::JetStreamProbe probe(server.url());
  const cdc::Config config = source_config(server);
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  add_consumer(probe, config, 0);  // partition 1's consumer does not exist

  cdc::NatsConnection consume(config.nats, "consume");
  cdc::PartitionTable table(kPartitions);
  table.slot(0).epoch.store(1);
  table.slot(1).epoch.store(1);
  table.changed();
  RequestCounter requests(probe, config);
  auto source = cdc::make_partitioned_source(consume, config, table);
  std::vector<cdc::SourceMessage> batch(8);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!table.slot(1).consumer_missing.load() && std::chrono::steady_clock::now() < deadline) {
    REQUIRE(source->next_batch(batch.data(), 8, 100ms) == 0);
  }
  CHECK(table.slot(1).consumer_missing.load());
  CHECK_FALSE(table.slot(0).consumer_missing.load());
  // No request storm against the missing consumer: one per fetch_expires + 2 s at most.
  const int before = requests.count(1);
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 2s) REQUIRE(source->next_batch(batch.data(), 8, 100ms) == 0);
  CHECK(requests.count(1) - before <= 3);
  source->stop();
}
