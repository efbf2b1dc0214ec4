#include "cdc/core/lease_rules.hpp"

#include <simdjson.h>

#include <algorithm>
#include <limits>

#include "cdc/core/json_writer.hpp"

namespace cdc::lease {

void observe(Observed& key, std::uint64_t revision, std::int64_t now_ns) noexcept {
  if (key.revision == revision) return;
  key.revision = revision;
  key.seen_ns = now_ns;
}

bool expired(const Observed& key, std::int64_t now_ns, std::int64_t ttl_ns) noexcept {
  return key.revision != 0 && now_ns - key.seen_ns >= ttl_ns;
}

std::int64_t renew_interval(std::int64_t ttl_ns) noexcept { return ttl_ns / 5; }

std::int64_t fence_deadline(std::int64_t renew_sent_ns, std::int64_t ttl_ns) noexcept {
  return renew_sent_ns + ttl_ns / 5 * 4;
}

std::int64_t call_timeout(std::int64_t ttl_ns) noexcept { return std::max<std::int64_t>(ttl_ns / 10, 100'000'000); }

bool take_over_ready(std::int64_t expiry_seen_ns, std::int64_t now_ns, std::int64_t ack_wait_ns,
                     std::int64_t fetch_expires_ns, std::int64_t num_ack_pending, std::int64_t num_waiting) noexcept {
  const std::int64_t since = now_ns - expiry_seen_ns;
  if (since >= ack_wait_ns) return true;
  if (num_ack_pending != 0 || num_waiting < 0) return false;
  return num_waiting == 0 || since >= fetch_expires_ns;
}

bool hand_over_ready(bool fetch_idle, std::int64_t num_ack_pending, std::int64_t stopped_ns, std::int64_t now_ns,
                     std::int64_t ack_wait_ns) noexcept {
  if (!fetch_idle) return false;
  return num_ack_pending == 0 || now_ns - stopped_ns >= ack_wait_ns;
}

std::uint32_t next_epoch(std::uint32_t previous) noexcept {
  return previous == std::numeric_limits<std::uint32_t>::max() ? 1 : previous + 1;
}

std::string lease_json(std::string_view owner, std::uint32_t epoch) {
  std::string out("{\"owner\":");
  append_json_string(owner, out);
  out.append(",\"epoch\":").append(std::to_string(epoch)).append("}");
  return out;
}

bool parse_lease(std::string_view json, LeaseValue& out) noexcept {
  try {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) return false;
    std::string_view owner;
    std::uint64_t epoch = 0;
    if (doc["owner"].get_string().get(owner) != simdjson::SUCCESS) return false;
    if (doc["epoch"].get_uint64().get(epoch) != simdjson::SUCCESS) return false;
    if (epoch > std::numeric_limits<std::uint32_t>::max()) return false;
    out.owner.assign(owner);
    out.epoch = static_cast<std::uint32_t>(epoch);
    return true;
  } catch (...) {
    return false;
  }
}

std::uint64_t resume_sequence(std::uint64_t checkpoint, std::uint64_t stream_last_seq,
                              std::int64_t checkpoint_written_ns, std::int64_t stream_created_ns) noexcept {
  if (checkpoint == 0 || stream_last_seq < checkpoint) return 0;
  if (checkpoint_written_ns > 0 && stream_created_ns > 0 && checkpoint_written_ns < stream_created_ns) return 0;
  return checkpoint + 1;
}

}  // namespace cdc::lease
