#pragma once
/// Redis' own view of the dedup risk the design names ("Redis eviction under burst -> duplicate
/// pushes"): the monitor thread reads INFO stats (evicted_keys) and INFO memory
/// (maxmemory_policy) every metrics.backlog_interval on a connection of its own, off the hot
/// path, and exports them (cdc_consumer_redis_evicted_keys, cdc_consumer_redis_maxmemory_policy).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cdc/core/config.hpp"
#include "cdc/core/metrics.hpp"

struct uv_loop_s;

namespace cdc {

class RedisConnection;
struct RedisReply;

/// The value of `key` in an INFO reply ("key:value" lines); false when absent.
bool redis_info_field(std::string_view info, std::string_view key, std::string_view& value) noexcept;
/// Index of `policy` in kRedisPolicies; the last ("other") for a value not listed.
std::size_t redis_policy_index(std::string_view policy) noexcept;
/// True when `policy` can evict dedup marks. They carry a TTL, so the volatile-* policies pick
/// them as well as the allkeys-* ones: every policy but noeviction.
bool redis_policy_can_evict(std::string_view policy) noexcept;

/// The monitor thread's INFO reader. Start-up zone to construct (throws ConfigError for a bad
/// redis.address); every other method on the monitor thread, never blocking.
class RedisInfoProbe {
 public:
  RedisInfoProbe(const RedisConfig& config, Metrics& metrics);
  ~RedisInfoProbe();
  RedisInfoProbe(const RedisInfoProbe&) = delete;
  RedisInfoProbe& operator=(const RedisInfoProbe&) = delete;

  /// Runs the connection's loop without waiting, and sends INFO when `interval_ns` has passed
  /// since the last one (replies are taken on a later tick). Logs a warning the first time it
  /// reads a policy that can evict dedup keys, and whenever the policy changes to one.
  void tick(std::int64_t now_ns, std::int64_t interval_ns) noexcept;
  /// Closes the connection and runs the loop until its handles are gone.
  void close() noexcept;

 private:
  static void on_reply(void* owner, void* tag, const RedisReply& reply);

  RedisConfig config_;
  Metrics& metrics_;
  std::unique_ptr<uv_loop_s> loop_;
  std::unique_ptr<RedisConnection> redis_;
  bool started_ = false;
  bool closed_ = false;
  std::int64_t next_ns_ = 0;
  std::int64_t sent_ns_ = 0;
  std::string policy_;  // last policy read ("" before)
};

}  // namespace cdc
