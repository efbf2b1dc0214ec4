#include "cdc/pipeline/ingest_stage.hpp"

#include <algorithm>

#include "cdc/core/internal_error.hpp"
#include "cdc/core/jetstream_meta.hpp"

namespace cdc {

IngestStage::IngestStage(StageContext& ctx, MessageSource& source)
    : ctx_(ctx),
      source_(source),
      max_deliver_(ctx.config.ingest.max_deliver),
      batch_(static_cast<std::size_t>(ctx.config.pipeline.batch_size)) {}

bool IngestStage::stopping() const noexcept { return ctx_.life.stop_intake.load(std::memory_order_relaxed); }

void IngestStage::take(const SourceMessage& msg) noexcept {
  Event* ev = nullptr;
  // The batch was sized to the free slots; nothing else pops this ring.
  if (!ctx_.in.ring->try_pop(ev)) on_internal_error("no free slot for a message the batch was sized for");
  ev->source = msg;
  ev->received_ns = ev->progress_ns = now_ns();
  AckSubjectInfo info;
  if (!msg.reply.empty() && parse_ack_subject(msg.reply, info)) {
    ev->stream_seq = info.stream_seq;
    ev->deliveries = info.deliveries;
  }
  ev->last_delivery = max_deliver_ > 0 && ev->deliveries >= static_cast<std::uint32_t>(max_deliver_);
  ctx_.emit(*ev);
}

bool IngestStage::intake(std::chrono::milliseconds wait) noexcept {
  const std::size_t free_slots = ctx_.in.ring->size();
  starved_ = free_slots == 0;
  if (free_slots == 0 || stopping()) return false;  // back-pressure: every slot is in flight
  const int max = static_cast<int>(std::min(free_slots, batch_.size()));
  const int n = source_.next_batch(batch_.data(), max, wait);
  if (n < 0) {
    // The source logged it; do not spin on a broken connection.
    ctx_.in.waiter->wait_for([this] { return stopping(); }, wait.count() > 0 ? wait : kStageIdleTimeout);
    return false;
  }
  for (int i = 0; i < n; ++i) take(batch_[static_cast<std::size_t>(i)]);
  return n > 0;
}

bool IngestStage::on_idle(std::int64_t) noexcept { return intake(std::chrono::milliseconds(0)); }

bool IngestStage::ready() const noexcept {
  // Only a slot coming back after the pool ran dry is news: with free slots, whether there is
  // work depends on the source, which wait_outside() (or the next turn's poll) asks.
  return stopping() || (starved_ && ctx_.in.ring->front() != nullptr);
}

bool IngestStage::waits_outside() const noexcept { return !stopping() && ctx_.in.ring->front() != nullptr; }

void IngestStage::wait_outside(std::chrono::nanoseconds timeout) noexcept {
  intake(std::chrono::ceil<std::chrono::milliseconds>(timeout));
  if (ctx_.pushed) {
    ctx_.pushed = false;
    ctx_.out.waiter->notify();  // end of batch
  }
}

bool IngestStage::finished(bool) const noexcept { return stopping(); }

void IngestStage::on_shutdown() noexcept { source_.stop(); }

}  // namespace cdc
