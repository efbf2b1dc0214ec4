// The wiring on its ports alone (no server): what the monitor, /healthz, /readyz and /metrics
// know about the outside comes through the ConnectionMonitor port (NATS state and counters, the
// consumer backlog, Redis INFO), and the build information through Ports.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "cdc/core/config.hpp"
#include "cdc/core/log.hpp"
#include "cdc/core/metrics.hpp"
#include "cdc/pipeline/pipeline.hpp"
#include "eventually.hpp"

namespace {

using namespace std::chrono_literals;

/// Delivers nothing; waits for stop() or the timeout as a real source would.
class IdleSource final : public cdc::MessageSource {
 public:
  int next_batch(cdc::SourceMessage*, int, std::chrono::milliseconds wait) noexcept override {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait_for(lock, wait, [this] { return stopped_; });
    return 0;
  }
  void stop() noexcept override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopped_ = false;
};

class NullCompleter final : public cdc::Completer {
 public:
  bool ack(const cdc::SourceMessage&) noexcept override { return true; }
  bool nak(const cdc::SourceMessage&, std::int64_t) noexcept override { return true; }
  bool term(const cdc::SourceMessage&) noexcept override { return true; }
  bool in_progress(const cdc::SourceMessage&) noexcept override { return true; }
  void flush(std::chrono::milliseconds) noexcept override {}
};

class NullPublisher final : public cdc::Publisher {
 public:
  void set_sink(cdc::PubAckSink*) override {}
  [[nodiscard]] const std::string& reply_prefix() const noexcept override { return prefix_; }
  [[nodiscard]] std::int64_t max_payload() const noexcept override { return 1 << 20; }
  Status publish(const std::string&, const std::string&, std::string_view, const std::string&,
                 std::string&) noexcept override {
    return Status::kOk;
  }

 private:
  std::string prefix_ = "_test_reply";
};

/// What the fake monitor saw, shared with the test (it outlives the pipeline that owns the port).
struct MonitorLog {
  std::atomic<bool> consume_up{true};
  std::atomic<bool> publish_up{true};
  std::atomic<int> attached{0};
  cdc::Metrics* attached_to = nullptr;
  std::atomic<int> backlog_reads{0};
  std::atomic<bool> backlog_fails{false};
  std::atomic<int> info_polls{0};
  std::atomic<int> info_closed{0};
  std::atomic<bool> destroyed{false};
  std::atomic<int> stream_checks{0};
  std::atomic<bool> output_missing{false};  // what check_output_streams finds for the output stream
};

class FakeMonitor final : public cdc::ConnectionMonitor {
 public:
  explicit FakeMonitor(MonitorLog& log) : log_(log) {}
  ~FakeMonitor() override { log_.destroyed.store(true); }
  FakeMonitor(const FakeMonitor&) = delete;
  FakeMonitor& operator=(const FakeMonitor&) = delete;

  void attach(cdc::Metrics& metrics) override {
    log_.attached.fetch_add(1);
    log_.attached_to = &metrics;
  }
  [[nodiscard]] bool connected() const noexcept override { return log_.consume_up.load() && log_.publish_up.load(); }
  [[nodiscard]] cdc::ConnectionStatus nats_status(std::size_t connection) const noexcept override {
    if (connection == kConsume) return cdc::ConnectionStatus{log_.consume_up.load(), 3, 4};
    return cdc::ConnectionStatus{log_.publish_up.load(), 5, 6};
  }
  bool read_backlog(std::chrono::milliseconds timeout, cdc::ConsumerBacklog& backlog,
                    std::string& error) noexcept override {
    log_.backlog_reads.fetch_add(1);
    if (log_.backlog_fails.load()) {
      error = "timeout after " + std::to_string(timeout.count()) + " ms";
      return false;
    }
    backlog.num_pending = 42;
    backlog.num_ack_pending = 0;
    return true;
  }
  void poll_redis_info(std::int64_t, std::int64_t) noexcept override { log_.info_polls.fetch_add(1); }
  void close_redis_info() noexcept override { log_.info_closed.fetch_add(1); }
  bool check_output_streams(std::chrono::milliseconds) noexcept override {
    log_.stream_checks.fetch_add(1);
    log_.attached_to->monitor.output_stream_missing[0].set(log_.output_missing.load() ? 1 : 0);
    return true;
  }

