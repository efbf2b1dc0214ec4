#pragma once
/// The bare relay of issue 14, the baseline of the drain and latency targets: the broker-side
/// work the contract asks for and nothing else.
///
///   - ONE nats.c connection: fetches, publishes, PubAcks and acks all go over it; IO buffer
///     256 KiB (natsOptions_SetIOBufSize). Two variants: nats.c's default flusher (the
///     "batching relay": a publish is written when the flusher thread wakes, ~1 ms, or the buffer
///     fills) and natsOptions_SetSendAsap(true) (the "eager relay": every publish and ack is
///     written at once).
///   - Pull fetches of 1 000 with no-wait while busy; when a no-wait fetch returns nothing and no
///     PubAck is awaited, a one-message fetch that waits (1 s expiry), as the service's PullSource
///     (src/adapters/nats/jetstream_ports.cpp) does. While PubAcks are awaited and the stream has
///     nothing new, the relay thread waits for the head's PubAck instead (acks are its job too).
///   - Each body published asynchronously (16 384 in flight) to `<prefix>.<company>.<table>`
///     (tokens 2 and 3 of the source subject `cdc.<company>.<table>`; a missing token is `_`)
///     with the source's `Nats-Msg-Id` header copied.
///   - Each source message acked in delivery order once its PubAck arrived. No parsing, no Redis.
///
/// The durable pull consumer it creates has no filter (every subject of the stream, like the
/// service's default) and MaxAckPending = publish window + fetch batch, so the publish window,
/// not the consumer, bounds what is in flight.
///
/// Thread contract: construct, start() and stop() on one thread. The relay thread owns every
/// source message (fetch, publish, ack, destroy); nats.c's PubAck thread only marks slots done
/// (natsMsg has no locking: one owner thread per message).

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cdc/core/wait_strategy.hpp"
#include "pipeline/js_tools.hpp"

namespace cdc::bench {

struct RelayOptions {
  std::string url;
  std::string stream = "cdc_events_stream";
  std::string consumer = "bench_relay";
  std::string out_prefix = "wa";  ///< published to <out_prefix>.<company>.<table>
  bool send_asap = false;         ///< false: batching relay (nats.c's flusher); true: eager relay
  int io_buffer_bytes = 256 * 1024;
  int fetch_batch = 1000;
  std::int64_t idle_fetch_expires_ms = 1000;  ///< the one-message fetch that waits when idle
  int publish_window = 16384;                 ///< async publishes awaiting their PubAck
};

class Relay {
 public:
  /// Connects and creates the durable pull consumer (deliver all). Throws std::runtime_error.
  explicit Relay(RelayOptions options);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  void start();
  /// Stops fetching, acks what was published (bounded wait), deletes the consumer.
  void stop();

  /// Any thread. acquire: pairs with the relay thread's release, so last_ack_ns() is as new.
  [[nodiscard]] std::uint64_t acked() const noexcept { return acked_.load(std::memory_order_acquire); }
  [[nodiscard]] std::int64_t last_ack_ns() const noexcept { return last_ack_ns_.load(std::memory_order_relaxed); }
  /// Publishes that failed (PubAck error, or the publish call itself); their sources are acked anyway.
  [[nodiscard]] std::uint64_t publish_errors() const noexcept {
    return publish_errors_.load(std::memory_order_relaxed);
  }
  /// "batching" or "eager".
  [[nodiscard]] const char* variant() const noexcept { return options_.send_asap ? "eager" : "batching"; }

 private:
  struct Slot {
    natsMsg* source = nullptr;                 // relay thread only
    std::atomic<natsMsg*> published{nullptr};  // written by the relay thread, compared by the PubAck thread
    std::atomic<bool> done{false};             // set by the PubAck thread
  };
  static void on_puback(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* self) noexcept;
  void run() noexcept;
  /// Relay thread: publishes `src` to its mapped subject and queues it for its in-order ack.
  void relay_one(natsMsg* src) noexcept;
  /// Relay thread: acks and frees the done slots at the head, in order. Returns how many.
  std::uint64_t ack_in_order() noexcept;

  RelayOptions options_;
  natsConnection* conn_ = nullptr;
  jsCtx* js_ = nullptr;              // the pull subscription, consumer management
  jsCtx* pub_js_ = nullptr;          // async publishes (same connection)
  natsSubscription* sub_ = nullptr;  // <inbox>.*: what the pull requests bring
  std::string inbox_;
  std::string request_subject_;  // $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>
  std::string reply_;            // relay thread: the open request's reply subject
  std::uint64_t request_seq_ = 0;
  std::vector<Slot> slots_;  // FIFO of source messages in delivery order
  std::string subject_;      // relay thread: the output subject being built
  // Both indices are written by the relay thread only; the PubAck thread reads them.
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  alignas(64) std::atomic<std::uint64_t> head_{0};
  WaitStrategy puback_waiter_{WaitStrategyKind::kBlocking};  // the relay thread waits here for PubAcks
  std::atomic<std::uint64_t> acked_{0};
  std::atomic<std::int64_t> last_ack_ns_{0};
  std::atomic<std::uint64_t> publish_errors_{0};
  // PubAck callbacks running now: stop() waits for 0 so none touches a destroyed Relay.
  std::atomic<int> callbacks_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// `<prefix>.<token 2>.<token 3>` of `subject` into `out` (a missing token is `_`): the relay's
/// output subject for a source subject `cdc.<company>.<table>`.
void relay_subject(std::string_view prefix, std::string_view subject, std::string& out);

}  // namespace cdc::bench
