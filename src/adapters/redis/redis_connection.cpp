#include "cdc/adapters/redis/redis_connection.hpp"

#include <netdb.h>
#include <uv.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "cdc/core/log.hpp"

namespace cdc {
namespace {

// Tags of the commands the connection sends for itself (never handed to the owner).
char g_auth_tag;
char g_select_tag;
char g_ping_tag;  // ends the handshake: the connection is up once its PONG arrives

bool internal_tag(void* tag) { return tag == &g_auth_tag || tag == &g_select_tag || tag == &g_ping_tag; }

/// The replies of a server that wants credentials we lack or refuses ours: NOAUTH (no AUTH
/// sent), WRONGPASS (Redis 6+), "ERR invalid password" (older), "ERR AUTH <password> called
/// without any password configured" (we send one, it has none).
bool is_auth_error(std::string_view text) {
  return text.rfind("NOAUTH", 0) == 0 || text.rfind("WRONGPASS", 0) == 0 ||
         text.rfind("ERR invalid password", 0) == 0 || text.rfind("ERR AUTH", 0) == 0 ||
         text.rfind("ERR Client sent AUTH", 0) == 0;
}

constexpr std::size_t kReadBuffer = 64 * 1024;

}  // namespace

struct RedisConnection::Socket {
  uv_tcp_t tcp{};
  uv_connect_t connect{};
  uv_write_t write{};
  RedisConnection* owner = nullptr;  // nullptr once abandoned: callbacks still due do nothing
  explicit Socket(std::size_t max_text) : reader(max_text) {}
  RespReader reader;    // fresh per connection: no half-parsed reply carries over
  std::string writing;  // the bytes of the write in progress
  bool write_busy = false;
  std::array<char, kReadBuffer> read_buf{};
};

struct RedisIo {
  static void on_connect(uv_connect_t* req, int status) {
    auto* s = static_cast<RedisConnection::Socket*>(req->data);
    RedisConnection* self = s->owner;
    if (self == nullptr) return;
    if (status < 0) {
      self->connection_lost(uv_strerror(status));
      return;
    }
    self->connected();
  }

  static void on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
    auto* s = static_cast<RedisConnection::Socket*>(handle->data);
    *buf = uv_buf_init(s->read_buf.data(), static_cast<unsigned>(s->read_buf.size()));
  }

  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* s = static_cast<RedisConnection::Socket*>(stream->data);
    RedisConnection* self = s->owner;
    if (self == nullptr || nread == 0) return;
    if (nread < 0) {
      self->connection_lost(nread == UV_EOF ? "closed by the server" : uv_strerror(static_cast<int>(nread)));
      return;
    }
    self->on_data(*s, buf->base, static_cast<std::size_t>(nread));
  }

  static void on_write(uv_write_t* req, int status) {
    auto* s = static_cast<RedisConnection::Socket*>(req->data);
    s->write_busy = false;
    RedisConnection* self = s->owner;
    if (self == nullptr) return;
    if (status < 0) {
      self->connection_lost(uv_strerror(status));
      return;
    }
    self->flush();  // what was queued meanwhile
  }

  static void on_timer(uv_timer_t* timer) {
    auto* self = static_cast<RedisConnection*>(timer->data);
    if (self->state_ == RedisConnection::State::kConnecting || self->state_ == RedisConnection::State::kHandshake) {
      self->connection_lost(self->state_ == RedisConnection::State::kConnecting ? "connect timeout"
                                                                                : "handshake timeout");
      return;
    }
    if (self->state_ == RedisConnection::State::kIdle) self->connect_now();
  }

  static void on_prepare(uv_prepare_t* prepare) { static_cast<RedisConnection*>(prepare->data)->flush(); }
};

bool split_host_port(const std::string& address, std::string& host, int& port) {
  const std::size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= address.size()) return false;
  host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int p = 0;
  for (std::size_t i = colon + 1; i < address.size(); ++i) {
    if (address[i] < '0' || address[i] > '9') return false;
    p = p * 10 + (address[i] - '0');
    if (p > 65535) return false;
  }
  if (p == 0) return false;
  port = p;
  return true;
}

