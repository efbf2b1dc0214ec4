#include "cdc/adapters/service_ports.hpp"

#include <memory>
#include <string>

#include "cdc/adapters/nats/fleet.hpp"
#include "cdc/adapters/nats/jetstream_ports.hpp"
#include "cdc/adapters/nats/nats_connection.hpp"
#include "cdc/adapters/nats/partitioned_source.hpp"
#include "cdc/adapters/redis/redis_dedup_store.hpp"
#include "cdc/adapters/redis/redis_info_probe.hpp"
#include "cdc/core/log.hpp"
#include "cdc/core/metrics.hpp"

namespace cdc {
namespace {

/// The monitor port on the service's two NATS connections, which it owns (the source,
/// completer and publisher use them, so Ports destroys it last), and the Redis INFO probe.
class ServiceMonitor final : public ConnectionMonitor {
 public:
  /// Connects both NATS connections (throws NatsError): consume first, as the service always has.
  explicit ServiceMonitor(const Config& config)
      : config_(config), consume_(std::make_unique<NatsConnection>(config.nats, "consume")) {
    // The publish connection has its own write mode. adaptive is two connections: this one
    // eager, and a batching one whose publishes nats.c's flusher gathers; the publish stage
    // chooses per turn (docs/decisions.md).
    const bool adaptive = config.publish.write_mode == WriteMode::kAdaptive;
    NatsConfig publish_nats = config.nats;
    publish_nats.write_mode = adaptive ? WriteMode::kAsap : config.publish.write_mode;
    publish_ = std::make_unique<NatsConnection>(publish_nats, "publish");
    if (adaptive) {
      publish_nats.write_mode = WriteMode::kFlusher;
      publish_batching_ = std::make_unique<NatsConnection>(publish_nats, "publish-batching");
    }
  }

  NatsConnection& consume() noexcept { return *consume_; }
  NatsConnection& publish() noexcept { return *publish_; }
  /// The batching publish connection (publish.write_mode adaptive), or null.
  NatsConnection* publish_batching() noexcept { return publish_batching_.get(); }

  void attach(Metrics& metrics) override {
    metrics_ = &metrics;
    if (config_.dedup.enabled) redis_info_ = std::make_unique<RedisInfoProbe>(config_.redis, metrics);
  }

  [[nodiscard]] bool connected() const noexcept override {
    return consume_->connected() && publish_->connected() && (!publish_batching_ || publish_batching_->connected());
  }

  /// kPublish stands for both publish connections when there are two: up while both are, their
  /// reconnects and disconnects summed.
  [[nodiscard]] ConnectionStatus nats_status(std::size_t connection) const noexcept override {
    const NatsConnection& nats = connection == kConsume ? *consume_ : *publish_;
    ConnectionStatus status{nats.connected(), nats.reconnects(), nats.disconnects()};
    if (connection != kConsume && publish_batching_) {
      status.up = status.up && publish_batching_->connected();
      status.reconnects += publish_batching_->reconnects();
      status.failures += publish_batching_->disconnects();
    }
    return status;
  }

  /// Pull mode: the fleet's readings of the partitions this replica holds (no request of its own).
  void use_fleet(const Fleet* fleet) noexcept { fleet_ = fleet; }

  bool read_backlog(std::chrono::milliseconds timeout, ConsumerBacklog& backlog, std::string& error) noexcept override {
    if (fleet_ != nullptr && fleet_->backlog(backlog)) return true;
    if (config_.ingest.partitions > 1) {
      error = "the fleet has not started";
      return false;
    }
    // Push mode, or a fleet not started yet: the one consumer's own reading.
    return read_consumer_backlog(*consume_, config_, timeout, backlog, error);
  }

  void poll_redis_info(std::int64_t now_ns, std::int64_t interval_ns) noexcept override {
    if (redis_info_) redis_info_->tick(now_ns, interval_ns);
  }

  void close_redis_info() noexcept override {
    if (redis_info_) redis_info_->close();
  }

