#include "cdc/adapters/nats/partitioned_source.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "cdc/adapters/nats/nats_message.hpp"
#include "cdc/core/jetstream_meta.hpp"
#include "cdc/core/log.hpp"
#include "cdc/core/partitions.hpp"
#include "cdc/pipeline/link.hpp"  // now_ns

namespace cdc {
namespace {

constexpr std::int64_t kNsPerMs = 1'000'000;
/// A request whose end (408, filled) has not come this long after its expiry is taken as lost
/// (the server forgets pull requests when the connection drops): the partition fetches again.
constexpr std::int64_t kLostMarginNs = 1'000 * kNsPerMs;
/// After a status that says the consumer or the request is wrong (503, 409), the partition's
/// next request waits this long: no request storm against a consumer that is gone.
constexpr std::int64_t kErrorBackoffNs = 1'000 * kNsPerMs;
/// stop(): how long past fetch_expires it waits for the last requests to end.
constexpr std::int64_t kStopMarginNs = 1'000 * kNsPerMs;

/// Parses the decimal number in [begin, end) whole; false otherwise.
template <typename T>
bool parse_number(std::string_view text, T& out) noexcept {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  return std::from_chars(text.data(), end, out).ptr == end;
}

class PartitionedSource final : public MessageSource {
  /// One partition's pull state. Ingest thread only (stop() included).
  struct Part {
    std::string request_subject;  // $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>
    std::string reply;            // "<inbox>.<p>." then the request number, rewritten in place
    std::size_t reply_prefix = 0;
    std::uint64_t seq = 0;                    // number of the outstanding (or last) request
    bool outstanding = false;                 // a request is open on the server
    int due = 0;                              // messages the open request may still deliver
    std::uint32_t epoch = 0;                  // the slot's epoch when the request was sent
    std::int64_t deadline_ns = 0;             // the open request counts as lost after this
    std::int64_t retry_at_ns = 0;             // no new request before this (after an error status)
    std::uint64_t no_responders_at_send = 0;  // no_responders_ when the request went out
    std::uint64_t reconnects_at_send = 0;     // the connection's reconnections then
    bool delivered = false;                   // the open request delivered something
  };

 public:
  PartitionedSource(NatsConnection& nats, const Config& config, PartitionTable& table)
      : nats_(nats),
        table_(table),
        consumer_base_(config.ingest.consumer),
        partitions_(static_cast<std::uint32_t>(std::max(1, config.ingest.partitions))),
        fetch_batch_(std::max(1, config.ingest.fetch_batch)),
        expires_ns_(static_cast<std::int64_t>(config.ingest.fetch_expires.count()) * kNsPerMs),
        parts_(partitions_) {
    if (table_.size() != partitions_) {
      throw NatsError("partition table has " + std::to_string(table_.size()) + " slots for ingest.partitions " +
                      std::to_string(partitions_));
    }
    natsInbox* inbox = nullptr;
    if (natsInbox_Create(&inbox) != NATS_OK) throw NatsError("inbox: " + nats_error_text(NATS_ERR));
    inbox_dot_ = std::string(inbox).append(".");
    natsInbox_Destroy(inbox);
    for (std::uint32_t p = 0; p < partitions_; ++p) {
      Part& part = parts_[p];
      part.request_subject = std::string("$JS.API.CONSUMER.MSG.NEXT.")
                                 .append(config.ingest.stream)
                                 .append(".")
                                 .append(partition_consumer(config.ingest, p));
      part.reply = std::string(inbox_dot_).append(std::to_string(p)).append(".");
      part.reply_prefix = part.reply.size();
      part.reply.reserve(part.reply_prefix + 24);  // room for the request number: no allocation later
    }
    natsSubscription* sub = nullptr;
    const std::string filter = std::string(inbox_dot_).append(">");
    const natsStatus s = natsConnection_SubscribeSync(&sub, nats_.get(), filter.c_str());
    if (s != NATS_OK) throw NatsError("pull subscription " + filter + ": " + nats_error_text(s));
    sub_.reset(sub);
    // The requests' batches bound what comes; never drop on the client side.
    natsSubscription_SetPendingLimits(sub, -1, -1);
    held_.reserve(static_cast<std::size_t>(fetch_batch_) * 2);
  }

