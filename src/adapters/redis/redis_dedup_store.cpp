#include "cdc/adapters/redis/redis_dedup_store.hpp"

#include <uv.h>

#include <algorithm>
#include <vector>

#include "cdc/adapters/redis/redis_connection.hpp"
#include "cdc/adapters/redis/redis_info_probe.hpp"
#include "cdc/core/log.hpp"

namespace cdc {
namespace {

/// What Redis 7 answers an FCALL of a function it does not have: the library was flushed
/// (FUNCTION FLUSH) or Redis restarted without persistence since this connection loaded it.
bool function_missing(const RedisReply& reply) {
  return reply.type == RedisReply::Type::kError && reply.str.rfind("ERR Function not found", 0) == 0;
}

const char* to_string(DedupBatchMode mode) {
  return mode == DedupBatchMode::kAuto ? "auto" : mode == DedupBatchMode::kFunction ? "function" : "pipeline";
}

class RedisDedupStore final : public DedupStore {
 public:
  RedisDedupStore(const RedisConfig& config, std::string role, DedupBatchMode mode)
      : loop_(std::make_unique<uv_loop_t>()), role_(role), mode_(mode) {
    uv_loop_init(loop_.get());
    uv_timer_init(loop_.get(), &timer_);
    // INFO's reply ("# Cluster\r\ncluster_enabled:0\r\n") and FUNCTION LOAD's errors fit in 1 KiB.
    redis_ =
        std::make_unique<RedisConnection>(config, loop_.get(), std::move(role), &RedisDedupStore::relay, this, 1024);
    if (mode_ != DedupBatchMode::kPipeline) redis_->set_on_connected(&RedisDedupStore::on_connected);
    kinds_.resize(1024);
    for (int i = 0; i < 32; ++i) add_batch_record();
  }

  ~RedisDedupStore() override {
    if (!closed_) close();
    redis_.reset();
    while (uv_run(loop_.get(), UV_RUN_NOWAIT) != 0) {
    }
    uv_loop_close(loop_.get());
  }

  RedisDedupStore(const RedisDedupStore&) = delete;
  RedisDedupStore& operator=(const RedisDedupStore&) = delete;

  void set_handler(ReplyFn on_reply, void* owner) noexcept override {
    on_reply_ = on_reply;
    owner_ = owner;
  }
  void start() noexcept override {
    if (mode_ == DedupBatchMode::kPipeline) decided(false, "dedup.batch is pipeline");
    redis_->start();
  }
  bool send(const DedupCommand& command, void* tag) noexcept override {
    if (!redis_->command(command.view(), tag)) return false;
    push_kind(Kind::kOwner);
    return true;
  }
  [[nodiscard]] bool functions() const noexcept override { return functions_ && redis_->ready(); }
  bool send_batch(std::span<const std::string_view> args, void* tag) noexcept override {
    if (!functions()) return false;
    Batch* b = acquire();
    b->tag = tag;
    b->resent = false;
    b->command.clear();
    resp_append_command(b->command, args);
    if (!redis_->command_encoded(b->command, b)) {
      release(b);
      return false;
    }
    push_kind(Kind::kBatch);
    return true;
  }
  [[nodiscard]] bool ready() const noexcept override { return redis_->ready(); }
  [[nodiscard]] std::size_t awaiting_reply() const noexcept override { return redis_->outstanding(); }
  void reset(const char* why) noexcept override { redis_->reset(why); }
  void poll() noexcept override { uv_run(loop_.get(), UV_RUN_NOWAIT); }

  void wait(std::chrono::nanoseconds timeout) noexcept override {
    // A one-shot timer bounds the blocking iteration, so a silent Redis cannot hold the stage
    // (overdue replies and the drain deadline are checked by the caller afterwards).
    const auto ms = std::max<std::int64_t>(1, std::chrono::ceil<std::chrono::milliseconds>(timeout).count());
    uv_timer_start(
        &timer_, [](uv_timer_t*) {}, static_cast<std::uint64_t>(ms), 0);
    uv_run(loop_.get(), UV_RUN_ONCE);
    uv_timer_stop(&timer_);
  }

