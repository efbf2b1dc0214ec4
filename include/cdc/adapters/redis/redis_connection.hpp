#pragma once
/// Redis adapter: one connection on a libuv loop owned by the calling stage, pipelined without
/// an allocation per command. Commands are RESP-encoded into a reused buffer (resp.hpp) and
/// written once per loop iteration (a prepare handle), so a batch leaves in one write; replies
/// are decoded by a RespReader (hiredis' parser, no allocation) and handed to the owner in order,
/// with the tag given to command(). Reconnects with backoff; AUTH, SELECT and a PING go first on
/// every connection, and the connection is up (ready() and up()) only once the PING is answered
/// (commands queued meanwhile go out behind it).
/// A server that refuses our credentials (NOAUTH, WRONGPASS, ...) is an authentication failure:
/// logged once as an error, the connection down until the credentials work (auth_failed()).
///
/// Thread contract: every method, and every reply callback, runs on the thread that runs the
/// loop. Only up() and the counters may be read from other threads (health, metrics).

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <span>
#include <string_view>
#include <vector>

#include "cdc/core/config.hpp"
#include "cdc/adapters/redis/resp.hpp"

struct uv_loop_s;
struct uv_timer_s;
struct uv_prepare_s;

namespace cdc {

class RedisConnection {
 public:
  /// Called once per queued command, in order: its reply, or kLost when the connection dropped
  /// (or was closed) first. `owner` is the pointer given to the constructor.
  using ReplyFn = void (*)(void* owner, void* tag, const RedisReply& reply);

  /// `max_reply_text`: bytes of a string reply handed to the owner (RespReader::kMaxText by
  /// default; INFO replies need a few KiB).
  RedisConnection(const RedisConfig& config, uv_loop_s* loop, std::string role, ReplyFn on_reply, void* owner,
                  std::size_t max_reply_text = RespReader::kMaxText);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  /// Starts connecting (and reconnecting with backoff after any failure).
  void start();
  /// Drops the connection (pending commands get kLost) and stops reconnecting; afterwards the
  /// owner runs the loop until its handles are closed.
  void close();
  /// Drops the connection now (e.g. a reply is overdue) and reconnects after the backoff.
  void reset(const char* why);

  /// Connected and ready for commands.
  [[nodiscard]] bool ready() const noexcept { return state_ == State::kReady; }
  /// Any thread: last known state.
  [[nodiscard]] bool up() const noexcept { return up_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t reconnects() const noexcept { return reconnects_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }
  /// Any thread: the server refused our credentials, and has not accepted them since.
  [[nodiscard]] bool auth_failed() const noexcept { return auth_failed_.load(std::memory_order_relaxed); }
  /// Commands queued or sent whose reply has not come yet.
  [[nodiscard]] std::size_t outstanding() const noexcept { return tag_count_; }

  /// Queues a command, written at the next loop iteration (or flush()); false when not
  /// connected (nothing queued, no callback). Accepted once the socket is connected, also
  /// while the handshake (AUTH, SELECT, PING) is answered.
  bool command(std::initializer_list<std::string_view> args, void* tag) noexcept;
  bool command(std::span<const std::string_view> args, void* tag) noexcept;
  /// As command(), for a command already RESP-encoded (resp_append_command): one the owner
  /// keeps to send again.
  bool command_encoded(std::string_view resp, void* tag) noexcept;
  /// Called on every new connection once the handshake's commands are queued, before any
  /// other: what the owner queues there runs first on the connection (as part of its set-up;
  /// replies come through the reply function with the owner's tags). Set before start().
  using ConnectedFn = void (*)(void* owner);
  void set_on_connected(ConnectedFn fn) noexcept { on_connected_ = fn; }
  /// Writes what is queued now (the loop does it on its own before it polls).
  void flush() noexcept;

 private:
  enum class State : std::uint8_t { kIdle, kConnecting, kHandshake, kReady, kClosed };
  struct Socket;          // one per connection attempt; freed by its handle's close callback
  friend struct RedisIo;  // the libuv and hiredis-reader callbacks (redis_client.cpp)

  void connect_now();
  void connected();
  void handshake_done();
  void auth_failure(std::string_view error);
  void queue(std::initializer_list<std::string_view> args, void* tag);
  void queue(std::span<const std::string_view> args, void* tag);
  void on_data(Socket& s, const char* data, std::size_t n);
  void deliver(const RedisReply& reply);
  void connection_lost(const std::string& why);
  void abandon_socket();
  void fail_pending();
  void schedule_reconnect(const std::string& why);
  void mark_down();
  void push_tag(void* tag);
  void* pop_tag() noexcept;

  RedisConfig config_;
  uv_loop_s* loop_;
  std::string role_;
  ReplyFn on_reply_;
  ConnectedFn on_connected_ = nullptr;
  void* owner_;
  std::size_t max_reply_text_;
  std::string host_;
  int port_ = 6379;
  State state_ = State::kIdle;
  Socket* socket_ = nullptr;
  std::string out_;          // encoded commands not yet handed to the socket
  std::vector<void*> tags_;  // ring of the tags of commands awaiting their reply
  std::size_t tag_head_ = 0;
  std::size_t tag_count_ = 0;
  bool closing_ = false;
  std::int64_t backoff_ms_ = 0;
  uv_timer_s* timer_ = nullptr;      // reconnect backoff and connect timeout
  uv_prepare_s* prepare_ = nullptr;  // writes out_ once per loop iteration
  std::atomic<bool> up_{false};
  std::atomic<std::uint64_t> reconnects_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::atomic<bool> auth_failed_{false};
  bool ever_connected_ = false;
};

/// Splits "host:port"; false when malformed.
bool split_host_port(const std::string& address, std::string& host, int& port);

}  // namespace cdc
