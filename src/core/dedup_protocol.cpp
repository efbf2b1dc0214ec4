#include "cdc/core/dedup_protocol.hpp"

#include <algorithm>
#include <charconv>
#include <utility>

namespace cdc {

// Kept to what the per-key commands do, one key at a time, so a batch means the same as its
// commands pipelined: claim answers per key (pcall: a key holding another type answers its own
// WRONGTYPE, as the per-key SET would, and does not fail the others); Lua's false is the nil of
// "not set before". No flags: the functions write (refused, like SET, when Redis is out of
// memory), and may run on a cluster only with every key on one slot (a hash-tagged prefix).
const std::string_view kDedupLibrarySource = R"lua(#!lua name=cdc_dedup_v1
-- daisi-cdc-consumer-service dedup (src/core/dedup_protocol.cpp; docs/decisions.md).
local function claim(keys, args)
  local out = {}
  for i = 1, #keys do
    out[i] = redis.pcall('SET', keys[i], 'p', 'NX', 'GET', 'EX', args[1])
  end
  return out
end
local function mark(keys, args)
  for i = 1, #keys do
    redis.call('SET', keys[i], 'd', 'EX', args[1])
  end
  return #keys
end
redis.register_function('cdc_dedup_v1_claim', claim)
redis.register_function('cdc_dedup_v1_mark', mark)
)lua";

DedupProtocol::DedupProtocol(std::string key_prefix, Millis pending_ttl, Millis done_ttl)
    : prefix_(std::move(key_prefix)), pending_ttl_s_(ttl_seconds(pending_ttl)), done_ttl_s_(ttl_seconds(done_ttl)) {
  key_.reserve(prefix_.size() + 256);
}

std::string DedupProtocol::ttl_seconds(Millis ttl) {
  return std::to_string(std::max<std::int64_t>(1, (ttl.count() + 999) / 1000));
}

std::string_view DedupProtocol::key(std::string_view event_id) noexcept {
  // Capacity reserved for ids up to 256 bytes; a longer one grows the buffer once (assign
  // within noexcept: out of memory for a key terminates, as any allocation failure here would).
  key_.assign(prefix_);
  key_ += event_id;
  return key_;
}

DedupCommand DedupProtocol::claim(std::string_view event_id) noexcept {
  return DedupCommand{{"SET", key(event_id), "p", "NX", "GET", "EX", pending_ttl_s_}, 7};
}

DedupCommand DedupProtocol::mark_done(std::string_view event_id) noexcept {
  return DedupCommand{{"SET", key(event_id), "d", "EX", done_ttl_s_}, 5};
}

DedupCommand DedupProtocol::unmark(std::string_view event_id) noexcept {
  return DedupCommand{{"DEL", key(event_id)}, 2};
}

void DedupProtocol::reserve_batch(std::size_t keys, std::size_t id_bytes) {
  batch_keys_.reserve(keys * (prefix_.size() + id_bytes));
  key_ends_.reserve(keys);
  batch_args_.reserve(keys + 4);
}

void DedupProtocol::begin_batch(std::string_view function, std::string_view ttl_s) noexcept {
  batch_function_ = function;
  batch_ttl_s_ = ttl_s;
  batch_keys_.clear();
  key_ends_.clear();
}

void DedupProtocol::add_to_batch(std::string_view event_id) noexcept {
  // Within noexcept: growing past the reserved size allocates, and out of memory terminates,
  // as for a per-key command's key.
  batch_keys_ += prefix_;
  batch_keys_ += event_id;
  key_ends_.push_back(batch_keys_.size());
}

std::span<const std::string_view> DedupProtocol::batch_command() noexcept {
  const auto n = std::to_chars(numkeys_.data(), numkeys_.data() + numkeys_.size(), key_ends_.size());
  batch_args_.clear();
  batch_args_.push_back("FCALL");
  batch_args_.push_back(batch_function_);
  batch_args_.emplace_back(numkeys_.data(), static_cast<std::size_t>(n.ptr - numkeys_.data()));
  std::size_t begin = 0;
  for (const std::size_t end : key_ends_) {
    batch_args_.emplace_back(batch_keys_.data() + begin, end - begin);
    begin = end;
  }
  batch_args_.push_back(batch_ttl_s_);
  return batch_args_;
}

RedisReply DedupProtocol::batch_element(const RedisReply& reply, std::size_t i) noexcept {
  if (reply.failed()) return reply;
  if (reply.type != RedisReply::Type::kArray) {
    return RedisReply{RedisReply::Type::kError, "unexpected reply to a batch (not an array)", 0, false, {}};
  }
  if (i >= reply.elements.size()) {
    return RedisReply{RedisReply::Type::kError, "batch reply shorter than its keys", 0, false, {}};
  }
  return reply.elements[i];
}

DedupResult DedupProtocol::claim_result(const RedisReply& reply) noexcept {
  switch (reply.type) {
    case RedisReply::Type::kNil: return DedupResult::kFirstSeen;
    case RedisReply::Type::kString:
      if (reply.str == "d") return DedupResult::kDone;
      if (reply.str == "p") return DedupResult::kInFlight;
      return DedupResult::kUnavailable;
    default: return DedupResult::kUnavailable;
  }
}

}  // namespace cdc
