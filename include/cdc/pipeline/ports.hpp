#pragma once
/// The pipeline's boundaries, as interfaces: where source messages come from (MessageSource),
/// how they are completed (Completer), where events go (Publisher), the dedup marks
/// (DedupStore) and what the monitor, health and metrics read about the connections
/// (ConnectionMonitor). The service plugs the adapters of src/adapters (NATS, Redis; built by
/// make_service_ports, cdc/adapters/service_ports.hpp); tests and bench/ plug in-process mocks.
/// No client-library type crosses these: a source message is a SourceMessage (opaque handle plus
/// views), a store reply a RedisReply (cdc/core).

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "cdc/core/dedup_protocol.hpp"
#include "cdc/pipeline/source_message.hpp"

namespace cdc {

class Metrics;

/// Source of delivered messages. Thread: the ingest stage only (start/stop from the wiring).
class MessageSource {
 public:
  virtual ~MessageSource() = default;
  /// Fills `out` with up to `max` messages (ownership passes to the caller, who releases each
  /// once completed); waits at most `wait` for the first one. Returns the count (0 on timeout,
  /// -1 on an error the source logged).
  virtual int next_batch(SourceMessage* out, int max, std::chrono::milliseconds wait) noexcept = 0;
  /// Intake stops: give back what was delivered to us but not taken (NAK), stop deliveries.
  virtual void stop() noexcept = 0;
};

/// Completion of source messages. Thread: the ack stage only.
class Completer {
 public:
  virtual ~Completer() = default;
  /// Each returns false when the completion could not be sent (logged by the caller).
  virtual bool ack(const SourceMessage& msg) noexcept = 0;
  virtual bool nak(const SourceMessage& msg, std::int64_t delay_ms) noexcept = 0;
  virtual bool term(const SourceMessage& msg) noexcept = 0;
  /// "Still working on it": resets the message's AckWait. Unlike the others this may be called
  /// by whichever stage thread holds the message at the time.
  virtual bool in_progress(const SourceMessage& msg) noexcept = 0;
  /// Sends what is buffered (end of the drain); bounded by `timeout`.
  virtual void flush(std::chrono::milliseconds timeout) noexcept = 0;
  /// Ack stage, after each turn: writes what its ack(), nak() and term() calls of the turn left
  /// buffered (NATS write mode batch: one write per batch). A no-op where each call is written
  /// by itself.
  virtual void end_of_batch() noexcept {}
};

/// Receiver of PubAcks: the publish stage. Called on the publisher's single callback thread.
class PubAckSink {
 public:
  virtual ~PubAckSink() = default;
  /// `reply_subject` is the reply subject the publish carried; `body` the PubAck JSON (empty for
  /// no responders).
  virtual void on_puback(std::string_view reply_subject, std::string_view body, bool no_responders) noexcept = 0;
};

/// Asynchronous JetStream publisher. Thread: the publish stage calls publish(); PubAcks arrive
/// through the sink on another thread, one call at a time.
///
/// A publisher may have two lanes (publish.write_mode adaptive): an eager one that writes each
/// publish at once, and a batching one that gathers what comes within about a millisecond into
/// one write. The publish stage chooses the lane and changes it only while nothing it published
/// awaits a PubAck, so what it published on one lane is stored before anything on the other.
class Publisher {
 public:
  enum class Status : std::uint8_t { kOk, kTooLarge, kFailed };
  virtual ~Publisher() = default;
  /// Where PubAcks go; set once before the first publish.
  virtual void set_sink(PubAckSink* sink) = 0;
  /// Prefix of reply subjects; PubAcks for "<prefix>.<anything>" reach the sink.
  [[nodiscard]] virtual const std::string& reply_prefix() const noexcept = 0;
  /// The largest payload the broker accepts (0 = unknown).
  [[nodiscard]] virtual std::int64_t max_payload() const noexcept = 0;
  /// Sends one message with header Nats-Msg-Id; `error` gets a reason on failure.
  virtual Status publish(const std::string& subject, const std::string& reply, std::string_view payload,
                         const std::string& msg_id, std::string& error) noexcept = 0;
  /// Publish stage, after each turn: writes what its publish() calls of the turn left buffered
  /// (NATS write mode batch: the whole batch in one write, at once). A no-op where each publish
  /// is written by itself.
  virtual void end_of_batch() noexcept {}
  /// Has a batching lane besides the eager one (see above).
  [[nodiscard]] virtual bool has_batching_lane() const noexcept { return false; }
  /// Publish stage: the lane of the publishes from now on (eager at first). reply_prefix() is
  /// the lane's: its PubAcks come back on that lane's connection.
  virtual void use_batching_lane(bool batching) noexcept { (void)batching; }
};

/// One connection to the dedup store (Redis), with the event loop that drives it hidden inside.
/// Thread: the stage that owns it (one store per stage), except the "any thread" readers.
/// Replies come in command order through the handler, only from inside poll() or wait().
/// The connection reconnects by itself with backoff; commands sent while it is down fail.
class DedupStore {
 public:
  /// Called once per accepted command, in order: its reply, or RedisReply::Type::kLost when the
  /// connection dropped (or was reset or closed) first.
  using ReplyFn = void (*)(void* owner, void* tag, const RedisReply& reply);
  virtual ~DedupStore() = default;