  void close() noexcept override {
    closed_ = true;
    redis_->close();
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
    // Let libuv finish closing the connection's and the timer's handles.
    while (uv_run(loop_.get(), UV_RUN_NOWAIT) != 0) {
    }
  }

  // The connection lives until the destructor, so these stay valid after close().
  [[nodiscard]] bool up() const noexcept override { return redis_->up(); }
  [[nodiscard]] std::uint64_t reconnects() const noexcept override { return redis_->reconnects(); }
  [[nodiscard]] std::uint64_t failures() const noexcept override { return redis_->failures(); }

 private:
  /// What each command queued on the connection was, in the connection's order: replies (and
  /// the kLost of a dropped connection) come in that order, so the front says whose reply it is.
  enum class Kind : std::uint8_t { kOwner, kBatch, kInfo, kLoad, kReload };

  /// One function call in flight: the owner's tag, and the command's bytes, kept to send it
  /// again once if Redis lost the library. From a pool: no allocation once it has grown to the
  /// deepest pipeline of batches (and each record's buffer to the largest batch).
  struct Batch {
    void* tag = nullptr;
    bool resent = false;
    std::string command;
    Batch* next_free = nullptr;
  };

  static void on_connected(void* owner) { static_cast<RedisDedupStore*>(owner)->set_up_connection(); }

  // A new connection: nothing loaded on it is known. Per-key commands until FUNCTION LOAD
  // answers (queued behind the handshake, so it runs before any batch of ours on this
  // connection); INFO first in auto mode, so the load's reply can decide.
  void set_up_connection() noexcept {
    functions_ = false;
    cluster_ = false;
    reload_queued_ = false;
    if (mode_ == DedupBatchMode::kAuto && redis_->command({"INFO", "cluster"}, nullptr)) push_kind(Kind::kInfo);
    if (redis_->command({"FUNCTION", "LOAD", "REPLACE", kDedupLibrarySource}, nullptr)) push_kind(Kind::kLoad);
  }

  static void relay(void* owner, void* tag, const RedisReply& reply) {
    auto* self = static_cast<RedisDedupStore*>(owner);
    switch (self->pop_kind()) {
      case Kind::kOwner:
        if (self->on_reply_ != nullptr) self->on_reply_(self->owner_, tag, reply);
        return;
      case Kind::kBatch: self->batch_reply(static_cast<Batch*>(tag), reply); return;
      case Kind::kInfo: {
        std::string_view enabled;
        self->cluster_ = reply.type == RedisReply::Type::kString &&
                         redis_info_field(reply.str, "cluster_enabled", enabled) && enabled == "1";
        return;
      }
      case Kind::kLoad: self->load_reply(reply, false); return;
      case Kind::kReload: self->load_reply(reply, true); return;
    }
  }

  void load_reply(const RedisReply& reply, bool reload) noexcept {
    if (reload) reload_queued_ = false;
    if (reply.type == RedisReply::Type::kLost) return;  // the next connection loads it again
    if (!reply.failed()) {
      if (mode_ == DedupBatchMode::kAuto && cluster_) {
        decided(false, "the server is a Redis Cluster: a batch's keys may sit on several slots");
      } else {
        decided(true,
                mode_ == DedupBatchMode::kAuto ? "the server loaded the function library" : "dedup.batch is function");
      }
      return;
    }
    if (mode_ == DedupBatchMode::kAuto) {
      decided(false, std::string("FUNCTION LOAD failed (Redis older than 7, or not allowed): ").append(reply.str));
      return;
    }
    // dedup.batch: function, and the server cannot: an operator error, loud, and no dedup
    // commands go out until it is fixed (the connection retries with backoff; the stages apply
    // on_redis_error meanwhile).
    log::error("dedup.batch is function but Redis refuses the function library",
               {{"connection", role_}, {"error", reply.error_text()}});
    functions_ = false;
    redis_->reset("FUNCTION LOAD failed");
  }

