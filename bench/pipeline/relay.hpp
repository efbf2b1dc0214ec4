#pragma once
/// The bare relay of FIELD-NOTES.md, the baseline of the drain target: pull fetch from the
/// source stream, asynchronous publish of each body (with its Nats-Msg-Id) to the output stream,
/// ack of each source message in delivery order once its PubAck arrived. No parsing, no Redis.
/// Two connections (consume + ack, publish), like the service.
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
  std::string filter = "cdc.*.*";
  std::string out_subject = "wa.relay";
  int fetch_batch = 256;
  int max_ack_pending = 5000;
  int publish_window = 1000;  ///< async publishes awaiting their PubAck
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

 private:
  struct Slot {
    natsMsg* source = nullptr;                 // relay thread only
    std::atomic<natsMsg*> published{nullptr};  // written by the relay thread, compared by the PubAck thread
    std::atomic<bool> done{false};             // set by the PubAck thread
  };
  static void on_puback(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* self) noexcept;
  void run() noexcept;
  /// Relay thread: acks and frees the done slots at the head, in order. Returns how many.
  std::uint64_t ack_in_order() noexcept;

  RelayOptions options_;
  std::unique_ptr<NatsClient> consume_;
  natsConnection* publish_conn_ = nullptr;
  jsCtx* publish_js_ = nullptr;
  natsSubscription* sub_ = nullptr;
  std::vector<Slot> slots_;  // FIFO of source messages in delivery order
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

}  // namespace cdc::bench