  ~PartitionedSource() override {
    if (!stopped_) natsSubscription_Unsubscribe(sub_.get());
  }
  PartitionedSource(const PartitionedSource&) = delete;
  PartitionedSource& operator=(const PartitionedSource&) = delete;

  int next_batch(SourceMessage* out, int max, std::chrono::milliseconds wait) noexcept override {
    if (stopping_ || max <= 0) return 0;
    std::int64_t now = now_ns();
    const std::int64_t deadline = now + static_cast<std::int64_t>(wait.count()) * kNsPerMs;
    send_due(now, max);
    int n = 0;
    while (n < max) {
      // The first message waits (one wait for every partition); the rest are what is queued.
      const std::int64_t left_ns = n > 0 ? 0 : std::max<std::int64_t>(0, deadline - now);
      natsMsg* msg = nullptr;
      const natsStatus s = natsSubscription_NextMsg(&msg, sub_.get(), (left_ns + kNsPerMs - 1) / kNsPerMs);
      if (s == NATS_TIMEOUT) break;
      if (s == NATS_NO_RESPONDERS) {
        // A request found no consumer to answer it. nats.c swallows that status message on a
        // synchronous subscription, so which partition it was is learnt when that request
        // reaches its deadline with nothing delivered and no end (expire_lost).
        ++no_responders_;
        continue;
      }
      if (s != NATS_OK || msg == nullptr) {
        log_limited("pull subscription error", nats_error_text(s));
        expire_lost(now_ns());
        return n > 0 ? n : -1;
      }
      if (take(msg, out[n])) {
        ++n;
      } else if (n == 0) {
        // A request ended (or a message was dropped): ask again at once, then go on waiting.
        now = now_ns();
        if (now >= deadline) break;
        send_due(now, max);
      }
    }
    expire_lost(now_ns());
    return n;
  }

  void stop() noexcept override {
    if (stopping_) return;
    stopping_ = true;  // no more requests
    // Wait until every request has ended (filled, or its 408 at expiry): what a request still
    // delivers comes to us, not to a NAK's redelivery into one of our own open requests.
    const std::int64_t deadline = now_ns() + expires_ns_ + kStopMarginNs;
    held_.clear();
    std::int64_t now = now_ns();
    while (owed_requests() > 0 && now < deadline) {
      natsMsg* msg = nullptr;
      const natsStatus s =
          natsSubscription_NextMsg(&msg, sub_.get(), std::max<std::int64_t>(1, (deadline - now) / kNsPerMs));
      if (s == NATS_OK && msg != nullptr) hold(msg);
      else if (s == NATS_NO_RESPONDERS) ++no_responders_;  // a request no consumer took: ends at the deadline
      else if (s != NATS_TIMEOUT) break;
      now = now_ns();
    }
    const int unfinished = owed_requests();
    // What is already queued, then interest goes: nothing more can reach us.
    natsMsg* msg = nullptr;
    while (natsSubscription_NextMsg(&msg, sub_.get(), 0) == NATS_OK && msg != nullptr) hold(msg);
    natsSubscription_Unsubscribe(sub_.get());
    stopped_ = true;
    int naked = 0;
    int failed = 0;
    int fenced = 0;
    for (const Held& h : held_) {
      const char* reply = natsMsg_GetReply(h.msg);
      if (table_.slot(h.partition).epoch.load(std::memory_order_acquire) != h.epoch) {
        ++fenced;  // no longer ours: left to AckWait, as in next_batch
      } else if (reply != nullptr && natsConnection_Publish(nats_.get(), reply, "-NAK", 4) == NATS_OK) {
        ++naked;
      } else {
        ++failed;
      }
      natsMsg_Destroy(h.msg);
    }
    held_.clear();
    for (std::uint32_t p = 0; p < partitions_; ++p) end_request(p);
    natsConnection_FlushTimeout(nats_.get(), 2000);
    log::info(
        "intake stopped; pull requests ended, messages delivered but not taken were returned (NAK)",
        {{"naked", naked}, {"nak_failed", failed}, {"fenced_released", fenced}, {"requests_unfinished", unfinished}});
  }

 private:
  struct Held {
    natsMsg* msg;
    std::uint32_t partition;
    std::uint32_t epoch;
  };

