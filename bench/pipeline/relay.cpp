#include "pipeline/relay.hpp"

#include <pthread.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

#include "cdc/pipeline/link.hpp"

namespace cdc::bench {
namespace {
constexpr std::size_t kSlots = 1 << 16;  // > MaxAckPending: the server never sends more
constexpr std::size_t kMask = kSlots - 1;
}  // namespace

void relay_subject(std::string_view prefix, std::string_view subject, std::string& out) {
  out.assign(prefix);
  // Skip token 1 (`cdc`), copy tokens 2 and 3.
  std::size_t at = subject.find('.');
  for (int token = 0; token < 2; ++token) {
    out.push_back('.');
    if (at == std::string_view::npos) {
      out.push_back('_');
      continue;
    }
    const std::size_t from = at + 1;
    at = subject.find('.', from);
    const std::string_view t = subject.substr(from, at == std::string_view::npos ? std::string_view::npos : at - from);
    if (t.empty()) out.push_back('_');
    else out.append(t);
  }
}

Relay::Relay(RelayOptions options) : options_(std::move(options)), slots_(kSlots) {
  natsOptions* opts = nullptr;
  check_nats(natsOptions_Create(&opts), "options");
  natsOptions_SetURL(opts, options_.url.c_str());
  natsOptions_SetName(opts, options_.send_asap ? "bench-relay-eager" : "bench-relay-batching");
  natsOptions_SetIOBufSize(opts, options_.io_buffer_bytes);
  natsOptions_SetSendAsap(opts, options_.send_asap);
  const natsStatus s = natsConnection_Connect(&conn_, opts);
  natsOptions_Destroy(opts);
  check_nats(s, "connect " + options_.url);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 10000;
  jo.PublishAsync.MaxPending = options_.publish_window;
  jo.PublishAsync.StallWait = 5000;
  jo.PublishAsync.AckHandler = &Relay::on_puback;
  jo.PublishAsync.AckHandlerClosure = this;
  check_nats(natsConnection_JetStream(&pub_js_, conn_, &jo), "jetstream context (publish)");
  // The pull subscription has a context of its own on the same connection: sharing the async
  // publishing context with it aborted in malloc in one 200 000-message drain out of three
  // (nats.c 3.4.1), as the service never does (its publishes are core publishes).
  jsOptions jo_sub;
  jsOptions_Init(&jo_sub);
  jo_sub.Wait = 10000;
  check_nats(natsConnection_JetStream(&js_, conn_, &jo_sub), "jetstream context");

  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = options_.consumer.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.DeliverPolicy = js_DeliverAll;
  cc.AckWait = 30'000'000'000LL;
  // The publish window is the bound; the server may deliver one more fetch batch beyond it.
  cc.MaxAckPending = options_.publish_window + options_.fetch_batch;
  cc.MaxWaiting = 512;
  jsConsumerInfo* ci = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  jsErrCode derr = static_cast<jsErrCode>(0);
  js_DeleteConsumer(js_, options_.stream.c_str(), options_.consumer.c_str(), nullptr, &derr);
  check_nats(js_AddConsumer(&ci, js_, options_.stream.c_str(), &cc, nullptr, &err), "create relay consumer");
  jsConsumerInfo_Destroy(ci);
  // Pull requests of our own (as the service's partitioned source), not natsSubscription_Fetch:
  // nats.c 3.4's fetch sizes its message array by the batch, and messages a no-wait request of an
  // earlier fetch delivers after that fetch returned land in the next one's array past its end
  // (a heap overflow AddressSanitizer showed, aborting about one drain of 200 000 in three).
  natsInbox* inbox = nullptr;
  check_nats(natsInbox_Create(&inbox), "inbox");
  inbox_ = inbox;
  natsInbox_Destroy(inbox);
  request_subject_ = "$JS.API.CONSUMER.MSG.NEXT." + options_.stream + "." + options_.consumer;
  check_nats(natsConnection_SubscribeSync(&sub_, conn_, (inbox_ + ".*").c_str()), "pull reply subscription");
  natsSubscription_SetPendingLimits(sub_, -1, -1);
  reply_.reserve(inbox_.size() + 24);
  subject_.reserve(256);
}

Relay::~Relay() {
  stop();
  if (sub_ != nullptr) natsSubscription_Destroy(sub_);
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (pub_js_ != nullptr) jsCtx_Destroy(pub_js_);
  if (conn_ != nullptr) {
    natsConnection_FlushTimeout(conn_, 2000);
    natsConnection_Destroy(conn_);
  }
  // Messages never acked (stopped early): destroy them.
  for (std::uint64_t i = head_.load(); i != tail_.load(); ++i) natsMsg_Destroy(slots_[i & kMask].source);
}

void Relay::start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
}

