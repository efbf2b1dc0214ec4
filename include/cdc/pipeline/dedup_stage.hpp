#pragma once
/// Dedup stage: the first phase of CONTRACT.md section 5. For each publishable event it sends
/// a claim (`SET <prefix><event_id> p NX GET EX <pending_ttl>`, dedup_protocol.hpp) on its own
/// DedupStore, pipelined over the batch, and forwards events in order once their replies are in.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cdc/core/config.hpp"
#include "cdc/core/metrics.hpp"
#include "cdc/core/dedup_protocol.hpp"
#include "cdc/pipeline/ports.hpp"
#include "cdc/pipeline/stage.hpp"

namespace cdc {

class DedupStage {
 public:
  /// `store` (null when dedup is disabled) is the stage's own connection, used on its thread.
  /// `completer` (may be null) sends in-progress signals for events held long (Redis down).
  DedupStage(const Config& config, DedupStore* store, Link in, Link out, std::atomic<bool>& done, Lifecycle& life,
             Metrics& metrics, Completer* completer = nullptr);
  void run() noexcept;
  /// Any thread: is the dedup connection up (or dedup disabled)?
  [[nodiscard]] bool redis_up() const noexcept;
  /// Any thread: the dedup connection, for its up/reconnect counters (nullptr when dedup is off).
  [[nodiscard]] const DedupStore* store() const noexcept { return store_; }

 private:
  static void on_reply(void* owner, void* tag, const RedisReply& reply);
  void send(Event& ev) noexcept;
  void resolve(Event& ev, DedupResult result) noexcept;
  int forward_ready() noexcept;
  void resend_unsent() noexcept;
  void check_overdue() noexcept;

  const Config& config_;
  Link in_;
  Link out_;
  std::atomic<bool>& done_;
  Lifecycle& life_;
  Metrics& metrics_;
  DedupStore* store_;
  DedupProtocol protocol_;
  // Events taken from `in` and not yet forwarded, in order (a ring of the pool's size).
  std::vector<Event*> fifo_;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
  std::vector<std::int64_t> sent_ns_;  // by event index; 0 = not sent
  std::size_t outstanding_ = 0;
  std::size_t unsent_ = 0;  // block policy: events whose command failed, to send again
  std::int64_t last_resend_ns_ = 0;
  bool block_ = false;
  KeepAlive keep_alive_;
};

}  // namespace cdc
