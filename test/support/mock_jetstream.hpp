#pragma once
/// In-process mocks of the pipeline's JetStream ports (cdc/pipeline/ports.hpp), for the bench's
/// in-process mode and the pipeline stress test (test/stress).
///
///   MockSource     delivers natsMsg handles made with natsMsg_Create from a MessageFeed, with a
///                  JetStream ack reply subject (so delivery metadata parses) and Nats-Msg-Id;
///                  at maximum rate (closed loop: as fast as ingest asks) or at a fixed rate
///                  (open loop: message i is due at start + i/rate, and that intended time is
///                  what its latency is measured from, so a stall cannot hide queued work).
///   MockCompleter  records ingest -> completion latency per message (from the send-time side
///                  table, keyed by stream sequence) and counts ack / nak / term.
///   MockPublisher  hands each publish to a mock JetStream thread that answers a PubAck through
///                  the sink after a fixed delay, with injected transient 503 failures and
///                  Nats-Msg-Id duplicate detection like a stream's duplicate window.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cdc/pipeline/ports.hpp"
#include "cdc/pipeline/source_message.hpp"

typedef struct __natsMsg natsMsg;  // NOLINT: nats.c's own typedef (the mock's messages are natsMsg)
namespace cdc::mocks {

/// Where MockSource's messages come from (the bench: a capture corpus; tests: generated rows).
class MessageFeed {
 public:
  virtual ~MessageFeed() = default;
  /// Message `i` (0-based): views valid until the next call; `subject` must be NUL-terminated
  /// (it points into a std::string); an empty `msg_id` publishes without Nats-Msg-Id.
  virtual void message(std::uint64_t i, std::string_view& subject, std::string_view& body,
                       std::string_view& msg_id) noexcept = 0;
};

/// Receives each final outcome's delivery -> completion latency (ack thread).
class LatencySink {
 public:
  virtual ~LatencySink() = default;
  virtual void record(std::int64_t ns) noexcept = 0;
};

/// Creation (max rate) or intended send time (fixed rate) of each message, by stream sequence.
/// Written by the source on the ingest thread, read by the completer on the ack thread; the
/// rings between them order the accesses. Allocated once, before the run.
class SendTimes {
 public:
  explicit SendTimes(std::uint64_t events) : ns_(events + 1, 0) {}
  void set(std::uint64_t seq, std::int64_t ns) noexcept { ns_[seq] = ns; }
  [[nodiscard]] std::int64_t get(std::uint64_t seq) const noexcept { return seq < ns_.size() ? ns_[seq] : 0; }

 private:
  std::vector<std::int64_t> ns_;
};

class MockSource final : public MessageSource {
 public:
  /// `rate` messages/s; 0 = as fast as ingest takes them.
  MockSource(MessageFeed& feed, std::uint64_t events, double rate, SendTimes& times);
  int next_batch(SourceMessage* out, int max, std::chrono::milliseconds wait) noexcept override;
  void stop() noexcept override {}

  /// Any thread: starts delivering (until then next_batch() returns nothing), so the run starts
  /// once the pipeline's Redis connections are up.
  void release() noexcept { go_.store(true, std::memory_order_release); }
  /// Any thread.
  [[nodiscard]] std::uint64_t produced() const noexcept { return produced_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t first_ns() const noexcept { return first_ns_.load(std::memory_order_relaxed); }
  /// CPU time spent making messages (natsMsg_Create, headers, bodies), ns; read after the run.
  [[nodiscard]] std::int64_t make_ns() const noexcept { return make_ns_; }

 private:
  natsMsg* make(std::uint64_t i, std::int64_t stamp) noexcept;

  MessageFeed& feed_;
  std::uint64_t events_;
  double period_ns_;  // 0 = max rate
  SendTimes& times_;
  std::string reply_;
  std::string msg_id_;  // NUL-terminated copy for natsMsgHeader_Set
  std::uint64_t next_ = 0;
  std::int64_t start_ns_ = 0;
  std::int64_t make_ns_ = 0;
  std::atomic<std::uint64_t> produced_{0};
  std::atomic<std::int64_t> first_ns_{0};
  std::atomic<bool> go_{false};
};

class MockCompleter final : public Completer {
 public:
  /// `latency` may be null.
  MockCompleter(const SendTimes& times, LatencySink* latency) : times_(times), latency_(latency) {}
  bool ack(const SourceMessage& msg) noexcept override { return complete(msg, acks_); }
  bool nak(const SourceMessage& msg, std::int64_t) noexcept override { return complete(msg, naks_); }
  bool term(const SourceMessage& msg) noexcept override { return complete(msg, terms_); }
  bool in_progress(const SourceMessage&) noexcept override {
    in_progress_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  void flush(std::chrono::milliseconds) noexcept override {}

  /// Any thread.
  [[nodiscard]] std::uint64_t completed() const noexcept { return completed_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t last_ns() const noexcept { return last_ns_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t acks() const noexcept { return acks_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t naks() const noexcept { return naks_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t terms() const noexcept { return terms_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t in_progress_signals() const noexcept {
    return in_progress_.load(std::memory_order_relaxed);
  }

 private:
  bool complete(const SourceMessage& msg, std::atomic<std::uint64_t>& counter) noexcept;

  const SendTimes& times_;
  LatencySink* latency_;  // called on the ack thread only
  std::atomic<std::uint64_t> acks_{0}, naks_{0}, terms_{0}, in_progress_{0}, completed_{0};
  std::atomic<std::int64_t> last_ns_{0};
};

class MockPublisher final : public Publisher {
 public:
  struct Options {
    std::chrono::microseconds puback_delay{0};
    double fail_pct = 0;                         ///< share of PubAcks answered with a 503 (transient)
    std::uint64_t expected_publishes = 1 << 20;  ///< sizes the duplicate table
    /// Called on the mock JetStream thread for each message stored (not for duplicates), in
    /// store order, with id_hash() of its Nats-Msg-Id; may be null.
    void (*on_stored)(void* context, std::uint64_t msg_id_hash) = nullptr;
    void* on_stored_context = nullptr;
  };
  explicit MockPublisher(Options options);
  ~MockPublisher() override;

  void set_sink(PubAckSink* sink) override;
  [[nodiscard]] const std::string& reply_prefix() const noexcept override { return prefix_; }
  [[nodiscard]] std::int64_t max_payload() const noexcept override { return 1 << 20; }
  Status publish(const std::string& subject, const std::string& reply, std::string_view payload,
                 const std::string& msg_id, std::string& error) noexcept override;

  struct Stats {
    std::uint64_t publishes = 0, bytes = 0, stored = 0, duplicates = 0, failures_injected = 0;
  };
  /// Any thread; exact after the pipeline stopped.
  [[nodiscard]] Stats stats() const noexcept;
  /// The hash the duplicate window and on_stored use for a Nats-Msg-Id.
  [[nodiscard]] static std::uint64_t id_hash(std::string_view msg_id) noexcept;

 private:
  struct Impl;
  void respond_loop() noexcept;

  std::unique_ptr<Impl> impl_;
  std::string prefix_ = "_MOCK_PUBACK.bench";
  PubAckSink* sink_ = nullptr;
  std::thread thread_;
};

}  // namespace cdc::mocks