  /// Sends a request for every owned, fetchable partition without one, while the caller's free
  /// slots (less what open requests may still deliver) last. Scans the slots only when the
  /// table changed, a request ended, or an error backoff is over.
  void send_due(std::int64_t now, int max) noexcept {
    const std::uint64_t version = table_.version();
    if (!dirty_ && version == seen_version_ && now < next_retry_ns_) return;
    seen_version_ = version;
    dirty_ = false;
    next_retry_ns_ = std::numeric_limits<std::int64_t>::max();
    int budget = max - owed_;
    // The free slots are shared by the partitions that may ask now, so one busy partition does
    // not take them all while the others wait for its request to end.
    int asking = 0;
    for (std::uint32_t p = 0; p < partitions_; ++p) {
      const PartitionSlot& slot = table_.slot(p);
      if (!parts_[p].outstanding && now >= parts_[p].retry_at_ns && slot.epoch.load(std::memory_order_acquire) != 0 &&
          !slot.stop_fetching.load(std::memory_order_acquire)) {
        ++asking;
      }
    }
    const int share = asking > 0 ? std::max(1, budget / asking) : 0;
    for (std::uint32_t i = 0; i < partitions_; ++i) {
      // Round robin from a moving start: a short budget does not always serve the same ones.
      const std::uint32_t p = (next_start_ + i) % partitions_;
      Part& part = parts_[p];
      if (part.outstanding) continue;
      const PartitionSlot& slot = table_.slot(p);
      const std::uint32_t epoch = slot.epoch.load(std::memory_order_acquire);
      if (epoch == 0 || slot.stop_fetching.load(std::memory_order_acquire)) continue;
      if (now < part.retry_at_ns) {
        next_retry_ns_ = std::min(next_retry_ns_, part.retry_at_ns);
        continue;
      }
      if (budget <= 0) {
        dirty_ = true;  // more to send once slots are free
        break;
      }
      const int batch = std::min({fetch_batch_, budget, share});
      if (send(p, epoch, batch, now)) budget -= batch;
    }
    next_start_ = partitions_ > 0 ? (next_start_ + 1) % partitions_ : 0;
  }

  bool send(std::uint32_t p, std::uint32_t epoch, int batch, std::int64_t now) noexcept {
    Part& part = parts_[p];
    PartitionSlot& slot = table_.slot(p);
    char number[24];
    const auto res = std::to_chars(number, number + sizeof number, part.seq + 1);
    part.reply.resize(part.reply_prefix);
    part.reply.append(number, res.ptr);
    char body[96];
    const int len =
        std::snprintf(body, sizeof body, "{\"batch\":%d,\"expires\":%lld}", batch, static_cast<long long>(expires_ns_));
    // Not idle from before the request goes out: the fleet must never see idle with a request open.
    slot.fetch_idle.store(false, std::memory_order_release);
    const natsStatus s =
        natsConnection_PublishRequest(nats_.get(), part.request_subject.c_str(), part.reply.c_str(), body, len);
    if (s != NATS_OK) {
      slot.fetch_idle.store(true, std::memory_order_release);
      part.retry_at_ns = now + kErrorBackoffNs;
      next_retry_ns_ = std::min(next_retry_ns_, part.retry_at_ns);
      log_limited("pull request not sent", nats_error_text(s));
      return false;
    }
    ++part.seq;
    part.outstanding = true;
    part.delivered = false;
    part.no_responders_at_send = no_responders_;
    part.reconnects_at_send = nats_.reconnects();
    part.due = batch;
    part.epoch = epoch;
    part.deadline_ns = now + expires_ns_ + kLostMarginNs;
    earliest_deadline_ns_ = std::min(earliest_deadline_ns_, part.deadline_ns);
    owed_ += batch;
    ++open_;
    return true;
  }

  void end_request(std::uint32_t p) noexcept {
    Part& part = parts_[p];
    if (part.outstanding) {
      owed_ -= part.due;
      --open_;
    }
    part.outstanding = false;
    part.due = 0;
    table_.slot(p).fetch_idle.store(true, std::memory_order_release);
    dirty_ = true;
  }

  [[nodiscard]] int owed_requests() const noexcept { return open_; }

