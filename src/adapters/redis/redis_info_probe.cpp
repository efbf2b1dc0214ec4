#include "cdc/adapters/redis/redis_info_probe.hpp"

#include <uv.h>

#include <charconv>

#include "cdc/core/log.hpp"
#include "cdc/adapters/redis/redis_connection.hpp"

namespace cdc {
namespace {
char g_stats_tag;
char g_memory_tag;
constexpr std::size_t kMaxInfoText = 16 * 1024;  // INFO stats / memory are 1 to 2 KiB
}  // namespace

RedisInfoProbe::RedisInfoProbe(const RedisConfig& config, Metrics& metrics)
    : config_(config), metrics_(metrics), loop_(std::make_unique<uv_loop_t>()) {
  uv_loop_init(loop_.get());
  try {
    redis_ =
        std::make_unique<RedisConnection>(config_, loop_.get(), "info", &RedisInfoProbe::on_reply, this, kMaxInfoText);
  } catch (...) {
    uv_loop_close(loop_.get());
    throw;
  }
}

RedisInfoProbe::~RedisInfoProbe() {
  redis_.reset();
  while (uv_run(loop_.get(), UV_RUN_NOWAIT) != 0) {
  }
  uv_loop_close(loop_.get());
}

void RedisInfoProbe::tick(std::int64_t now_ns, std::int64_t interval_ns) noexcept {
  if (closed_) return;
  if (!started_) {
    redis_->start();
    started_ = true;
  }
  uv_run(loop_.get(), UV_RUN_NOWAIT);  // connect, AUTH, replies, reconnect timers
  // Not ready: connecting or in the AUTH/SELECT/PING handshake, whose commands are outstanding
  // too and bounded by the connection's own timeout, not by this INFO deadline.
  if (!redis_->ready()) return;
  if (redis_->outstanding() > 0) {
    if (now_ns - sent_ns_ > config_.command_timeout.count() * 1'000'000) redis_->reset("INFO reply overdue");
    return;
  }
  if (now_ns < next_ns_) return;
  // Two commands: Redis before 7 takes one section per INFO.
  if (redis_->command({"INFO", "stats"}, &g_stats_tag) && redis_->command({"INFO", "memory"}, &g_memory_tag)) {
    sent_ns_ = now_ns;
    next_ns_ = now_ns + interval_ns;
  }
  uv_run(loop_.get(), UV_RUN_NOWAIT);  // write them now
}

void RedisInfoProbe::close() noexcept {
  if (closed_) return;
  closed_ = true;
  redis_->close();
  while (uv_run(loop_.get(), UV_RUN_NOWAIT) != 0) {
  }
}

void RedisInfoProbe::on_reply(void* owner, void* tag, const RedisReply& reply) {
  auto* self = static_cast<RedisInfoProbe*>(owner);
  if (reply.type != RedisReply::Type::kString) {
    if (reply.type == RedisReply::Type::kError) {
      static thread_local log::RateLimiter limiter(600'000'000'000LL, 1);
      std::uint64_t suppressed = 0;
      if (limiter.allow(suppressed)) {
        log::warn("cannot read Redis INFO",
                  {{"error", reply.error_text()}, {"suppressed", static_cast<unsigned long long>(suppressed)}});
      }
    }
    return;
  }
  std::string_view value;
  if (tag == &g_stats_tag) {
    long long evicted = 0;
    if (redis_info_field(reply.str, "evicted_keys", value) &&
        std::from_chars(value.data(), value.data() + value.size(), evicted).ec == std::errc()) {
      self->metrics_.monitor.redis_evicted_keys.set(evicted);
    }
    return;
  }
  if (tag != &g_memory_tag || !redis_info_field(reply.str, "maxmemory_policy", value)) return;
  self->metrics_.monitor.redis_policy.set(static_cast<std::int64_t>(redis_policy_index(value)));
  if (value == self->policy_) return;
  try {
    self->policy_.assign(value);
  } catch (const std::exception&) {
    return;
  }
  if (redis_policy_can_evict(value)) {
    log::warn("redis maxmemory-policy can evict dedup keys",
              {{"policy", value},
               {"address", self->config_.address},
               {"hint",
                "a dedup mark evicted before its TTL lets a redelivered event be published again; "
                "set maxmemory-policy noeviction on the dedup Redis"}});
  } else {
    log::info("redis maxmemory-policy", {{"policy", value}});
  }
}

}  // namespace cdc
