#include "cdc/pipeline/dedup_stage.hpp"

#include <algorithm>
#include <functional>
#include <stdexcept>

#include "cdc/core/log.hpp"

namespace cdc {
namespace {
constexpr std::int64_t kResendIntervalNs = 100'000'000;
}  // namespace

DedupStage::DedupStage(StageContext& ctx, DedupStore* store, Completer* completer)
    : ctx_(ctx),
      store_(ctx.config.dedup.enabled ? store : nullptr),
      protocol_(ctx.config.dedup.key_prefix, ctx.config.pending_ttl(), ctx.config.dedup.ttl),
      window_(ctx.config.pipeline.ring_capacity),
      sent_ns_(ctx.config.pipeline.ring_capacity, 0),
      block_(ctx.config.dedup.on_redis_error == RedisErrorPolicy::kBlock),
      keep_alive_(completer, ctx.config.ingest.ack_wait) {
  if (ctx.config.dedup.enabled && store_ == nullptr)
    throw std::invalid_argument("dedup is enabled but the pipeline has no dedup store");
  if (store_ != nullptr) {
    store_->set_handler(&DedupStage::on_reply, this);
    const auto batch = static_cast<std::size_t>(std::max(1, ctx.config.pipeline.batch_size));
    protocol_.reserve_batch(batch);
    gathered_.reserve(batch);
    batch_count_ = ctx.config.pipeline.ring_capacity;
    batches_ = std::make_unique<ClaimBatch[]>(batch_count_);
    for (std::size_t i = batch_count_; i-- > 0;) {
      batches_[i].next_free = free_batches_;
      free_batches_ = &batches_[i];
    }
  }
}

bool DedupStage::is_batch(const void* tag) const noexcept {
  const std::less<const void*> before;
  return !before(tag, batches_.get()) && before(tag, batches_.get() + batch_count_);
}

bool DedupStage::redis_up() const noexcept { return store_ == nullptr || store_->up(); }

void DedupStage::on_start() noexcept {
  if (store_) store_->start();
}

bool DedupStage::hold() const noexcept { return store_ && block_ && !store_->ready() && !aborting(); }

std::size_t DedupStage::accepting() const noexcept {
  if (hold()) return 0;
  return window_.capacity() - window_.size();
}

void DedupStage::resolve(Event& ev, DedupResult result) noexcept {
  ev.dedup = result;
  ev.dedup_ready = true;
}

void DedupStage::send(Event& ev) noexcept {
  if (store_->send(protocol_.claim(ev.out.event_id), &ev)) {
    sent_ns_[ev.index] = now_ns();
    ++awaiting_reply_;
    return;
  }
  send_failed(ev);
}

void DedupStage::send_failed(Event& ev) noexcept {
  sent_ns_[ev.index] = 0;
  ctx_.metrics.dedup.errors.inc();
  if (!block_) resolve(ev, DedupResult::kUnavailable);
  else ++unsent_;  // block: stays in the window; resend_unsent() retries it
}

void DedupStage::send_batch() noexcept {
  if (gathered_.empty()) return;
  ClaimBatch* b = free_batches_;
  if (!store_->functions() || b == nullptr) {
    // The connection changed since the batch began (or, impossibly, every record is in
    // flight): the same claims, one command each.
    for (Event* ev : gathered_) send(*ev);
    gathered_.clear();
    return;
  }
  protocol_.begin_claims();
  for (const Event* ev : gathered_) protocol_.add_to_batch(ev->out.event_id);
  if (store_->send_batch(protocol_.batch_command(), b)) {
    free_batches_ = b->next_free;
    b->events.assign(gathered_.begin(), gathered_.end());  // capacity kept: no allocation once grown
    const std::int64_t now = now_ns();
    for (const Event* ev : gathered_) sent_ns_[ev->index] = now;
    awaiting_reply_ += gathered_.size();
  } else {
    for (Event* ev : gathered_) send_failed(*ev);
  }
  gathered_.clear();
}

void DedupStage::on_reply(void* owner, void* tag, const RedisReply& r) {
  auto* stage = static_cast<DedupStage*>(owner);
  if (stage->is_batch(tag)) {
    // One reply for the batch: each element resolves its event as a per-key reply would; a
    // failed reply (error, lost connection) fails every claim of the batch.
    auto* b = static_cast<ClaimBatch*>(tag);
    for (std::size_t i = 0; i < b->events.size(); ++i) {
      stage->claim_reply(*b->events[i], DedupProtocol::batch_element(r, i));
    }
    b->events.clear();
    b->next_free = stage->free_batches_;
    stage->free_batches_ = b;
    return;
  }
  stage->claim_reply(*static_cast<Event*>(tag), r);
}

void DedupStage::claim_reply(Event& ev, const RedisReply& r) noexcept {
  const std::int64_t sent = sent_ns_[ev.index];
  if (sent == 0) return;  // already resolved (dropped connection after a timeout)
  sent_ns_[ev.index] = 0;
  --awaiting_reply_;
  Metrics& metrics = ctx_.metrics;
  metrics.dedup.round_trip.observe_ns(now_ns() - sent);
  if (r.failed()) {
    metrics.dedup.errors.inc();
    static thread_local log::RateLimiter limiter;
    std::uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      log::warn("dedup command failed", {{"event_id", ev.out.event_id},
                                         {"error", r.error_text()},
                                         {"policy", block_ ? "block" : "publish"},
                                         {"suppressed", static_cast<unsigned long long>(suppressed)}});
    }
    if (!block_) resolve(ev, DedupResult::kUnavailable);
    else ++unsent_;  // block: resent by resend_unsent()
    return;
  }
  // kUnavailable for a mark we did not write: publish and let Nats-Msg-Id decide.
  const DedupResult result = DedupProtocol::claim_result(r);
  if (result == DedupResult::kFirstSeen) metrics.dedup.miss.inc();
  else metrics.dedup.hit.inc();
  resolve(ev, result);
}

