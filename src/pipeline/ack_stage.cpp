#include "cdc/pipeline/ack_stage.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "cdc/core/log.hpp"

namespace cdc {
namespace {
// Marks sent and not yet answered, at most (a few seconds of traffic at full rate).
constexpr std::size_t kMaxOutstandingMarks = 1 << 16;

// A command's tag is the number of marks it carries (nullptr: one, a per-key command), so a
// failed function call counts every mark it lost. No record to keep: a mark's reply is only
// counted, never awaited.
void* marks_tag(std::size_t n) {
  // A count carried in the tag, never dereferenced.
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(n));  // NOLINT(performance-no-int-to-ptr)
}
std::uint64_t marks_of(const void* tag) {
  return tag == nullptr ? 1 : static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(tag));
}
}  // namespace
AckStage::AckStage(StageContext& ctx, Completer& completer, DedupStore* store)
    : ctx_(ctx),
      completer_(completer),
      store_(ctx.config.dedup.enabled ? store : nullptr),
      protocol_(ctx.config.dedup.key_prefix, ctx.config.pending_ttl(), ctx.config.dedup.ttl) {
  if (ctx.config.dedup.enabled && store_ == nullptr)
    throw std::invalid_argument("dedup is enabled but the pipeline has no mark store");
  if (store_ != nullptr) {
    store_->set_handler(&AckStage::on_reply, this);
    protocol_.reserve_batch(static_cast<std::size_t>(std::max(1, ctx.config.pipeline.batch_size)));
  }
}

void AckStage::on_reply(void* owner, void* tag, const RedisReply& r) {
  auto* self = static_cast<AckStage*>(owner);
  if (r.failed()) {
    self->ctx_.metrics.ack.redis_mark_errors.inc(marks_of(tag));
    static thread_local log::RateLimiter limiter;
    std::uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      log::warn("dedup mark failed",
                {{"error", r.error_text()}, {"suppressed", static_cast<unsigned long long>(suppressed)}});
    }
  }
}

void AckStage::redis_mark(const Event& ev) noexcept {
  if (!store_ || !(ev.mark_done || ev.unmark) || !ev.out.has_event_id) return;
  if (store_->awaiting_reply() >= kMaxOutstandingMarks) {
    // Redis is connected but not answering: marks are never awaited, so without a bound they
    // would pile up in memory for as long as it hangs. A mark not written degrades like a failed
    // one (the 'p' key expires; Nats-Msg-Id still stops a duplicate).
    ctx_.metrics.ack.redis_mark_errors.inc();
    return;
  }
  if (ev.mark_done && !ev.unmark && store_->functions()) {
    // With the batch's other marks, in one call at its end (send_marks()).
    if (protocol_.batch_size() == 0) protocol_.begin_marks();
    protocol_.add_to_batch(ev.out.event_id);
    return;
  }
  // Marks gathered before this command go first: the commands reach Redis in event order, as
  // per-key ones do.
  send_marks();
  // An unmark: the redelivery must not look like a duplicate (CONTRACT.md section 5, step 4).
  const bool sent =
      store_->send(ev.unmark ? protocol_.unmark(ev.out.event_id) : protocol_.mark_done(ev.out.event_id), nullptr);
  if (!sent) ctx_.metrics.ack.redis_mark_errors.inc();
}

void AckStage::send_marks() noexcept {
  const std::size_t n = protocol_.batch_size();
  if (n == 0) return;
  if (!store_->send_batch(protocol_.batch_command(), marks_tag(n))) ctx_.metrics.ack.redis_mark_errors.inc(n);
  protocol_.begin_marks();  // empty again
}

void AckStage::complete(Event& ev) noexcept {
  // Redis first: for a NAK the DEL is on the wire before the redelivery can be asked for.
  redis_mark(ev);
  bool sent = true;
  switch (ev.completion) {
    case Completion::kAck:
      sent = completer_.ack(ev.source);
      ctx_.metrics.ack.acks.inc();
      break;
    case Completion::kNak:
      sent = completer_.nak(ev.source, ev.nak_delay_ms);
      ctx_.metrics.ack.naks.inc();
      break;
    case Completion::kTerm:
      sent = completer_.term(ev.source);
      ctx_.metrics.ack.terms.inc();
      break;
  }
  if (!sent) {
    // The connection is down: JetStream redelivers after AckWait, and dedup keeps it single.
    ctx_.metrics.ack.completion_errors.inc();
    static thread_local log::RateLimiter limiter;
    std::uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      log::warn("source completion not sent",
                {{"subject", ev.source.subject}, {"suppressed", static_cast<unsigned long long>(suppressed)}});
    }
  }
  const std::int64_t now = now_ns();
  const std::int64_t latency = now - ev.received_ns;
  const std::size_t table = ctx_.metrics.table_index(ev.out.table);
  ctx_.metrics.ack.events[table][static_cast<std::size_t>(ev.result)].inc();
  if (ev.result != EventResult::kRetried) ctx_.metrics.ack.processing[table].observe_ns(latency);
  if (ev.result == EventResult::kDeadLettered)
    ctx_.metrics.ack.dead_letters[static_cast<std::size_t>(ev.out.error_kind)].inc();
  ctx_.metrics.ack.stage.observe_ns(latency);
  ctx_.metrics.ack.lag.observe(now, latency);
  if (log::enabled(log::Level::kDebug)) {
    log::debug("event completed", {{"trace_id", trace_id(ev)},
                                   {"event_id", ev.out.event_id},
                                   {"company", ev.out.company},
                                   {"table", ev.out.table},
                                   {"result", to_string(ev.result)},
                                   {"latency_ms", static_cast<double>(latency) / 1e6},
                                   {"redis_hit", ev.dedup == DedupResult::kDone || ev.dedup == DedupResult::kInFlight},
                                   {"delivery_attempt", static_cast<unsigned>(ev.deliveries)}});
  }
  ev.source.release();
  ev.reset();
  ctx_.emit(ev);
  completed_.store(completed_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  last_completion_ns_.store(now, std::memory_order_relaxed);
}

void AckStage::on_start() noexcept {
  if (store_) store_->start();
}

void AckStage::on_event(Event& ev, bool end_of_batch) noexcept {
  complete(ev);
  if (!end_of_batch) return;
  if (store_) send_marks();
  ctx_.metrics.ack.last_completion_unix_ms.set(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

bool AckStage::on_idle(std::int64_t) noexcept {
  completer_.end_of_batch();   // the turn's acks leave in one write (NATS write mode batch)
  if (store_) store_->poll();  // after a batch its marks leave in one write; replies, reconnect timers
  return false;
}

void AckStage::on_shutdown() noexcept {
  // Send what is buffered: acks to NATS, marks to Redis (bounded wait).
  completer_.end_of_batch();
  completer_.flush(std::chrono::milliseconds(2000));
  const std::int64_t deadline = now_ns() + 1'000'000'000LL;
  while (store_ && store_->awaiting_reply() > 0 && store_->ready() && now_ns() < deadline) store_->poll();
  if (store_) store_->close();
}

}  // namespace cdc
