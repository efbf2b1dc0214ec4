#include "cdc/pipeline/publish_stage.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>

#include "cdc/core/internal_error.hpp"
#include "cdc/core/jetstream_meta.hpp"
#include "cdc/core/log.hpp"
#include "cdc/pipeline/parse_stage.hpp"

namespace cdc {
namespace {

constexpr std::int64_t kNsPerMs = 1'000'000;
/// How long after a check found both output streams present despite a "no responders" such
/// failures count as a subject no stream takes (transient) rather than an outage. Long enough
/// that a subject no stream takes does not hold each of its events for a monitor check of its
/// own; a stream deleted within it costs retries (and NAKs) instead of a pure wait.
constexpr std::int64_t kUncoveredWindowNs = 30'000'000'000LL;
/// The header block of a publish besides the Nats-Msg-Id value ("NATS/1.0\r\nNats-Msg-Id: \r\n\r\n"
/// is 27 bytes), with room to spare: the broker counts headers against max_payload too.
constexpr std::size_t kHeaderBytes = 64;

/// The hash an event id is remembered and filed under; never 0 (0 marks an empty entry).
std::uint64_t id_hash(std::string_view event_id) noexcept { return std::hash<std::string_view>{}(event_id) | 1; }

bool parse_reply_tail(std::string_view subject, std::uint32_t& index, std::uint64_t& generation) noexcept {
  const std::size_t last = subject.rfind('.');
  if (last == std::string_view::npos || last == 0) return false;
  const std::size_t prev = subject.rfind('.', last - 1);
  if (prev == std::string_view::npos) return false;
  const char* b1 = subject.data() + prev + 1;
  const char* e1 = subject.data() + last;
  const char* b2 = subject.data() + last + 1;
  const char* e2 = subject.data() + subject.size();
  return std::from_chars(b1, e1, index).ptr == e1 && std::from_chars(b2, e2, generation).ptr == e2;
}

/// Wins the event's current attempt for the calling thread: kInFlight -> kSettling.
bool claim(Event& ev, std::uint64_t generation) noexcept {
  std::uint64_t expected = pub_word(generation, PubState::kInFlight);
  // acq_rel: acquire the publish stage's writes of the attempt; release nothing yet.
  return ev.pub.compare_exchange_strong(expected, pub_word(generation, PubState::kSettling), std::memory_order_acq_rel,
                                        std::memory_order_acquire);
}

void finish_claim(Event& ev, std::uint64_t generation, PubState state, std::string_view why) noexcept {
  const std::size_t n = std::min(why.size(), sizeof ev.pub_error - 1);
  // No memcpy for an empty reason: its data() may be null, which memcpy may not be given.
  if (n > 0) std::memcpy(ev.pub_error, why.data(), n);
  ev.pub_error[n] = '\0';
  // release: pub_error is visible to whoever acquires the final state.
  ev.pub.store(pub_word(generation, state), std::memory_order_release);
}

}  // namespace

std::int64_t PublishStage::sent_ns(const Event& ev) const noexcept {
  return ev.pub_deadline_ns - static_cast<std::int64_t>(config_.publish.ack_timeout.count()) * kNsPerMs;
}

PublishStage::PublishStage(StageContext& ctx, Publisher& publisher, Event* pool, std::size_t pool_size,
                           Completer* completer, const PartitionGate* gate)
    : ctx_(ctx),
      config_(ctx.config),
      metrics_(ctx.metrics),
      publisher_(publisher),
      pool_(pool),
      pool_size_(pool_size),
      window_(pool_size),
      recent_(pool_size * 2, 0),
      leaders_(std::bit_ceil(std::max<std::size_t>(pool_size, 1) * 2)),
      leader_hash_(pool_size, 0),
      first_repeat_(pool_size, kNoEvent),
      next_repeat_(pool_size, kNoEvent),
      held_(pool_size, 0),
      keep_alive_(completer, ctx.config.ingest.ack_wait),
      gate_(gate) {
  publisher_.set_sink(this);
  lanes_ = publisher_.has_batching_lane();
  batching_from_ = static_cast<std::size_t>(std::max(1, config_.publish.batching_threshold));
  eager_at_ = std::max<std::size_t>(1, batching_from_ / 8);
  publisher_.use_batching_lane(false);
  max_payload_ = publisher_.max_payload();
  reply_.reserve(publisher_.reply_prefix().size() + 32);
  msg_id_.reserve(128);
  error_.reserve(256);
}

void PublishStage::on_puback(std::string_view reply_subject, std::string_view body, bool no_responders) noexcept {
  std::uint32_t index = 0;
  std::uint64_t generation = 0;
  if (!parse_reply_tail(reply_subject, index, generation) || index >= pool_size_) {
    metrics_.puback.stale.inc();
    return;
  }
  Event& ev = pool_[index];
  if (!claim(ev, generation)) {
    metrics_.puback.stale.inc();  // answered too late: the attempt timed out or was abandoned
    return;
  }
  metrics_.puback.latency.observe_ns(
      now_ns() - (ev.pub_deadline_ns - static_cast<std::int64_t>(config_.publish.ack_timeout.count()) * kNsPerMs));
  if (no_responders) {
    metrics_.puback.errors.inc();
    metrics_.puback.no_responders.inc();  // the monitor checks the output streams at once
    finish_claim(ev, generation, PubState::kOutage, "no responders: no stream for the subject, or it is unavailable");
  } else {
    PubAckInfo info;
    if (!parse_pub_ack(body, info)) {
      metrics_.puback.errors.inc();
      finish_claim(ev, generation, PubState::kTransient, "unexpected PubAck");
    } else if (info.ok) {
      if (info.duplicate) metrics_.puback.duplicates.inc();
      else metrics_.puback.acks.inc();
      finish_claim(ev, generation, info.duplicate ? PubState::kDuplicate : PubState::kOk, {});
    } else {
      metrics_.puback.errors.inc();
      // 503 (JetStream cannot store now: leader election, storage) and "stream not found"
      // (10059): an outage, retried until it is over; 0: unknown, worth a retry; anything else
      // is JetStream refusing this message.
      constexpr int kStreamNotFound = 10059;
      const bool outage = info.error_code == 503 || info.error_err_code == kStreamNotFound;
      if (outage) metrics_.puback.no_responders.inc();
      const PubState st = outage                 ? PubState::kOutage
                          : info.error_code == 0 ? PubState::kTransient
                                                 : PubState::kRejected;
      char why[sizeof ev.pub_error];
      std::snprintf(why, sizeof why, "jetstream error %d (%d): %.*s", info.error_code, info.error_err_code,
                    static_cast<int>(info.description.size()), info.description.data());
      finish_claim(ev, generation, st, why);
    }
  }
  ctx_.in.waiter->notify();  // wakes the publish stage's thread
}

void PublishStage::complete(Event& ev, Completion completion, EventResult result) noexcept {
  ev.completion = completion;
  ev.result = result;
  ev.final = true;
}

bool PublishStage::published_recently(std::string_view event_id) const noexcept {
  const std::uint64_t h = id_hash(event_id);
  return std::find(recent_.begin(), recent_.end(), h) != recent_.end();
}

void PublishStage::remember(std::string_view event_id) noexcept {
  recent_[recent_pos_++ & (recent_.size() - 1)] = id_hash(event_id);
}

Event* PublishStage::find_leader(std::string_view event_id, std::uint64_t hash) const noexcept {
  const std::size_t mask = leaders_.size() - 1;
  // At most half full: a probe ends at an empty entry after a few steps.
  for (std::size_t i = hash & mask; leaders_[i].hash != 0; i = (i + 1) & mask) {
    if (leaders_[i].hash != hash) continue;
    Event& candidate = pool_[leaders_[i].index];
    if (candidate.out.event_id == event_id) return &candidate;  // a hash only names a candidate
  }
  return nullptr;
}

void PublishStage::file_leader(Event& ev, std::uint64_t hash) noexcept {
  const std::size_t mask = leaders_.size() - 1;
  std::size_t i = hash & mask;
  while (leaders_[i].hash != 0) i = (i + 1) & mask;  // never full: at most pool size of 2 x pool size
  leaders_[i] = LeaderSlot{hash, ev.index};
  leader_hash_[ev.index] = hash;
}

void PublishStage::hold_repeat(Event& leader, Event& repeat) noexcept {
  metrics_.publish.repeats_held.inc();
  // Not published and not final (pub stays kNone): retry rounds pass it by, the drain leaves it
  // to its leader. The leader is ahead of it in the window, so it is settled before it can reach
  // the front. Order among the held repeats does not matter (each completes on its own).
  next_repeat_[repeat.index] = first_repeat_[leader.index];
  first_repeat_[leader.index] = repeat.index;
  held_[repeat.index] = 1;
}

void PublishStage::release_repeats(Event& leader) noexcept {
  // Stored (PubAck ok or duplicate): the leader's ack and done mark cover every copy. Any other
  // outcome (NAK after its retries, fenced, shutdown, dead-lettered) stored nothing under this id.
  const bool stored = leader.target == Target::kOutput && leader.completion == Completion::kAck;
  for (std::uint32_t i = first_repeat_[leader.index]; i != kNoEvent;) {
    Event& repeat = pool_[i];
    i = next_repeat_[repeat.index];
    next_repeat_[repeat.index] = kNoEvent;
    held_[repeat.index] = 0;
    if (stored) {
      complete(repeat, Completion::kAck, EventResult::kDuplicate);
    } else if (repeat.last_delivery && !aborting()) {
      // A NAK would be its end (JetStream delivers it no more): publish it now, as a first copy
      // with its own retries (and dead letter when they are spent).
      publish(repeat);
    } else {
      // Through the claim again, as its leader: the leader's delay (publish.nak_delay after its
      // retries; 0 when fenced or at shutdown, for the next owner), publish.nak_delay when the
      // leader was dead-lettered (this copy gets its own verdict on redelivery).
      repeat.nak_delay_ms =
          leader.completion == Completion::kNak ? leader.nak_delay_ms : config_.publish.nak_delay.count();
      complete(repeat, Completion::kNak, EventResult::kRetried);
    }
  }
  first_repeat_[leader.index] = kNoEvent;
  // Out of the table by backward shift: later entries of the probe run move up, so every
  // remaining entry is still reachable from its home without tombstones.
  const std::uint64_t hash = leader_hash_[leader.index];
  leader_hash_[leader.index] = 0;
  const std::size_t mask = leaders_.size() - 1;
  std::size_t hole = hash & mask;
  while (leaders_[hole].index != leader.index || leaders_[hole].hash != hash) {
    if (leaders_[hole].hash == 0) on_internal_error("publish stage: a leader missing from its table");
    hole = (hole + 1) & mask;
  }
  for (std::size_t j = (hole + 1) & mask; leaders_[j].hash != 0; j = (j + 1) & mask) {
    const std::size_t home = leaders_[j].hash & mask;
    // Entry j stays when its home lies cyclically in (hole, j]; otherwise it fills the hole.
    const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    leaders_[hole] = leaders_[j];
    hole = j;
  }
  leaders_[hole] = LeaderSlot{};
}

void PublishStage::fence(Event& ev) noexcept {
  metrics_.publish.fenced.inc();
  static thread_local log::RateLimiter limiter;
  std::uint64_t suppressed = 0;
  if (limiter.allow(suppressed)) {
    log::warn("partition no longer owned; not publishing, NAK for the next owner",
              {{"trace_id", trace_id(ev)},
               {"subject", ev.source.subject},
               {"partition", static_cast<unsigned long long>(ev.source.partition)},
               {"epoch", static_cast<unsigned long long>(ev.source.epoch)},
               {"suppressed", static_cast<unsigned long long>(suppressed)}});
  }
  ev.unmark = ev.dedup == DedupResult::kFirstSeen;
  ev.nak_delay_ms = 0;
  complete(ev, Completion::kNak, EventResult::kRetried);
}

void PublishStage::publish(Event& ev) noexcept {
  // Fencing (CONTRACT.md section 11): a replica that lost the partition's lease publishes
  // nothing more of it, first attempt or retry; the next owner gets the message again.
  if (gate_ != nullptr && !gate_->current(ev.source.partition, ev.source.epoch)) {
    fence(ev);
    return;
  }
  const bool output = ev.target == Target::kOutput;
  if (output && ev.attempts == 0) remember(ev.out.event_id);
  const std::string& subject = output ? ev.out.subject : ev.dlq_subject;
  const std::string& payload = output ? ev.out.payload : ev.dlq_payload;
  if (output) {
    msg_id_.assign(ev.out.event_id);
  } else {
    // One dead letter per source message and delivery outcome, even across crashes.
    msg_id_.assign("dlq:");
    msg_id_ += config_.ingest.stream;
    msg_id_ += ':';
    msg_id_ += std::to_string(ev.stream_seq);
  }
  if (!output && max_payload_ > 0 &&
      static_cast<std::int64_t>(payload.size() + msg_id_.size() + kHeaderBytes) > max_payload_) {
    // The record carries the body in base64 (4/3 of it): over max_payload it would be refused
    // for good and its source NAKed until JetStream gives up on it, neither dead-lettered nor
    // published. Rebuild it with data_base64 cut to fit (docs/decisions.md).
    const auto room = max_payload_ - static_cast<std::int64_t>(msg_id_.size() + kHeaderBytes);
    prepare_dead_letter(config_, ev, ev.out.error_kind, ev.out.error,
                        static_cast<std::size_t>(std::max<std::int64_t>(room, 1)));
  }
  const std::uint64_t generation = ++generation_;
  ++ev.attempts;
  const std::int64_t now = now_ns();
  ev.pub_deadline_ns = now + static_cast<std::int64_t>(config_.publish.ack_timeout.count()) * kNsPerMs;
  // release: the deadline is visible to the PubAck callback that acquires this word.
  ev.pub.store(pub_word(generation, PubState::kInFlight), std::memory_order_release);
  if (max_payload_ > 0 && static_cast<std::int64_t>(payload.size()) > max_payload_) {
    if (claim(ev, generation)) {
      char why[sizeof ev.pub_error];
      std::snprintf(why, sizeof why, "payload of %zu bytes exceeds the server's max_payload of %lld", payload.size(),
                    static_cast<long long>(max_payload_));
      finish_claim(ev, generation, PubState::kRejected, why);
    }
    metrics_.publish.publish_errors.inc();
    return;
  }
  reply_.assign(publisher_.reply_prefix());
  reply_ += '.';
  reply_ += std::to_string(ev.index);
  reply_ += '.';
  reply_ += std::to_string(generation);
  const Publisher::Status st = publisher_.publish(subject, reply_, payload, msg_id_, error_);
  if (st == Publisher::Status::kOk) {
    metrics_.publish.published.inc();
    return;
  }
  metrics_.publish.publish_errors.inc();
  if (claim(ev, generation)) {
    finish_claim(ev, generation, st == Publisher::Status::kTooLarge ? PubState::kRejected : PubState::kTransient,
                 error_);
  }
}

void PublishStage::admit(Event& ev) noexcept {
  ev.attempts = 0;
  ev.outage_since_ns = 0;
  ev.final = false;
  switch (ev.target) {
    case Target::kNone: complete(ev, Completion::kAck, EventResult::kSkipped); return;
    case Target::kDeadLetter: publish(ev); return;
    case Target::kOutput: break;
  }
  if (ev.dedup == DedupResult::kDone) {
    complete(ev, Completion::kAck, EventResult::kDuplicate);
    return;
  }
  const std::uint64_t hash = id_hash(ev.out.event_id);
  // A repeat of an event this stage published and still holds ('p' of our own, or no claim:
  // dedup disabled, Redis unavailable): held until that copy's outcome is known instead of a
  // second publish (docs/decisions.md). A first-seen claim owns a fresh mark: no copy is here.
  if (ev.dedup != DedupResult::kFirstSeen) {
    if (Event* leader = find_leader(ev.out.event_id, hash)) {
      hold_repeat(*leader, ev);
      return;
    }
  }
  switch (ev.dedup) {
    case DedupResult::kInFlight:
      if (published_recently(ev.out.event_id)) {
        // The 'p' is our own, but its copy has left this stage (its done mark not yet written):
        // publish with the same Nats-Msg-Id and let JetStream's duplicate window answer
        // (PubAck duplicate), instead of a pending_ttl NAK.
        break;
      }
      if (ev.last_delivery) {
        static constexpr std::string_view kWhy =
            "another delivery of this event was still in flight at the last allowed delivery";
        static thread_local log::RateLimiter in_flight_limiter;
        std::uint64_t suppressed = 0;
        if (in_flight_limiter.allow(suppressed)) {
          log_dead_letter(log::Level::kError, "event still in flight elsewhere at its last delivery; dead-lettering",
                          ev, ErrorKind::kMaxDeliveries, kWhy, suppressed);
        }
        prepare_dead_letter(config_, ev, ErrorKind::kMaxDeliveries, kWhy);
        publish(ev);
      } else {
        ev.nak_delay_ms = config_.pending_ttl().count();
        complete(ev, Completion::kNak, EventResult::kRetried);
      }
      return;
    default: break;
  }
  publish(ev);
  if (!ev.final && ev.target == Target::kOutput) file_leader(ev, hash);
}

void PublishStage::give_up(Event& ev, std::string_view why) noexcept {
  static thread_local log::RateLimiter limiter;
  std::uint64_t suppressed = 0;
  if (ev.target == Target::kOutput && ev.last_delivery) {
    if (limiter.allow(suppressed)) {
      log_dead_letter(log::Level::kError, "publish failed on the last delivery; dead-lettering", ev,
                      ErrorKind::kMaxDeliveries, why, suppressed);
    }
    const std::string reason(why);
    prepare_dead_letter(config_, ev, ErrorKind::kMaxDeliveries, reason);
    ev.attempts = 0;
    ev.outage_since_ns = 0;
    publish(ev);
    return;
  }
  if (limiter.allow(suppressed)) {
    log::error(ev.target == Target::kDeadLetter ? "dead-letter publish failed; NAK" : "publish failed; NAK",
               {{"trace_id", trace_id(ev)},
                {"event_id", ev.out.event_id},
                {"subject", ev.source.subject},
                {"error", why},
                {"attempts", static_cast<unsigned>(ev.attempts)},
                {"delivery_attempt", static_cast<unsigned>(ev.deliveries)},
                {"suppressed", static_cast<unsigned long long>(suppressed)}});
  }
  ev.unmark = ev.dedup == DedupResult::kFirstSeen;
  ev.nak_delay_ms = config_.publish.nak_delay.count();
  complete(ev, Completion::kNak, EventResult::kRetried);
}

bool PublishStage::advance_head() noexcept {
  int forwarded = 0;
  const std::int64_t now = now_ns();
  while (!window_.empty()) {
    Event& ev = *window_.front();
    if (!ev.final) {
      const std::uint64_t word = ev.pub.load(std::memory_order_acquire);
      const std::uint64_t generation = pub_generation(word);
      switch (pub_state(word)) {
        case PubState::kInFlight:
          if (now > ev.pub_deadline_ns && claim(ev, generation)) {
            metrics_.publish.timeouts.inc();
            finish_claim(ev, generation, PubState::kTransient, "no PubAck within publish.ack_timeout");
            continue;
          }
          [[fallthrough]];
        case PubState::kSettling: goto blocked;
        case PubState::kOk:
        case PubState::kDuplicate: {
          outage_rounds_ = 0;
          // After a retry, "duplicate" most likely means our own earlier attempt was stored and
          // only its PubAck was lost: that is still the one publish of this event.
          const bool duplicate = pub_state(word) == PubState::kDuplicate && ev.attempts == 1;
          retry_at_ns_ = 0;
          if (ev.target == Target::kOutput) {
            ev.mark_done = config_.dedup.enabled;
            complete(ev, Completion::kAck, duplicate ? EventResult::kDuplicate : EventResult::kProcessed);
          } else {
            ev.unmark = ev.dedup == DedupResult::kFirstSeen;
            complete(ev, Completion::kTerm, EventResult::kDeadLettered);
          }
          break;
        }
        case PubState::kTransient:
          if (ev.attempts > static_cast<std::uint32_t>(config_.publish.max_retries)) {
            retry_at_ns_ = 0;
            give_up(ev, ev.pub_error);
            continue;
          }
          if (retry_at_ns_ == 0) {
            const std::int64_t backoff = std::min<std::int64_t>(config_.publish.retry_backoff.count()
                                                                    << std::min<std::uint32_t>(ev.attempts - 1, 20),
                                                                config_.publish.retry_backoff_max.count());
            retry_at_ns_ = now + backoff * kNsPerMs;
          }
          goto blocked;
        case PubState::kOutage: {
          // The stream is missing or cannot store: not this event's fault, so no retry budget is
          // spent and nothing is NAKed or dead-lettered; the monitor reports and recreates it.
          // Unless the monitor found the stream present in a check begun after this publish:
          // then no stream takes the subject (or the server answered 503 for its own reasons),
          // which is a transient failure with its retry budget, as before.
          if (uncovered(ev)) {
            ev.outage_since_ns = 0;
            // release: as finish_claim; this thread owns the settled attempt.
            ev.pub.store(pub_word(generation, PubState::kTransient), std::memory_order_release);
            continue;
          }
          if (retry_at_ns_ == 0) {
            const std::int64_t backoff = std::min<std::int64_t>(config_.publish.retry_backoff.count()
                                                                    << std::min<std::uint32_t>(outage_rounds_, 20),
                                                                config_.publish.retry_backoff_max.count());
            retry_at_ns_ = now + backoff * kNsPerMs;
          }
          goto blocked;
        }
        case PubState::kRejected:
          if (ev.target == Target::kOutput) {
            static thread_local log::RateLimiter limiter;
            std::uint64_t suppressed = 0;
            if (limiter.allow(suppressed)) {
              log_dead_letter(log::Level::kError, "publish rejected; dead-lettering", ev, ErrorKind::kPublishRejected,
                              ev.pub_error, suppressed);
            }
            const std::string reason(ev.pub_error);
            prepare_dead_letter(config_, ev, ErrorKind::kPublishRejected, reason);
            ev.attempts = 0;
            ev.outage_since_ns = 0;
            publish(ev);
            continue;
          }
          give_up(ev, ev.pub_error);
          continue;
        case PubState::kNone:
          // Not published and not final: cannot happen at the front (admit() publishes, decides,
          // or holds a repeat behind its leader, which settles it before leaving).
          on_internal_error("publish stage: event neither published nor final");
      }
    }
    if (leader_hash_[ev.index] != 0) release_repeats(ev);
    metrics_.publish.stage.observe_ns(now - ev.received_ns);
    ctx_.emit(ev);
    window_.pop();
    ++forwarded;
  }
blocked:
  return forwarded > 0;
}

bool PublishStage::uncovered(Event& ev) const noexcept {
  const std::size_t stream = ev.target == Target::kDeadLetter ? 1 : 0;
  if (ev.outage_since_ns == 0) ev.outage_since_ns = sent_ns(ev);
  // The monitor found the stream present in a check begun after this publish: no stream takes
  // the subject (or the server answered 503 for its own reasons). A check asked for by such a
  // failure that found both streams there moments before this one counts too: a subject no
  // stream takes fails on every event, and waiting for a check of its own would hold each of
  // them for a monitor tick.
  const std::int64_t present_despite = metrics_.monitor.streams_present_despite_ns.value();
  return metrics_.monitor.output_stream_missing[stream].value() == 0 &&
         (metrics_.monitor.streams_checked_ns.value() > ev.outage_since_ns ||
          (present_despite > 0 && ev.outage_since_ns - present_despite < kUncoveredWindowNs));
}

void PublishStage::retry_round(std::int64_t now) noexcept {
  // Republish, in order, every attempt that failed or timed out; newer events wait until these
  // are stored (hold_until_), so a retried event never lands after a later one of its subject.
  bool outage = false;
  for (std::size_t i = 0; i < window_.size(); ++i) {
    Event& ev = *window_.at(i);
    if (ev.final) continue;
    const std::uint64_t word = ev.pub.load(std::memory_order_acquire);
    PubState st = pub_state(word);
    if (st == PubState::kInFlight && now > ev.pub_deadline_ns && claim(ev, pub_generation(word))) {
      metrics_.publish.timeouts.inc();
      finish_claim(ev, pub_generation(word), PubState::kTransient, "no PubAck within publish.ack_timeout");
      st = PubState::kTransient;
    }
    if (st == PubState::kOutage && uncovered(ev)) {
      // No stream takes its subject: a failure of this event, with its retry budget.
      ev.outage_since_ns = 0;
      ev.pub.store(pub_word(pub_generation(word), PubState::kTransient), std::memory_order_release);
      st = PubState::kTransient;
    }
    if (st == PubState::kOutage) {
      // Nothing was stored by an attempt that found no stream: it does not count.
      if (ev.attempts > 0) --ev.attempts;
      if (ev.outage_since_ns == 0) ev.outage_since_ns = sent_ns(ev);
      outage = true;
    }
    if ((st == PubState::kTransient && ev.attempts <= static_cast<std::uint32_t>(config_.publish.max_retries)) ||
        st == PubState::kOutage) {
      metrics_.publish.retries.inc();
      publish(ev);
    }
  }
  if (outage) ++outage_rounds_;
  hold_until_ = window_.back_position();
  retry_at_ns_ = 0;
}

bool PublishStage::finish_all_with_nak() noexcept {
  auto abandon = [this](Event& ev) {
    if (ev.final) return;
    // A held repeat: its leader, ahead of it, settles it as it leaves (a NAK unless stored).
    if (held_[ev.index] != 0) return;
    // Take the attempt away from the PubAck callback before giving the slot up.
    while (true) {
      const std::uint64_t word = ev.pub.load(std::memory_order_acquire);
      const PubState st = pub_state(word);
      if (st == PubState::kSettling) continue;  // the callback is finishing; a few instructions
      if (st == PubState::kInFlight && !claim(ev, pub_generation(word))) continue;
      if (st == PubState::kInFlight) finish_claim(ev, pub_generation(word), PubState::kTransient, "shutting down");
      break;
    }
    const std::uint64_t word = ev.pub.load(std::memory_order_acquire);
    if ((pub_state(word) == PubState::kOk || pub_state(word) == PubState::kDuplicate) && ev.target == Target::kOutput) {
      ev.mark_done = config_.dedup.enabled;
      complete(ev, Completion::kAck,
               pub_state(word) == PubState::kDuplicate ? EventResult::kDuplicate : EventResult::kProcessed);
      return;
    }
    ev.unmark = ev.dedup == DedupResult::kFirstSeen;
    ev.nak_delay_ms = 0;  // redeliver at once, to another replica
    complete(ev, Completion::kNak, EventResult::kRetried);
  };
  for (std::size_t i = 0; i < window_.size(); ++i) abandon(*window_.at(i));
  Event* ev = nullptr;
  while (ctx_.in.ring->try_pop(ev)) {
    ev->final = false;
    if (ev->target == Target::kNone) complete(*ev, Completion::kAck, EventResult::kSkipped);
    else if (ev->target == Target::kOutput && ev->dedup == DedupResult::kDone)
      complete(*ev, Completion::kAck, EventResult::kDuplicate);
    window_.push(ev);
    abandon(*ev);
  }
  return advance_head();
}

void PublishStage::choose_lane(std::int64_t now) noexcept {
  if (!lanes_) return;
  const std::size_t load = ctx_.in.ring->size() + window_.size();
  bool want = load >= batching_from_;
  if (batching_) {
    // Back to the eager lane only after the load has stayed low for kEagerAfterNs: a backlog's
    // load dips between two fetches, and each change costs a PubAck round trip with nothing new
    // taken in.
    if (load > eager_at_) {
      calm_since_ns_ = 0;
    } else if (calm_since_ns_ == 0) {
      calm_since_ns_ = now;
    }
    want = calm_since_ns_ == 0 || now - calm_since_ns_ < kEagerAfterNs;
  }
  lane_wanted_ = want != batching_;
  if (!lane_wanted_ || !window_.empty()) return;
  // Nothing awaits a PubAck on the old lane: whatever goes out on the new one is stored after it.
  batching_ = want;
  lane_wanted_ = false;
  calm_since_ns_ = 0;
  publisher_.use_batching_lane(batching_);
  metrics_.publish.lane_switches.inc();
  metrics_.publish.batching.set(batching_ ? 1 : 0);
}

std::size_t PublishStage::accepting() const noexcept {
  // Draining at the deadline, finish_all_with_nak() takes the input itself.
  if (aborting() || retry_at_ns_ != 0 || window_.front_position() < hold_until_) return 0;
  // Changing lanes: nothing new until what is out on the old lane is settled.
  if (lane_wanted_ && !window_.empty()) return 0;
  const auto max_pending = static_cast<std::size_t>(config_.publish.max_pending);
  return window_.size() < max_pending ? max_pending - window_.size() : 0;
}

void PublishStage::on_event(Event& ev, bool end_of_batch) noexcept {
  window_.push(&ev);
  admit(ev);
  if (end_of_batch) advance_head();
}

bool PublishStage::on_idle(std::int64_t now) noexcept {
  if (aborting()) return finish_all_with_nak();
  bool progressed = advance_head();
  if (retry_at_ns_ != 0 && now >= retry_at_ns_) {
    retry_round(now);
    progressed = true;
  }
  metrics_.publish.in_flight.set(static_cast<std::int64_t>(window_.size()));
  if (keep_alive_.due(now)) {
    // Held by retries or behind them: keep JetStream from redelivering them meanwhile.
    for (std::size_t i = 0; i < window_.size(); ++i) keep_alive_.touch(*window_.at(i), now);
    keep_alive_.touch_ring(*ctx_.in.ring, now);
  }
  // The turn's publishes (new events, retries, dead letters) leave in one write: a batch under
  // load, a single publish at once when idle.
  publisher_.end_of_batch();
  const bool was_batching = batching_;
  choose_lane(now);
  // A lane change frees the input the stage held back for it: take it in this very turn loop.
  return progressed || was_batching != batching_;
}

bool PublishStage::ready() const noexcept {
  if (aborting()) return ctx_.in.ring->front() != nullptr;
  if (window_.empty() || retry_at_ns_ != 0) return false;
  const PubState st = pub_state(window_.front()->pub.load(std::memory_order_acquire));
  return st != PubState::kInFlight && st != PubState::kSettling;
}

std::int64_t PublishStage::wake_at_ns() const noexcept {
  // Calm on the batching lane: a turn when it has been calm long enough to go eager (a change
  // already wanted waits for the window instead, which ready() reports).
  const std::int64_t go_eager_ns =
      batching_ && calm_since_ns_ != 0 && !lane_wanted_ && !aborting() ? calm_since_ns_ + kEagerAfterNs : 0;
  if (window_.empty() || aborting()) return go_eager_ns;
  std::int64_t at = 0;
  if (retry_at_ns_ != 0) {
    at = retry_at_ns_;
  } else if (const Event& head = *window_.front(); !head.final) {
    at = head.pub_deadline_ns;
  }
  if (at == 0 || go_eager_ns == 0) return at != 0 ? at : go_eager_ns;
  return std::min(at, go_eager_ns);
}

}  // namespace cdc
