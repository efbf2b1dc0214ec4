#include "cdc/adapters/nats/jetstream_ports.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "cdc/adapters/nats/nats_message.hpp"
#include "cdc/core/log.hpp"

namespace cdc {
namespace {

natsSubscription* bind_consumer(NatsConnection& nats, const Config& config, const std::string& filter) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = config.ingest.stream.c_str();
  so.Consumer = config.ingest.consumer.c_str();
  so.ManualAck = true;
  natsSubscription* sub = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = NATS_OK;
  if (config.ingest.mode == IngestMode::kPush) {
    so.Queue = config.ingest.queue_group.c_str();
    s = js_SubscribeSync(&sub, nats.js(), filter.c_str(), nullptr, &so, &err);
  } else {
    s = js_PullSubscribe(&sub, nats.js(), filter.c_str(), config.ingest.consumer.c_str(), nullptr, &so, &err);
  }
  if (s != NATS_OK) throw NatsError("subscribe to consumer " + config.ingest.consumer + ": " + nats_error_text(s));
  // MaxAckPending bounds what the server sends; never drop on the client side.
  natsSubscription_SetPendingLimits(sub, -1, -1);
  return sub;
}

void log_limited(log::RateLimiter& limiter, std::string_view msg, natsStatus s) {
  std::uint64_t suppressed = 0;
  if (limiter.allow(suppressed)) {
    log::error(msg, {{"error", nats_error_text(s)}, {"suppressed", static_cast<unsigned long long>(suppressed)}});
  }
}

/// Push consumer: a sync queue subscription; nats.c queues what the server pushes.
class PushSource final : public MessageSource {
  static constexpr std::chrono::milliseconds kStopTimeout{5000};

 public:
  PushSource(natsSubscription* sub, NatsConnection& nats) : sub_(sub), nats_(nats) {}

  int next_batch(SourceMessage* out, int max, std::chrono::milliseconds wait) noexcept override {
    natsMsg* msg = nullptr;
    const natsStatus s = natsSubscription_NextMsg(&msg, sub_.get(), wait.count());
    if (s != NATS_OK) {
      if (s != NATS_TIMEOUT) {
        log_limited(limiter_, "consume subscription error", s);
        return -1;
      }
      return 0;
    }
    int n = 0;
    out[n++] = to_source_message(msg);
    // Take what is already queued, without waiting (end of batch = nothing queued).
    while (n < max && natsSubscription_NextMsg(&msg, sub_.get(), 0) == NATS_OK && msg != nullptr)
      out[n++] = to_source_message(msg);
    return n;
  }

  void stop() noexcept override {
    // Interest goes first (drain: UNSUBSCRIBE, confirmed by the server), then everything nats.c
    // queued for us, including what was on the wire until the server saw the UNSUBSCRIBE, is
    // NAKed. The other order loses messages: a NAK is redelivered at once, into a subscription
    // about to be dropped, and then waits AckWait.
    const auto deadline = std::chrono::steady_clock::now() + kStopTimeout;
    const bool draining = natsSubscription_DrainTimeout(sub_.get(), kStopTimeout.count()) == NATS_OK;
    int naked = 0;
    int failed = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      natsMsg* msg = nullptr;
      const natsStatus s = natsSubscription_NextMsg(&msg, sub_.get(), draining ? 50 : 0);
      if (s == NATS_OK && msg != nullptr) {
        // The NAK as JetStream's ack protocol on the reply subject: natsMsg_Nak() needs the
        // subscription's JetStream state, which nats.c frees once the drain completes.
        const char* reply = natsMsg_GetReply(msg);
        if (reply != nullptr && natsConnection_Publish(nats_.get(), reply, "-NAK", 4) == NATS_OK) ++naked;
        else ++failed;
        natsMsg_Destroy(msg);
        continue;
      }
      // Empty: done once the server confirmed the UNSUBSCRIBE (the drain completes with an empty
      // queue), or at once when draining could not start.
      if (!draining || s != NATS_TIMEOUT || natsSubscription_DrainCompletionStatus(sub_.get()) != NATS_ILLEGAL_STATE)
        break;
    }
    natsSubscription_Unsubscribe(sub_.get());
    natsConnection_FlushTimeout(nats_.get(), 2000);
    log::info("intake stopped; messages delivered but not taken were returned (NAK)",
              {{"naked", naked}, {"nak_failed", failed}, {"drained", draining}});
  }

 private:
  NatsSubPtr sub_;
  NatsConnection& nats_;
  log::RateLimiter limiter_;
};

/// Pull consumer: no-wait fetches while busy; a one-message fetch that waits when idle (a fetch
/// of N waits for all N or its expiry).
class PullSource final : public MessageSource {
 public:
  PullSource(natsSubscription* sub, const Config& config)
      : sub_(sub), fetch_batch_(config.ingest.fetch_batch), expires_ms_(config.ingest.fetch_expires.count()) {}

