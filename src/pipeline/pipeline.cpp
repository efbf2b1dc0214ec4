// Topology (every arrow is a bounded SPSC RingBuffer<Event*>; each stage is a StageHandler run
// by a StageRunner, one thread per stage by default, or several stages per thread as
// pipeline.threads says, e.g. [[ingest, parse], [dedup, publish, ack]]):
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

#include "cdc/pipeline/pipeline.hpp"

#include <pthread.h>

#include <algorithm>
#include <stdexcept>

#include "cdc/core/log.hpp"
#include "cdc/pipeline/ack_stage.hpp"
#include "cdc/pipeline/dedup_stage.hpp"
#include "cdc/pipeline/ingest_stage.hpp"
#include "cdc/pipeline/parse_stage.hpp"
#include "cdc/pipeline/publish_stage.hpp"

namespace cdc {
namespace {
constexpr auto kMonitorTick = std::chrono::milliseconds(500);
/// How often the monitor checks that the output streams exist when nothing suggests otherwise.
constexpr std::int64_t kStreamCheckIntervalNs = 5'000'000'000LL;
constexpr std::int64_t kNsPerMs = 1'000'000;

std::string format_ms(std::int64_t ms) {
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}
}  // namespace

Pipeline::Pipeline(Config config, Ports ports)
    : config_(std::move(config)),
      metrics_(std::make_unique<Metrics>(config_.ingest.tables)),
      ports_(std::move(ports)),
      pool_size_(config_.pipeline.ring_capacity),
      free_ring_(pool_size_),
      parse_ring_(pool_size_),
      dedup_ring_(pool_size_),
      publish_ring_(pool_size_),
      ack_ring_(pool_size_) {
  validate(config_);
  // relaxed: no thread runs yet; start() publishes them with the threads it creates.
  stall_timeout_ms_.store(config_.health.stall_timeout.count(), std::memory_order_relaxed);
  max_failure_ms_.store(config_.guard.max_failure_duration.count(), std::memory_order_relaxed);
  if (!ports_.source || !ports_.completer || !ports_.publisher) {
    throw std::invalid_argument("pipeline ports: a source, a completer and a publisher are required");
  }
  if (ports_.monitor) ports_.monitor->attach(*metrics_);
  if (ports_.fleet) ports_.fleet->attach(*metrics_);
  try {
    build();
  } catch (...) {
    release();  // the same order as the destructor's: no port outlives what it refers to
    throw;
  }
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

  const std::vector<std::vector<std::size_t>> groups = stage_threads(config_.pipeline.threads);
  for (const auto& group : groups) {
    waiters_.push_back(std::make_unique<WaitStrategy>(config_.pipeline.wait_strategy));
    for (const std::size_t stage : group) waiter_of_[stage] = waiters_.back().get();
  }
  enum : std::size_t { kIngest, kParse, kDedup, kPublish, kAck };
  const Link free_link{&free_ring_, waiter_of_[kIngest], &never_};
  const Link parse_link{&parse_ring_, waiter_of_[kParse], &ingest_done_};
  const Link dedup_link{&dedup_ring_, waiter_of_[kDedup], &parse_done_};
  const Link publish_link{&publish_ring_, waiter_of_[kPublish], &dedup_done_};
  const Link ack_link{&ack_ring_, waiter_of_[kAck], &publish_done_};
  const auto context = [this](std::size_t stage, Link in, Link out, std::atomic<bool>& done) {
    contexts_.push_back(std::make_unique<StageContext>(kStageNames[stage], config_, in, out, done, life_, *metrics_));
    return contexts_.back().get();
  };
  StageContext* ingest_ctx = context(kIngest, free_link, parse_link, ingest_done_);
  StageContext* parse_ctx = context(kParse, parse_link, dedup_link, parse_done_);
  StageContext* dedup_ctx = context(kDedup, dedup_link, publish_link, dedup_done_);
  StageContext* publish_ctx = context(kPublish, publish_link, ack_link, publish_done_);
  StageContext* ack_ctx = context(kAck, ack_link, free_link, ack_done_);

  ingest_ = std::make_unique<IngestStage>(*ingest_ctx, *ports_.source);
  parse_ = std::make_unique<ParseStage>(*parse_ctx);
  dedup_ = std::make_unique<DedupStage>(*dedup_ctx, ports_.claims.get(), ports_.completer.get());
  publish_stage_ = std::make_unique<PublishStage>(*publish_ctx, *ports_.publisher, pool_.get(), pool_size_,
                                                  ports_.completer.get(), ports_.fleet.get());
  ack_ = std::make_unique<AckStage>(*ack_ctx, *ports_.completer, ports_.marks.get());

  const std::array<StageHandler*, kStageNames.size()> handlers{ingest_.get(), parse_.get(), dedup_.get(),
                                                               publish_stage_.get(), ack_.get()};
  for (std::size_t g = 0; g < groups.size(); ++g) {
    std::vector<RunnerStage> stages;
    std::vector<std::string> names;
    int cpu = -1;
    for (const std::size_t stage : groups[g]) {
      stages.push_back(RunnerStage{handlers[stage], contexts_[stage].get()});
      names.emplace_back(kStageNames[stage]);
      const auto it = config_.pipeline.cpu.find(kStageNames[stage]);
      if (cpu < 0 && it != config_.pipeline.cpu.end()) cpu = it->second;
    }
    runners_.push_back(std::make_unique<StageRunner>(stage_thread_name(names), cpu, *waiters_[g],
                                                     static_cast<std::size_t>(config_.pipeline.batch_size), stages));
  }
}

std::vector<std::vector<std::size_t>> stage_threads(const std::vector<std::vector<std::string>>& threads) {
  std::vector<std::vector<std::size_t>> groups;
  if (threads.empty()) {
    for (std::size_t i = 0; i < kStageNames.size(); ++i) groups.push_back({i});
    return groups;
  }
  std::array<bool, kStageNames.size()> seen{};
  for (const auto& thread : threads) {
    if (thread.empty()) throw std::invalid_argument("pipeline.threads: a thread without stages");
    std::vector<std::size_t> group;
    for (const std::string& name : thread) {
      const auto it = std::find(kStageNames.begin(), kStageNames.end(), name);
      if (it == kStageNames.end()) throw std::invalid_argument("pipeline.threads: unknown stage '" + name + "'");
      const auto index = static_cast<std::size_t>(it - kStageNames.begin());
      if (seen[index]) throw std::invalid_argument("pipeline.threads: stage '" + name + "' named twice");
      seen[index] = true;
      group.push_back(index);
    }
    groups.push_back(std::move(group));
  }
  for (std::size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) throw std::invalid_argument(std::string("pipeline.threads: stage '") + kStageNames[i] + "' missing");
  }
  return groups;
}

