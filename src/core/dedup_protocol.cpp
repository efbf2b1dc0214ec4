#include "cdc/core/dedup_protocol.hpp"

#include <algorithm>
#include <utility>

namespace cdc {

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
