#pragma once
// An in-process rig for the real Pipeline (unit tests): a source that delivers a fixed list of
// changes, a completer that records each completion, a publisher whose PubAcks the test answers
// (optionally with an eager and a batching lane), and an in-process dedup store with Redis'
// SET NX GET semantics.

#include <atomic>
#include <cstdint>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cdc/core/config.hpp"
#include "cdc/core/log.hpp"
#include "cdc/core/metrics.hpp"
#include "cdc/pipeline/pipeline.hpp"
#include "eventually.hpp"

namespace cdc_test {

using namespace std::chrono_literals;

class PlainAccess final : public cdc::MessageAccess {
 public:
  [[nodiscard]] std::string_view header(const void*, const char*) const noexcept override { return {}; }
  void headers(const void*, std::vector<std::pair<std::string, std::string>>&) const override {}
  void release(void*) const noexcept override {}
};
inline const PlainAccess kPlainAccess;

/// The body of change `n` (event id "<1000+n>.0:co1:messages:m<n>"), on subject cdc.co1.messages.
inline std::string change_body(int n) {
  const std::string pk = std::string("m").append(std::to_string(n));
  return R"({"record":{"message_id":")" + pk +
         R"(","chat_id":"c1","agent_id":"a1","text":"hi"},"changes":null,"action":"insert",)"
         R"("metadata":{"table_schema":"public","table_name":"messages",)"
         R"("commit_timestamp":"2026-11-22T10:00:00.125001Z","commit_lsn":)" +
         std::to_string(1000 + n) + R"(,"commit_idx":0,"record_pks":[")" + pk + R"("],"idempotency_key":"x"}})";
}
inline std::string event_id(int n) {
  return std::to_string(1000 + n).append(".0:co1:messages:m").append(std::to_string(n));
}

/// Delivers the changes `changes` (a number may repeat: an exact repeat of that change, as a
/// producer re-sending it) once, in order, as stream sequences 1.., then idles. With `first`
/// given, only that many at first, and more as the test allows them (allow()).
class ListSource final : public cdc::MessageSource {
 public:
  explicit ListSource(const std::vector<int>& changes, std::size_t first = SIZE_MAX) : allowed_(first) {
    for (std::size_t i = 0; i < changes.size(); ++i) {
      bodies_.push_back(change_body(changes[i]));
      replies_.push_back("$JS.ACK.cdc_stream.c.1." + std::to_string(i + 1) + "." + std::to_string(i + 1) + ".0.0");
    }
  }
  int next_batch(cdc::SourceMessage* out, int max, std::chrono::milliseconds wait) noexcept override {
    int n = 0;
    const std::size_t allowed = allowed_.load(std::memory_order_acquire);
    while (n < max && next_ < bodies_.size() && next_ < allowed) {
      cdc::SourceMessage& m = out[n++];
      m = cdc::SourceMessage{};
      m.handle = &bodies_[next_];
      m.access = &kPlainAccess;
      m.subject = kSubject;
      m.body = bodies_[next_];
      m.reply = replies_[next_];
      ++next_;
    }
    if (n == 0) std::this_thread::sleep_for(std::min(wait, std::chrono::milliseconds(5)));
    return n;
  }
  void stop() noexcept override {}
  /// Lets `n` more changes be delivered (any thread).
  void allow(std::size_t n) noexcept { allowed_.fetch_add(n, std::memory_order_acq_rel); }

 private:
  static constexpr std::string_view kSubject = "cdc.co1.messages";
  std::vector<std::string> bodies_, replies_;
  std::size_t next_ = 0;
  std::atomic<std::size_t> allowed_;
};

/// Records every completion: its kind and NAK delay, by stream sequence (1..).
class RecordingCompleter final : public cdc::Completer {
 public:
  struct Done {
    char kind = '?';  // a(ck), n(ak), t(erm)
    std::int64_t delay_ms = -1;
  };
  bool ack(const cdc::SourceMessage& msg) noexcept override { return record(msg, 'a', -1); }
  bool nak(const cdc::SourceMessage& msg, std::int64_t delay) noexcept override { return record(msg, 'n', delay); }
  bool term(const cdc::SourceMessage& msg) noexcept override { return record(msg, 't', -1); }
  bool in_progress(const cdc::SourceMessage&) noexcept override { return true; }
  void flush(std::chrono::milliseconds) noexcept override {}

  [[nodiscard]] int completed() const { return completed_.load(); }
  [[nodiscard]] Done of(int seq) const {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = done_.find(seq);
    return it == done_.end() ? Done{} : it->second;
  }

 private:
  bool record(const cdc::SourceMessage& msg, char kind, std::int64_t delay) {
    // "$JS.ACK.cdc_stream.c.1.<seq>.<seq>.0.0": the sequence is the fifth token.
    std::string_view r = msg.reply;
    for (int i = 0; i < 5; ++i) r.remove_prefix(r.find('.') + 1);
    const int seq = std::stoi(std::string(r.substr(0, r.find('.'))));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_[seq] = Done{kind, delay};
    }
    completed_.fetch_add(1);
    return true;
  }
  mutable std::mutex mutex_;
  std::map<int, Done> done_;
  std::atomic<int> completed_{0};
};

