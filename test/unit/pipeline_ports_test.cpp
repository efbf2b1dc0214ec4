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

template <typename Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

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
