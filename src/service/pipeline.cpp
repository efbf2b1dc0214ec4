// Topology (one thread per stage; every arrow is a bounded SPSC RingBuffer<Event*>):
//
//   JetStream consumer                                                   JetStream wa_stream / DLQ
//          |                                                                     ^       |
//          v                                                             publish |       | PubAcks (own
//   +--------+    +-------+    +-------+   SET NX GET   +---------+--------------+       |  subscription,
//   | Ingest |--->| Parse |--->| Dedup |<-------------->| Publish |<---------------------+  CAS on Event)
//   +--------+    +-------+    +-------+    (Redis)     +---------+
//        ^                                                   |
//        |  free slots          +-----+                      |
//        +----------------------| Ack |<---------------------+
//                               +-----+--> ack / nak / term (JetStream), SET d / DEL (Redis)
//
// Events are pre-allocated slots (the pool); a slot pointer moves around the loop, so at most
// pool-size messages are in flight and a full pool is the back-pressure that reaches ingest.

#include "cdc/pipeline.hpp"

#include "cdc/ack_stage.hpp"
#include "cdc/dedup_stage.hpp"
#include "cdc/ingest_stage.hpp"
#include "cdc/log.hpp"
#include "cdc/nats_client.hpp"
#include "cdc/nats_ports.hpp"
#include "cdc/parse_stage.hpp"
#include "cdc/publish_stage.hpp"