  int next_batch(SourceMessage* out, int max, std::chrono::milliseconds wait) noexcept override {
    jsFetchRequest req;
    jsFetchRequest_Init(&req);
    // A caller that must not wait (a stage sharing its thread polls between other work) gets a
    // no-wait fetch too: an expiry of 0 would mean none.
    const bool poll = idle_ && wait.count() <= 0;
    req.Batch = idle_ && !poll ? 1 : std::max(1, std::min(max, fetch_batch_));
    req.NoWait = !idle_ || poll;
    req.Expires = std::min<std::int64_t>(expires_ms_, wait.count()) * 1'000'000;
    natsMsgList list{nullptr, 0};
    const natsStatus s = natsSubscription_FetchRequest(&list, sub_.get(), &req);
    int n = 0;
    for (int i = 0; i < list.Count && n < max; ++i) {
      out[n++] = to_source_message(list.Msgs[i]);
      list.Msgs[i] = nullptr;  // now the caller's
    }
    natsMsgList_Destroy(&list);
    idle_ = n == 0;
    if (n == 0 && s != NATS_OK && s != NATS_TIMEOUT && s != NATS_NOT_FOUND) {
      log_limited(limiter_, "fetch failed", s);
      return -1;
    }
    return n;
  }

  void stop() noexcept override { natsSubscription_Unsubscribe(sub_.get()); }

 private:
  NatsSubPtr sub_;
  int fetch_batch_;
  std::int64_t expires_ms_;
  bool idle_ = true;
  log::RateLimiter limiter_;
};

class NatsCompleter final : public Completer {
 public:
  explicit NatsCompleter(NatsConnection& nats) : nats_(nats) {}
  // JetStream's ack protocol written on the message's reply subject, as natsMsg_Ack() and friends
  // do, but without their need for the subscription's JetStream state: at SIGTERM the consume
  // subscription is drained first (nats_ports.cpp, PushSource::stop) and nats.c frees that state,
  // while events still in the pipeline must be acked or NAKed after it.
  bool ack(const SourceMessage& msg) noexcept override { return deferred_reply(msg, "+ACK"); }
  bool nak(const SourceMessage& msg, std::int64_t delay_ms) noexcept override {
    if (delay_ms <= 0) return deferred_reply(msg, "-NAK");
    char body[64];
    std::snprintf(body, sizeof body, "-NAK {\"delay\":%lld}", static_cast<long long>(delay_ms) * 1'000'000LL);
    return deferred_reply(msg, body);
  }
  bool term(const SourceMessage& msg) noexcept override { return deferred_reply(msg, "+TERM"); }
  // In-progress signals come from any stage thread, outside the ack stage's batch: not deferred.
  bool in_progress(const SourceMessage& msg) noexcept override { return reply(msg, "+WPI"); }
  void flush(std::chrono::milliseconds timeout) noexcept override {
    end_of_batch();  // deferred acks first: the PING below would wait behind them
    natsConnection_FlushTimeout(nats_.get(), timeout.count());
  }
  void end_of_batch() noexcept override {
    if (nats_.loop() != nullptr) nats_.loop()->end_of_batch();
  }

 private:
  /// The ack stage's completions: written at the end of its batch (write mode batch).
  bool deferred_reply(const SourceMessage& msg, std::string_view body) noexcept {
    if (nats_.loop() == nullptr) return reply(msg, body);
    const NatsEventLoop::Deferral deferral(*nats_.loop());
    return reply(msg, body);
  }
  bool reply(const SourceMessage& msg, std::string_view body) noexcept {
    // The reply view is nats.c's NUL-terminated reply subject of the message.
    if (msg.reply.empty()) return false;
    return natsConnection_Publish(nats_.get(), msg.reply.data(), body.data(), static_cast<int>(body.size())) == NATS_OK;
  }

  NatsConnection& nats_;
};

/// JetStream publishes go out as core publishes whose reply subject names the event; the
/// PubAcks come back on one subscription of ours per connection (its own dispatch thread).
/// With two lanes (publish.write_mode adaptive), each connection has its own reply prefix, so a
/// PubAck comes back only on the connection that published; their two dispatch threads take
/// turns at the sink (a mutex no stage thread takes).
class NatsPublisher final : public Publisher {
 public:
  NatsPublisher(NatsConnection& eager, NatsConnection* batching) {
    lanes_[0].nats = &eager;
    lanes_[0].prefix = new_prefix();
    if (batching != nullptr) {
      lanes_[1].nats = batching;
      lanes_[1].prefix = new_prefix();
      lane_count_ = 2;
    }
  }

  ~NatsPublisher() override {
    for (std::size_t i = 0; i < lane_count_; ++i) {
      if (lanes_[i].sub) natsSubscription_Unsubscribe(lanes_[i].sub.get());
    }
  }