  /// Requests whose end never came end here: the connection dropped meanwhile (the server
  /// forgot them), or no consumer took them (nats-server 2.9 leaves a request for a consumer
  /// that does not exist unanswered; a "no responders" status, which nats.c would swallow on a
  /// synchronous subscription, says the same): its consumer is missing. The fleet checks
  /// (consumer info) and recreates it.
  void expire_lost(std::int64_t now) noexcept {
    if (now < earliest_deadline_ns_) return;
    earliest_deadline_ns_ = std::numeric_limits<std::int64_t>::max();
    for (std::uint32_t p = 0; p < partitions_; ++p) {
      Part& part = parts_[p];
      if (!part.outstanding) continue;
      if (now < part.deadline_ns) {
        earliest_deadline_ns_ = std::min(earliest_deadline_ns_, part.deadline_ns);
        continue;
      }
      end_request(p);
      const bool reconnected = nats_.reconnects() != part.reconnects_at_send;
      if (!part.delivered && (no_responders_ > part.no_responders_at_send || !reconnected)) {
        table_.slot(p).consumer_missing.store(true, std::memory_order_release);
        part.retry_at_ns = now + kErrorBackoffNs;
        next_retry_ns_ = std::min(next_retry_ns_, part.retry_at_ns);
        std::uint64_t suppressed = 0;
        if (limiter_.allow(suppressed)) {
          log::warn("pull request: no responders, the partition's consumer is missing",
                    {{"partition", static_cast<unsigned long long>(p)},
                     {"request_subject", part.request_subject},
                     {"suppressed", static_cast<unsigned long long>(suppressed)}});
        }
      }
    }
  }

  /// The partition whose consumer delivered the message (named in its ack subject), or P.
  [[nodiscard]] std::uint32_t partition_of(const char* reply) const noexcept {
    AckSubjectInfo info;
    if (reply == nullptr || !parse_ack_subject(reply, info)) return partitions_;
    if (partitions_ == 1) return info.consumer == consumer_base_ ? 0 : partitions_;
    // "<consumer>-<p>" (partition_consumer)
    const std::string_view c = info.consumer;
    if (c.size() <= consumer_base_.size() + 1 || c.compare(0, consumer_base_.size(), consumer_base_) != 0 ||
        c[consumer_base_.size()] != '-') {
      return partitions_;
    }
    std::uint32_t p = 0;
    if (!parse_number(c.substr(consumer_base_.size() + 1), p) || p >= partitions_) return partitions_;
    return p;
  }

  /// Counts a delivered message against its partition's open request. Returns the partition
  /// (P when unknown).
  std::uint32_t account(natsMsg* msg) noexcept {
    const std::uint32_t p = partition_of(natsMsg_GetReply(msg));
    if (p >= partitions_) return p;
    Part& part = parts_[p];
    PartitionSlot& slot = table_.slot(p);
    // It delivers, so it exists (read first: no store to the shared line per message).
    if (slot.consumer_missing.load(std::memory_order_relaxed))
      slot.consumer_missing.store(false, std::memory_order_release);
    if (part.outstanding) {
      part.delivered = true;
      --part.due;
      --owed_;
      if (part.due <= 0) end_request(p);  // filled: the server sends no status for that
    }
    return p;
  }

  /// Status messages end requests; a data message of a partition still ours goes to `out`.
  bool take(natsMsg* msg, SourceMessage& out) noexcept {
    if (is_status(msg)) {
      on_status(msg);
      natsMsg_Destroy(msg);
      return false;
    }
    const std::uint32_t p = account(msg);
    if (p >= partitions_) {
      log_limited("message from an unknown consumer released without ack", natsMsg_GetSubject(msg));
      natsMsg_Destroy(msg);
      return false;
    }
    const std::uint32_t epoch = parts_[p].epoch;
    if (epoch == 0 || table_.slot(p).epoch.load(std::memory_order_acquire) != epoch) {
      // Fenced or released since the request went out: no ack, no NAK (a NAK could come straight
      // back to another of our open requests); JetStream redelivers it after AckWait to the owner.
      natsMsg_Destroy(msg);
      return false;
    }
    out = to_source_message(msg);
    out.partition = p;
    out.epoch = epoch;
    return true;
  }