 private:
  MonitorLog& log_;
};

cdc::Config port_config() {
  cdc::Config config;
  config.dedup.enabled = false;  // no store ports
  config.metrics.backlog_interval = cdc::Millis{100};
  config.pipeline.ring_capacity = 1024;
  return config;
}

cdc::Ports port_set(MonitorLog* log) {
  cdc::Ports ports;
  if (log != nullptr) ports.monitor = std::make_unique<FakeMonitor>(*log);
  ports.source = std::make_unique<IdleSource>();
  ports.completer = std::make_unique<NullCompleter>();
  ports.publisher = std::make_unique<NullPublisher>();
  return ports;
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

using cdc_test::eventually;

}  // namespace

TEST_CASE("pipeline health and metrics read the connections through the monitor port", "[pipeline][ports]") {
  cdc::log::set_level(cdc::log::Level::kError);
  MonitorLog log;
  {
    cdc::Ports ports = port_set(&log);
    ports.build.version = "9.8.7";
    ports.build.revision = "abcdef012345";
    ports.build.dependencies = {{{"nats_c", "1.2.3"}}};
    cdc::Pipeline pipeline(port_config(), std::move(ports));
    CHECK(log.attached.load() == 1);
    CHECK(log.attached_to == &pipeline.metrics());

    CHECK(pipeline.health().nats_connected);
    log.publish_up.store(false);
    CHECK_FALSE(pipeline.health().nats_connected);
    const std::string text = pipeline.render_metrics();
    CHECK(has_line(text, "cdc_consumer_nats_connected{connection=\"consume\"} 1"));
    CHECK(has_line(text, "cdc_consumer_nats_connected{connection=\"publish\"} 0"));
    CHECK(has_line(text, "cdc_consumer_nats_reconnects_total{connection=\"consume\"} 3"));
    CHECK(has_line(text, "cdc_consumer_nats_disconnects_total{connection=\"consume\"} 4"));
    CHECK(has_line(text, "cdc_consumer_nats_reconnects_total{connection=\"publish\"} 5"));
    CHECK(has_line(text, "cdc_consumer_nats_disconnects_total{connection=\"publish\"} 6"));
    CHECK(has_line(text, "cdc_consumer_build_info{version=\"9.8.7\",revision=\"abcdef012345\",nats_c=\"1.2.3\"} 1"));
    log.publish_up.store(true);

    pipeline.start();
    // The monitor thread reads the backlog through the port and publishes it as the gauge.
    REQUIRE(eventually([&] { return pipeline.metrics().monitor.backlog.value() == 42; }));
    CHECK(pipeline.health().backlog == 42);
    CHECK(log.info_polls.load() > 0);
    // A failed read counts as a backlog error.
    log.backlog_fails.store(true);
    REQUIRE(eventually([&] { return pipeline.metrics().monitor.backlog_errors.value() > 0; }));
    pipeline.stop();
    CHECK(log.info_closed.load() == 1);
    CHECK_FALSE(log.destroyed.load());
  }
  CHECK(log.destroyed.load());
}

TEST_CASE("pipeline skips the backlog read while the consume connection is down", "[pipeline][ports]") {
  cdc::log::set_level(cdc::log::Level::kError);
  MonitorLog log;
  log.consume_up.store(false);
  cdc::Pipeline pipeline(port_config(), port_set(&log));
  pipeline.start();
  // INFO is polled on every monitor tick (dedup off); three ticks without a backlog read.
  REQUIRE(eventually([&] { return log.info_polls.load() >= 3; }));
  CHECK(log.backlog_reads.load() == 0);
  CHECK(pipeline.metrics().monitor.backlog_errors.value() == 0);
  log.consume_up.store(true);
  REQUIRE(eventually([&] { return log.backlog_reads.load() > 0; }));
  pipeline.stop();
}

TEST_CASE("pipeline without a monitor port reports no connection and builds no info", "[pipeline][ports]") {
  cdc::log::set_level(cdc::log::Level::kError);
  cdc::Pipeline pipeline(port_config(), port_set(nullptr));
  CHECK(pipeline.health().nats_connected);  // nothing to be disconnected from
  const std::string text = pipeline.render_metrics();
  CHECK(text.find("cdc_consumer_nats_connected{") == std::string::npos);
  CHECK(has_line(text, "cdc_consumer_build_info{version=\"unknown\",revision=\"unknown\"} 1"));
}

TEST_CASE("pipeline refuses ports without a source, completer or publisher", "[pipeline][ports]") {
  MonitorLog log;
  cdc::Ports ports = port_set(&log);
  ports.publisher.reset();
  CHECK_THROWS_AS(cdc::Pipeline(port_config(), std::move(ports)), std::invalid_argument);
  CHECK(log.destroyed.load());  // the ports it was given are released
}

namespace {

/// What happened, in order, across the pipeline's ports (any thread).
class Journal {
 public:
  void add(const std::string& what) {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.push_back(what);
  }
  /// Position of the first `what`, or -1.
  long index(const std::string& what) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      if (entries_[i] == what) return static_cast<long>(i);
    }
    return -1;
  }
  std::string text() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string out;
    for (const auto& e : entries_) out.append(e).append(" ");
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> entries_;
};