  void set_sink(PubAckSink* sink) override {
    sink_ = sink;
    for (std::size_t i = 0; i < lane_count_; ++i) {
      Lane& lane = lanes_[i];
      natsSubscription* sub = nullptr;
      const std::string filter = lane.prefix + ".>";
      const natsStatus s =
          natsConnection_Subscribe(&sub, lane.nats->get(), filter.c_str(), &NatsPublisher::on_msg, this);
      if (s != NATS_OK) throw NatsError("PubAck subscription: " + nats_error_text(s));
      // PubAcks must never be dropped by a slow-consumer limit: the window is bounded by the pool.
      natsSubscription_SetPendingLimits(sub, -1, -1);
      lane.sub.reset(sub);
      natsConnection_Flush(lane.nats->get());
    }
  }

  [[nodiscard]] const std::string& reply_prefix() const noexcept override { return lanes_[current_].prefix; }
  [[nodiscard]] std::int64_t max_payload() const noexcept override {
    // Both lanes reach the same servers; the smaller limit holds for either.
    std::int64_t limit = lanes_[0].nats->max_payload();
    if (lane_count_ == 2) {
      const std::int64_t other = lanes_[1].nats->max_payload();
      if (limit <= 0 || (other > 0 && other < limit)) limit = other;
    }
    return limit;
  }
  void end_of_batch() noexcept override {
    if (NatsEventLoop* loop = lanes_[current_].nats->loop()) loop->end_of_batch();
  }
  [[nodiscard]] bool has_batching_lane() const noexcept override { return lane_count_ == 2; }
  void use_batching_lane(bool batching) noexcept override { current_ = batching && lane_count_ == 2 ? 1 : 0; }

  Status publish(const std::string& subject, const std::string& reply, std::string_view payload,
                 const std::string& msg_id, std::string& error) noexcept override {
    NatsConnection& nats = *lanes_[current_].nats;
    natsMsg* m = nullptr;
    natsStatus s = natsMsg_Create(&m, subject.c_str(), reply.c_str(), payload.data(), static_cast<int>(payload.size()));
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id.c_str());
    if (s == NATS_OK) {
      if (nats.loop() != nullptr) {
        // Written by end_of_batch(), with the rest of the stage's batch.
        const NatsEventLoop::Deferral deferral(*nats.loop());
        s = natsConnection_PublishMsg(nats.get(), m);
      } else {
        s = natsConnection_PublishMsg(nats.get(), m);
      }
    }
    natsMsg_Destroy(m);
    if (s == NATS_OK) return Status::kOk;
    error = nats_error_text(s);
    return s == NATS_MAX_PAYLOAD ? Status::kTooLarge : Status::kFailed;
  }

 private:
  struct Lane {
    NatsConnection* nats = nullptr;
    std::string prefix;
    NatsSubPtr sub;
  };

  static std::string new_prefix() {
    natsInbox* inbox = nullptr;
    if (natsInbox_Create(&inbox) != NATS_OK) throw NatsError("inbox: " + nats_error_text(NATS_ERR));
    std::string prefix = std::string("_CDC_PUBACK.") + (std::strrchr(inbox, '.') + 1);
    natsInbox_Destroy(inbox);
    return prefix;
  }

  static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) noexcept {
    auto* self = static_cast<NatsPublisher*>(closure);
    NatsMsgPtr owned(msg);
    const std::string_view subject = natsMsg_GetSubject(msg);
    const std::string_view body(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    const bool no_responders = natsMsg_IsNoResponders(msg);
    if (self->lane_count_ == 1) {
      self->sink_->on_puback(subject, body, no_responders);
      return;
    }
    // The sink's metrics have one writer at a time: the lanes' dispatch threads take turns.
    const std::lock_guard<std::mutex> lock(self->sink_mutex_);
    self->sink_->on_puback(subject, body, no_responders);
  }

  std::array<Lane, 2> lanes_;
  std::size_t lane_count_ = 1;
  std::size_t current_ = 0;  // publish stage thread only
  PubAckSink* sink_ = nullptr;
  std::mutex sink_mutex_;
};

}  // namespace

std::unique_ptr<MessageSource> make_nats_source(NatsConnection& nats, const Config& config, const std::string& filter) {
  natsSubscription* sub = bind_consumer(nats, config, filter);
  if (config.ingest.mode == IngestMode::kPush) return std::make_unique<PushSource>(sub, nats);
  return std::make_unique<PullSource>(sub, config);
}

std::unique_ptr<Completer> make_nats_completer(NatsConnection& nats) { return std::make_unique<NatsCompleter>(nats); }

std::unique_ptr<Publisher> make_nats_publisher(NatsConnection& nats, NatsConnection* batching) {
  return std::make_unique<NatsPublisher>(nats, batching);
}

}  // namespace cdc
