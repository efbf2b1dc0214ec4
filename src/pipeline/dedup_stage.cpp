#include "cdc/pipeline/dedup_stage.hpp"

#include <uv.h>

#include "cdc/core/log.hpp"
#include "cdc/adapters/redis/redis_connection.hpp"

namespace cdc {
namespace {
constexpr auto kIdleWait = std::chrono::milliseconds(50);
constexpr std::int64_t kResendIntervalNs = 100'000'000;
}  // namespace

DedupStage::DedupStage(const Config& config, Link in, Link out, std::atomic<bool>& done, Lifecycle& life,
                       Metrics& metrics, Completer* completer)
    : config_(config),
      in_(in),
      out_(out),
      done_(done),
      life_(life),
      metrics_(metrics),
      loop_(std::make_unique<uv_loop_t>()),
      fifo_(config.pipeline.ring_capacity, nullptr),
      sent_ns_(config.pipeline.ring_capacity, 0),
      keep_alive_(completer, config.ingest.ack_wait) {
  uv_loop_init(loop_.get());
  const auto ttl_ms = config.pending_ttl().count();
  ttl_seconds_ = std::to_string(std::max<std::int64_t>(1, (ttl_ms + 999) / 1000));
  block_ = config.dedup.on_redis_error == RedisErrorPolicy::kBlock;
  if (config.dedup.enabled)
    redis_ = std::make_unique<RedisConnection>(config.redis, loop_.get(), "dedup", &DedupStage::on_reply, this);
  key_.reserve(256);
}

DedupStage::~DedupStage() {
  redis_.reset();
  // Let libuv finish closing the connection's and timers' handles.
  while (uv_run(loop_.get(), UV_RUN_NOWAIT) != 0) {
  }
  uv_loop_close(loop_.get());
}

bool DedupStage::redis_up() const noexcept { return redis_ == nullptr || redis_->up(); }

void DedupStage::resolve(Event& ev, DedupResult result) noexcept {
  ev.dedup = result;
  ev.dedup_ready = true;
}

void DedupStage::send(Event& ev) noexcept {
  key_.assign(config_.dedup.key_prefix);
  key_ += ev.out.event_id;
  if (redis_->command({"SET", key_, "p", "NX", "GET", "EX", ttl_seconds_}, &ev)) {
    sent_ns_[ev.index] = now_ns();
    ++outstanding_;
    return;
  }
  sent_ns_[ev.index] = 0;
  metrics_.dedup.errors.inc();
  if (!block_) resolve(ev, DedupResult::kUnavailable);
  else ++unsent_;  // block: stays in the fifo; resend_unsent() retries it
}

void DedupStage::on_reply(void* owner, void* tag, const RedisReply& r) {
  auto* stage = static_cast<DedupStage*>(owner);
  auto* ev = static_cast<Event*>(tag);
  const std::int64_t sent = stage->sent_ns_[ev->index];
  if (sent == 0) return;  // already resolved (dropped connection after a timeout)
  stage->sent_ns_[ev->index] = 0;
  --stage->outstanding_;
  stage->metrics_.dedup.round_trip.observe_ns(now_ns() - sent);
  if (r.failed()) {
    stage->metrics_.dedup.errors.inc();
    static thread_local log::RateLimiter limiter;
    std::uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      log::warn("dedup command failed", {{"event_id", ev->out.event_id},
                                         {"error", r.error_text()},
                                         {"policy", stage->block_ ? "block" : "publish"},
                                         {"suppressed", static_cast<unsigned long long>(suppressed)}});
    }
    if (!stage->block_) stage->resolve(*ev, DedupResult::kUnavailable);
    else ++stage->unsent_;  // block: resent by resend_unsent()
    return;
  }
  if (r.type == RedisReply::Type::kNil) {
    stage->metrics_.dedup.miss.inc();
    stage->resolve(*ev, DedupResult::kFirstSeen);
    return;
  }
  stage->metrics_.dedup.hit.inc();
  if (r.type == RedisReply::Type::kString && r.str == "d") {
    stage->resolve(*ev, DedupResult::kDone);
  } else if (r.type == RedisReply::Type::kString && r.str == "p") {
    stage->resolve(*ev, DedupResult::kInFlight);
  } else {
    // A mark we did not write: publish and let Nats-Msg-Id decide.
    stage->resolve(*ev, DedupResult::kUnavailable);
  }
}

int DedupStage::forward_ready() noexcept {
  int n = 0;
  std::int64_t now = 0;  // read once per call, when the first event leaves
  while (head_ != tail_) {
    Event* ev = fifo_[head_ % fifo_.size()];
    if (!ev->dedup_ready) break;
    if (n == 0) now = now_ns();
    metrics_.dedup.stage.observe_ns(now - ev->received_ns);
    push_or_die(*out_.ring, ev);
    ++head_;
    ++n;
  }
  if (n > 0) out_.waiter->notify();
  return n;
}