/// Messages of our own (not natsMsg): no headers, nothing to free.
class PlainAccess final : public cdc::MessageAccess {
 public:
  [[nodiscard]] std::string_view header(const void*, const char*) const noexcept override { return {}; }
  void headers(const void*, std::vector<std::pair<std::string, std::string>>&) const override {}
  void release(void*) const noexcept override {}
};
const PlainAccess kPlainAccess;

/// Delivers `count` valid change messages once, message i from partition i % 2 under epoch 1,
/// then waits like an idle source; journals its first fetch and its stop.
class ListSource final : public cdc::MessageSource {
 public:
  ListSource(Journal& journal, int count) : journal_(journal) {
    for (int i = 0; i < count; ++i) {
      const std::string pk = std::string("m").append(std::to_string(i));  // not "m" + ...: GCC 12 -O3 -Wrestrict
      subjects_.push_back(std::string("cdc.co").append(std::to_string(i % 4)).append(".messages"));
      bodies_.push_back(R"({"record":{"message_id":")" + pk +
                        R"(","chat_id":"c1","agent_id":"a1","text":"hi"},"changes":null,"action":"insert",)"
                        R"("metadata":{"table_schema":"public","table_name":"messages",)"
                        R"("commit_timestamp":"2026-11-22T10:00:00.125001Z","commit_lsn":)" +
                        std::to_string(1000 + i) + R"(,"commit_idx":0,"record_pks":[")" + pk +
                        R"("],"idempotency_key":"x"}})");
      replies_.push_back("$JS.ACK.cdc_stream.c.1." + std::to_string(i + 1) + "." + std::to_string(i + 1) + ".0.0");
    }
  }
  int next_batch(cdc::SourceMessage* out, int max, std::chrono::milliseconds wait) noexcept override {
    if (!fetched_) {
      fetched_ = true;
      journal_.add("source.next_batch");
    }
    int n = 0;
    while (n < max && next_ < subjects_.size()) {
      cdc::SourceMessage& m = out[n++];
      m = cdc::SourceMessage{};
      m.handle = &subjects_[next_];
      m.access = &kPlainAccess;
      m.subject = subjects_[next_];
      m.body = bodies_[next_];
      m.reply = replies_[next_];
      m.partition = static_cast<std::uint32_t>(next_ % 2);
      m.epoch = 1;
      ++next_;
    }
    if (n == 0) std::this_thread::sleep_for(std::min(wait, std::chrono::milliseconds(5)));
    return n;
  }
  void stop() noexcept override { journal_.add("source.stop"); }

 private:
  Journal& journal_;
  std::vector<std::string> subjects_, bodies_, replies_;
  std::size_t next_ = 0;
  bool fetched_ = false;
};

class CountingCompleter final : public cdc::Completer {
 public:
  explicit CountingCompleter(Journal& journal) : journal_(journal) {}
  bool ack(const cdc::SourceMessage&) noexcept override { return count(acks); }
  bool nak(const cdc::SourceMessage& msg, std::int64_t delay) noexcept override {
    if (delay == 0 && msg.partition == 1) naks_at_once.fetch_add(1);
    return count(naks);
  }
  bool term(const cdc::SourceMessage&) noexcept override { return count(terms); }
  bool in_progress(const cdc::SourceMessage&) noexcept override { return true; }
  void flush(std::chrono::milliseconds) noexcept override { journal_.add("completer.flush"); }

  std::atomic<int> acks{0}, naks{0}, terms{0}, naks_at_once{0}, completed{0};

 private:
  bool count(std::atomic<int>& counter) {
    counter.fetch_add(1);
    completed.fetch_add(1);
    return true;
  }
  Journal& journal_;
};

