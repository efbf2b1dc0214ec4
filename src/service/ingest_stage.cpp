#include "cdc/ingest_stage.hpp"

#include <algorithm>

#include "cdc/jetstream_meta.hpp"
#include "cdc/log.hpp"

namespace cdc {
namespace {
constexpr auto kIdleWait = std::chrono::milliseconds(100);
}

IngestStage::IngestStage(const Config& config, natsSubscription* sub, Link free_slots, Link out,
                         std::atomic<bool>& done, Lifecycle& life, Metrics& metrics) noexcept
    : config_(config), sub_(sub), free_(free_slots), out_(out), done_(done), life_(life), metrics_(metrics),
      max_deliver_(config.ingest.max_deliver) {}

void IngestStage::run() noexcept {
  setup_stage_thread("cdc-ingest", config_.pipeline.cpu.at("ingest"));
  if (config_.ingest.mode == IngestMode::kPush) run_push();
  else run_pull();
  nak_queued();
  out_.waiter->notify();
  done_.store(true, std::memory_order_release);
  out_.waiter->notify();
}

bool IngestStage::wait_free_slot() noexcept {
  return free_.waiter->wait_for(
      [this] { return free_.ring->front() != nullptr || life_.stop_intake.load(std::memory_order_relaxed); },
      kIdleWait) && free_.ring->front() != nullptr;
}

bool IngestStage::take(natsMsg* msg) noexcept {
  Event* ev = nullptr;
  if (!free_.ring->try_pop(ev)) return false;  // caller checked; cannot happen
  ev->msg = msg;
  ev->received_ns = now_ns();
  ev->subject = natsMsg_GetSubject(msg);
  ev->body = std::string_view(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
  AckSubjectInfo info;
  const char* reply = natsMsg_GetReply(msg);
  if (reply != nullptr && parse_ack_subject(reply, info)) {
    ev->stream_seq = info.stream_seq;
    ev->deliveries = info.deliveries;
  }
  ev->last_delivery = max_deliver_ > 0 && ev->deliveries >= static_cast<std::uint32_t>(max_deliver_);
  push_or_die(*out_.ring, ev);
  return true;
}

void IngestStage::run_push() noexcept {
  const int batch = config_.pipeline.batch_size;
  log::RateLimiter limiter;
  while (!life_.stop_intake.load(std::memory_order_relaxed)) {
    if (free_.ring->front() == nullptr && !wait_free_slot()) continue;
    natsMsg* msg = nullptr;
    natsStatus s = natsSubscription_NextMsg(&msg, sub_, kIdleWait.count());
    if (s == NATS_TIMEOUT) continue;
    if (s != NATS_OK) {
      std::uint64_t suppressed = 0;
      if (limiter.allow(suppressed)) {
        log::error("consume subscription error", {{"error", nats_error_text(s)}, {"suppressed", static_cast<unsigned long long>(suppressed)}});
      }
      free_.waiter->wait_for([this] { return life_.stop_intake.load(std::memory_order_relaxed); }, kIdleWait);
      continue;
    }
    take(msg);
    // Drain what is already queued, up to a batch, then wake the parse stage once.
    for (int n = 1; n < batch && free_.ring->front() != nullptr; ++n) {
      msg = nullptr;
      if (natsSubscription_NextMsg(&msg, sub_, 0) != NATS_OK || msg == nullptr) break;
      take(msg);
    }
    out_.waiter->notify();
  }
}

void IngestStage::run_pull() noexcept {
  log::RateLimiter limiter;
  bool idle = false;
  while (!life_.stop_intake.load(std::memory_order_relaxed)) {
    if (free_.ring->front() == nullptr && !wait_free_slot()) continue;
    const auto free_slots = static_cast<int>(std::min<std::size_t>(free_.ring->size(), static_cast<std::size_t>(config_.ingest.fetch_batch)));
    jsFetchRequest req;
    jsFetchRequest_Init(&req);
    // Busy: take what is there now. Idle: wait for the first message, not for a full batch.
    req.Batch = idle ? 1 : std::max(1, free_slots);
    req.NoWait = !idle;
    req.Expires = static_cast<std::int64_t>(config_.ingest.fetch_expires.count()) * 1'000'000;
    natsMsgList list{nullptr, 0};
    const natsStatus s = natsSubscription_FetchRequest(&list, sub_, &req);
    if (list.Count > 0) {
      for (int i = 0; i < list.Count; ++i) {
        take(list.Msgs[i]);
        list.Msgs[i] = nullptr;  // now owned by the event
      }
      out_.waiter->notify();
      idle = false;
    } else if (s == NATS_TIMEOUT || s == NATS_NOT_FOUND || s == NATS_OK) {
      idle = true;
    } else {
      std::uint64_t suppressed = 0;
      if (limiter.allow(suppressed)) {
        log::error("fetch failed", {{"error", nats_error_text(s)}, {"suppressed", static_cast<unsigned long long>(suppressed)}});
      }
      free_.waiter->wait_for([this] { return life_.stop_intake.load(std::memory_order_relaxed); }, kIdleWait);
    }
    natsMsgList_Destroy(&list);
  }
}

void IngestStage::nak_queued() noexcept {
  if (config_.ingest.mode != IngestMode::kPush) return;
  // Messages nats.c already queued for us would otherwise wait AckWait for redelivery.
  int naked = 0;
  natsMsg* msg = nullptr;
  while (natsSubscription_NextMsg(&msg, sub_, 0) == NATS_OK && msg != nullptr) {
    natsMsg_Nak(msg, nullptr);
    natsMsg_Destroy(msg);
    msg = nullptr;
    ++naked;
  }
  natsSubscription_Unsubscribe(sub_);
  if (naked > 0) log::info("intake stopped; queued messages returned", {{"naked", naked}});
}

}  // namespace cdc
