// Repeats in flight (docs/decisions.md): a repeat of an event still awaiting its outcome in the
// publish stage is held, not published a second time, and completes by its first copy's outcome.
// The real Pipeline on in-process ports: a source that delivers a fixed list, a publisher whose
// PubAcks the test answers, a completer that records each completion, and (dedup on) an
// in-process dedup store with Redis' SET NX GET semantics.

#include <catch2/catch.hpp>

#include <atomic>
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

namespace {

using namespace std::chrono_literals;

template <typename Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

class PlainAccess final : public cdc::MessageAccess {
 public:
  [[nodiscard]] std::string_view header(const void*, const char*) const noexcept override { return {}; }
  void headers(const void*, std::vector<std::pair<std::string, std::string>>&) const override {}
  void release(void*) const noexcept override {}
};
const PlainAccess kPlainAccess;

/// The body of change `n` (event id "<1000+n>.0:co1:messages:m<n>"), on subject cdc.co1.messages.
std::string change_body(int n) {
  const std::string pk = std::string("m").append(std::to_string(n));
  return R"({"record":{"message_id":")" + pk +
         R"(","chat_id":"c1","agent_id":"a1","text":"hi"},"changes":null,"action":"insert",)"
         R"("metadata":{"table_schema":"public","table_name":"messages",)"
         R"("commit_timestamp":"2026-11-22T10:00:00.125001Z","commit_lsn":)" +
         std::to_string(1000 + n) + R"(,"commit_idx":0,"record_pks":[")" + pk + R"("],"idempotency_key":"x"}})";
}
std::string event_id(int n) { return std::to_string(1000 + n).append(".0:co1:messages:m").append(std::to_string(n)); }

