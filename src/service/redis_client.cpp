#include "cdc/redis_client.hpp"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include <algorithm>
#include <chrono>

#include "cdc/log.hpp"

namespace cdc {
namespace {

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

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

RedisConnection::RedisConnection(const RedisConfig& config, uv_loop_s* loop, std::string role)
    : config_(config), loop_(loop), role_(std::move(role)) {
  if (!split_host_port(config.address, host_, port_)) {
    throw ConfigError("redis.address", "expected host:port, got '" + config.address + "'");
  }
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
}

RedisConnection::~RedisConnection() {
  close();
  // The timer is freed by its close callback; the owner runs the loop to let it happen.
}

void RedisConnection::start() {
  closing_ = false;
  backoff_ms_ = 0;
  connect_now();
}

void RedisConnection::close() {
  closing_ = true;
  if (ctx_ != nullptr) {
    redisAsyncContext* ac = ctx_;
    ctx_ = nullptr;
    connected_ = false;
    ac->data = nullptr;
    redisAsyncFree(ac);  // pending callbacks run with a nullptr reply
  }
  up_.store(false, std::memory_order_relaxed);  // closing on purpose: nothing to warn about
  if (timer_ != nullptr) {
    uv_timer_stop(timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
}

void RedisConnection::reset(const char* why) {
  if (ctx_ == nullptr) return;
  redisAsyncContext* ac = ctx_;
  ctx_ = nullptr;
  connected_ = false;
  ac->data = nullptr;
  redisAsyncFree(ac);
  mark_down();
  schedule_reconnect(why);
}

void RedisConnection::mark_down() {
  if (up_.exchange(false, std::memory_order_relaxed)) {
    log::warn("redis down", {{"connection", role_}, {"address", config_.address}});
  }
}

void RedisConnection::connect_now() {
  if (closing_ || timer_ == nullptr) return;
  redisAsyncContext* ac = redisAsyncConnect(host_.c_str(), port_);
  if (ac == nullptr || ac->err != 0) {
    const std::string why = ac != nullptr ? ac->errstr : "out of memory";
    if (ac != nullptr) redisAsyncFree(ac);
    schedule_reconnect(why);
    return;
  }
  ac->data = this;
  redisLibuvAttach(ac, loop_);
  redisAsyncSetConnectCallback(ac, &RedisConnection::on_connect);
  redisAsyncSetDisconnectCallback(ac, &RedisConnection::on_disconnect);
  ctx_ = ac;
  connected_ = false;
  connecting_ = true;
  connect_started_ns_ = now_ns();
  // Connect timeout: hiredis 0.14 has none for async connects.
  uv_timer_start(timer_, &RedisConnection::on_timer, static_cast<std::uint64_t>(config_.connect_timeout.count()), 0);
}

void RedisConnection::schedule_reconnect(const std::string& why) {
  failures_.fetch_add(1, std::memory_order_relaxed);
  if (closing_ || timer_ == nullptr) return;
  backoff_ms_ = backoff_ms_ == 0 ? config_.reconnect_backoff.count()
                                 : std::min<std::int64_t>(backoff_ms_ * 2, config_.reconnect_backoff_max.count());
  static thread_local log::RateLimiter limiter(5'000'000'000LL, 3);
  std::uint64_t suppressed = 0;
  if (limiter.allow(suppressed)) {
    log::warn("redis connection failed; retrying", {{"connection", role_}, {"address", config_.address},
                                                    {"error", why}, {"retry_in_ms", static_cast<long long>(backoff_ms_)},
                                                    {"suppressed", static_cast<unsigned long long>(suppressed)}});
  }
  connecting_ = false;
  uv_timer_start(timer_, &RedisConnection::on_timer, static_cast<std::uint64_t>(backoff_ms_), 0);
}

void RedisConnection::on_timer(uv_timer_s* timer) {
  auto* self = static_cast<RedisConnection*>(timer->data);
  if (self->connecting_ && self->ctx_ != nullptr && !self->connected_) {
    // Connect timed out.
    redisAsyncContext* ac = self->ctx_;
    self->ctx_ = nullptr;
    ac->data = nullptr;
    redisAsyncFree(ac);
    self->schedule_reconnect("connect timeout");
    return;
  }
  if (self->ctx_ == nullptr) self->connect_now();
}

void RedisConnection::on_connect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisConnection*>(ac->data);
  if (self == nullptr || ac != self->ctx_) return;
  self->connecting_ = false;
  if (self->timer_ != nullptr) uv_timer_stop(self->timer_);
  if (status != REDIS_OK) {
    // hiredis frees the context after this callback.
    self->ctx_ = nullptr;
    self->schedule_reconnect(ac->errstr);
    return;
  }
  self->connected_ = true;
  self->backoff_ms_ = 0;
  // AUTH first, then SELECT: Redis answers commands in order, so nothing the stage sends later
  // runs unauthenticated. A refused AUTH drops the connection (retried with backoff).
  if (!self->config_.password.empty()) {
    const std::string& user = self->config_.username;
    const std::string& pass = self->config_.password;
    const char* argv[] = {"AUTH", user.empty() ? pass.c_str() : user.c_str(), pass.c_str()};
    const std::size_t len[] = {4, user.empty() ? pass.size() : user.size(), pass.size()};
    redisAsyncCommandArgv(self->ctx_, &RedisConnection::on_auth, nullptr, user.empty() ? 2 : 3, argv, len);
  }
  if (self->config_.db != 0) {
    const std::string db = std::to_string(self->config_.db);
    const char* argv[] = {"SELECT", db.c_str()};
    const std::size_t len[] = {6, db.size()};
    redisAsyncCommandArgv(self->ctx_, nullptr, nullptr, 2, argv, len);
  }
  if (self->ever_connected_) self->reconnects_.fetch_add(1, std::memory_order_relaxed);
  self->ever_connected_ = true;
  self->up_.store(true, std::memory_order_relaxed);
  log::info("redis connected", {{"connection", self->role_}, {"address", self->config_.address}});
}

void RedisConnection::on_auth(redisAsyncContext* ac, void* reply, void*) {
  auto* self = static_cast<RedisConnection*>(ac->data);
  const auto* r = static_cast<const redisReply*>(reply);
  if (self == nullptr || r == nullptr || r->type != REDIS_REPLY_ERROR) return;
  // The reply text names the problem (WRONGPASS, NOAUTH...), never the password.
  log::error("redis authentication failed", {{"connection", self->role_}, {"address", self->config_.address},
                                            {"error", std::string(r->str, r->len)}});
  self->reset("authentication failed");
}

void RedisConnection::on_disconnect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisConnection*>(ac->data);
  if (self == nullptr || ac != self->ctx_) return;
  // hiredis frees the context after this callback.
  self->ctx_ = nullptr;
  self->connected_ = false;
  self->mark_down();
  if (!self->closing_) self->schedule_reconnect(status == REDIS_OK ? "disconnected" : ac->errstr);
}

bool RedisConnection::command(int argc, const char** argv, const std::size_t* argvlen, ReplyFn fn,
                              void* privdata) noexcept {
  if (!ready()) return false;
  return redisAsyncCommandArgv(ctx_, fn, privdata, argc, argv, argvlen) == REDIS_OK;
}

}  // namespace cdc