  void hold(natsMsg* msg) noexcept {
    if (is_status(msg)) {
      on_status(msg);
      natsMsg_Destroy(msg);
      return;
    }
    const std::uint32_t p = account(msg);
    if (p >= partitions_) {
      natsMsg_Destroy(msg);
      return;
    }
    try {
      held_.push_back(Held{msg, p, parts_[p].epoch});
    } catch (...) {
      natsMsg_Destroy(msg);  // out of memory at shutdown: left to AckWait
    }
  }

  [[nodiscard]] bool is_status(natsMsg* msg) const noexcept {
    const char* subject = natsMsg_GetSubject(msg);
    return std::strncmp(subject, inbox_dot_.data(), inbox_dot_.size()) == 0;
  }

  void on_status(natsMsg* msg) noexcept {
    // "<inbox>.<p>.<n>": which request it ends; one of an earlier request is stale.
    const std::string_view tail = std::string_view(natsMsg_GetSubject(msg)).substr(inbox_dot_.size());
    const std::size_t dot = tail.find('.');
    std::uint32_t p = 0;
    std::uint64_t n = 0;
    if (dot == std::string_view::npos || !parse_number(tail.substr(0, dot), p) ||
        !parse_number(tail.substr(dot + 1), n) || p >= partitions_) {
      return;
    }
    Part& part = parts_[p];
    const char* code = nullptr;
    const char* description = nullptr;
    natsMsgHeader_Get(msg, "Status", &code);
    natsMsgHeader_Get(msg, "Description", &description);
    const std::string_view status = code != nullptr ? code : "";
    const std::string_view why = description != nullptr ? description : "";
    if (status == "100") return;  // heartbeat: the request goes on
    if (!part.outstanding || n != part.seq) return;
    end_request(p);
    if (status == "408" || status == "404") {
      table_.slot(p).consumer_missing.store(false, std::memory_order_release);  // it answered
      return;
    }
    // 503 no responders: no consumer (or no JetStream) answers on its subject; 409 Consumer
    // Deleted: it went while our request was open. Both: the fleet notices and recreates it.
    const bool gone =
        natsMsg_IsNoResponders(msg) || status == "503" || why.find("Consumer Deleted") != std::string_view::npos;
    if (gone) table_.slot(p).consumer_missing.store(true, std::memory_order_release);
    part.retry_at_ns = now_ns() + kErrorBackoffNs;
    next_retry_ns_ = std::min(next_retry_ns_, part.retry_at_ns);
    std::uint64_t suppressed = 0;
    if (limiter_.allow(suppressed)) {
      log::warn(gone ? "pull request: the partition's consumer is missing" : "pull request ended with an error",
                {{"partition", static_cast<unsigned long long>(p)},
                 {"consumer", std::string_view(part.request_subject).substr(part.request_subject.rfind('.') + 1)},
                 {"status", status},
                 {"description", why},
                 {"suppressed", static_cast<unsigned long long>(suppressed)}});
    }
  }

  void log_limited(std::string_view msg, std::string_view detail) noexcept {
    std::uint64_t suppressed = 0;
    if (limiter_.allow(suppressed)) {
      log::error(msg, {{"detail", detail}, {"suppressed", static_cast<unsigned long long>(suppressed)}});
    }
  }

  NatsConnection& nats_;
  PartitionTable& table_;
  std::string consumer_base_;
  std::uint32_t partitions_;
  int fetch_batch_;
  std::int64_t expires_ns_;
  std::string inbox_dot_;  // "<inbox>."
  NatsSubPtr sub_;
  std::vector<Part> parts_;
  std::vector<Held> held_;           // stop() only
  int owed_ = 0;                     // messages the open requests may still deliver
  std::uint64_t no_responders_ = 0;  // "no responders" answers to our requests so far
  int open_ = 0;                     // open requests
  bool dirty_ = true;                // rescan the slots at the next send_due
  std::uint64_t seen_version_ = 0;
  std::int64_t next_retry_ns_ = 0;
  std::int64_t earliest_deadline_ns_ = std::numeric_limits<std::int64_t>::max();
  std::uint32_t next_start_ = 0;
  bool stopping_ = false;
  bool stopped_ = false;
  log::RateLimiter limiter_;
};

}  // namespace

std::unique_ptr<MessageSource> make_partitioned_source(NatsConnection& nats, const Config& config,
                                                       PartitionTable& table) {
  return std::make_unique<PartitionedSource>(nats, config, table);
}

}  // namespace cdc
