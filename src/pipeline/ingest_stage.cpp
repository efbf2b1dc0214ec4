#include "cdc/pipeline/ingest_stage.hpp"

#include <algorithm>

#include "cdc/core/internal_error.hpp"
#include "cdc/core/jetstream_meta.hpp"

namespace cdc {
namespace {
constexpr auto kIdleWait = std::chrono::milliseconds(100);
}

IngestStage::IngestStage(const Config& config, MessageSource& source, Link free_slots, Link out,
                         std::atomic<bool>& done, Lifecycle& life, Metrics& metrics)
    : config_(config),
      source_(source),
      free_(free_slots),
      out_(out),
      done_(done),
      life_(life),
      metrics_(metrics),
      max_deliver_(config.ingest.max_deliver),
      batch_(static_cast<std::size_t>(config.pipeline.batch_size)) {}

void IngestStage::take(const SourceMessage& msg) noexcept {
  Event* ev = nullptr;
  // The batch was sized to the free slots; nothing else pops this ring.
  if (!free_.ring->try_pop(ev)) on_internal_error("no free slot for a message the batch was sized for");
  ev->source = msg;
  ev->received_ns = ev->progress_ns = now_ns();
  AckSubjectInfo info;
  if (!msg.reply.empty() && parse_ack_subject(msg.reply, info)) {
    ev->stream_seq = info.stream_seq;
    ev->deliveries = info.deliveries;
  }
  ev->last_delivery = max_deliver_ > 0 && ev->deliveries >= static_cast<std::uint32_t>(max_deliver_);
  push_or_die(*out_.ring, ev);
}

void IngestStage::run() noexcept {
  setup_stage_thread("cdc-ingest", config_.pipeline.cpu.at("ingest"));
  const auto stopping = [this] { return life_.stop_intake.load(std::memory_order_relaxed); };
  while (!stopping()) {
    const std::size_t free_slots = free_.ring->size();
    if (free_slots == 0) {
      // Back-pressure: every slot is in flight.
      free_.waiter->wait_for([this, &stopping] { return free_.ring->front() != nullptr || stopping(); }, kIdleWait);
      continue;
    }
    const int max = static_cast<int>(std::min(free_slots, batch_.size()));
    const int n = source_.next_batch(batch_.data(), max, kIdleWait);
    if (n < 0) {
      // The source logged it; do not spin on a broken connection.
      free_.waiter->wait_for(stopping, kIdleWait);
      continue;
    }
    for (int i = 0; i < n; ++i) take(batch_[static_cast<std::size_t>(i)]);
    if (n > 0) out_.waiter->notify();  // end of batch
  }
  source_.stop();
  done_.store(true, std::memory_order_release);
  out_.waiter->notify();
  (void)metrics_;
}

}  // namespace cdc