  /// Where replies go; set once, before start().
  virtual void set_handler(ReplyFn on_reply, void* owner) noexcept = 0;
  /// Starts connecting (on the owning stage's thread).
  virtual void start() noexcept = 0;
  /// Queues a command, written at the next poll() or wait(); false when not connected (no reply).
  virtual bool send(const DedupCommand& command, void* tag) noexcept = 0;
  /// True while a batch of claims or done marks may go as one function call (send_batch()):
  /// dedup.batch allows it and the connection has the function library. False: per-key
  /// commands (send()). May change when the connection does.
  [[nodiscard]] virtual bool functions() const noexcept { return false; }
  /// Queues one function call over a batch (DedupProtocol::batch_command()); its reply (an
  /// array with one element per key for claims) comes once, like send()'s. False when not
  /// connected or functions() is false (no reply).
  virtual bool send_batch(std::span<const std::string_view> args, void* tag) noexcept {
    (void)args;
    (void)tag;
    return false;
  }
  /// Connected, authenticated and ready for commands.
  [[nodiscard]] virtual bool ready() const noexcept = 0;
  /// Commands accepted whose reply has not come yet (Redis commands awaiting a reply).
  [[nodiscard]] virtual std::size_t awaiting_reply() const noexcept = 0;
  /// Drops the connection now (every awaited reply comes as kLost) and reconnects after backoff.
  virtual void reset(const char* why) noexcept = 0;
  /// Writes queued commands, hands over the replies that came, runs due timers; never blocks.
  virtual void poll() noexcept = 0;
  /// As poll(), but blocks up to `timeout` for a reply, a reconnect or another timer.
  virtual void wait(std::chrono::nanoseconds timeout) noexcept = 0;
  /// Drops the connection (kLost for what is awaited), stops reconnecting and releases the loop's
  /// handles. The store is not used afterwards.
  virtual void close() noexcept = 0;