void Relay::stop() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_relaxed);
  puback_waiter_.notify();
  thread_.join();  // at most one idle fetch's expiry
  // Every PubAck handled, and no callback still inside on_puback, before the slots (and this
  // object) go; then the acks the relay thread left (stopped while PubAcks were due).
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 10000;
  js_PublishAsyncComplete(pub_js_, &po);
  for (int i = 0; i < 500 && callbacks_.load(std::memory_order_acquire) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ack_in_order();
  natsConnection_FlushTimeout(conn_, 2000);
  natsSubscription_Unsubscribe(sub_);
  jsErrCode err = static_cast<jsErrCode>(0);
  js_DeleteConsumer(js_, options_.stream.c_str(), options_.consumer.c_str(), nullptr, &err);
}

void Relay::on_puback(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) noexcept {
  auto* self = static_cast<Relay*>(closure);
  self->callbacks_.fetch_add(1, std::memory_order_acq_rel);
  if (pa == nullptr || pae != nullptr) self->publish_errors_.fetch_add(1, std::memory_order_relaxed);
  // PubAcks of one connection to one stream come back in publish order: the match is at the
  // head almost always; search forward otherwise. Settled slots are skipped: their message was
  // freed and its address may be in use by a later one.
  const std::uint64_t tail = self->tail_.load(std::memory_order_acquire);
  for (std::uint64_t i = self->head_.load(std::memory_order_acquire); i != tail; ++i) {
    Slot& s = self->slots_[i & kMask];
    if (!s.done.load(std::memory_order_relaxed) && s.published.load(std::memory_order_relaxed) == msg) {
      // release: pairs with the relay thread's acquire before it acks and reuses the slot.
      s.done.store(true, std::memory_order_release);
      break;
    }
  }
  natsMsg_Destroy(msg);  // the published message: ours to free in an AckHandler
  self->puback_waiter_.notify();
  // Last access to *self.
  self->callbacks_.fetch_sub(1, std::memory_order_release);
}

std::uint64_t Relay::ack_in_order() noexcept {
  const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
  std::uint64_t head = head_.load(std::memory_order_relaxed);
  std::uint64_t n = 0;
  while (head != tail) {
    Slot& s = slots_[head & kMask];
    if (!s.done.load(std::memory_order_acquire)) break;
    natsConnection_Publish(conn_, natsMsg_GetReply(s.source), "+ACK", 4);  // JetStream's ack protocol
    natsMsg_Destroy(s.source);
    s.source = nullptr;
    ++head;
    ++n;
  }
  if (n == 0) return 0;
  last_ack_ns_.store(now_ns(), std::memory_order_relaxed);
  // release: the time above is visible with the count.
  acked_.store(acked_.load(std::memory_order_relaxed) + n, std::memory_order_release);
  head_.store(head, std::memory_order_release);
  return n;
}

