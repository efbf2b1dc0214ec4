#pragma once
/// The Redis implementation of the DedupStore port: one RedisConnection on a libuv loop that
/// this object owns and runs only inside poll() / wait(), on the owning stage's thread.

#include <memory>
#include <string>

#include "cdc/core/config.hpp"
#include "cdc/pipeline/ports.hpp"

namespace cdc {

/// `role` names the connection in logs ("dedup", "mark"). Nothing connects before start().
std::unique_ptr<DedupStore> make_redis_dedup_store(const RedisConfig& config, std::string role);

}  // namespace cdc