  /// Any thread: last known state and counters (health, metrics).
  [[nodiscard]] virtual bool up() const noexcept = 0;
  [[nodiscard]] virtual std::uint64_t reconnects() const noexcept = 0;
  [[nodiscard]] virtual std::uint64_t failures() const noexcept = 0;
};

/// Which source partitions this replica may still publish for (fencing, CONTRACT.md section 11).
/// Any thread, lock-free.
class PartitionGate {
 public:
  virtual ~PartitionGate() = default;
  /// True while this replica holds partition `partition`'s lease acquired as `epoch`; always
  /// true for epoch 0 (a message from an unleased source).
  [[nodiscard]] virtual bool current(std::uint32_t partition, std::uint32_t epoch) const noexcept = 0;
};

/// This replica's membership of the fleet: partition leases in a key-value bucket, their
/// renewal, rebalancing and checkpoints, on a thread of its own. The source fetches only what
/// the member owns; the publish stage asks it (as a PartitionGate) before each publish.
class FleetMember : public PartitionGate {
 public:
  /// Start-up zone, once, before start(): where its series go (partitions owned, leases, ...).
  virtual void attach(Metrics& metrics) = 0;
  /// Joins the fleet and starts acquiring partitions (throws on a start-up error).
  virtual void start() = 0;
  /// After the pipeline drained and completed everything it held (SIGTERM): releases every
  /// lease at once, so the next owners start without waiting, and leaves the fleet.
  virtual void release_all() noexcept = 0;
  /// Stops the member's thread (leases not released expire).
  virtual void stop() noexcept = 0;
  /// Any thread: joined, and every owned partition's consumer present (for /readyz).
  [[nodiscard]] virtual bool ready() const noexcept = 0;
  /// Any thread: partitions owned right now.
  [[nodiscard]] virtual std::uint32_t owned() const noexcept = 0;
};

/// State and counters of one connection, as the metrics show them.
struct ConnectionStatus {
  bool up = false;               ///< connected right now
  std::uint64_t reconnects = 0;  ///< reconnections since start
  std::uint64_t failures = 0;    ///< NATS: disconnections
};

/// Where the durable consumer stands (JetStream consumer info).
struct ConsumerBacklog {
  std::uint64_t num_pending = 0;     ///< matching messages not yet delivered
  std::int64_t num_ack_pending = 0;  ///< delivered, not yet acknowledged
};

/// What the pipeline's monitor thread, /healthz, /readyz and /metrics read from the outside: the
/// two NATS connections (consume, publish), the consumer's backlog and Redis INFO. Absent with
/// in-process ports (no connection of their own: the metrics then have no connection series).
class ConnectionMonitor {
 public:
  /// Index of a NATS connection in nats_status() (as ScrapeState::nats orders them).
  static constexpr std::size_t kConsume = 0;
  static constexpr std::size_t kPublish = 1;

  virtual ~ConnectionMonitor() = default;
  /// Start-up zone, once, from the Pipeline's constructor before the monitor thread starts:
  /// where the Redis INFO readings go (cdc_consumer_redis_evicted_keys, ..._maxmemory_policy).
  virtual void attach(Metrics& metrics) = 0;
  /// Any thread: both NATS connections up.
  [[nodiscard]] virtual bool connected() const noexcept = 0;
  /// Any thread: state and counters of NATS connection `connection` (kConsume or kPublish).
  [[nodiscard]] virtual ConnectionStatus nats_status(std::size_t connection) const noexcept = 0;
  /// Monitor thread: reads the consumer's backlog with one request that waits at most `timeout`.
  /// False with `error` set when the request fails.
  virtual bool read_backlog(std::chrono::milliseconds timeout, ConsumerBacklog& backlog,
                            std::string& error) noexcept = 0;
  /// Monitor thread: Redis INFO (evictions, maxmemory-policy) on a connection of its own; never
  /// blocks, sends INFO when `interval_ns` has passed since the last, takes replies on a later
  /// tick. Does nothing when dedup is disabled.
  virtual void poll_redis_info(std::int64_t now_ns, std::int64_t interval_ns) noexcept = 0;
  /// Monitor thread, once, as it ends: closes the INFO connection.
  virtual void close_redis_info() noexcept = 0;
  /// Monitor thread: checks that the output and dead-letter streams exist (each request waits at
  /// most `timeout`); a missing one is logged once per outage and shown in
  /// Metrics::monitor.output_stream_missing, and recreated with the start-up settings when
  /// ingest.create_streams is on (Metrics::monitor.streams_recreated). Needs attach() first.
  /// True when both look-ups answered (false: nothing learned, e.g. a timeout).
  virtual bool check_output_streams(std::chrono::milliseconds timeout) noexcept = 0;
};

/// What cdc_consumer_build_info reports: the service's version and git revision and the versions
/// of the libraries it was built against (label name, version; an empty name is left out).
struct BuildInfo {
  std::string_view version = "unknown";
  std::string_view revision = "unknown";
  std::array<std::pair<std::string_view, std::string_view>, 4> dependencies{};
};

}  // namespace cdc
