#pragma once
/// The pipeline's three boundaries with JetStream, as interfaces: where source messages come
/// from (MessageSource), how they are completed (Completer) and where events go (Publisher).
/// The service uses the NATS implementations (nats_ports.hpp); bench/ plugs in-process mocks.
/// Messages are nats.c natsMsg handles either way (a mock creates them with natsMsg_Create).

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

typedef struct __natsMsg natsMsg;  // NOLINT: nats.c's own typedef

namespace cdc {

/// Source of delivered messages. Thread: the ingest stage only (start/stop from the wiring).
class MessageSource {
 public:
  virtual ~MessageSource() = default;
  /// Fills `out` with up to `max` messages (ownership passes to the caller); waits at most
  /// `wait` for the first one. Returns the count (0 on timeout or a transient error).
  virtual int next_batch(natsMsg** out, int max, std::chrono::milliseconds wait) noexcept = 0;
  /// Intake stops: give back what was delivered to us but not taken (NAK), stop deliveries.
  virtual void stop() noexcept = 0;
};

/// Completion of source messages. Thread: the ack stage only.
class Completer {
 public:
  virtual ~Completer() = default;
  /// Each returns false when the completion could not be sent (logged by the caller).
  virtual bool ack(natsMsg* msg) noexcept = 0;
  virtual bool nak(natsMsg* msg, std::int64_t delay_ms) noexcept = 0;
  virtual bool term(natsMsg* msg) noexcept = 0;
  /// "Still working on it": resets the message's AckWait. Unlike the others this may be called
  /// by whichever stage thread holds the message at the time.
  virtual bool in_progress(natsMsg* msg) noexcept = 0;
  /// Sends what is buffered (end of the drain); bounded by `timeout`.
  virtual void flush(std::chrono::milliseconds timeout) noexcept = 0;
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
/// on one other thread through the sink.
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
};

}  // namespace cdc
