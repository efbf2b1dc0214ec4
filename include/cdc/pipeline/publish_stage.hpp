#pragma once
/// Publish stage: publishes enriched events to the output stream and dead letters to the DLQ
/// with Nats-Msg-Id, asynchronously, and decides each source message's completion.
///
/// JetStream publishes go out as core NATS publishes whose reply subject is
/// "<inbox>.<event index>.<generation>": the PubAck comes back on one subscription of ours and
/// names its event directly, so the callback thread settles it with one compare-and-swap on
/// Event::pub (no map, no lock). Events leave this stage in the order they came, only once
/// their outcome is final; a transient failure at the head is retried in place with
/// exponential backoff, holding newer events back until the retried ones are stored.
///
/// Repeats in flight: an output event (claim answered 'p', or no claim) whose id matches an
/// event this stage published and still holds (a producer's repeat, a redelivery) is not
/// published a second time; it is held, linked to that first copy (its leader), and completed
/// when the leader leaves the window: acked as a duplicate when the leader was stored, NAKed
/// otherwise (docs/decisions.md).
///
/// Lanes (a publisher with a batching lane, publish.write_mode adaptive): at the end of each
/// turn the stage weighs its load, the events waiting in its input plus those in its window;
/// from publish.batching_threshold it wants the batching lane, and the eager one once the load
/// has stayed at an eighth of it or less for 5 ms. It changes lanes only with its window empty
/// (nothing awaiting a PubAck), taking no new events until then, so every publish on the old
/// lane is stored before the first on the new one and each subject keeps its order.

#include <cstdint>
#include <string>
#include <vector>

#include "cdc/pipeline/keep_alive.hpp"
#include "cdc/pipeline/ordered_window.hpp"
#include "cdc/pipeline/ports.hpp"
#include "cdc/pipeline/stage_runner.hpp"

namespace cdc {

class PublishStage final : public StageHandler, public PubAckSink {
 public:
  /// `pool` is the event pool (PubAcks address events by index). Registers as the
  /// publisher's PubAck sink.
  /// `completer` (may be null) sends in-progress signals for events held long (retries).
  /// `gate` (may be null: every event current) says whether this replica may still publish for
  /// an event's source partition (fencing).
  PublishStage(StageContext& ctx, Publisher& publisher, Event* pool, std::size_t pool_size,
               Completer* completer = nullptr, const PartitionGate* gate = nullptr);

  /// None while a retry round is due or running, or publish.max_pending are awaiting PubAcks.
  [[nodiscard]] std::size_t accepting() const noexcept override;
  void on_event(Event& ev, bool end_of_batch) noexcept override;
  /// PubAcks that came, PubAck deadlines, retry rounds, keep-alive; the drain deadline.
  bool on_idle(std::int64_t now) noexcept override;
  [[nodiscard]] bool holding() const noexcept override { return !window_.empty(); }
  /// The head's PubAck came (or, draining at the deadline, input to NAK).
  [[nodiscard]] bool ready() const noexcept override;
  /// The head's PubAck deadline or the retry time.
  [[nodiscard]] std::int64_t wake_at_ns() const noexcept override;

  /// PubAck callback thread: settles the attempt named by the reply subject.
  void on_puback(std::string_view reply_subject, std::string_view body, bool no_responders) noexcept override;