/// Delivers the changes `changes` (a number may repeat: an exact repeat of that change, as a
/// producer re-sending it) once, in order, as stream sequences 1.., then idles.
class ListSource final : public cdc::MessageSource {
 public:
  explicit ListSource(const std::vector<int>& changes) {
    for (std::size_t i = 0; i < changes.size(); ++i) {
      bodies_.push_back(change_body(changes[i]));
      replies_.push_back("$JS.ACK.cdc_stream.c.1." + std::to_string(i + 1) + "." + std::to_string(i + 1) + ".0.0");
    }
  }
  int next_batch(cdc::SourceMessage* out, int max, std::chrono::milliseconds wait) noexcept override {
    int n = 0;
    while (n < max && next_ < bodies_.size()) {
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

 private:
  static constexpr std::string_view kSubject = "cdc.co1.messages";
  std::vector<std::string> bodies_, replies_;
  std::size_t next_ = 0;
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
/// standing in for nats.c's callback thread).
class HeldPublisher final : public cdc::Publisher {
 public:
  void set_sink(cdc::PubAckSink* sink) override { sink_ = sink; }
  [[nodiscard]] const std::string& reply_prefix() const noexcept override { return prefix_; }
  [[nodiscard]] std::int64_t max_payload() const noexcept override { return 1 << 20; }
  Status publish(const std::string& subject, const std::string& reply, std::string_view, const std::string& msg_id,
                 std::string&) noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);
    sent_.push_back(Sent{subject, reply, msg_id, false});
    return Status::kOk;
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
  };
  mutable std::mutex mutex_;
  std::vector<Sent> sent_;
  std::size_t first_open_ = 0;  // sent_ before it are all answered
  cdc::PubAckSink* sink_ = nullptr;
  std::string prefix_ = "_test_reply";
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
  std::unique_ptr<cdc::Pipeline> pipeline;

  Rig(cdc::Config config, const std::vector<int>& changes) {
    cdc::Ports ports;
    ports.source = std::make_unique<ListSource>(changes);
    auto completer = std::make_unique<RecordingCompleter>();
    done = completer.get();
    ports.completer = std::move(completer);
    auto publisher = std::make_unique<HeldPublisher>();
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

cdc::Config repeat_config(bool dedup) {
  cdc::Config config;
  config.dedup.enabled = dedup;
  config.pipeline.ring_capacity = 1024;
  config.publish.ack_timeout = cdc::Millis{60000};  // PubAcks come when the test answers
  config.publish.nak_delay = cdc::Millis{777};
  config.pipeline.drain_timeout = cdc::Millis{300};
  return config;
}

}  // namespace

TEST_CASE("publish stage holds repeats while the first copy awaits its PubAck and acks them as duplicates",
          "[pipeline][publish][repeats]") {
  cdc::log::set_level(cdc::log::Level::kError);
  const bool dedup = GENERATE(true, false);  // claim 'p' of our own, or no claim at all
  INFO("dedup " << dedup);
  // Change 0 repeated twice behind it while in flight, change 2 once.
  Rig rig(repeat_config(dedup), {0, 1, 0, 2, 0, 2, 3});
  REQUIRE(eventually([&] { return rig.held() == 3; }));
  REQUIRE(rig.out->count() == 4);  // one publish per event id, none for the repeats
  CHECK(rig.done->completed() == 0);
  rig.out->answer();
  REQUIRE(eventually([&] { return rig.done->completed() == 7; }));
  rig.pipeline->stop();
  for (int n = 0; n < 4; ++n) CHECK(rig.out->count(event_id(n)) == 1);
  CHECK(rig.out->count() == 4);
  for (int seq = 1; seq <= 7; ++seq) CHECK(rig.done->of(seq).kind == 'a');
  CHECK(rig.events(cdc::EventResult::kProcessed) == 4);
  CHECK(rig.events(cdc::EventResult::kDuplicate) == 3);
  CHECK(rig.events(cdc::EventResult::kRetried) == 0);
  if (dedup) {
    // The first copy's done mark covers the repeats.
    std::lock_guard<std::mutex> lock(rig.keys.mutex);
    CHECK(rig.keys.values["dedup:" + event_id(0)] == "d");
  }
  CHECK(rig.pipeline->render_metrics().find("\ncdc_consumer_repeats_held_total 3\n") != std::string::npos);
}

TEST_CASE("a repeat held behind a first copy that fails for good is NAKed with it, not lost",
          "[pipeline][publish][repeats]") {
  cdc::log::set_level(cdc::log::Level::kError);
  const bool dedup = GENERATE(true, false);
  INFO("dedup " << dedup);
  cdc::Config config = repeat_config(dedup);
  config.publish.max_retries = 0;  // the first negative PubAck spends the budget: NAK
  Rig rig(config, {0, 1, 0});
  REQUIRE(eventually([&] { return rig.held() == 1; }));
  REQUIRE(rig.out->count() == 2);
  rig.out->answer(event_id(0));  // change 0 fails, change 1 is stored
  REQUIRE(eventually([&] { return rig.done->completed() == 3; }));
  rig.pipeline->stop();
  CHECK(rig.out->count(event_id(0)) == 1);
  CHECK(rig.done->of(1).kind == 'n');
  CHECK(rig.done->of(1).delay_ms == 777);
  CHECK(rig.done->of(2).kind == 'a');
  // The repeat goes through the claim again with its first copy, after publish.nak_delay.
  CHECK(rig.done->of(3).kind == 'n');
  CHECK(rig.done->of(3).delay_ms == 777);
  CHECK(rig.events(cdc::EventResult::kRetried) == 2);
  CHECK(rig.events(cdc::EventResult::kDuplicate) == 0);
  if (dedup) CHECK_FALSE(rig.keys.has("dedup:" + event_id(0)));  // unmarked: the redeliveries claim afresh
}

TEST_CASE("a held repeat on its last delivery is published itself when the first copy fails",
          "[pipeline][publish][repeats]") {
  cdc::log::set_level(cdc::log::Level::kError);
  cdc::Config config = repeat_config(true);
  config.publish.max_retries = 0;
  config.ingest.max_deliver = 1;  // every delivery is the last: a NAK would end it
  Rig rig(config, {0, 0});
  REQUIRE(eventually([&] { return rig.held() == 1; }));
  REQUIRE(rig.out->count() == 1);
  rig.out->answer(event_id(0));  // the first copy fails: dead-lettered (its last delivery)
  REQUIRE(eventually([&] { return rig.out->count() == 2; }));  // its dead letter
  CHECK(rig.out->count(event_id(0)) == 1);
  CHECK(rig.done->completed() == 0);
  rig.out->answer();
  // The dead letter is stored: the first copy is final, and the repeat publishes the event.
  REQUIRE(eventually([&] { return rig.out->count() == 3; }));
  CHECK(rig.out->count(event_id(0)) == 2);
  rig.out->answer();
  REQUIRE(eventually([&] { return rig.done->completed() == 2; }));
  rig.pipeline->stop();
  CHECK(rig.done->of(1).kind == 't');
  CHECK(rig.done->of(2).kind == 'a');
  CHECK(rig.events(cdc::EventResult::kProcessed) == 1);
  CHECK(rig.events(cdc::EventResult::kDeadLettered) == 1);
}

TEST_CASE("at shutdown a held repeat is NAKed at once with its unsettled first copy, acked with a stored one",
          "[pipeline][publish][repeats]") {
  cdc::log::set_level(cdc::log::Level::kError);
  Rig rig(repeat_config(true), {0, 1, 0, 1});
  REQUIRE(eventually([&] { return rig.held() == 2; }));
  REQUIRE(rig.out->count() == 2);
  // Change 1 is stored; change 0's PubAck never comes: the drain deadline NAKs it.
  REQUIRE(rig.out->answer_only(event_id(1)) == 1);
  rig.pipeline->stop();
  REQUIRE(rig.done->completed() == 4);
  CHECK(rig.out->count() == 2);
  CHECK(rig.done->of(1).kind == 'n');
  CHECK(rig.done->of(1).delay_ms == 0);  // redelivered at once, to the next owner
  CHECK(rig.done->of(2).kind == 'a');
  CHECK(rig.done->of(3).kind == 'n');
  CHECK(rig.done->of(3).delay_ms == 0);
  CHECK(rig.done->of(4).kind == 'a');  // its first copy was stored: a duplicate
  CHECK(rig.events(cdc::EventResult::kRetried) == 2);
  CHECK(rig.events(cdc::EventResult::kDuplicate) == 1);
}

TEST_CASE("the leader table stays consistent through thousands of first copies and repeats",
          "[pipeline][publish][repeats]") {
  cdc::log::set_level(cdc::log::Level::kError);
  const bool dedup = GENERATE(true, false);
  INFO("dedup " << dedup);
  cdc::Config config = repeat_config(dedup);
  config.pipeline.ring_capacity = 256;  // a small table (512 entries), filled and emptied many times
  config.publish.max_pending = 256;
  std::vector<int> changes;
  for (int n = 0; n < 6000; ++n) {
    const int copies = n % 7 == 0 ? 3 : n % 3 == 0 ? 2 : 1;
    for (int c = 0; c < copies; ++c) changes.push_back(n);
  }
  const int total = static_cast<int>(changes.size());
  const int repeats = total - 6000;
  Rig rig(config, changes);
  // PubAcks in waves, as a broker answers a loaded window.
  std::atomic<bool> stop{false};
  std::thread answering([&] {
    while (!stop.load()) {
      rig.out->answer();
      std::this_thread::sleep_for(200us);
    }
  });
  const bool all = eventually([&] { return rig.done->completed() == total; }, 60s);
  stop.store(true);
  answering.join();
  REQUIRE(all);
  rig.pipeline->stop();
  const auto held = rig.held();
  INFO("held " << held << " of " << repeats);
  CHECK(held > 0);
  // Every source message acked once: each publish (all answered "stored") is one processed
  // event; the held repeats (and, dedup on, repeats that found a 'd' mark) are duplicates. A
  // repeat is published again only when its first copy had left the stage before it came.
  const auto processed = rig.events(cdc::EventResult::kProcessed);
  const auto duplicates = rig.events(cdc::EventResult::kDuplicate);
  CHECK(processed == rig.out->count());
  CHECK(processed + duplicates == static_cast<std::uint64_t>(total));
  CHECK(duplicates >= held);
  CHECK(rig.events(cdc::EventResult::kRetried) == 0);
  for (int seq = 1; seq <= total; ++seq) {
    if (rig.done->of(seq).kind != 'a') FAIL_CHECK("seq " << seq << " completed as " << rig.done->of(seq).kind);
  }
  const auto per_id = rig.out->per_id();
  CHECK(per_id.size() == 6000);
  for (int n = 0; n < 6000; ++n) {
    const auto it = per_id.find(event_id(n));
    if (it == per_id.end()) FAIL_CHECK("change " << n << " never published");
  }
}
