#pragma once
/// A test's view of JetStream: one nats.c connection and JetStream context, with helpers to set
/// up streams, publish, and read back what a stream holds or where a consumer stands.
///
/// Every failure throws std::runtime_error with the operation and nats_GetLastError's text.
/// Thread contract: one thread at a time (nats.c handles are thread-safe, the helpers are not
/// meant to race each other).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nats/nats.h>

#include "cdc/core/capture.hpp"

namespace cdc::test {

using Headers = std::vector<std::pair<std::string, std::string>>;

/// Gives `options` the servers of `urls`, one URL or a comma-separated list (a cluster's):
/// natsOptions_SetURL takes a single URL, so a list becomes natsOptions_SetServers.
natsStatus set_servers(natsOptions* options, const std::string& urls);

/// One message as the stream stores it.
struct StreamMessage {
  std::string subject;
  Headers headers;  ///< sorted by name (nats.c does not keep the wire order), values in order
  std::string data;
  std::uint64_t seq = 0;
  std::int64_t time_ns = 0;  ///< stream timestamp, Unix ns

  /// First value of header `name`, or "".
  [[nodiscard]] std::string header(const std::string& name) const;
};

struct PublishResult {
  std::string stream;
  std::uint64_t seq = 0;
  bool duplicate = false;
};

struct StreamConfig {
  std::string name;
  std::vector<std::string> subjects;
  std::chrono::milliseconds duplicate_window{120000};  ///< the server's default is 2 min
  bool memory_storage = false;
  std::int64_t max_msg_size = -1;  ///< -1 = unlimited (bounded by the server's max_payload)
  int replicas = 1;                ///< > 1 only on a JetStream cluster of at least that many servers
};

struct ConsumerState {
  std::uint64_t num_pending = 0;     ///< not yet delivered
  std::int64_t num_ack_pending = 0;  ///< delivered, not yet acked
  std::int64_t num_redelivered = 0;
  std::int64_t num_waiting = 0;  ///< pull requests waiting
  std::uint64_t delivered_stream_seq = 0;
  std::uint64_t ack_floor_stream_seq = 0;
  std::string leader;  ///< server_name of the consumer's leader (clustered JetStream), else ""
};

struct StreamState {
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
  std::int64_t consumers = 0;
  std::int64_t replicas = 1;  ///< configured replica count
  std::string leader;         ///< server_name of the stream's leader (clustered JetStream), else ""
};

class JetStreamProbe {
 public:
  /// Connects to `url` (one URL or a comma-separated list: the first that answers, in random
  /// order; no reconnect: a test wants to see a dead server) and creates a
  /// JetStream context whose API calls wait `timeout`.
  explicit JetStreamProbe(const std::string& url, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~JetStreamProbe();
  JetStreamProbe(const JetStreamProbe&) = delete;
  JetStreamProbe& operator=(const JetStreamProbe&) = delete;

  /// Raw handles, for what the helpers do not cover. Owned by the probe.
  [[nodiscard]] natsConnection* connection() const noexcept;
  [[nodiscard]] jsCtx* jetstream() const noexcept;

  /// True when the JetStream API answers (account info).
  [[nodiscard]] bool jetstream_ready() const;

  /// Creates the stream (file storage unless memory_storage), or updates it when it exists.
  void create_stream(const StreamConfig& config);
  void create_stream(const std::string& name, const std::vector<std::string>& subjects,
                     std::chrono::milliseconds duplicate_window = std::chrono::seconds(120));
  void delete_stream(const std::string& name);
  [[nodiscard]] bool stream_exists(const std::string& name) const;
  [[nodiscard]] StreamState stream_state(const std::string& name) const;
  /// Number of messages stored in the stream.
  [[nodiscard]] std::uint64_t count(const std::string& name) const;
  /// Polls count() until it reaches `expected`; returns the last count (== expected on success).
  std::uint64_t wait_for_count(const std::string& name, std::uint64_t expected,
                               std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;

  /// Publishes synchronously, waiting for the PubAck. Throws on a negative PubAck or timeout.
  PublishResult publish(const std::string& subject, std::string_view body, const Headers& headers = {});
  PublishResult publish(const CaptureRecord& record);

  /// Every message of the stream in sequence order (js_GetMsg first..last; deleted ones skipped).
  [[nodiscard]] std::vector<StreamMessage> read_stream(const std::string& name) const;
  /// One message by sequence.
  [[nodiscard]] StreamMessage get_message(const std::string& name, std::uint64_t seq) const;

  /// State of durable consumer `durable` of `stream`.
  [[nodiscard]] ConsumerState consumer_info(const std::string& stream, const std::string& durable) const;
  [[nodiscard]] bool consumer_exists(const std::string& stream, const std::string& durable) const;
  /// Deletes durable consumer `durable` of `stream` (the JetStream API's CONSUMER.DELETE, as an
  /// operator's `nats consumer rm`). Throws when it does not exist.
  void delete_consumer(const std::string& stream, const std::string& durable);

 private:
  struct Handles;
  std::unique_ptr<Handles> handles_;
  std::chrono::milliseconds timeout_;
};

}  // namespace cdc::test