namespace cdc {
Pipeline::Pipeline(Config config, Ports ports)
    : config_(std::move(config)),
      metrics_(std::make_unique<Metrics>(config_.ingest.tables)),
      ports_(std::move(ports)),
      pool_size_(config_.pipeline.ring_capacity),
      free_ring_(pool_size_), parse_ring_(pool_size_), dedup_ring_(pool_size_), publish_ring_(pool_size_),
      ack_ring_(pool_size_),
      ingest_waiter_(config_.pipeline.wait_strategy), parse_waiter_(config_.pipeline.wait_strategy),
      dedup_waiter_(config_.pipeline.wait_strategy), publish_waiter_(config_.pipeline.wait_strategy),
      ack_waiter_(config_.pipeline.wait_strategy) {
  validate(config_);
  if (ports_.source) build();  // the NATS constructor builds once its ports exist
}

Pipeline::Pipeline(Config config) : Pipeline(std::move(config), Ports{}) {
  const std::string filter = config_.ingest.filter_subject.empty()
                                 ? SubjectLayout(config_.ingest.subject_layout, config_.ingest.company_prefix).filter_subject()
                                 : config_.ingest.filter_subject;
  consume_ = std::make_unique<NatsConnection>(config_.nats, "consume");
  publish_ = std::make_unique<NatsConnection>(config_.nats, "publish");
  ensure_jetstream_objects(*consume_, config_, filter);
  ports_.publisher = make_nats_publisher(*publish_);
  ports_.completer = make_nats_completer(*consume_);
  ports_.source = make_nats_source(*consume_, config_, filter);
  build();
}

void Pipeline::build() {
  pool_ = std::make_unique<Event[]>(pool_size_);
  for (std::size_t i = 0; i < pool_size_; ++i) {
    Event& ev = pool_[i];
    ev.index = static_cast<std::uint32_t>(i);
    // Grow the buffers once so the steady state does not allocate.
    ev.out.event_id.reserve(128);
    ev.out.subject.reserve(128);
    ev.out.payload.reserve(2048);
    ev.out.error.reserve(128);
    push_or_die(free_ring_, &ev);
  }

  const Link free_link{&free_ring_, &ingest_waiter_, &never_};
  const Link parse_link{&parse_ring_, &parse_waiter_, &ingest_done_};
  const Link dedup_link{&dedup_ring_, &dedup_waiter_, &parse_done_};
  const Link publish_link{&publish_ring_, &publish_waiter_, &dedup_done_};
  const Link ack_link{&ack_ring_, &ack_waiter_, &publish_done_};

  parse_ = std::make_unique<ParseStage>(config_, parse_link, dedup_link, parse_done_, life_, *metrics_);
  dedup_ = std::make_unique<DedupStage>(config_, dedup_link, publish_link, dedup_done_, life_, *metrics_,
                                        ports_.completer.get());
  publish_stage_ = std::make_unique<PublishStage>(config_, *ports_.publisher, pool_.get(), pool_size_, publish_link,
                                                  ack_link, publish_done_, life_, *metrics_, ports_.completer.get());
  ack_ = std::make_unique<AckStage>(config_, *ports_.completer, ack_link, free_link, ack_done_, life_, *metrics_);
  ingest_ = std::make_unique<IngestStage>(config_, *ports_.source, free_link, parse_link, ingest_done_, life_, *metrics_);
}

Pipeline::~Pipeline() {
  stop();
  ingest_.reset();
  ports_.source.reset();
  ports_.publisher.reset();  // unsubscribes from PubAcks before the stage goes
  publish_stage_.reset();
  ack_.reset();
  ports_.completer.reset();
  dedup_.reset();
  parse_.reset();
  publish_.reset();
  consume_.reset();
}

void Pipeline::start() {
  if (started_.exchange(true)) return;
  threads_.emplace_back([this] { ack_->run(); });
  threads_.emplace_back([this] { publish_stage_->run(); });
  threads_.emplace_back([this] { dedup_->run(); });
  threads_.emplace_back([this] { parse_->run(); });
  threads_.emplace_back([this] { ingest_->run(); });
  log::info("pipeline started",
            {{"ring_capacity", static_cast<unsigned long long>(pool_size_)},
             {"wait_strategy", to_string(config_.pipeline.wait_strategy)},
             {"mode", config_.ingest.mode == IngestMode::kPush ? "push" : "pull"}});
}

void Pipeline::stop() {
  if (!started_.load() || stopped_.exchange(true)) return;
  log::info("draining", {{"drain_timeout_ms", static_cast<long long>(config_.pipeline.drain_timeout.count())}});
  life_.stop_intake.store(true, std::memory_order_relaxed);
  ingest_waiter_.notify();
  const auto deadline = std::chrono::steady_clock::now() + config_.pipeline.drain_timeout;
  while (!ack_done_.load(std::memory_order_acquire)) {
    if (std::chrono::steady_clock::now() >= deadline && !life_.abort.load()) {
      log::warn("drain timeout; NAKing what is not final");
      life_.abort.store(true, std::memory_order_relaxed);
      dedup_waiter_.notify();
      publish_waiter_.notify();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
  const HealthReport h = health();
  log::info("pipeline stopped", {{"completed", static_cast<unsigned long long>(h.completed)}});
}

bool Pipeline::finished() const noexcept { return ack_done_.load(std::memory_order_acquire); }

HealthReport Pipeline::health() const noexcept {
  HealthReport h;
  h.running = started_.load() && !ack_done_.load(std::memory_order_acquire);
  h.nats_connected = !consume_ || (consume_->connected() && publish_->connected());
  h.redis_up = dedup_ ? dedup_->redis_up() : true;
  h.redis_degraded_ok = !h.redis_up && config_.dedup.on_redis_error == RedisErrorPolicy::kPublish;
  h.completed = ack_ ? ack_->completed() : 0;
  h.last_completion_ns = ack_ ? ack_->last_completion_ns() : 0;
  h.in_flight = pool_size_ - free_ring_.size();
  return h;
}

std::string Pipeline::render_metrics() const {
  return metrics_->render([this](std::string& out) {
    out += "# HELP cdc_consumer_ring_occupancy Events queued in each ring.\n# TYPE cdc_consumer_ring_occupancy gauge\n";
    const std::pair<const char*, const EventRing*> rings[] = {
        {"free", &free_ring_}, {"parse", &parse_ring_}, {"dedup", &dedup_ring_}, {"publish", &publish_ring_}, {"ack", &ack_ring_}};
    for (const auto& [name, ring] : rings) {
      out += "cdc_consumer_ring_occupancy{ring=\"";
      out += name;
      out += "\"} ";
      out += std::to_string(ring->size());
      out += '\n';
    }
    out += "# HELP cdc_consumer_ring_capacity Capacity of every ring (the event pool size).\n# TYPE cdc_consumer_ring_capacity gauge\n";
    out += "cdc_consumer_ring_capacity " + std::to_string(pool_size_) + "\n";
    const HealthReport h = health();
    out += "# HELP cdc_consumer_in_flight Events between intake and completion.\n# TYPE cdc_consumer_in_flight gauge\n";
    out += "cdc_consumer_in_flight " + std::to_string(h.in_flight) + "\n";
    out += "# HELP cdc_consumer_nats_connected 1 when both NATS connections are up.\n# TYPE cdc_consumer_nats_connected gauge\n";
    out += std::string("cdc_consumer_nats_connected ") + (h.nats_connected ? "1" : "0") + "\n";
    out += "# HELP cdc_consumer_redis_up 1 when the dedup connection to Redis is up.\n# TYPE cdc_consumer_redis_up gauge\n";
    out += std::string("cdc_consumer_redis_up ") + (h.redis_up ? "1" : "0") + "\n";
    out += "# HELP cdc_consumer_nats_reconnects_total NATS reconnections.\n# TYPE cdc_consumer_nats_reconnects_total counter\n";
    out += "cdc_consumer_nats_reconnects_total " +
           std::to_string((consume_ ? consume_->reconnects() : 0) + (publish_ ? publish_->reconnects() : 0)) + "\n";
    out += "# HELP cdc_consumer_log_dropped_total Log lines dropped because the log queue was full.\n# TYPE cdc_consumer_log_dropped_total counter\n";
    out += "cdc_consumer_log_dropped_total " + std::to_string(log::dropped()) + "\n";
    out += "# HELP cdc_consumer_build_info Build information.\n# TYPE cdc_consumer_build_info gauge\n";
    out += "cdc_consumer_build_info{version=\"" CDC_VERSION "\"} 1\n";
  });
}

}  // namespace cdc
