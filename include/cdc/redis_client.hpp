#pragma once
/// Redis adapter: one hiredis async connection on a libuv loop owned by the calling stage.
///
/// Thread contract: every method, and every reply callback, runs on the thread that runs the
/// loop. Only `up()` and the counters may be read from other threads (health, metrics).

#include <atomic>
#include <cstdint>
#include <string>

#include "cdc/config.hpp"

struct redisAsyncContext;
struct uv_loop_s;
struct uv_timer_s;

namespace cdc {

class RedisConnection {
 public:
  /// Reply callback: `reply` is a redisReply* or nullptr when the connection dropped.
  using ReplyFn = void (*)(::redisAsyncContext* ctx, void* reply, void* privdata);

  RedisConnection(const RedisConfig& config, uv_loop_s* loop, std::string role);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  /// Starts connecting (and reconnecting with backoff after any failure).
  void start();
  /// Drops the connection (pending callbacks get nullptr) and stops reconnecting; afterwards the
  /// owner runs the loop until its handles are closed.
  void close();
  /// Drops the connection now (e.g. a reply is overdue) and reconnects after the backoff.
  void reset(const char* why);

  /// Connected and ready for commands.
  [[nodiscard]] bool ready() const noexcept { return ctx_ != nullptr && connected_; }
  /// Any thread: last known state.
  [[nodiscard]] bool up() const noexcept { return up_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t reconnects() const noexcept { return reconnects_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }

  /// Queues a command; false when not connected (nothing queued, callback not called).
  bool command(int argc, const char** argv, const std::size_t* argvlen, ReplyFn fn, void* privdata) noexcept;

 private:
  static void on_connect(const redisAsyncContext* ac, int status);
  static void on_disconnect(const redisAsyncContext* ac, int status);
  static void on_auth(redisAsyncContext* ac, void* reply, void* privdata);
  static void on_timer(uv_timer_s* timer);
  void connect_now();
  void schedule_reconnect(const std::string& why);
  void mark_down();

  RedisConfig config_;
  uv_loop_s* loop_;
  std::string role_;
  std::string host_;
  int port_ = 6379;
  redisAsyncContext* ctx_ = nullptr;
  bool connected_ = false;
  bool closing_ = false;
  bool connecting_ = false;
  std::int64_t backoff_ms_ = 0;
  std::int64_t connect_started_ns_ = 0;
  uv_timer_s* timer_ = nullptr;  // reconnect backoff and connect timeout
  std::atomic<bool> up_{false};
  std::atomic<std::uint64_t> reconnects_{0};
  std::atomic<std::uint64_t> failures_{0};
  bool ever_connected_ = false;
};

/// Splits "host:port"; false when malformed.
bool split_host_port(const std::string& address, std::string& host, int& port);

}  // namespace cdc
