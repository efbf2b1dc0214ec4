#include "cdc/pipeline/dedup_stage.hpp"

#include "cdc/core/log.hpp"

namespace cdc {
namespace {
constexpr auto kIdleWait = std::chrono::milliseconds(50);
constexpr std::int64_t kResendIntervalNs = 100'000'000;
}  // namespace

DedupStage::DedupStage(const Config& config, DedupStore* store, Link in, Link out, std::atomic<bool>& done,
                       Lifecycle& life, Metrics& metrics, Completer* completer)
    : config_(config),
      in_(in),
      out_(out),
      done_(done),
      life_(life),
      metrics_(metrics),
      store_(config.dedup.enabled ? store : nullptr),
      protocol_(config.dedup.key_prefix, config.pending_ttl(), config.dedup.ttl),
      fifo_(config.pipeline.ring_capacity, nullptr),
      sent_ns_(config.pipeline.ring_capacity, 0),
      keep_alive_(completer, config.ingest.ack_wait) {
  block_ = config.dedup.on_redis_error == RedisErrorPolicy::kBlock;
  if (config.dedup.enabled && store_ == nullptr)
    throw std::invalid_argument("dedup is enabled but the pipeline has no dedup store");
  if (store_ != nullptr) store_->set_handler(&DedupStage::on_reply, this);
}

bool DedupStage::redis_up() const noexcept { return store_ == nullptr || store_->up(); }

void DedupStage::resolve(Event& ev, DedupResult result) noexcept {
  ev.dedup = result;
  ev.dedup_ready = true;
}

void DedupStage::send(Event& ev) noexcept {
  if (store_->send(protocol_.claim(ev.out.event_id), &ev)) {
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
  // kUnavailable for a mark we did not write: publish and let Nats-Msg-Id decide.
  const DedupResult result = DedupProtocol::claim_result(r);
  if (result == DedupResult::kFirstSeen) stage->metrics_.dedup.miss.inc();
  else stage->metrics_.dedup.hit.inc();
  stage->resolve(*ev, result);
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
      if (store_->ready()) send(*ev);
      else ++unsent_;
    }
  }
}

void DedupStage::check_overdue() noexcept {
  if (outstanding_ == 0 || store_ == nullptr) return;
  const std::int64_t limit = static_cast<std::int64_t>(config_.redis.command_timeout.count()) * 1'000'000;
  const std::int64_t now = now_ns();
  for (std::size_t i = head_; i != tail_; ++i) {
    Event* ev = fifo_[i % fifo_.size()];
    const std::int64_t sent = sent_ns_[ev->index];
    if (sent != 0) {
      if (now - sent > limit) {
        // Replies are in order, so the oldest outstanding one decides. Dropping the connection
        // fails every outstanding command (nullptr replies), resolved per policy.
        store_->reset("reply overdue");
      }
      return;
    }
  }
}

void DedupStage::run() noexcept {
  setup_stage_thread("cdc-dedup", config_.pipeline.cpu.at("dedup"));
  if (store_) store_->start();
  const int batch = config_.pipeline.batch_size;
  const std::size_t capacity = fifo_.size();
  while (true) {
    const bool aborting = life_.abort.load(std::memory_order_relaxed);
    int taken = 0;
    // Block policy with Redis down: leave events in the ring (back-pressure reaches ingest).
    const bool hold = store_ && block_ && !store_->ready() && !aborting;
    Event* ev = nullptr;
    while (!hold && taken < batch && tail_ - head_ < capacity && in_.ring->try_pop(ev)) {
      fifo_[tail_ % capacity] = ev;
      ++tail_;
      ++taken;
      ev->dedup_ready = false;
      if (ev->target != Target::kOutput || !store_ || aborting) {
        resolve(*ev, config_.dedup.enabled && ev->target == Target::kOutput ? DedupResult::kUnavailable
                                                                            : DedupResult::kNotChecked);
      } else {
        send(*ev);
      }
    }
    if (store_) {
      // Block policy: commands that failed (connection lost, error reply) are sent again, at
      // most every resend interval so an error reply cannot turn into a busy loop.
      if (unsent_ > 0 && store_->ready()) {
        const std::int64_t now = now_ns();
        if (now - last_resend_ns_ >= kResendIntervalNs) {
          last_resend_ns_ = now;
          resend_unsent();
        }
      }
      store_->poll();  // end of batch: flush the pipeline, read replies
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
      // store (bounded, so overdue replies and the drain deadline are noticed; reconnect timers
      // run). While holding, the input ring is not empty, so waiting on it would return at once
      // and spin a core for the whole outage.
      store_->wait(kIdleWait);
      continue;
    }
    in_.waiter->wait_for(
        [this] { return in_.ring->front() != nullptr || in_.producer_done->load(std::memory_order_acquire); },
        kIdleWait);
  }
  if (store_) store_->close();
  done_.store(true, std::memory_order_release);
  out_.waiter->notify();
}

}  // namespace cdc