void Relay::relay_one(natsMsg* src) noexcept {
  const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
  while (tail - head_.load(std::memory_order_relaxed) >= kSlots) {  // not with MaxAckPending < kSlots
    ack_in_order();
    std::this_thread::yield();
  }
  relay_subject(options_.out_prefix, natsMsg_GetSubject(src), subject_);
  natsMsg* pub = nullptr;
  natsMsg_Create(&pub, subject_.c_str(), nullptr, natsMsg_GetData(src), natsMsg_GetDataLength(src));
  const char* id = nullptr;
  if (natsMsgHeader_Get(src, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr) natsMsgHeader_Set(pub, "Nats-Msg-Id", id);
  Slot& slot = slots_[tail & kMask];
  slot.source = src;
  slot.published.store(pub, std::memory_order_relaxed);
  slot.done.store(false, std::memory_order_relaxed);
  // release: the slot is complete before the PubAck thread can see it.
  tail_.store(tail + 1, std::memory_order_release);
  natsStatus s = NATS_TIMEOUT;
  // A full window stalls the call (StallWait) until PubAcks free room.
  for (int attempt = 0; attempt < 100 && s == NATS_TIMEOUT; ++attempt) s = js_PublishMsgAsync(pub_js_, &pub, nullptr);
  if (s != NATS_OK) {
    // Cannot publish: count it and let the ack go (the relay is a baseline, not a service).
    publish_errors_.fetch_add(1, std::memory_order_relaxed);
    natsMsg_Destroy(pub);
    slot.done.store(true, std::memory_order_release);
  }
}

void Relay::run() noexcept {
  pthread_setname_np(pthread_self(), "bench-relay");
  bool idle = true;
  bool request_open = false;
  int request_due = 0;
  int request_got = 0;
  std::int64_t request_wait_ms = 5;
  while (!stop_.load(std::memory_order_relaxed)) {
    ack_in_order();
    const bool awaiting_pubacks = head_.load(std::memory_order_relaxed) != tail_.load(std::memory_order_relaxed);
    // PullSource's rule: no-wait batches of fetch_batch while busy, and after one that brought
    // nothing a one-message request that waits. The relay acks on this thread too: while PubAcks
    // are awaited it does not park in a waiting request (see below).
    if (!request_open) {
      const bool waiting_request = idle && !awaiting_pubacks;
      char body[96];
      const int len = waiting_request
                          ? std::snprintf(body, sizeof body, "{\"batch\":1,\"expires\":%lld}",
                                          static_cast<long long>(options_.idle_fetch_expires_ms) * 1'000'000LL)
                          : std::snprintf(body, sizeof body, "{\"batch\":%d,\"no_wait\":true}", options_.fetch_batch);
      reply_.assign(inbox_).append(".").append(std::to_string(++request_seq_));
      if (natsConnection_PublishRequest(conn_, request_subject_.c_str(), reply_.c_str(), body, len) == NATS_OK) {
        request_open = true;
        request_due = waiting_request ? 1 : options_.fetch_batch;
        request_got = 0;
        request_wait_ms = waiting_request ? options_.idle_fetch_expires_ms + 100 : 5;
      }
    }
    // Everything that comes is taken: data of this request or a late one of an earlier request.
    natsMsg* msg = nullptr;
    const natsStatus s = natsSubscription_NextMsg(&msg, sub_, request_open ? request_wait_ms : 5);
    if (s != NATS_OK || msg == nullptr) {
      // Nothing for the request's whole wait: it ended without a status we saw.
      request_open = false;
      idle = true;
    } else {
      const char* status = nullptr;
      const char* reply = natsMsg_GetReply(msg);
      if (reply == nullptr || *reply == '\0') {
        // A status (404 no messages, 408 expired, 409): ends its request when it is the open one.
        if (natsMsgHeader_Get(msg, "Status", &status) == NATS_OK &&
            std::string_view(natsMsg_GetSubject(msg)) == reply_) {
          request_open = false;
          idle = request_got == 0;
        }
        natsMsg_Destroy(msg);
      } else {
        relay_one(msg);
        idle = false;
        if (++request_got >= request_due) request_open = false;
      }
    }
    if (idle && head_.load(std::memory_order_relaxed) != tail_.load(std::memory_order_relaxed)) {
      // Nothing new to fetch: wait for the head's PubAck instead of polling the server.
      puback_waiter_.wait_for(
          [this] {
            return stop_.load(std::memory_order_relaxed) ||
                   slots_[head_.load(std::memory_order_relaxed) & kMask].done.load(std::memory_order_acquire);
          },
          std::chrono::milliseconds(5));
    }
  }
}

}  // namespace cdc::bench