  bool check_output_streams(std::chrono::milliseconds timeout) noexcept override {
    if (metrics_ == nullptr) return false;
    bool answered = true;
    const std::string* names[] = {&config_.publish.stream, &config_.publish.dlq_stream};
    for (std::size_t i = 0; i < 2; ++i) {
      std::string error;
      const StreamCheck found = check_output_stream(*consume_, config_, static_cast<OutputStream>(i), timeout, error);
      Gauge& missing = metrics_->monitor.output_stream_missing[i];
      const bool was_missing = missing.value() != 0;
      if (found == StreamCheck::kUnknown) {
        answered = false;  // the look-up failed: nothing learned
        continue;
      }
      if (found != StreamCheck::kPresent && !was_missing) {
        // Once per outage: publishes to it are held and retried meanwhile, never dead-lettered.
        log::error("output stream missing; publishes to it are held and retried",
                   {{"stream", *names[i]}, {"create_streams", config_.ingest.create_streams}, {"error", error}});
      }
      if (found == StreamCheck::kRecreated) {
        metrics_->monitor.streams_recreated[i].inc();
        log::warn("output stream recreated with the start-up settings", {{"stream", *names[i]}});
      } else if (found == StreamCheck::kPresent && was_missing) {
        log::info("output stream present again", {{"stream", *names[i]}});
      }
      missing.set(found == StreamCheck::kMissing ? 1 : 0);
    }
    return answered;
  }

  ~ServiceMonitor() override {
    redis_info_.reset();
    publish_.reset();  // the publish connection first, as the service always closed them
    consume_.reset();
  }
  ServiceMonitor(const ServiceMonitor&) = delete;
  ServiceMonitor& operator=(const ServiceMonitor&) = delete;

 private:
  Config config_;
  std::unique_ptr<NatsConnection> consume_;
  std::unique_ptr<NatsConnection> publish_;
  std::unique_ptr<NatsConnection> publish_batching_;  // publish.write_mode adaptive only
  std::unique_ptr<RedisInfoProbe> redis_info_;        // monitor thread only (after attach); null without dedup
  Metrics* metrics_ = nullptr;                        // set by attach(); the output stream series
  const Fleet* fleet_ = nullptr;                      // pull mode; Ports::fleet, stopped before the monitor goes
};

// cdc_consumer_build_info: CMakeLists.txt defines these for this file alone, so a new git
// revision recompiles one file.
constexpr BuildInfo kBuildInfo{CDC_VERSION,
                               CDC_GIT_REVISION,
                               {{{"nats_c", CDC_NATS_VERSION},
                                 {"simdjson", CDC_SIMDJSON_VERSION},
                                 {"hiredis", CDC_HIREDIS_VERSION},
                                 {"libuv", CDC_LIBUV_VERSION}}}};

}  // namespace

Ports make_service_ports(const Config& config) {
  // What Pipeline(config, ports) checks too, first: a configuration error is reported as one
  // (exit 2) before anything connects.
  validate(config);
  // Empty: no filter, the consumer takes every subject of the stream, so a message whose subject
  // does not fit the layout is dead-lettered (invalid_subject) instead of sitting unconsumed.
  const std::string& filter = config.ingest.filter_subject;
  // The connections first and released last: when a later step throws, Ports destroys its
  // members in reverse order, the monitor (which owns the connections) after the rest.
  Ports ports;
  auto monitor = std::make_unique<ServiceMonitor>(config);
  ServiceMonitor& outside = *monitor;
  ports.monitor = std::move(monitor);
  ensure_jetstream_objects(outside.consume(), config, filter);
  ports.publisher = make_nats_publisher(outside.publish(), outside.publish_batching());
  ports.completer = make_nats_completer(outside.consume());
  // Pull mode: the partition leases; the source fetches by the fleet's table (fleet->table()).
  Fleet* fleet = nullptr;
  if (config.ingest.mode == IngestMode::kPull) {
    auto member = std::make_unique<Fleet>(outside.consume(), config);
    fleet = member.get();
    outside.use_fleet(fleet);
    // Pull: one pull request per owned partition, all on one subscription (partitioned_source).
    ports.source = make_partitioned_source(outside.consume(), config, fleet->table());
    ports.fleet = std::move(member);
  } else {
    ports.source = make_nats_source(outside.consume(), config, filter);
  }
  if (config.dedup.enabled) {
    ports.claims = make_redis_dedup_store(config.redis, "dedup", config.dedup.batch);
    ports.marks = make_redis_dedup_store(config.redis, "mark", config.dedup.batch);
  }
  ports.build = kBuildInfo;
  return ports;
}

}  // namespace cdc
