#pragma once
/// The harness's own NATS side for the end-to-end modes (nats.c directly, not the service's
/// adapter): connections, stream set-up, publishing a backlog, publishing at a fixed rate with
/// send stamps, and a core-NATS subscriber that turns stamps into a latency histogram.

#include <nats/nats.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/corpus.hpp"
#include "common/log_histogram.hpp"

namespace cdc::bench {

/// Throws std::runtime_error with nats.c's text unless s == NATS_OK.
void check_nats(natsStatus s, const std::string& what);

/// One connection of the harness and its JetStream context. `max_pending` bounds async publishes
/// in flight. Its threads are marked as the harness's (thread_cpu.hpp): construct it before the
/// consumer under test starts threads of its own.
class NatsClient {
 public:
  NatsClient(const std::string& url, const std::string& name, int max_pending = 1000, bool send_asap = false);
  ~NatsClient();
  NatsClient(const NatsClient&) = delete;
  NatsClient& operator=(const NatsClient&) = delete;
  [[nodiscard]] natsConnection* conn() const noexcept { return nc_; }
  [[nodiscard]] jsCtx* js() const noexcept { return js_; }
  /// Async publishes that failed (PubAck error or timeout).
  [[nodiscard]] std::uint64_t publish_errors() const noexcept { return errors_.load(std::memory_order_relaxed); }

 private:
  static void on_puback(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* self) noexcept;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  std::atomic<std::uint64_t> errors_{0};
};

/// Deletes the stream when it exists and creates it empty (file storage, like the service).
void recreate_stream(jsCtx* js, const std::string& name, const std::vector<std::string>& subjects,
                     std::int64_t duplicate_window_ns);
/// Creates the stream when missing (file storage).
void ensure_stream(jsCtx* js, const std::string& name, const std::vector<std::string>& subjects,
                   std::int64_t duplicate_window_ns);
void purge_stream(jsCtx* js, const std::string& name);
/// Messages stored in the stream now.
std::uint64_t stream_messages(jsCtx* js, const std::string& name);

/// Publishes messages [0, count) of the corpus replay at `first_pass`, asynchronously with the
/// client's bounded window, and waits for every PubAck. Returns the elapsed seconds.
double publish_backlog(NatsClient& client, const Corpus& corpus, std::uint64_t first_pass, std::uint64_t count);

/// Open-loop publisher: message i is due at start + i/rate; its body carries that intended time
/// as the stamp (steady clock ns), so latency counts from when it should have left.
struct RatePublishResult {
  std::uint64_t sent = 0;
  std::int64_t start_ns = 0;
  std::int64_t max_behind_ns = 0;  ///< worst lateness of a publish against its schedule
};
RatePublishResult publish_at_rate(NatsClient& client, const Corpus& corpus, std::uint64_t first_pass, double rate,
                                  double seconds);

/// Core-NATS subscriber on `subject`: reads the stamp from each message body and records
/// now - stamp for stamps at or after `record_from_ns` (settable later: record_from()). Its
/// threads are marked as the harness's, like NatsClient's.
class LatencySubscriber {
 public:
  /// `by_msg_id`: a message whose Nats-Msg-Id was seen before is counted as a repeat ("extra
  /// delivery"), not as an arrival (the service re-sends an event still in flight when its
  /// duplicate comes; JetStream stores it once, but a core subscriber sees both). The ids seen are
  /// kept as 64-bit hashes in a set reserved for `expected_ids` (no allocation per message below
  /// that; a false repeat needs a hash collision, ~n^2 / 2^65).
  LatencySubscriber(const std::string& url, const std::string& subject, std::int64_t record_from_ns,
                    bool by_msg_id = false, std::size_t expected_ids = 0);
  ~LatencySubscriber();
  LatencySubscriber(const LatencySubscriber&) = delete;
  LatencySubscriber& operator=(const LatencySubscriber&) = delete;
  /// Any thread.
  [[nodiscard]] std::uint64_t received() const noexcept { return received_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t repeats() const noexcept { return repeats_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t last_ns() const noexcept { return last_ns_.load(std::memory_order_relaxed); }
  /// Any thread: record stamps at or after `ns` from now on.
  void record_from(std::int64_t ns) noexcept { record_from_ns_.store(ns, std::memory_order_relaxed); }
  /// Stops the subscription; the histogram is complete afterwards.
  void close();
  [[nodiscard]] const LogHistogram& latency() const noexcept { return *latency_; }

 private:
  static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* self) noexcept;
  natsConnection* nc_ = nullptr;
  natsSubscription* sub_ = nullptr;
  std::atomic<std::int64_t> record_from_ns_;
  std::unique_ptr<LogHistogram> latency_;
  bool by_msg_id_;
  std::unordered_set<std::uint64_t> seen_;  // callback thread only: hashes of Nats-Msg-Id
  std::atomic<std::uint64_t> received_{0};
  std::atomic<std::uint64_t> repeats_{0};
  std::atomic<std::int64_t> last_ns_{0};
};

}  // namespace cdc::bench