  void batch_reply(Batch* b, const RedisReply& reply) noexcept {
    if (!b->resent && function_missing(reply)) {
      // Flushed or lost since we loaded it: load it again (once for every batch that meets the
      // gap) and send this batch again behind the load. The claims are not applied when the
      // function is missing, so sending them again cannot double anything; the owner sees one
      // reply, the second one's.
      b->resent = true;
      static thread_local log::RateLimiter limiter;
      std::uint64_t suppressed = 0;
      if (!reload_queued_) {
        if (limiter.allow(suppressed)) {
          log::warn("redis lost the dedup function library; loading it again",
                    {{"connection", role_}, {"suppressed", static_cast<unsigned long long>(suppressed)}});
        }
        if (redis_->command({"FUNCTION", "LOAD", "REPLACE", kDedupLibrarySource}, nullptr)) {
          push_kind(Kind::kReload);
          reload_queued_ = true;
        }
      }
      if (redis_->command_encoded(b->command, b)) {
        push_kind(Kind::kBatch);
        return;
      }
    }
    void* tag = b->tag;
    release(b);
    if (on_reply_ != nullptr) on_reply_(owner_, tag, reply);
  }

  /// One log line per decision change (first connection, and whenever a later one differs).
  void decided(bool functions, const std::string& why) noexcept {
    functions_ = functions;
    if (logged_ && logged_functions_ == functions) return;
    logged_ = true;
    logged_functions_ = functions;
    log::info("redis dedup batches", {{"connection", role_},
                                      {"dedup_batch", to_string(mode_)},
                                      {"using", functions ? "function" : "pipeline"},
                                      {"why", why}});
  }

  void add_batch_record() {
    pool_.push_back(std::make_unique<Batch>());
    pool_.back()->next_free = free_;
    free_ = pool_.back().get();
  }
  Batch* acquire() noexcept {
    if (free_ == nullptr) add_batch_record();  // grows to the deepest pipeline once
    Batch* b = free_;
    free_ = b->next_free;
    return b;
  }
  void release(Batch* b) noexcept {
    b->next_free = free_;
    free_ = b;
  }

  void push_kind(Kind kind) noexcept {
    if (kind_count_ == kinds_.size()) {
      std::vector<Kind> bigger(kinds_.size() * 2);
      for (std::size_t i = 0; i < kind_count_; ++i) bigger[i] = kinds_[(kind_head_ + i) & (kinds_.size() - 1)];
      kinds_.swap(bigger);
      kind_head_ = 0;
    }
    kinds_[(kind_head_ + kind_count_) & (kinds_.size() - 1)] = kind;
    ++kind_count_;
  }
  Kind pop_kind() noexcept {
    // Every reply the connection hands over is for a command queued through push_kind.
    const Kind kind = kinds_[kind_head_];
    kind_head_ = (kind_head_ + 1) & (kinds_.size() - 1);
    --kind_count_;
    return kind;
  }

  std::unique_ptr<uv_loop_t> loop_;
  uv_timer_t timer_{};
  std::string role_;
  DedupBatchMode mode_;
  std::unique_ptr<RedisConnection> redis_;
  ReplyFn on_reply_ = nullptr;
  void* owner_ = nullptr;
  bool closed_ = false;
  bool functions_ = false;      // this connection has the library and the mode allows it
  bool cluster_ = false;        // INFO cluster said cluster_enabled:1
  bool reload_queued_ = false;  // a FUNCTION LOAD after "Function not found" awaits its reply
  bool logged_ = false;
  bool logged_functions_ = false;
  std::vector<Kind> kinds_;  // ring, power of two
  std::size_t kind_head_ = 0;
  std::size_t kind_count_ = 0;
  std::vector<std::unique_ptr<Batch>> pool_;
  Batch* free_ = nullptr;
};

}  // namespace

std::unique_ptr<DedupStore> make_redis_dedup_store(const RedisConfig& config, std::string role, DedupBatchMode batch) {
  return std::make_unique<RedisDedupStore>(config, std::move(role), batch);
}

}  // namespace cdc
