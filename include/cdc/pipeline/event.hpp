#pragma once
/// The Event: one pre-allocated slot of the pipeline, mutated in place by each stage in turn.
///
/// Ownership travels with the slot pointer through the rings (ingest -> parse -> dedup ->
/// publish -> ack -> back to ingest), so each field has one writer at a time. The only field
/// touched by two threads at once is `pub`, written by the PubAck callback thread and read by
/// the publish stage; it is atomic.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "cdc/core/dedup_protocol.hpp"
#include "cdc/core/metrics.hpp"
#include "cdc/core/transform.hpp"
#include "cdc/pipeline/source_message.hpp"

namespace cdc {

/// State of the current publish attempt; low byte of Event::pub, above it the attempt's generation.
enum class PubState : std::uint8_t {
  kNone,       ///< nothing to publish (skip, duplicate, NAK)
  kInFlight,   ///< sent, PubAck awaited
  kSettling,   ///< the thread that won the CAS from kInFlight is writing pub_error
  kOk,         ///< stored
  kDuplicate,  ///< stored earlier: PubAck said duplicate
  kTransient,  ///< failed, worth retrying (timeout, disconnected, unknown PubAck)
  kRejected,   ///< failed for good (JetStream refused the message)
  /// Not stored because the target stream is missing or JetStream cannot store at all (no
  /// responders, PubAck 503, stream not found): an outage, retried in place without limit.
  kOutage,
};

/// The source message's completion: decided by the publish stage, completed by the ack stage.
enum class Completion : std::uint8_t { kAck, kNak, kTerm };

/// The target of the event's publish.
enum class Target : std::uint8_t { kNone, kOutput, kDeadLetter };

struct Event {
  // -- set once at construction
  std::uint32_t index = 0;  ///< position in the pool; encoded in PubAck reply subjects

  // -- ingest
  SourceMessage source;  ///< owned from ingest until the ack stage completes and releases it
  std::string_view msg_id_header;
  std::uint64_t stream_seq = 0;
  std::uint32_t deliveries = 1;  ///< JetStream delivery count of this delivery
  bool last_delivery = false;    ///< deliveries reached ingest.max_deliver
  std::int64_t received_ns = 0;  ///< steady clock, for latency metrics
  std::int64_t progress_ns = 0;  ///< steady clock: delivery, or the last in-progress signal

  // -- parse
  TransformOutput out;      ///< event id, output subject and payload, or error
  std::string dlq_subject;  ///< dead letters only
  std::string dlq_payload;

  // -- dedup
  DedupResult dedup = DedupResult::kNotChecked;
  bool dedup_ready = false;  ///< dedup stage's own bookkeeping

  // -- publish
  Target target = Target::kNone;
  /// (generation << 8) | PubState. Written by the publish stage (new attempt) and by the
  /// PubAck callback (compare-and-swap from the attempt it answers).
  std::atomic<std::uint64_t> pub{0};
  std::uint32_t attempts = 0;
  std::int64_t pub_deadline_ns = 0;
  /// When the first publish of a run of outages (PubState::kOutage) was sent; 0 = none.
  std::int64_t outage_since_ns = 0;
  char pub_error[192] = {};  ///< last failure reason; written only by the winner of the CAS to kSettling

  // -- decided by the publish stage, carried out by the ack stage
  Completion completion = Completion::kAck;
  EventResult result = EventResult::kProcessed;
  bool final = false;      ///< completion decided; the event may leave the publish stage
  bool mark_done = false;  ///< SET dedup:<id> d EX ttl after the ack
  bool unmark = false;     ///< DEL dedup:<id> before the NAK
  std::int64_t nak_delay_ms = 0;

  /// Buffers larger than this are freed when the slot is reset (see reset()).
  static constexpr std::size_t kKeepCapacity = 16 * 1024;
  static void release_if_large(std::string& s) noexcept {
    if (s.capacity() > kKeepCapacity) std::string().swap(s);
  }

  /// Back to the state of a fresh slot (keeps buffer capacity up to kKeepCapacity). Ack stage only.
  void reset() noexcept {
    source = {};
    msg_id_header = {};
    stream_seq = 0;
    deliveries = 1;
    last_delivery = false;
    received_ns = progress_ns = 0;
    out.clear();
    dlq_subject.clear();
    dlq_payload.clear();
    // A rare big message (a row near max_message_bytes, the dead letter of an oversized body:
    // 1.4 MB) must not leave its buffer in the slot: one by one every slot would keep one, up
    // to pool size x 1.4 MB resident. Normal events stay far below and keep their buffers.
    release_if_large(out.payload);
    release_if_large(dlq_payload);
    dedup = DedupResult::kNotChecked;
    dedup_ready = false;
    target = Target::kNone;
    // No PubAck callback can hold this slot: the publish stage saw its last attempt final.
    pub.store(0, std::memory_order_relaxed);
    attempts = 0;
    pub_deadline_ns = 0;
    outage_since_ns = 0;
    pub_error[0] = '\0';
    completion = Completion::kAck;
    result = EventResult::kProcessed;
    final = mark_done = unmark = false;
    nak_delay_ms = 0;
  }
};

inline constexpr std::uint64_t pub_word(std::uint64_t generation, PubState state) noexcept {
  return (generation << 8) | static_cast<std::uint64_t>(state);
}
inline constexpr PubState pub_state(std::uint64_t word) noexcept { return static_cast<PubState>(word & 0xff); }
inline constexpr std::uint64_t pub_generation(std::uint64_t word) noexcept { return word >> 8; }

}  // namespace cdc