RedisConnection::RedisConnection(const RedisConfig& config, uv_loop_s* loop, std::string role, ReplyFn on_reply,
                                 void* owner, std::size_t max_reply_text)
    : config_(config),
      loop_(loop),
      role_(std::move(role)),
      on_reply_(on_reply),
      owner_(owner),
      max_reply_text_(max_reply_text),
      tags_(1024, nullptr) {
  if (!split_host_port(config.address, host_, port_)) {
    throw ConfigError("redis.address", "expected host:port, got '" + config.address + "'");
  }
  out_.reserve(64 * 1024);
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  prepare_ = new uv_prepare_t;
  uv_prepare_init(loop_, prepare_);
  prepare_->data = this;
}

RedisConnection::~RedisConnection() {
  close();
  // The handles are freed by their close callbacks; the owner runs the loop to let it happen.
}

void RedisConnection::start() {
  closing_ = false;
  backoff_ms_ = 0;
  connect_now();
}

void RedisConnection::close() {
  closing_ = true;
  abandon_socket();
  state_ = State::kClosed;
  fail_pending();
  up_.store(false, std::memory_order_relaxed);  // closing on purpose: nothing to warn about
  if (timer_ != nullptr) {
    uv_timer_stop(timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
  if (prepare_ != nullptr) {
    uv_prepare_stop(prepare_);
    uv_close(reinterpret_cast<uv_handle_t*>(prepare_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_prepare_t*>(h); });
    prepare_ = nullptr;
  }
}

void RedisConnection::reset(const char* why) {
  if (socket_ == nullptr) return;
  connection_lost(why);
}

void RedisConnection::mark_down() {
  if (up_.exchange(false, std::memory_order_relaxed)) {
    log::warn("redis down", {{"connection", role_}, {"address", config_.address}});
  }
}

void RedisConnection::connect_now() {
  if (closing_ || timer_ == nullptr || socket_ != nullptr) return;
  // Resolved here, as hiredis did: numeric addresses at once, names through the resolver.
  sockaddr_storage addr{};
  if (uv_ip4_addr(host_.c_str(), port_, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(host_.c_str(), port_, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = getaddrinfo(host_.c_str(), std::to_string(port_).c_str(), &hints, &found);
    if (rc != 0 || found == nullptr) {
      schedule_reconnect(std::string("resolve ") + host_ + ": " + gai_strerror(rc));
      return;
    }
    std::memcpy(&addr, found->ai_addr, std::min<std::size_t>(found->ai_addrlen, sizeof addr));
    freeaddrinfo(found);
  }
  auto* s = new Socket(max_reply_text_);
  s->owner = this;
  s->tcp.data = s;
  s->connect.data = s;
  s->write.data = s;
  uv_tcp_init(loop_, &s->tcp);
  socket_ = s;
  state_ = State::kConnecting;
  const int rc = uv_tcp_connect(&s->connect, &s->tcp, reinterpret_cast<const sockaddr*>(&addr), &RedisIo::on_connect);
  if (rc != 0) {
    connection_lost(uv_strerror(rc));
    return;
  }
  // Connect timeout; the same timer runs the backoff once the attempt failed.
  uv_timer_start(timer_, &RedisIo::on_timer, static_cast<std::uint64_t>(config_.connect_timeout.count()), 0);
}

void RedisConnection::connected() {
  // The connect timeout keeps running: it bounds the handshake too (handshake_done() stops it).
  uv_tcp_nodelay(&socket_->tcp, 1);
  const int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&socket_->tcp), &RedisIo::on_alloc, &RedisIo::on_read);
  if (rc != 0) {
    connection_lost(uv_strerror(rc));
    return;
  }
  state_ = State::kHandshake;
  uv_prepare_start(prepare_, &RedisIo::on_prepare);
  // AUTH first, then SELECT, then PING: Redis answers in order, so the PONG says the connection
  // takes commands (a server that wants a password we lack answers the PING with NOAUTH). Only
  // then is it up and ready for the stage's commands. A refused AUTH, SELECT or PING drops the
  // connection (retried with backoff).
  if (!config_.password.empty()) {
    if (config_.username.empty()) queue({"AUTH", config_.password}, &g_auth_tag);
    else queue({"AUTH", config_.username, config_.password}, &g_auth_tag);
  }
  if (config_.db != 0) queue({"SELECT", std::to_string(config_.db)}, &g_select_tag);
  queue({"PING"}, &g_ping_tag);
  if (on_connected_ != nullptr) on_connected_(owner_);
}

void RedisConnection::handshake_done() {
  uv_timer_stop(timer_);
  state_ = State::kReady;
  backoff_ms_ = 0;
  if (ever_connected_) reconnects_.fetch_add(1, std::memory_order_relaxed);
  ever_connected_ = true;
  up_.store(true, std::memory_order_relaxed);
  if (auth_failed_.exchange(false, std::memory_order_relaxed)) {
    log::info("redis authentication accepted again", {{"connection", role_}, {"address", config_.address}});
  }
  log::info("redis connected", {{"connection", role_}, {"address", config_.address}});
}

void RedisConnection::auth_failure(std::string_view error) {
  // Once per transition (not per command, not per reconnect): the error names the problem
  // (NOAUTH, WRONGPASS), never the password.
  if (!auth_failed_.exchange(true, std::memory_order_relaxed)) {
    log::error(
        "redis authentication failed: the server refuses our credentials; dedup cannot work until they are fixed",
        {{"connection", role_},
         {"address", config_.address},
         {"error", error},
         {"password_configured", !config_.password.empty()}});
  }
  connection_lost("authentication failed");
}

void RedisConnection::queue(std::initializer_list<std::string_view> args, void* tag) {
  queue(std::span<const std::string_view>(args.begin(), args.size()), tag);
}

void RedisConnection::queue(std::span<const std::string_view> args, void* tag) {
  resp_append_command(out_, args);
  push_tag(tag);
}

bool RedisConnection::command(std::initializer_list<std::string_view> args, void* tag) noexcept {
  return command(std::span<const std::string_view>(args.begin(), args.size()), tag);
}

bool RedisConnection::command(std::span<const std::string_view> args, void* tag) noexcept {
  // Taken during the handshake too, queued behind the PING: Redis answers in order, so they run
  // authenticated or, when the credentials are refused, fail with the connection (kLost).
  if (state_ != State::kReady && state_ != State::kHandshake) return false;
  queue(args, tag);
  return true;
}

bool RedisConnection::command_encoded(std::string_view resp, void* tag) noexcept {
  if (state_ != State::kReady && state_ != State::kHandshake) return false;
  out_.append(resp);
  push_tag(tag);
  return true;
}

void RedisConnection::flush() noexcept {
  if (out_.empty() || (state_ != State::kReady && state_ != State::kHandshake) || socket_->write_busy) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(&socket_->tcp);
  uv_buf_t buf = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
  const int written = uv_try_write(stream, &buf, 1);
  if (written == static_cast<int>(out_.size())) {
    out_.clear();
    return;
  }
  if (written < 0 && written != UV_EAGAIN) {
    connection_lost(uv_strerror(written));
    return;
  }
  // The socket took part (or none) of it: the rest goes with a write request, and what is queued
  // meanwhile waits for its completion.
  const std::size_t done = written > 0 ? static_cast<std::size_t>(written) : 0;
  socket_->writing.assign(out_, done);
  out_.clear();
  buf = uv_buf_init(socket_->writing.data(), static_cast<unsigned>(socket_->writing.size()));
  const int rc = uv_write(&socket_->write, stream, &buf, 1, &RedisIo::on_write);
  if (rc != 0) {
    connection_lost(uv_strerror(rc));
    return;
  }
  socket_->write_busy = true;
}

void RedisConnection::on_data(Socket& s, const char* data, std::size_t n) {
  if (!s.reader.feed(data, n)) {
    connection_lost("reply parse error: " + std::string(s.reader.error()));
    return;
  }
  while (s.owner != nullptr) {  // a callback may drop the connection
    const RedisReply* reply = nullptr;
    const int rc = s.reader.next(reply);
    if (rc < 0) {
      connection_lost("reply parse error: " + std::string(s.reader.error()));
      return;
    }
    if (rc == 0) return;  // the rest of the reply is still on its way
    deliver(*reply);
  }
}

void RedisConnection::deliver(const RedisReply& reply) {
  if (tag_count_ == 0) {
    connection_lost("reply without a command");
    return;
  }
  void* tag = pop_tag();
  if (internal_tag(tag)) {
    if (reply.type != RedisReply::Type::kError) {
      if (tag == &g_ping_tag) handshake_done();
      return;
    }
    if (tag == &g_auth_tag || is_auth_error(reply.str)) {
      auth_failure(reply.str);
      return;
    }
    // The reply names the problem (DB index out of range, ...).
    log::error(tag == &g_select_tag ? "redis SELECT failed" : "redis PING failed",
               {{"connection", role_}, {"address", config_.address}, {"error", reply.str}});
    reset(tag == &g_select_tag ? "SELECT failed" : "PING failed");
    return;
  }
  on_reply_(owner_, tag, reply);
  // Credentials withdrawn while connected (requirepass set, ACL changed): the owner has its
  // error reply; the connection is down until the credentials work again.
  if (reply.type == RedisReply::Type::kError && socket_ != nullptr && is_auth_error(reply.str)) auth_failure(reply.str);
}

// Every failure after a socket exists ends here: connecting, connected or writing.
void RedisConnection::connection_lost(const std::string& why) {
  abandon_socket();
  state_ = State::kIdle;
  out_.clear();
  fail_pending();
  mark_down();
  if (!closing_) schedule_reconnect(why);
}

void RedisConnection::abandon_socket() {
  if (socket_ == nullptr) return;
  Socket* s = socket_;
  socket_ = nullptr;
  s->owner = nullptr;
  if (prepare_ != nullptr) uv_prepare_stop(prepare_);
  // Requests still due (connect, write) complete with UV_ECANCELED before the close callback.
  uv_close(reinterpret_cast<uv_handle_t*>(&s->tcp), [](uv_handle_t* h) { delete static_cast<Socket*>(h->data); });
}

void RedisConnection::fail_pending() {
  const RedisReply lost{};
  while (tag_count_ > 0) {
    void* tag = pop_tag();
    if (!internal_tag(tag)) on_reply_(owner_, tag, lost);
  }
}

void RedisConnection::schedule_reconnect(const std::string& why) {
  failures_.fetch_add(1, std::memory_order_relaxed);
  if (closing_ || timer_ == nullptr) return;
  backoff_ms_ = backoff_ms_ == 0 ? config_.reconnect_backoff.count()
                                 : std::min<std::int64_t>(backoff_ms_ * 2, config_.reconnect_backoff_max.count());
  static thread_local log::RateLimiter limiter(5'000'000'000LL, 3);
  std::uint64_t suppressed = 0;
  // An authentication failure was logged once as an error; its retries are not news.
  if (!auth_failed_.load(std::memory_order_relaxed) && limiter.allow(suppressed)) {
    log::warn("redis connection failed; retrying", {{"connection", role_},
                                                    {"address", config_.address},
                                                    {"error", why},
                                                    {"retry_in_ms", static_cast<long long>(backoff_ms_)},
                                                    {"suppressed", static_cast<unsigned long long>(suppressed)}});
  }
  uv_timer_start(timer_, &RedisIo::on_timer, static_cast<std::uint64_t>(backoff_ms_), 0);
}

void RedisConnection::push_tag(void* tag) {
  if (tag_count_ == tags_.size()) {
    // Grows only until the deepest pipeline has been seen once (power of two kept).
    std::vector<void*> bigger(tags_.size() * 2, nullptr);
    for (std::size_t i = 0; i < tag_count_; ++i) bigger[i] = tags_[(tag_head_ + i) & (tags_.size() - 1)];
    tags_.swap(bigger);
    tag_head_ = 0;
  }
  tags_[(tag_head_ + tag_count_) & (tags_.size() - 1)] = tag;
  ++tag_count_;
}

void* RedisConnection::pop_tag() noexcept {
  void* tag = tags_[tag_head_];
  tag_head_ = (tag_head_ + 1) & (tags_.size() - 1);
  --tag_count_;
  return tag;
}

}  // namespace cdc