void DedupStage::on_event(Event& ev, bool end_of_batch) noexcept {
  window_.push(&ev);
  ev.dedup_ready = false;
  if (ev.target != Target::kOutput || !store_ || aborting()) {
    resolve(ev, ctx_.config.dedup.enabled && ev.target == Target::kOutput ? DedupResult::kUnavailable
                                                                          : DedupResult::kNotChecked);
  } else if (store_->functions()) {
    gathered_.push_back(&ev);  // sent with the rest of the batch, in one call, at its end
  } else {
    send(ev);
  }
  if (end_of_batch && store_) send_batch();
}

bool DedupStage::forward_ready() noexcept {
  int n = 0;
  std::int64_t now = 0;  // read once per call, when the first event leaves
  while (!window_.empty()) {
    Event* ev = window_.front();
    if (!ev->dedup_ready) break;
    if (n == 0) now = now_ns();
    ctx_.metrics.dedup.stage.observe_ns(now - ev->received_ns);
    ctx_.emit(*ev);
    window_.pop();
    ++n;
  }
  return n > 0;
}

void DedupStage::resend_unsent() noexcept {
  // In order, so the replies (and the forwarding) keep the delivery order.
  unsent_ = 0;
  for (std::size_t i = 0; i < window_.size(); ++i) {
    Event* ev = window_.at(i);
    if (!ev->dedup_ready && sent_ns_[ev->index] == 0) {
      if (store_->ready()) send(*ev);
      else ++unsent_;
    }
  }
}

void DedupStage::check_overdue() noexcept {
  if (awaiting_reply_ == 0 || store_ == nullptr) return;
  const std::int64_t limit = static_cast<std::int64_t>(ctx_.config.redis.command_timeout.count()) * 1'000'000;
  const std::int64_t now = now_ns();
  for (std::size_t i = 0; i < window_.size(); ++i) {
    const std::int64_t sent = sent_ns_[window_.at(i)->index];
    if (sent != 0) {
      if (now - sent > limit) {
        // Replies are in order, so the oldest awaited one decides. Dropping the connection
        // fails every awaited claim (kLost replies), resolved per policy.
        store_->reset("reply overdue");
      }
      return;
    }
  }
}

bool DedupStage::on_idle(std::int64_t now) noexcept {
  if (store_) {
    // Block policy: claims that failed (connection lost, error reply) are sent again, at most
    // every resend interval so an error reply cannot turn into a busy loop.
    if (unsent_ > 0 && store_->ready() && now - last_resend_ns_ >= kResendIntervalNs) {
      last_resend_ns_ = now;
      resend_unsent();
    }
    store_->poll();  // after the batch: its claims leave in one write; replies, reconnect timers
    check_overdue();
  }
  if (aborting()) {
    // Drain deadline: stop waiting for Redis; the publish stage NAKs what is not final.
    for (std::size_t i = 0; i < window_.size(); ++i) {
      Event* e = window_.at(i);
      if (!e->dedup_ready) {
        sent_ns_[e->index] = 0;
        resolve(*e, DedupResult::kUnavailable);
      }
    }
    awaiting_reply_ = 0;
  }
  const bool forwarded = forward_ready();
  if (keep_alive_.due(now)) {
    // Held while Redis is slow or down: keep JetStream from redelivering them meanwhile.
    for (std::size_t i = 0; i < window_.size(); ++i) keep_alive_.touch(*window_.at(i), now);
    keep_alive_.touch_ring(*ctx_.in.ring, now);
  }
  return forwarded;
}

bool DedupStage::waits_outside() const noexcept {
  // Replies are due within a round trip, or we wait for Redis (block policy). While holding,
  // the input ring is not empty, so waiting on it would return at once and spin a core for the
  // whole outage.
  return store_ != nullptr && (awaiting_reply_ > 0 || hold() || unsent_ > 0);
}

void DedupStage::wait_outside(std::chrono::nanoseconds timeout) noexcept {
  // Bounded, so overdue replies and the drain deadline are noticed; reconnect timers run.
  if (timeout.count() <= 0) store_->poll();
  else store_->wait(timeout);
}

void DedupStage::on_shutdown() noexcept {
  if (store_) store_->close();
}

}  // namespace cdc