/// Records every publish; PubAcks come only when the test answers them (from the test's thread,
/// standing in for nats.c's callback thread). With `lanes`, it has an eager and a batching lane
/// (publish.write_mode adaptive), records each publish's lane and counts the publishes sent on
/// one lane while one on the other still awaited its PubAck (order could break).
class HeldPublisher final : public cdc::Publisher {
 public:
  explicit HeldPublisher(bool lanes = false) : lanes_(lanes) {}
  void set_sink(cdc::PubAckSink* sink) override { sink_ = sink; }
  [[nodiscard]] const std::string& reply_prefix() const noexcept override { return prefix_[batching_ ? 1 : 0]; }
  [[nodiscard]] std::int64_t max_payload() const noexcept override { return 1 << 20; }
  [[nodiscard]] bool has_batching_lane() const noexcept override { return lanes_; }
  void use_batching_lane(bool batching) noexcept override { batching_ = batching; }
  Status publish(const std::string& subject, const std::string& reply, std::string_view, const std::string& msg_id,
                 std::string&) noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::size_t i = first_open_; i < sent_.size(); ++i) {
      if (!sent_[i].answered && sent_[i].batching != batching_) {
        ++crossed_;
        break;
      }
    }
    sent_.push_back(Sent{subject, reply, msg_id, false, batching_});
    return Status::kOk;
  }
  /// Publishes so far on the batching lane.
  [[nodiscard]] std::size_t batched() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::size_t n = 0;
    for (const auto& s : sent_) n += s.batching ? 1 : 0;
    return n;
  }
  /// Whether the last publish went on the batching lane.
  [[nodiscard]] bool last_batched() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return !sent_.empty() && sent_.back().batching;
  }
  /// Publishes sent on one lane while the other had one awaiting its PubAck.
  [[nodiscard]] int crossed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return crossed_;
  }

  /// Publishes so far.
  [[nodiscard]] std::size_t count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return sent_.size();
  }
  /// Publishes so far with Nats-Msg-Id `msg_id`.
  [[nodiscard]] int count(const std::string& msg_id) const {
    std::lock_guard<std::mutex> lock(mutex_);
    int n = 0;
    for (const auto& s : sent_) n += s.msg_id == msg_id ? 1 : 0;
    return n;
  }
  /// Publishes so far, by Nats-Msg-Id.
  [[nodiscard]] std::map<std::string, int> per_id() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::map<std::string, int> out;
    for (const auto& s : sent_) ++out[s.msg_id];
    return out;
  }
  /// Answers every unanswered publish: stored, except those with Nats-Msg-Id `fail_id`, which get
  /// a negative PubAck worth a retry (code 0). Returns how many were answered.
  int answer(const std::string& fail_id = {}) {
    std::vector<Sent> due;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (first_open_ < sent_.size() && sent_[first_open_].answered) ++first_open_;
      for (std::size_t i = first_open_; i < sent_.size(); ++i) {
        Sent& s = sent_[i];
        if (!s.answered) {
          s.answered = true;
          due.push_back(s);
        }
      }
    }
    for (const auto& s : due) {
      if (s.msg_id == fail_id) {
        sink_->on_puback(s.reply, R"({"error":{"code":0,"description":"test failure"}})", false);
      } else {
        const std::string body = R"({"stream":"wa_stream","seq":)" + std::to_string(++seq_) + "}";
        sink_->on_puback(s.reply, body, false);
      }
    }
    return static_cast<int>(due.size());
  }
  /// Answers the unanswered publishes with Nats-Msg-Id `msg_id` only: stored.
  int answer_only(const std::string& msg_id) {
    std::vector<Sent> due;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& s : sent_) {
        if (!s.answered && s.msg_id == msg_id) {
          s.answered = true;
          due.push_back(s);
        }
      }
    }
    for (const auto& s : due) {
      const std::string body = R"({"stream":"wa_stream","seq":)" + std::to_string(++seq_) + "}";
      sink_->on_puback(s.reply, body, false);
    }
    return static_cast<int>(due.size());
  }

 private:
  struct Sent {
    std::string subject, reply, msg_id;
    bool answered = false;
    bool batching = false;
  };
  mutable std::mutex mutex_;
  std::vector<Sent> sent_;
  std::size_t first_open_ = 0;  // sent_ before it are all answered
  cdc::PubAckSink* sink_ = nullptr;
  std::string prefix_[2] = {"_test_reply", "_test_batch"};
  const bool lanes_;
  bool batching_ = false;  // the publish stage's thread
  int crossed_ = 0;
  int seq_ = 0;
};

