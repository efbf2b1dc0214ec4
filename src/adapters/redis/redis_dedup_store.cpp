#include "cdc/adapters/redis/redis_dedup_store.hpp"

#include <uv.h>

#include <algorithm>

#include "cdc/adapters/redis/redis_connection.hpp"

namespace cdc {
namespace {

class RedisDedupStore final : public DedupStore {
 public:
  RedisDedupStore(const RedisConfig& config, std::string role) : loop_(std::make_unique<uv_loop_t>()) {
    uv_loop_init(loop_.get());
    uv_timer_init(loop_.get(), &timer_);
    redis_ = std::make_unique<RedisConnection>(config, loop_.get(), std::move(role), &RedisDedupStore::relay, this);
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
  void start() noexcept override { redis_->start(); }
  bool send(const DedupCommand& command, void* tag) noexcept override { return redis_->command(command.view(), tag); }
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
  static void relay(void* owner, void* tag, const RedisReply& reply) {
    auto* self = static_cast<RedisDedupStore*>(owner);
    if (self->on_reply_ != nullptr) self->on_reply_(self->owner_, tag, reply);
  }

  std::unique_ptr<uv_loop_t> loop_;
  uv_timer_t timer_{};
  std::unique_ptr<RedisConnection> redis_;
  ReplyFn on_reply_ = nullptr;
  void* owner_ = nullptr;
  bool closed_ = false;
};

}  // namespace

std::unique_ptr<DedupStore> make_redis_dedup_store(const RedisConfig& config, std::string role) {
  return std::make_unique<RedisDedupStore>(config, std::move(role));
}

}  // namespace cdc
