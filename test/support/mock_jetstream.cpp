#include "mock_jetstream.hpp"

#include <nats/nats.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <time.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cdc/adapters/nats/nats_message.hpp"
#include "cdc/core/internal_error.hpp"
#include "cdc/core/jetstream_meta.hpp"
#include "cdc/core/ring_buffer.hpp"
#include "cdc/pipeline/link.hpp"
#include "cdc/core/wait_strategy.hpp"

namespace cdc::mocks {
namespace {

constexpr std::string_view kReplyPrefix = "$JS.ACK.cdc_events_stream.cdc_consumers.1.";
constexpr std::int64_t kUnixBaseNs = 1'795'000'000'000'000'000LL;  // 2026-11-18, in ack subjects

void sleep_until_ns(std::int64_t deadline_ns) noexcept {
  timespec ts{static_cast<time_t>(deadline_ns / 1'000'000'000), static_cast<long>(deadline_ns % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

std::int64_t thread_cpu_now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void append_uint(std::uint64_t v, std::string& out) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

std::uint64_t splitmix(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t hash_bytes(std::string_view s) noexcept {
  std::uint64_t h = 1469598103934665603ULL;
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  std::uint64_t state = h;
  return splitmix(state) | 1;
}

/// Set of 64-bit hashes (open addressing), grows at half load. Mock-JetStream thread only.
class HashSet {
 public:
  explicit HashSet(std::uint64_t expected) {
    std::size_t cap = 1024;
    while (cap < expected * 2) cap <<= 1;
    slots_.assign(cap, 0);
  }
  /// Inserts; false when it was there already.
  bool insert(std::uint64_t h) {
    if ((used_ + 1) * 2 > slots_.size()) grow();
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      if (slots_[i] == h) return false;
      if (slots_[i] == 0) {
        slots_[i] = h;
        ++used_;
        return true;
      }
    }
  }

 private:
  void grow() {
    std::vector<std::uint64_t> old(slots_.size() * 2, 0);
    old.swap(slots_);
    used_ = 0;
    for (const auto h : old) {
      if (h != 0) insert(h);
    }
  }
  std::vector<std::uint64_t> slots_;
  std::size_t used_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// MockSource

MockSource::MockSource(MessageFeed& feed, std::uint64_t events, double rate, SendTimes& times)
    : feed_(feed), events_(events), period_ns_(rate > 0 ? 1e9 / rate : 0), times_(times) {
  // natsMsg_Create / natsMsg_Destroy need the library initialised (a no-op when it is).
  nats_Open(-1);
  reply_.reserve(128);
}

natsMsg* MockSource::make(std::uint64_t i, std::int64_t stamp) noexcept {
  std::string_view subject;
  std::string_view body;
  std::string_view msg_id;
  feed_.message(i, subject, body, msg_id);
  const std::uint64_t seq = i + 1;
  reply_.assign(kReplyPrefix);
  append_uint(seq, reply_);
  reply_ += '.';
  append_uint(seq, reply_);
  reply_ += '.';
  append_uint(static_cast<std::uint64_t>(kUnixBaseNs) + seq, reply_);
  reply_ += ".0";
  natsMsg* m = nullptr;
  // The feed's subject view covers a whole std::string, so it is NUL-terminated.
  if (natsMsg_Create(&m, subject.data(), reply_.c_str(), body.data(), static_cast<int>(body.size())) != NATS_OK) {
    on_internal_error("mock source: natsMsg_Create failed");
  }
  if (!msg_id.empty()) {
    msg_id_.assign(msg_id);
    natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id_.c_str());
  }
  times_.set(seq, stamp);
  return m;
}

int MockSource::next_batch(SourceMessage* out, int max, std::chrono::milliseconds wait) noexcept {
  if (!go_.load(std::memory_order_acquire)) {
    sleep_until_ns(now_ns() + 1'000'000);
    return 0;
  }
  if (start_ns_ == 0) {
    prctl(PR_SET_TIMERSLACK, 1UL);  // sleep to the microsecond, not the default 50 us
    start_ns_ = now_ns();
    first_ns_.store(start_ns_, std::memory_order_relaxed);
  }
  if (next_ >= events_) {
    sleep_until_ns(now_ns() + std::min<std::int64_t>(wait.count(), 1) * 1'000'000);
    return 0;
  }
  int n = 0;
  std::int64_t now = now_ns();
  if (period_ns_ == 0) {
    const std::int64_t cpu0 = thread_cpu_now_ns();
    while (n < max && next_ < events_) {
      out[n++] = to_source_message(make(next_, now_ns()));
      ++next_;
    }
    make_ns_ += thread_cpu_now_ns() - cpu0;
  } else {
    const auto due = [this](std::uint64_t i) {
      return start_ns_ + static_cast<std::int64_t>(static_cast<double>(i) * period_ns_);
    };
    if (due(next_) > now) {
      sleep_until_ns(std::min(due(next_), now + static_cast<std::int64_t>(wait.count()) * 1'000'000));
      now = now_ns();
    }
    const std::int64_t cpu0 = thread_cpu_now_ns();
    while (n < max && next_ < events_ && due(next_) <= now) {
      out[n++] = to_source_message(make(next_, due(next_)));
      ++next_;
    }
    make_ns_ += thread_cpu_now_ns() - cpu0;
  }
  produced_.store(next_, std::memory_order_relaxed);
  return n;
}

// ---------------------------------------------------------------------------------------------
// MockCompleter

bool MockCompleter::complete(const SourceMessage& msg, std::atomic<std::uint64_t>& counter) noexcept {
  const std::int64_t now = now_ns();
  AckSubjectInfo info;
  if (!msg.reply.empty() && parse_ack_subject(msg.reply, info)) {
    // Latency of final outcomes only; a NAK is a retry, not a result.
    if (&counter != &naks_ && latency_ != nullptr) latency_->record(now - times_.get(info.stream_seq));
  }
  // relaxed: single writer (the ack thread); the harness polls these for progress.
  counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  last_ns_.store(now, std::memory_order_relaxed);
  completed_.store(completed_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return true;
}

// ---------------------------------------------------------------------------------------------
// MockPublisher

namespace {
struct PendingPubAck {
  std::int64_t due_ns;
  std::uint64_t msg_id_hash;
  std::uint32_t reply_len;
  bool fail;
  char reply[84];
};
constexpr std::size_t kPendingCapacity = 1 << 16;  // above any publish.max_pending (<= 65535)
}  // namespace

struct MockPublisher::Impl {
  Options options;
  RingBuffer<PendingPubAck> ring{kPendingCapacity};
  WaitStrategy waiter{WaitStrategyKind::kBlocking};
  std::atomic<bool> stop{false};
  std::uint64_t rng = 0x5eed;
  HashSet seen;
  // Publish-thread counters and mock-JetStream-thread counters (each single writer).
  std::atomic<std::uint64_t> publishes{0}, bytes{0}, stored{0}, duplicates{0}, failures{0};

  explicit Impl(Options o) : options(o), seen(o.expected_publishes) {}
};

MockPublisher::MockPublisher(Options options) : impl_(std::make_unique<Impl>(options)) {}

MockPublisher::~MockPublisher() {
  impl_->stop.store(true, std::memory_order_relaxed);
  impl_->waiter.notify();
  if (thread_.joinable()) thread_.join();
}

void MockPublisher::set_sink(PubAckSink* sink) {
  sink_ = sink;
  if (!thread_.joinable()) thread_ = std::thread([this] { respond_loop(); });
}

Publisher::Status MockPublisher::publish(const std::string&, const std::string& reply, std::string_view payload,
                                         const std::string& msg_id, std::string& error) noexcept {
  Impl& s = *impl_;
  PendingPubAck p;
  if (reply.size() >= sizeof p.reply) {
    error = "reply subject too long for the mock";
    return Status::kFailed;
  }
  p.due_ns = now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(s.options.puback_delay).count();
  p.msg_id_hash = hash_bytes(msg_id);
  p.reply_len = static_cast<std::uint32_t>(reply.size());
  std::memcpy(p.reply, reply.data(), reply.size());
  p.fail =
      s.options.fail_pct > 0 && static_cast<double>(splitmix(s.rng) >> 11) * 0x1.0p-53 * 100.0 < s.options.fail_pct;
  while (!s.ring.try_push(p)) std::this_thread::yield();  // cannot happen below 65536 pending
  s.waiter.notify();
  s.publishes.store(s.publishes.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  s.bytes.store(s.bytes.load(std::memory_order_relaxed) + payload.size(), std::memory_order_relaxed);
  return Status::kOk;
}

void MockPublisher::respond_loop() noexcept {
  pthread_setname_np(pthread_self(), "mock-jetstream");
  prctl(PR_SET_TIMERSLACK, 1UL);
  Impl& s = *impl_;
  char body[128];
  while (true) {
    PendingPubAck* p = s.ring.front();
    if (p == nullptr) {
      if (s.stop.load(std::memory_order_relaxed)) break;
      s.waiter.wait_for([&] { return s.ring.front() != nullptr || s.stop.load(std::memory_order_relaxed); },
                        std::chrono::milliseconds(50));
      continue;
    }
    if (p->due_ns > now_ns()) {
      sleep_until_ns(p->due_ns);
      continue;
    }
    int n = 0;
    if (p->fail) {
      n = std::snprintf(
          body, sizeof body,
          R"({"error":{"code":503,"err_code":10077,"description":"JetStream system temporarily unavailable"}})");
      s.failures.store(s.failures.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    } else if (s.seen.insert(p->msg_id_hash)) {
      const std::uint64_t seq = s.stored.load(std::memory_order_relaxed) + 1;
      s.stored.store(seq, std::memory_order_relaxed);
      if (s.options.on_stored != nullptr) s.options.on_stored(s.options.on_stored_context, p->msg_id_hash);
      n = std::snprintf(body, sizeof body, R"({"stream":"wa_stream","seq":%llu})",
                        static_cast<unsigned long long>(seq));
    } else {
      s.duplicates.store(s.duplicates.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      n = std::snprintf(body, sizeof body, R"({"stream":"wa_stream","seq":%llu,"duplicate":true})",
                        static_cast<unsigned long long>(s.stored.load(std::memory_order_relaxed)));
    }
    sink_->on_puback(std::string_view(p->reply, p->reply_len), std::string_view(body, static_cast<std::size_t>(n)),
                     false);
    s.ring.pop();
  }
}

std::uint64_t MockPublisher::id_hash(std::string_view msg_id) noexcept { return hash_bytes(msg_id); }

MockPublisher::Stats MockPublisher::stats() const noexcept {
  Stats st;
  st.publishes = impl_->publishes.load(std::memory_order_relaxed);
  st.bytes = impl_->bytes.load(std::memory_order_relaxed);
  st.stored = impl_->stored.load(std::memory_order_relaxed);
  st.duplicates = impl_->duplicates.load(std::memory_order_relaxed);
  st.failures_injected = impl_->failures.load(std::memory_order_relaxed);
  return st;
}

}  // namespace cdc::mocks
