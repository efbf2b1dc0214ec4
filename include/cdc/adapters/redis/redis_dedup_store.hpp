#pragma once
/// The Redis implementation of the DedupStore port: one RedisConnection on a libuv loop that
/// this object owns and runs only inside poll() / wait(), on the owning stage's thread.
/// With dedup.batch auto or function it loads the function library (kDedupLibrary) with
/// FUNCTION LOAD REPLACE on every new connection, ahead of the owner's commands, and offers
/// batches (functions()) once that succeeded; a batch that meets "Function not found" (the
/// library flushed, or Redis restarted without persistence) makes it load the library again and
/// send that batch once more, so the owner sees only the second reply.

#include <memory>
#include <string>

#include "cdc/core/config.hpp"
#include "cdc/pipeline/ports.hpp"

namespace cdc {

/// `role` names the connection in logs ("dedup", "mark"); `batch` is dedup.batch. Nothing
/// connects before start().
std::unique_ptr<DedupStore> make_redis_dedup_store(const RedisConfig& config, std::string role,
                                                   DedupBatchMode batch = DedupBatchMode::kPipeline);

}  // namespace cdc
