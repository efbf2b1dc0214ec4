#pragma once
/// NATS adapter: src/adapters/nats is the only code that includes nats.c. Wraps its
/// handles in RAII and turns its status codes into exceptions (start-up) or values (hot path).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nats/nats.h>

#include "cdc/core/config.hpp"
#include "cdc/adapters/nats/nats_event_loop.hpp"
#include "cdc/adapters/nats/nats_handles.hpp"
#include "cdc/pipeline/ports.hpp"  // ConsumerBacklog

namespace cdc {

/// Start-up failure talking to NATS; what() carries nats.c's own message.
class NatsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// "<status text>: <nats_GetLastError>" for the calling thread's last error.
std::string nats_error_text(natsStatus status);

/// nats.c options for `config`'s servers (comma-separated nats.url), timeouts, reconnects, TLS
/// and authentication (secrets already resolved by resolve_secrets()), named `name`. What the
/// service's connections and cdc-replay share. Throws NatsError naming the key that failed.
NatsOptionsPtr make_nats_options(const NatsConfig& config, const std::string& name);

/// One NATS connection with its JetStream context. Thread-safe as nats.c is: publishes, acks
/// and subscriptions may be used from any thread.
class NatsConnection {
 public:
  /// Connects (throws NatsError after nats.connect_timeout). `role` names the connection
  /// ("consume", "publish") in the server's connection list and in logs.
  NatsConnection(const NatsConfig& config, const std::string& role);
  ~NatsConnection();
  NatsConnection(const NatsConnection&) = delete;
  NatsConnection& operator=(const NatsConnection&) = delete;

  [[nodiscard]] natsConnection* get() const noexcept { return conn_; }
  [[nodiscard]] jsCtx* js() const noexcept { return js_; }
  /// Connected right now (not reconnecting, not closed).
  [[nodiscard]] bool connected() const noexcept;
  [[nodiscard]] std::uint64_t reconnects() const noexcept { return reconnects_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t disconnects() const noexcept { return disconnects_.load(std::memory_order_relaxed); }
  /// Server's max_payload, bytes.
  [[nodiscard]] std::int64_t max_payload() const noexcept;
  [[nodiscard]] const std::string& role() const noexcept { return role_; }

  /// Write mode batch: the event loop whose Deferral a stage holds around its calls, and whose
  /// end_of_batch() writes them; null in the other write modes (nats.c writes by itself).
  [[nodiscard]] NatsEventLoop* loop() noexcept { return loop_.get(); }

 private:
  static void on_disconnected(natsConnection* nc, void* self) noexcept;
  static void on_reconnected(natsConnection* nc, void* self) noexcept;
  static void on_closed(natsConnection* nc, void* self) noexcept;

  std::string role_;
  std::unique_ptr<NatsEventLoop> loop_;  // write mode batch; stopped after Close, before Destroy
  natsConnection* conn_ = nullptr;
  jsCtx* js_ = nullptr;
  std::atomic<std::uint64_t> reconnects_{0};
  std::atomic<std::uint64_t> disconnects_{0};
  std::atomic<bool> closed_{false};
};

/// Creates the three streams when missing; accepts existing ones and logs where they differ
/// from the configuration. Push mode: creates or checks the durable consumer. Pull mode: creates
/// the lease bucket (ingest.lease_bucket, nats.stream_replicas), checks that the source stream
/// fits ingest.partitions (ConfigError, exit 2, naming the server mapping to add) and checks the
/// partition consumers that exist (the fleet creates missing ones when it acquires a partition,
/// cdc/adapters/nats/fleet.hpp). Throws NatsError / ConfigError.
void ensure_jetstream_objects(NatsConnection& nats, const Config& config, const std::string& filter_subject);

/// The service's two output streams: publish.stream and publish.dlq_stream.
enum class OutputStream : std::uint8_t { kOutput = 0, kDeadLetter = 1 };
/// What check_output_stream found.
enum class StreamCheck : std::uint8_t {
  kPresent,    ///< the stream exists
  kMissing,    ///< it does not (and was not created: create_streams off, or the create failed)
  kRecreated,  ///< it did not; created now with the start-up settings (ingest.create_streams)
  kUnknown,    ///< the look-up failed (timeout, connection down): nothing known
};

/// Monitor thread: does the output or dead-letter stream exist; when it does not and
/// ingest.create_streams is on, creates it as ensure_jetstream_objects does. Each request waits
/// at most `timeout`; `error` gets why on kUnknown or a failed create. Never throws.
StreamCheck check_output_stream(NatsConnection& nats, const Config& config, OutputStream which,
                                std::chrono::milliseconds timeout, std::string& error) noexcept;

/// Creates the source stream (ingest.stream) when missing and ingest.create_streams is on; the
/// fleet calls it when a partition's consumer was lost with its stream. Throws NatsError.
void ensure_source_stream(jsCtx* js, const Config& config);

/// The start-up fit check alone (part of ensure_jetstream_objects in pull mode): the source
/// stream's subjects and what it stores against ingest.partitions. Throws ConfigError
/// ("ingest.partitions: ...") on a misfit, NatsError when the stream cannot be read.
void check_partition_fit(jsCtx* js, const Config& config);

/// One subject a stream stores and its message count.
struct StoredSubject {
  std::string subject;
  std::uint64_t messages = 0;
};

/// The subjects `stream` stores that match `filter` (stream info with a subjects filter), with
/// their message counts: at most `max` of them appended to `out`; `listed` gets how many the
/// server listed. The request waits as long as `js` allows. Never throws (bad_alloc aside).
natsStatus read_stored_subjects(jsCtx* js, const std::string& stream, const std::string& filter, std::size_t max,
                                std::vector<StoredSubject>& out, std::size_t& listed);

/// The deliver subject of the push consumer (outside every stream's subjects).
std::string push_deliver_subject(const Config& config);

/// Reads ingest.consumer's info with one JetStream API request that waits at most `timeout`.
/// Any thread. False with `error` set when the request fails.
bool read_consumer_backlog(NatsConnection& nats, const Config& config, std::chrono::milliseconds timeout,
                           ConsumerBacklog& out, std::string& error) noexcept;

}  // namespace cdc