/// The keys of an in-process dedup store, shared by its connections (the stages' threads).
struct StoreKeys {
  std::mutex mutex;
  std::map<std::string, std::string> values;
  [[nodiscard]] bool has(const std::string& key) {
    std::lock_guard<std::mutex> lock(mutex);
    return values.count(key) > 0;
  }
};

/// A DedupStore with Redis' semantics for the commands the stages send (SET [NX] [GET], DEL),
/// answered in order at the next poll() or wait().
class InProcessStore final : public cdc::DedupStore {
 public:
  explicit InProcessStore(StoreKeys& keys) : keys_(keys) {}
  void set_handler(ReplyFn on_reply, void* owner) noexcept override {
    on_reply_ = on_reply;
    owner_ = owner;
  }
  void start() noexcept override {}
  bool send(const cdc::DedupCommand& command, void* tag) noexcept override {
    const auto args = command.view();
    Reply r;
    r.tag = tag;
    std::lock_guard<std::mutex> lock(keys_.mutex);
    const std::string key(args[1]);
    const auto it = keys_.values.find(key);
    if (args[0] == "DEL") {
      r.type = cdc::RedisReply::Type::kInteger;
      r.integer = it == keys_.values.end() ? 0 : 1;
      if (it != keys_.values.end()) keys_.values.erase(it);
    } else {
      bool nx = false;
      bool get = false;
      for (std::size_t i = 3; i < args.size(); ++i) {
        nx = nx || args[i] == "NX";
        get = get || args[i] == "GET";
      }
      if (get) {
        r.type = it == keys_.values.end() ? cdc::RedisReply::Type::kNil : cdc::RedisReply::Type::kString;
        if (it != keys_.values.end()) r.str = it->second;
      } else {
        r.type = cdc::RedisReply::Type::kStatus;
        r.str = "OK";
      }
      if (!nx || it == keys_.values.end()) keys_.values[key] = std::string(args[2]);
    }
    pending_.push_back(std::move(r));
    return true;
  }
  [[nodiscard]] bool ready() const noexcept override { return true; }
  [[nodiscard]] std::size_t awaiting_reply() const noexcept override { return pending_.size(); }
  void reset(const char*) noexcept override { deliver(true); }
  void poll() noexcept override { deliver(false); }
  void wait(std::chrono::nanoseconds timeout) noexcept override {
    // Replies are made as commands are sent: with none pending, none can come.
    if (pending_.empty()) std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(timeout, 1ms));
    deliver(false);
  }
  void close() noexcept override { deliver(true); }
  [[nodiscard]] bool up() const noexcept override { return true; }
  [[nodiscard]] std::uint64_t reconnects() const noexcept override { return 0; }
  [[nodiscard]] std::uint64_t failures() const noexcept override { return 0; }

 private:
  struct Reply {
    void* tag = nullptr;
    cdc::RedisReply::Type type = cdc::RedisReply::Type::kLost;
    std::string str;
    long long integer = 0;
  };
  void deliver(bool lost) noexcept {
    std::vector<Reply> now;
    now.swap(pending_);
    for (const auto& r : now) {
      cdc::RedisReply reply;
      reply.type = lost ? cdc::RedisReply::Type::kLost : r.type;
      reply.str = r.str;
      reply.integer = r.integer;
      on_reply_(owner_, r.tag, reply);
    }
  }
  StoreKeys& keys_;
  ReplyFn on_reply_ = nullptr;
  void* owner_ = nullptr;
  std::vector<Reply> pending_;
};

struct Rig {
  StoreKeys keys;
  RecordingCompleter* done = nullptr;
  HeldPublisher* out = nullptr;
  ListSource* source = nullptr;
  std::unique_ptr<cdc::Pipeline> pipeline;

  /// `lanes`: the publisher has an eager and a batching lane; `first`: see ListSource.
  Rig(cdc::Config config, const std::vector<int>& changes, bool lanes = false, std::size_t first = SIZE_MAX) {
    cdc::Ports ports;
    auto list = std::make_unique<ListSource>(changes, first);
    source = list.get();
    ports.source = std::move(list);
    auto completer = std::make_unique<RecordingCompleter>();
    done = completer.get();
    ports.completer = std::move(completer);
    auto publisher = std::make_unique<HeldPublisher>(lanes);
    out = publisher.get();
    ports.publisher = std::move(publisher);
    if (config.dedup.enabled) {
      ports.claims = std::make_unique<InProcessStore>(keys);
      ports.marks = std::make_unique<InProcessStore>(keys);
    }
    pipeline = std::make_unique<cdc::Pipeline>(std::move(config), std::move(ports));
    pipeline->start();
  }
  [[nodiscard]] std::uint64_t events(cdc::EventResult r) {
    auto& m = pipeline->metrics();
    return m.ack.events[m.table_index("messages")][static_cast<std::size_t>(r)].value();
  }
  [[nodiscard]] std::uint64_t held() { return pipeline->metrics().publish.repeats_held.value(); }
};

}  // namespace cdc_test