/// Answers each publish at once on the calling thread: "no responders" for the first
/// `no_responders` publishes, then stored.
class AnsweringPublisher final : public cdc::Publisher {
 public:
  explicit AnsweringPublisher(int no_responders) : no_responders_(no_responders) {}
  void set_sink(cdc::PubAckSink* sink) override { sink_ = sink; }
  [[nodiscard]] const std::string& reply_prefix() const noexcept override { return prefix_; }
  [[nodiscard]] std::int64_t max_payload() const noexcept override { return 1 << 20; }
  Status publish(const std::string& subject, const std::string& reply, std::string_view, const std::string&,
                 std::string&) noexcept override {
    const int n = publishes.fetch_add(1);
    if (n < no_responders_) {
      sink_->on_puback(reply, "", true);
    } else {
      if (subject.rfind("cdc_dlq", 0) == 0) dead_letters.fetch_add(1);
      stored.fetch_add(1);
      const std::string body = R"({"stream":"wa_stream","seq":)" + std::to_string(n + 1) + "}";
      sink_->on_puback(reply, body, false);
    }
    return Status::kOk;
  }

  std::atomic<int> publishes{0}, stored{0}, dead_letters{0};

 private:
  int no_responders_;
  cdc::PubAckSink* sink_ = nullptr;
  std::string prefix_ = "_test_reply";
};

/// A fleet member that owns partition 0 (epoch 1) and, unless `fenced_1`, partition 1.
class FakeFleet final : public cdc::FleetMember {
 public:
  FakeFleet(Journal& journal, bool fenced_1) : journal_(journal), fenced_1_(fenced_1) {}
  void attach(cdc::Metrics&) override { journal_.add("fleet.attach"); }
  void start() override { journal_.add("fleet.start"); }
  void release_all() noexcept override { journal_.add("fleet.release_all"); }
  void stop() noexcept override { journal_.add("fleet.stop"); }
  [[nodiscard]] bool ready() const noexcept override { return ready_flag.load(); }
  [[nodiscard]] std::uint32_t owned() const noexcept override { return fenced_1_ ? 1 : 2; }
  [[nodiscard]] bool current(std::uint32_t partition, std::uint32_t epoch) const noexcept override {
    return epoch == 0 || (epoch == 1 && (partition == 0 || (partition == 1 && !fenced_1_)));
  }
  std::atomic<bool> ready_flag{true};

 private:
  Journal& journal_;
  bool fenced_1_;
};

}  // namespace

TEST_CASE("pipeline starts the fleet before intake and releases its leases after the drain",
          "[pipeline][ports][fleet]") {
  cdc::log::set_level(cdc::log::Level::kError);
  Journal journal;
  auto fleet = std::make_unique<FakeFleet>(journal, false);
  FakeFleet& member = *fleet;
  cdc::Ports ports;
  ports.fleet = std::move(fleet);
  ports.source = std::make_unique<ListSource>(journal, 20);
  auto completer = std::make_unique<CountingCompleter>(journal);
  CountingCompleter& done = *completer;
  ports.completer = std::move(completer);
  ports.publisher = std::make_unique<AnsweringPublisher>(0);
  cdc::Pipeline pipeline(port_config(), std::move(ports));
  CHECK(journal.index("fleet.attach") == 0);
  CHECK(journal.index("fleet.start") < 0);  // not before start()
  CHECK_FALSE(pipeline.health().ready());   // not running yet
  pipeline.start();
  REQUIRE(eventually([&] { return done.completed.load() == 20; }));
  CHECK(done.acks.load() == 20);

  // /readyz follows the fleet member's readiness.
  CHECK(pipeline.health().ready());
  member.ready_flag.store(false);
  CHECK_FALSE(pipeline.health().ready());
  CHECK(pipeline.render_metrics().find("\ncdc_consumer_ready 0\n") != std::string::npos);
  member.ready_flag.store(true);
  CHECK(pipeline.health().ready());

  pipeline.stop();
  INFO(journal.text());
  const long start = journal.index("fleet.start");
  const long fetch = journal.index("source.next_batch");
  const long source_stop = journal.index("source.stop");
  const long flush = journal.index("completer.flush");
  const long release = journal.index("fleet.release_all");
  const long stop = journal.index("fleet.stop");
  REQUIRE(start >= 0);
  REQUIRE(fetch >= 0);
  REQUIRE(source_stop >= 0);
  REQUIRE(flush >= 0);
  REQUIRE(release >= 0);
  REQUIRE(stop >= 0);
  CHECK(start < fetch);
  CHECK(source_stop < flush);
  CHECK(flush < release);
  CHECK(release < stop);
}

