#pragma once
/// Ack stage: completes source messages strictly in delivery order (ack, NAK with delay, or
/// term after dead-lettering) as the publish stage decided, writes the dedup 'd' marks and
/// removals on its own DedupStore (pipelined, never awaited; a batch's marks in one function
/// call when the store offers it), records per-event metrics and returns the slot.

#include <atomic>
#include <cstdint>

#include "cdc/core/dedup_protocol.hpp"
#include "cdc/pipeline/ports.hpp"
#include "cdc/pipeline/stage_runner.hpp"

namespace cdc {

class AckStage final : public StageHandler {
 public:
  /// `ctx.out` is the ring of free slots. `store` (null when dedup is disabled) is the stage's
  /// own mark connection. Throws std::invalid_argument when dedup is enabled without a store.
  AckStage(StageContext& ctx, Completer& completer, DedupStore* store);

  void on_start() noexcept override;
  void on_event(Event& ev, bool end_of_batch) noexcept override;
  /// Reconnect timers and mark replies.
  bool on_idle(std::int64_t now) noexcept override;
  /// Sends what is buffered: completions to JetStream, marks to Redis (bounded waits).
  void on_shutdown() noexcept override;

  /// Any thread: source messages completed so far.
  [[nodiscard]] std::uint64_t completed() const noexcept { return completed_.load(std::memory_order_relaxed); }
  /// Any thread: steady-clock ns of the last completion (0 = none yet).
  [[nodiscard]] std::int64_t last_completion_ns() const noexcept {
    return last_completion_ns_.load(std::memory_order_relaxed);
  }
  /// Any thread: the mark connection, for its up/reconnect counters (nullptr when dedup is off).
  [[nodiscard]] const DedupStore* store() const noexcept { return store_; }

 private:
  void complete(Event& ev) noexcept;
  void redis_mark(const Event& ev) noexcept;
  /// Sends the done marks gathered since the last call as one function call.
  void send_marks() noexcept;
  static void on_reply(void* owner, void* tag, const RedisReply& reply);

  StageContext& ctx_;
  Completer& completer_;
  DedupStore* store_;
  DedupProtocol protocol_;
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::int64_t> last_completion_ns_{0};
};

}  // namespace cdc