Pipeline::~Pipeline() {
  stop();
  release();
}

void Pipeline::release() noexcept {
  runners_.clear();
  ingest_.reset();
  ports_.source.reset();
  ports_.publisher.reset();  // unsubscribes from PubAcks before the stage goes
  publish_stage_.reset();
  ack_.reset();
  ports_.completer.reset();
  dedup_.reset();
  ports_.claims.reset();
  ports_.marks.reset();
  parse_.reset();
  ports_.fleet.reset();    // after the source that read its table, before the connections
  ports_.monitor.reset();  // last: it may own the connections the other ports used
}

void Pipeline::start() {
  if (started_.exchange(true)) return;
  if (ports_.fleet) {
    // Joins the fleet before intake: the source fetches only the partitions it comes to own.
    try {
      ports_.fleet->start();
    } catch (...) {
      started_.store(false);
      throw;
    }
  }
  // Downstream first, as before: each thread is waiting before its producer starts.
  for (auto it = runners_.rbegin(); it != runners_.rend(); ++it) {
    StageRunner* runner = it->get();
    threads_.emplace_back([runner] { runner->run(); });
  }
  monitor_ = std::thread([this] { monitor(); });
  std::string mapping;
  for (const auto& runner : runners_) mapping += (mapping.empty() ? "" : " ") + runner->thread_name();
  log::info("pipeline started", {{"ring_capacity", static_cast<unsigned long long>(pool_size_)},
                                 {"threads", mapping},
                                 {"wait_strategy", to_string(config_.pipeline.wait_strategy)},
                                 {"mode", config_.ingest.mode == IngestMode::kPush ? "push" : "pull"}});
}