 private:
  void admit(Event& ev) noexcept;
  void publish(Event& ev) noexcept;
  bool advance_head() noexcept;
  void retry_round(std::int64_t now) noexcept;
  /// A kOutage attempt whose stream the monitor found present after it failed (stamps
  /// ev.outage_since_ns on first sight): no stream takes its subject, so it is a failure of
  /// this event with its retry budget, not an outage.
  bool uncovered(Event& ev) const noexcept;
  void give_up(Event& ev, std::string_view why) noexcept;
  /// The event's partition is no longer ours: nothing is published, the source is NAKed at once.
  void fence(Event& ev) noexcept;
  /// When the event's current attempt was sent.
  [[nodiscard]] std::int64_t sent_ns(const Event& ev) const noexcept;
  /// Was `event_id` published by this stage within the last 2 x pool-size publishes?
  [[nodiscard]] bool published_recently(std::string_view event_id) const noexcept;
  void remember(std::string_view event_id) noexcept;
  /// The copy of `event_id` (hash `hash`) this stage published and still holds in its window
  /// (exact match on the id), or null.
  [[nodiscard]] Event* find_leader(std::string_view event_id, std::uint64_t hash) const noexcept;
  /// Files `ev` (published, in the window) as the leader of its id's later repeats.
  void file_leader(Event& ev, std::uint64_t hash) noexcept;
  /// Holds `repeat` (not published, not final) until `leader` leaves the window.
  void hold_repeat(Event& leader, Event& repeat) noexcept;
  /// `leader` is final and leaves the window: completes its held repeats by its outcome and
  /// takes it out of the leader table (its slot may be reused once it has left).
  void release_repeats(Event& leader) noexcept;
  bool finish_all_with_nak() noexcept;
  void complete(Event& ev, Completion completion, EventResult result) noexcept;
  [[nodiscard]] bool aborting() const noexcept { return ctx_.life.abort.load(std::memory_order_relaxed); }
  /// End of a turn: the lane the load asks for; changes to it once the window is empty.
  void choose_lane(std::int64_t now) noexcept;

  StageContext& ctx_;
  const Config& config_;
  Metrics& metrics_;
  Publisher& publisher_;
  Event* pool_;
  std::size_t pool_size_;
  std::string error_;   // scratch
  std::string reply_;   // scratch
  std::string msg_id_;  // scratch
  std::uint64_t generation_ = 0;
  OrderedWindow window_;          // taken, not yet passed on (final), in order
  std::uint64_t hold_until_ = 0;  // no new events until the front passes this position
  std::int64_t retry_at_ns_ = 0;
  std::int64_t max_payload_ = 0;
  // Hashes of recently published event ids (a ring): tells our own 'p' marks from others'.
  std::vector<std::uint64_t> recent_;
  std::uint64_t recent_pos_ = 0;
  // Repeats in flight. The window's leaders by event-id hash: open addressing with linear
  // probing, twice the pool size (at most half full), entries removed by backward shift; a hash
  // only names candidates, the id is compared in full. Per pool slot: the hash a leader is
  // filed under (0: not a leader), a leader's first held repeat, a held repeat's next one
  // (kNoEvent ends the list) and whether it is held. Sized once: no allocation per event.
  struct LeaderSlot {
    std::uint64_t hash = 0;  // 0: empty
    std::uint32_t index = 0;
  };
  static constexpr std::uint32_t kNoEvent = 0xffffffffU;
  std::vector<LeaderSlot> leaders_;
  std::vector<std::uint64_t> leader_hash_;
  std::vector<std::uint32_t> first_repeat_;
  std::vector<std::uint32_t> next_repeat_;
  std::vector<std::uint8_t> held_;
  KeepAlive keep_alive_;
  const PartitionGate* gate_;
  std::uint32_t outage_rounds_ = 0;  // retry rounds in a row with the head in an outage
  // Lanes: whether the publisher has two, the one in use, and whether the other one is wanted
  // (no new events until the window is empty); the load thresholds to and from batching.
  bool lanes_ = false;
  bool batching_ = false;
  bool lane_wanted_ = false;
  std::size_t batching_from_ = 0;
  std::size_t eager_at_ = 0;
  std::int64_t calm_since_ns_ = 0;  // batching, load at most eager_at_ since then (0 = not calm)
  /// How long the load stays at most eager_at_ before the batching lane gives way to the eager
  /// one: a few of nats.c's ~1 ms flusher periods, longer than a drain's dips between fetches.
  static constexpr std::int64_t kEagerAfterNs = 5'000'000;
};

}  // namespace cdc