void DedupStage::resend_unsent() noexcept {
  // In order, so the replies (and the forwarding) keep the delivery order.
  unsent_ = 0;
  for (std::size_t i = head_; i != tail_; ++i) {
    Event* ev = fifo_[i % fifo_.size()];
    if (!ev->dedup_ready && sent_ns_[ev->index] == 0) {
      if (redis_->ready()) send(*ev);
      else ++unsent_;
    }
  }
}

void DedupStage::check_overdue() noexcept {
  if (outstanding_ == 0 || redis_ == nullptr) return;
  const std::int64_t limit = static_cast<std::int64_t>(config_.redis.command_timeout.count()) * 1'000'000;
  const std::int64_t now = now_ns();
  for (std::size_t i = head_; i != tail_; ++i) {
    Event* ev = fifo_[i % fifo_.size()];
    const std::int64_t sent = sent_ns_[ev->index];
    if (sent != 0) {
      if (now - sent > limit) {
        // Replies are in order, so the oldest outstanding one decides. Dropping the connection
        // fails every outstanding command (nullptr replies), resolved per policy.
        redis_->reset("reply overdue");
      }
      return;
    }
  }
}

void DedupStage::run() noexcept {
  setup_stage_thread("cdc-dedup", config_.pipeline.cpu.at("dedup"));
  // A tick bounds every blocking uv_run(UV_RUN_ONCE), so overdue replies and the drain
  // deadline are noticed even when Redis goes silent.
  uv_timer_t tick;
  uv_timer_init(loop_.get(), &tick);
  uv_timer_start(
      &tick, [](uv_timer_t*) {}, 50, 50);
  if (redis_) redis_->start();
  const int batch = config_.pipeline.batch_size;
  const std::size_t capacity = fifo_.size();
  while (true) {
    const bool aborting = life_.abort.load(std::memory_order_relaxed);
    int taken = 0;
    // Block policy with Redis down: leave events in the ring (back-pressure reaches ingest).
    const bool hold = redis_ && block_ && !redis_->ready() && !aborting;
    Event* ev = nullptr;
    while (!hold && taken < batch && tail_ - head_ < capacity && in_.ring->try_pop(ev)) {
      fifo_[tail_ % capacity] = ev;
      ++tail_;
      ++taken;
      ev->dedup_ready = false;
      if (ev->target != Target::kOutput || !redis_ || aborting) {
        resolve(*ev, config_.dedup.enabled && ev->target == Target::kOutput ? DedupResult::kUnavailable
                                                                            : DedupResult::kNotChecked);
      } else {
        send(*ev);
      }
    }
    if (redis_) {
      // Block policy: commands that failed (connection lost, error reply) are sent again, at
      // most every resend interval so an error reply cannot turn into a busy loop.
      if (unsent_ > 0 && redis_->ready()) {
        const std::int64_t now = now_ns();
        if (now - last_resend_ns_ >= kResendIntervalNs) {
          last_resend_ns_ = now;
          resend_unsent();
        }
      }
      uv_run(loop_.get(), UV_RUN_NOWAIT);  // end of batch: flush the pipeline, read replies
      check_overdue();
    }
    if (aborting) {
      // Drain deadline: stop waiting for Redis; the publish stage NAKs what is not final.
      for (std::size_t i = head_; i != tail_; ++i) {
        Event* e = fifo_[i % capacity];
        if (!e->dedup_ready) {
          sent_ns_[e->index] = 0;
          resolve(*e, DedupResult::kUnavailable);
        }
      }
      outstanding_ = 0;
    }
    const int forwarded = forward_ready();
    if (const std::int64_t now = now_ns(); keep_alive_.due(now)) {
      // Held while Redis is slow or down: keep JetStream from redelivering them meanwhile.
      for (std::size_t i = head_; i != tail_; ++i) keep_alive_.touch(*fifo_[i % capacity], now);
      keep_alive_.touch_ring(*in_.ring, now);
    }
    if (taken > 0 || forwarded > 0) continue;
    if (head_ == tail_ && in_.drained()) break;
    if (outstanding_ > 0 || hold || unsent_ > 0) {
      // Replies are due within a round trip, or we wait for Redis (block policy): block in the
      // loop (the tick bounds it; reconnect timers run). While holding, the input ring is not
      // empty, so waiting on it would return at once and spin a core for the whole outage.
      uv_run(loop_.get(), UV_RUN_ONCE);
      continue;
    }
    in_.waiter->wait_for(
        [this] { return in_.ring->front() != nullptr || in_.producer_done->load(std::memory_order_acquire); },
        kIdleWait);
  }
  if (redis_) redis_->close();
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  while (uv_run(loop_.get(), UV_RUN_NOWAIT) != 0) {
  }
  done_.store(true, std::memory_order_release);
  out_.waiter->notify();
}

}  // namespace cdc