void Pipeline::stop() {
  if (!started_.load() || stopped_.exchange(true)) return;
  {
    // The monitor goes first: a drain is not a stall, nor a failure for the guard.
    std::lock_guard<std::mutex> lock(monitor_mutex_);
    monitor_stop_ = true;
  }
  monitor_cv_.notify_all();
  if (monitor_.joinable()) monitor_.join();
  log::info("draining", {{"drain_timeout_ms", static_cast<long long>(config_.pipeline.drain_timeout.count())}});
  life_.stop_intake.store(true, std::memory_order_relaxed);
  waiter_of_[0]->notify();  // ingest
  const auto deadline = std::chrono::steady_clock::now() + config_.pipeline.drain_timeout;
  while (!ack_done_.load(std::memory_order_acquire)) {
    if (std::chrono::steady_clock::now() >= deadline && !life_.abort.load()) {
      log::warn("drain timeout; NAKing what is not final");
      life_.abort.store(true, std::memory_order_relaxed);
      waiter_of_[2]->notify();  // dedup
      waiter_of_[3]->notify();  // publish
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
  // Intake stopped (no pull request open, what was not taken NAKed), the drain completed and the
  // completions were flushed (ack stage): nothing of ours is left to ack, so the leases go now
  // and the next owners start at once.
  if (ports_.fleet) {
    ports_.fleet->release_all();
    ports_.fleet->stop();
  }
  const HealthReport h = health();
  log::info("pipeline stopped", {{"completed", static_cast<unsigned long long>(h.completed)}});
}

bool Pipeline::finished() const noexcept { return ack_done_.load(std::memory_order_acquire); }

HealthReport Pipeline::health() const noexcept {
  HealthReport h = base_health();
  // relaxed: independent flags of the monitor's last tick.
  h.stalled = stalled_.load(std::memory_order_relaxed);
  h.waiting_ms = waiting_ms_.load(std::memory_order_relaxed);
  h.failing_ms = metrics_->monitor.failing_ms.value();
  return h;
}

HealthReport Pipeline::base_health() const noexcept {
  HealthReport h;
  h.backlog = metrics_->monitor.backlog.value();
  h.running = started_.load() && !ack_done_.load(std::memory_order_acquire);
  h.nats_connected = !ports_.monitor || ports_.monitor->connected();
  h.redis_up = dedup_ ? dedup_->redis_up() : true;
  h.redis_degraded_ok = !h.redis_up && config_.dedup.on_redis_error == RedisErrorPolicy::kPublish;
  h.completed = ack_ ? ack_->completed() : 0;
  h.last_completion_ns = ack_ ? ack_->last_completion_ns() : 0;
  h.in_flight = pool_size_ - free_ring_.size();
  h.fleet_ready = !ports_.fleet || ports_.fleet->ready();
  h.outputs_present = metrics_->monitor.output_stream_missing[0].value() == 0 &&
                      metrics_->monitor.output_stream_missing[1].value() == 0;
  return h;
}

std::string Pipeline::render_metrics() const {
  ScrapeState st;
  const EventRing* rings[] = {&free_ring_, &parse_ring_, &dedup_ring_, &publish_ring_, &ack_ring_};
  for (std::size_t i = 0; i < st.ring_occupancy.size(); ++i) st.ring_occupancy[i] = rings[i]->size();
  st.ring_capacity = pool_size_;
  const HealthReport h = health();
  st.in_flight = h.in_flight;
  st.running = h.running;
  st.ready = h.ready();
  st.stalled = h.stalled;
  for (std::size_t i = 0; ports_.monitor && i < st.nats.size(); ++i) {
    const ConnectionStatus nats = ports_.monitor->nats_status(i);
    st.nats[i].present = true;
    st.nats[i].up = nats.up;
    st.nats[i].reconnects = nats.reconnects;
    st.nats[i].failures = nats.failures;
  }
  const DedupStore* redis[] = {dedup_ ? dedup_->store() : nullptr, ack_ ? ack_->store() : nullptr};
  for (std::size_t i = 0; i < st.redis.size(); ++i) {
    if (redis[i] == nullptr) continue;
    st.redis[i].present = true;
    st.redis[i].up = redis[i]->up();
    st.redis[i].reconnects = redis[i]->reconnects();
    st.redis[i].failures = redis[i]->failures();
  }
  st.log_dropped = log::dropped();
  st.version = ports_.build.version;
  st.revision = ports_.build.revision;
  st.dependencies = ports_.build.dependencies;
  st.guard_max_failure_ms = max_failure_ms_.load(std::memory_order_relaxed);
  if (ports_.monitor) st.output_streams = {config_.publish.stream, config_.publish.dlq_stream};
  return metrics_->render(st);
}

void Pipeline::set_stall_timeout(Millis timeout) noexcept {
  // relaxed: an independent setting, read by the monitor on its next tick.
  stall_timeout_ms_.store(timeout.count(), std::memory_order_relaxed);
}

void Pipeline::set_max_failure_duration(Millis limit) noexcept {
  // relaxed: as above.
  max_failure_ms_.store(limit.count(), std::memory_order_relaxed);
}

void Pipeline::set_transform_rules(const Config& next) {
  if (!parse_) throw std::logic_error("pipeline has no parse stage");
  // Only the reloadable rules change; the subject layout and prefixes stay as started.
  TransformRules rules = transform_rules(config_);
  rules.tables = next.ingest.tables;
  rules.key_columns = next.ingest.key_columns;
  rules.max_message_bytes = next.ingest.max_message_bytes;
  parse_->offer(std::make_unique<Transformer>(std::move(rules)));
}

std::string Pipeline::guard_reason() const {
  std::lock_guard<std::mutex> lock(guard_mutex_);
  return guard_reason_;
}

void Pipeline::read_backlog() noexcept {
  ConnectionMonitor& outside = *ports_.monitor;
  // Consume connection down: a request would only wait for its timeout.
  if (!outside.nats_status(ConnectionMonitor::kConsume).up) return;
  ConsumerBacklog backlog;
  std::string error;
  const Millis timeout = std::min(Millis{2000}, config_.metrics.backlog_interval);
  if (outside.read_backlog(timeout, backlog, error)) {
    metrics_->monitor.backlog.set(static_cast<std::int64_t>(backlog.num_pending));
    metrics_->monitor.ack_pending.set(backlog.num_ack_pending);
    metrics_->monitor.backlog_unix_ms.set(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    return;
  }
  metrics_->monitor.backlog_errors.inc();
  static thread_local log::RateLimiter limiter(60'000'000'000LL, 1);
  std::uint64_t suppressed = 0;
  if (limiter.allow(suppressed)) {
    log::warn("cannot read the consumer backlog", {{"consumer", config_.ingest.consumer},
                                                   {"error", error},
                                                   {"suppressed", static_cast<unsigned long long>(suppressed)}});
  }
}

void Pipeline::check_output_streams(std::int64_t now) noexcept {
  // A publish that found no stream (no responders, stream not found) asks for a check at once.
  const std::uint64_t no_responders = metrics_->puback.no_responders.value();
  const bool asked = no_responders != seen_no_responders_;
  if (now < next_stream_check_ns_ && !asked) return;
  seen_no_responders_ = no_responders;
  next_stream_check_ns_ = now + kStreamCheckIntervalNs;
  if (!ports_.monitor->nats_status(ConnectionMonitor::kConsume).up) return;
  Metrics::MonitorSide& m = metrics_->monitor;
  const std::uint64_t recreated = m.streams_recreated[0].value() + m.streams_recreated[1].value();
  if (!ports_.monitor->check_output_streams(Millis{2000})) return;
  m.streams_checked_ns.set(now);
  if (asked && m.output_stream_missing[0].value() == 0 && m.output_stream_missing[1].value() == 0 &&
      m.streams_recreated[0].value() + m.streams_recreated[1].value() == recreated) {
    m.streams_present_despite_ns.set(now);
  }
}

void Pipeline::monitor() noexcept {
  pthread_setname_np(pthread_self(), "cdc-monitor");
  const bool block = config_.dedup.enabled && config_.dedup.on_redis_error == RedisErrorPolicy::kBlock;
  const std::int64_t backlog_interval_ns = config_.metrics.backlog_interval.count() * kNsPerMs;
  std::int64_t next_backlog_ns = 0;
  std::unique_lock<std::mutex> lock(monitor_mutex_);
  while (!monitor_stop_) {
    lock.unlock();
    std::int64_t now = now_ns();
    if (ports_.monitor && backlog_interval_ns > 0 && now >= next_backlog_ns) {
      read_backlog();
      next_backlog_ns = now + backlog_interval_ns;
      now = now_ns();
    }
    if (ports_.monitor) {
      check_output_streams(now);
      now = now_ns();
    }
    // Redis INFO (evictions, maxmemory-policy): never blocks, replies come on a later tick. Only
    // while the dedup connection is up: a Redis that is down or refuses our credentials is
    // already reported by it, once, and a third connection would only repeat that.
    if (ports_.monitor && backlog_interval_ns > 0 && (dedup_ == nullptr || dedup_->redis_up())) {
      ports_.monitor->poll_redis_info(now, backlog_interval_ns);
    }
    const HealthReport h = base_health();
    // Pending: in flight here, not yet delivered, or delivered and not yet acked (NAKed with a
    // delay and waiting for redelivery counts: that work is not done).
    const bool pending = h.in_flight > 0 || h.backlog > 0 || metrics_->monitor.ack_pending.value() > 0;

    // What counts as progress (health.hpp): an event stored in the output; other final
    // outcomes only while the output is not failing. Dead-letter counters are read before the
    // event counters the ack stage increments first.
    const Metrics& m = *metrics_;
    const std::uint64_t output_dead = m.ack.dead_letters[static_cast<std::size_t>(ErrorKind::kMaxDeliveries)].value() +
                                      m.ack.dead_letters[static_cast<std::size_t>(ErrorKind::kPublishRejected)].value();
    const std::uint64_t publish_errors =
        m.publish.publish_errors.value() + m.publish.timeouts.value() + m.puback.errors.value();
    ProgressTracker::Sample ps;
    std::uint64_t dead_lettered = 0;
    for (const auto& table : m.ack.events) {
      ps.output_ok += table[static_cast<std::size_t>(EventResult::kProcessed)].value() +
                      table[static_cast<std::size_t>(EventResult::kDuplicate)].value();
      ps.other_final += table[static_cast<std::size_t>(EventResult::kSkipped)].value();
      dead_lettered += table[static_cast<std::size_t>(EventResult::kDeadLettered)].value();
    }
    ps.other_final += dead_lettered > output_dead ? dead_lettered - output_dead : 0;
    ps.output_failures = publish_errors + output_dead;
    ps.pending = pending;
    const std::uint64_t progress = progress_.update(ps);

    // Liveness: time without progress while work is pending, whatever happens meanwhile (a
    // dependency outage or reconnects included: readiness reports those, and a pod that makes
    // no progress for stall_timeout is not alive).
    StallDetector::Sample ss;
    ss.pending = pending;
    ss.progress = progress;
    const bool stalled = stall_.update(now, ss, stall_timeout_ms_.load(std::memory_order_relaxed) * kNsPerMs);
    const std::int64_t waiting_ms = stall_.waiting_ns(now) / kNsPerMs;
    if (stalled != stalled_.load(std::memory_order_relaxed)) {
      if (stalled) {
        log::error("liveness failing: work pending and no progress",
                   {{"waiting_ms", static_cast<long long>(waiting_ms)},
                    {"in_flight", static_cast<unsigned long long>(h.in_flight)},
                    {"backlog", static_cast<long long>(h.backlog)}});
      } else {
        log::info("liveness restored");
      }
    }
    // relaxed: the HTTP thread reads independent values; a tick late is fine.
    stalled_.store(stalled, std::memory_order_relaxed);
    waiting_ms_.store(waiting_ms, std::memory_order_relaxed);

    // Panic guard: failures keep being counted and nothing succeeds.
    const DedupStore* dedup_redis = dedup_ ? dedup_->store() : nullptr;
    const std::uint64_t naks = m.ack.naks.value();
    const std::uint64_t redis_errors =
        block ? m.dedup.errors.value() + (dedup_redis != nullptr ? dedup_redis->failures() : 0) : 0;
    FailureGuard::Sample gs;
    gs.successes = progress;
    gs.failures = naks + publish_errors + redis_errors + m.ack.completion_errors.value();
    gs.pending = pending;
    const std::int64_t limit_ms = max_failure_ms_.load(std::memory_order_relaxed);
    const bool trip = guard_.update(now, gs, limit_ms * kNsPerMs);
    metrics_->monitor.failing_ms.set(guard_.failing_ns(now) / kNsPerMs);
    if (trip && !guard_tripped_.load(std::memory_order_relaxed)) {
      std::string reason = "processing has failed continuously for " + format_ms(guard_.failing_ns(now) / kNsPerMs) +
                           " (guard.max_failure_duration " + format_ms(limit_ms) +
                           "): " + std::to_string(guard_.failures_since_success()) +
                           " failures and no progress since the first of them; totals: " + std::to_string(naks) +
                           " NAKs, " + std::to_string(publish_errors) + " publish errors, " +
                           std::to_string(redis_errors) +
                           " Redis errors holding work; nats_connected=" + (h.nats_connected ? "true" : "false") +
                           ", redis_up=" + (h.redis_up ? "true" : "false");
      {
        std::lock_guard<std::mutex> guard_lock(guard_mutex_);
        guard_reason_ = std::move(reason);
      }
      // release: guard_reason_ is written before main sees the flag.
      guard_tripped_.store(true, std::memory_order_release);
    }
    lock.lock();
    monitor_cv_.wait_for(lock, kMonitorTick, [this] { return monitor_stop_; });
  }
  lock.unlock();
  if (ports_.monitor) ports_.monitor->close_redis_info();
}

}  // namespace cdc