TEST_CASE("publish stage publishes nothing of a partition no longer current and NAKs it at once",
          "[pipeline][ports][fleet]") {
  cdc::log::set_level(cdc::log::Level::kError);
  Journal journal;
  cdc::Ports ports;
  ports.fleet = std::make_unique<FakeFleet>(journal, true);  // partition 1 fenced
  ports.source = std::make_unique<ListSource>(journal, 40);
  auto completer = std::make_unique<CountingCompleter>(journal);
  CountingCompleter& done = *completer;
  ports.completer = std::move(completer);
  auto publisher = std::make_unique<AnsweringPublisher>(0);
  AnsweringPublisher& out = *publisher;
  ports.publisher = std::move(publisher);
  cdc::Pipeline pipeline(port_config(), std::move(ports));
  pipeline.start();
  REQUIRE(eventually([&] { return done.completed.load() == 40; }));
  pipeline.stop();
  CHECK(out.publishes.load() == 20);  // partition 0 only
  CHECK(done.acks.load() == 20);
  CHECK(done.naks.load() == 20);
  CHECK(done.naks_at_once.load() == 20);  // no delay: the next owner gets them at once
  CHECK(pipeline.metrics().publish.fenced.value() == 20);
  CHECK(pipeline.render_metrics().find("\ncdc_consumer_publish_fenced_total 20\n") != std::string::npos);
}

TEST_CASE("publish stage retries a missing output stream in place without spending the retry budget",
          "[pipeline][ports]") {
  cdc::log::set_level(cdc::log::Level::kError);
  Journal journal;
  cdc::Config config = port_config();
  config.publish.max_retries = 1;  // two no-responders answers would otherwise give up
  config.publish.retry_backoff = cdc::Millis{1};
  config.publish.retry_backoff_max = cdc::Millis{4};
  config.ingest.max_deliver = 1;  // a NAK's redelivery would be the last one: dead-lettered
  cdc::Ports ports;
  ports.source = std::make_unique<ListSource>(journal, 10);
  auto completer = std::make_unique<CountingCompleter>(journal);
  CountingCompleter& done = *completer;
  ports.completer = std::move(completer);
  auto publisher = std::make_unique<AnsweringPublisher>(25);
  AnsweringPublisher& out = *publisher;
  ports.publisher = std::move(publisher);
  cdc::Pipeline pipeline(config, std::move(ports));
  pipeline.start();
  REQUIRE(eventually([&] { return done.completed.load() == 10; }));
  pipeline.stop();
  CHECK(done.acks.load() == 10);
  CHECK(done.naks.load() == 0);
  CHECK(done.terms.load() == 0);
  CHECK(out.dead_letters.load() == 0);
  CHECK(out.stored.load() == 10);
  CHECK(pipeline.metrics().puback.no_responders.value() == 25);
}

TEST_CASE("monitor checks the output streams at once after no responders and readyz reports a missing one",
          "[pipeline][ports]") {
  cdc::log::set_level(cdc::log::Level::kError);
  MonitorLog log;
  cdc::Pipeline pipeline(port_config(), port_set(&log));
  pipeline.start();
  REQUIRE(eventually([&] { return log.stream_checks.load() >= 1; }));
  CHECK(pipeline.health().ready());
  std::string text = pipeline.render_metrics();
  CHECK(has_line(text, "cdc_consumer_output_stream_missing{stream=\"wa_stream\"} 0"));
  CHECK(has_line(text, "cdc_consumer_streams_recreated_total{stream=\"cdc_dlq_stream\"} 0"));

  // The periodic check is 5 s apart; a no-responders PubAck asks for one at the next tick.
  log.output_missing.store(true);
  const int before = log.stream_checks.load();
  pipeline.metrics().puback.no_responders.inc();
  REQUIRE(eventually([&] { return log.stream_checks.load() > before; }, 2s));
  REQUIRE(eventually([&] { return !pipeline.health().ready(); }, 2s));
  text = pipeline.render_metrics();
  CHECK(has_line(text, "cdc_consumer_output_stream_missing{stream=\"wa_stream\"} 1"));
  CHECK(has_line(text, "cdc_consumer_ready 0"));
  log.output_missing.store(false);
  pipeline.metrics().puback.no_responders.inc();
  REQUIRE(eventually([&] { return pipeline.health().ready(); }, 2s));
  pipeline.stop();
}
