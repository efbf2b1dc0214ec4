#include "pipeline/js_tools.hpp"

#include <sys/prctl.h>
#include <time.h>

#include <chrono>
#include <stdexcept>
#include <thread>

#include "cdc/pipeline/link.hpp"
#include "pipeline/thread_cpu.hpp"

namespace cdc::bench {
namespace {

void sleep_until_ns(std::int64_t deadline_ns) noexcept {
  timespec ts{static_cast<time_t>(deadline_ns / 1'000'000'000), static_cast<long>(deadline_ns % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

natsMsg* make_msg(const Message& m) {
  natsMsg* msg = nullptr;
  check_nats(natsMsg_Create(&msg, m.subject.data(), nullptr, m.body.data(), static_cast<int>(m.body.size())),
             "natsMsg_Create");
  if (!m.msg_id.empty()) check_nats(natsMsgHeader_Set(msg, "Nats-Msg-Id", m.msg_id.c_str()), "header");
  return msg;
}

void publish_async(NatsClient& client, natsMsg* msg) {
  natsStatus s = NATS_OK;
  // A full window stalls the call (StallWait); keep trying rather than drop a message.
  for (int attempt = 0; attempt < 100; ++attempt) {
    s = js_PublishMsgAsync(client.js(), &msg, nullptr);
    if (s == NATS_OK) return;
    if (s != NATS_TIMEOUT) break;
  }
  natsMsg_Destroy(msg);
  check_nats(s, "js_PublishMsgAsync");
}

}  // namespace

void check_nats(natsStatus s, const std::string& what) {
  if (s == NATS_OK) return;
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  throw std::runtime_error(what + ": " + natsStatus_GetText(s) + (detail != nullptr ? std::string(": ") + detail : ""));
}

NatsClient::NatsClient(const std::string& url, const std::string& name, int max_pending, bool send_asap) {
  const HarnessThreadScope harness_threads;  // the connection's read loop and flusher
  natsOptions* opts = nullptr;
  check_nats(natsOptions_Create(&opts), "options");
  natsOptions_SetURL(opts, url.c_str());
  natsOptions_SetName(opts, name.c_str());
  natsOptions_SetSendAsap(opts, send_asap);
  natsOptions_SetMaxReconnect(opts, -1);
  natsOptions_SetReconnectBufSize(opts, 64 * 1024 * 1024);
  const natsStatus s = natsConnection_Connect(&nc_, opts);
  natsOptions_Destroy(opts);
  check_nats(s, "connect " + url);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 10000;
  jo.PublishAsync.MaxPending = max_pending;
  jo.PublishAsync.StallWait = 5000;
  // An AckHandler (not only an ErrHandler): it runs on the PubAck thread nats.c starts at the
  // first async publish, which marks it as the harness's.
  jo.PublishAsync.AckHandler = &NatsClient::on_puback;
  jo.PublishAsync.AckHandlerClosure = this;
  check_nats(natsConnection_JetStream(&js_, nc_, &jo), "jetstream context");
}

NatsClient::~NatsClient() {
  if (js_ != nullptr) {
    // PubAcks still due would run on_error() on a destroyed client: wait for them (bounded).
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 5000;
    js_PublishAsyncComplete(js_, &po);
    jsCtx_Destroy(js_);
  }
  if (nc_ != nullptr) {
    natsConnection_FlushTimeout(nc_, 2000);
    natsConnection_Destroy(nc_);
  }
}

void NatsClient::on_puback(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* self) noexcept {
  mark_harness_thread();
  if (pa == nullptr || pae != nullptr) static_cast<NatsClient*>(self)->errors_.fetch_add(1, std::memory_order_relaxed);
  natsMsg_Destroy(msg);  // ours in an AckHandler
}

void ensure_stream(jsCtx* js, const std::string& name, const std::vector<std::string>& subjects,
                   std::int64_t duplicate_window_ns) {
  jsStreamInfo* si = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  if (js_GetStreamInfo(&si, js, name.c_str(), nullptr, &err) == NATS_OK) {
    jsStreamInfo_Destroy(si);
    return;
  }
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name.c_str();
  std::vector<const char*> subj;
  for (const auto& s : subjects) subj.push_back(s.c_str());
  cfg.Subjects = subj.data();
  cfg.SubjectsLen = static_cast<int>(subj.size());
  cfg.Storage = js_FileStorage;
  if (duplicate_window_ns > 0) cfg.Duplicates = duplicate_window_ns;
  const natsStatus s = js_AddStream(&si, js, &cfg, nullptr, &err);
  jsStreamInfo_Destroy(si);
  check_nats(s, "create stream " + name);
}

void recreate_stream(jsCtx* js, const std::string& name, const std::vector<std::string>& subjects,
                     std::int64_t duplicate_window_ns) {
  jsErrCode err = static_cast<jsErrCode>(0);
  js_DeleteStream(js, name.c_str(), nullptr, &err);  // NATS_NOT_FOUND is fine
  ensure_stream(js, name, subjects, duplicate_window_ns);
}

void purge_stream(jsCtx* js, const std::string& name) {
  jsErrCode err = static_cast<jsErrCode>(0);
  js_PurgeStream(js, name.c_str(), nullptr, &err);
}

std::uint64_t stream_messages(jsCtx* js, const std::string& name) {
  jsStreamInfo* si = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  if (js_GetStreamInfo(&si, js, name.c_str(), nullptr, &err) != NATS_OK) return 0;
  const std::uint64_t n = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  return n;
}

double publish_backlog(NatsClient& client, const Corpus& corpus, std::uint64_t first_pass, std::uint64_t count) {
  const std::int64_t t0 = now_ns();
  Message m;
  for (std::uint64_t i = 0; i < count; ++i) {
    corpus.materialize(i, first_pass, -1, m);
    publish_async(client, make_msg(m));
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 120000;
  check_nats(js_PublishAsyncComplete(client.js(), &po), "waiting for the backlog's PubAcks");
  return static_cast<double>(now_ns() - t0) / 1e9;
}

RatePublishResult publish_at_rate(NatsClient& client, const Corpus& corpus, std::uint64_t first_pass, double rate,
                                  double seconds) {
  prctl(PR_SET_TIMERSLACK, 1UL);
  RatePublishResult r;
  const auto total = static_cast<std::uint64_t>(rate * seconds);
  const double period = 1e9 / rate;
  Message m;
  r.start_ns = now_ns() + 1'000'000;
  for (std::uint64_t i = 0; i < total; ++i) {
    const std::int64_t due = r.start_ns + static_cast<std::int64_t>(static_cast<double>(i) * period);
    const std::int64_t now = now_ns();
    if (due > now) sleep_until_ns(due);
    else r.max_behind_ns = std::max(r.max_behind_ns, now - due);
    corpus.materialize(i, first_pass, due, m);
    publish_async(client, make_msg(m));
    ++r.sent;
  }
  return r;
}

LatencySubscriber::LatencySubscriber(const std::string& url, const std::string& subject, std::int64_t record_from_ns,
                                     bool by_msg_id, std::size_t expected_ids)
    : record_from_ns_(record_from_ns), latency_(std::make_unique<LogHistogram>()), by_msg_id_(by_msg_id) {
  if (by_msg_id_) seen_.reserve(expected_ids);
  const HarnessThreadScope harness_threads;  // the connection's threads and the subscription's
  natsOptions* opts = nullptr;
  check_nats(natsOptions_Create(&opts), "options");
  natsOptions_SetURL(opts, url.c_str());
  natsOptions_SetName(opts, "bench-latency-subscriber");
  const natsStatus s = natsConnection_Connect(&nc_, opts);
  natsOptions_Destroy(opts);
  check_nats(s, "connect " + url);
  check_nats(natsConnection_Subscribe(&sub_, nc_, subject.c_str(), &LatencySubscriber::on_msg, this),
             "subscribe " + subject);
  natsSubscription_SetPendingLimits(sub_, -1, -1);
  check_nats(natsConnection_Flush(nc_), "flush subscription");
}

void LatencySubscriber::on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) noexcept {
  const std::int64_t now = now_ns();
  mark_harness_thread();
  auto* self = static_cast<LatencySubscriber*>(closure);
  const std::string_view body(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
  const char* id = nullptr;
  if (self->by_msg_id_ && natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr &&
      !self->seen_.insert(std::hash<std::string_view>{}(std::string_view(id))).second) {
    natsMsg_Destroy(msg);
    self->repeats_.store(self->repeats_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return;
  }
  const std::int64_t stamp = find_stamp(body);
  if (stamp >= self->record_from_ns_.load(std::memory_order_relaxed)) self->latency_->record(now - stamp);
  natsMsg_Destroy(msg);
  // relaxed: one callback thread writes; the harness polls for progress.
  self->received_.store(self->received_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  self->last_ns_.store(now, std::memory_order_relaxed);
}

void LatencySubscriber::close() {
  if (sub_ != nullptr) {
    // Drain: every message already received is delivered, and the last callback has returned
    // when the wait ends, so the histogram is complete.
    if (natsSubscription_Drain(sub_) == NATS_OK) natsSubscription_WaitForDrainCompletion(sub_, 10000);
    natsSubscription_Destroy(sub_);
    sub_ = nullptr;
  }
}

LatencySubscriber::~LatencySubscriber() {
  close();
  if (nc_ != nullptr) natsConnection_Destroy(nc_);
}

}  // namespace cdc::bench
