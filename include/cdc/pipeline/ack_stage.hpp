#pragma once
/// Ack stage: completes source messages strictly in delivery order (ack, NAK with delay, or
/// term after dead-lettering), writes the dedup 'd' marks and removals on its own Redis
/// connection (pipelined, never awaited), records per-event metrics and returns the slot.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "cdc/core/config.hpp"
#include "cdc/core/metrics.hpp"
#include "cdc/pipeline/ports.hpp"
#include "cdc/adapters/redis/resp.hpp"
#include "cdc/pipeline/stage.hpp"

struct uv_loop_s;

namespace cdc {

class RedisConnection;

class AckStage {
 public:
  AckStage(const Config& config, Completer& completer, Link in, Link free_slots, std::atomic<bool>& done,
           Lifecycle& life, Metrics& metrics);
  ~AckStage();
  void run() noexcept;
  /// Any thread: source messages completed so far.
  [[nodiscard]] std::uint64_t completed() const noexcept { return completed_.load(std::memory_order_relaxed); }
  /// Any thread: steady-clock ns of the last completion (0 = none yet).
  [[nodiscard]] std::int64_t last_completion_ns() const noexcept {
    return last_completion_ns_.load(std::memory_order_relaxed);
  }
  /// Any thread: the mark connection, for its up/reconnect counters (nullptr when dedup is off).
  [[nodiscard]] const RedisConnection* redis() const noexcept { return redis_.get(); }

 private:
  void complete(Event& ev) noexcept;
  void redis_mark(const Event& ev) noexcept;
  static void on_reply(void* owner, void* tag, const RedisReply& reply);

  const Config& config_;
  Completer& completer_;
  Link in_;
  Link free_;
  std::atomic<bool>& done_;
  Lifecycle& life_;
  Metrics& metrics_;
  std::unique_ptr<uv_loop_s> loop_;
  std::unique_ptr<RedisConnection> redis_;
  std::string key_;
  std::string ttl_seconds_;
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::int64_t> last_completion_ns_{0};
};

}  // namespace cdc
