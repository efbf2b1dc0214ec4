#pragma once
/// Dedup stage: the first phase of CONTRACT.md section 5. For each publishable event it claims
/// the event (`SET <prefix><event_id> p NX GET EX <pending_ttl>`, dedup_protocol.hpp) on its own
/// DedupStore: the whole batch's claims in one function call when the store offers it
/// (dedup.batch), else one command per event, pipelined; and forwards events in order once their
/// replies are in.

#include <cstdint>
#include <memory>
#include <vector>

#include "cdc/core/dedup_protocol.hpp"
#include "cdc/pipeline/keep_alive.hpp"
#include "cdc/pipeline/ordered_window.hpp"
#include "cdc/pipeline/ports.hpp"
#include "cdc/pipeline/stage_runner.hpp"

namespace cdc {

class DedupStage final : public StageHandler {
 public:
  /// `store` (null when dedup is disabled) is the stage's own connection, used on its thread.
  /// `completer` (may be null) sends in-progress signals for events held long (Redis down).
  /// Throws std::invalid_argument when dedup is enabled without a store.
  DedupStage(StageContext& ctx, DedupStore* store, Completer* completer = nullptr);

  void on_start() noexcept override;
  [[nodiscard]] std::size_t accepting() const noexcept override;
  void on_event(Event& ev, bool end_of_batch) noexcept override;
  bool on_idle(std::int64_t now) noexcept override;
  [[nodiscard]] bool holding() const noexcept override { return !window_.empty(); }
  /// Claims awaiting their reply, or Redis awaited (block policy).
  [[nodiscard]] bool waits_outside() const noexcept override;
  void wait_outside(std::chrono::nanoseconds timeout) noexcept override;
  void on_shutdown() noexcept override;

  /// Any thread: is the dedup connection up (or dedup disabled)?
  [[nodiscard]] bool redis_up() const noexcept;
  /// Any thread: the dedup connection, for its up/reconnect counters (nullptr when dedup is off).
  [[nodiscard]] const DedupStore* store() const noexcept { return store_; }

 private:
  static void on_reply(void* owner, void* tag, const RedisReply& reply);
  [[nodiscard]] bool aborting() const noexcept { return ctx_.life.abort.load(std::memory_order_relaxed); }
  /// Block policy with Redis down: leave events in the ring (back-pressure reaches ingest).
  [[nodiscard]] bool hold() const noexcept;
  /// The claims of one function call: its events, in key order. From a pool sized to the
  /// window (a batch in flight holds at least one event of the window).
  struct ClaimBatch {
    std::vector<Event*> events;
    ClaimBatch* next_free = nullptr;
  };
  void send(Event& ev) noexcept;
  void send_failed(Event& ev) noexcept;
  /// End of a batch: its claims (gathered while the store offers functions) as one call.
  void send_batch() noexcept;
  void claim_reply(Event& ev, const RedisReply& reply) noexcept;
  [[nodiscard]] bool is_batch(const void* tag) const noexcept;
  void resolve(Event& ev, DedupResult result) noexcept;
  bool forward_ready() noexcept;
  void resend_unsent() noexcept;
  void check_overdue() noexcept;

  StageContext& ctx_;
  DedupStore* store_;
  DedupProtocol protocol_;
  OrderedWindow window_;               // taken from `in`, not yet forwarded, in order
  std::vector<std::int64_t> sent_ns_;  // by event index; 0 = not sent
  std::size_t awaiting_reply_ = 0;     // claims sent whose reply has not come
  std::size_t unsent_ = 0;             // block policy: events whose claim failed, to send again
  std::int64_t last_resend_ns_ = 0;
  std::vector<Event*> gathered_;  // this batch's claims awaiting its end (function calls)
  std::unique_ptr<ClaimBatch[]> batches_;
  std::size_t batch_count_ = 0;
  ClaimBatch* free_batches_ = nullptr;
  bool block_ = false;
  KeepAlive keep_alive_;
};

}  // namespace cdc
