// The dedup protocol of CONTRACT.md section 5 without Redis: the commands each step sends and
// what a claim's reply means.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "cdc/core/dedup_protocol.hpp"

using cdc::DedupCommand;
using cdc::DedupProtocol;
using cdc::DedupResult;
using cdc::Millis;
using cdc::RedisReply;

namespace {

std::vector<std::string> args(const DedupCommand& c) {
  std::vector<std::string> out;
  for (const auto a : c.view()) out.emplace_back(a);
  return out;
}

RedisReply reply(RedisReply::Type type, std::string_view str = {}) {
  RedisReply r;
  r.type = type;
  r.str = str;
  return r;
}

}  // namespace

TEST_CASE("dedup protocol: a claim is SET key p NX GET EX pending_ttl in whole seconds") {
  DedupProtocol p("dedup:", Millis{30000}, Millis{86400000});
  CHECK(args(p.claim("9000003938.0:messages:m-1")) ==
        std::vector<std::string>{"SET", "dedup:9000003938.0:messages:m-1", "p", "NX", "GET", "EX", "30"});
}

TEST_CASE("dedup protocol: done mark and unmark") {
  DedupProtocol p("k:", Millis{30000}, Millis{86400000});
  CHECK(args(p.mark_done("e1")) == std::vector<std::string>{"SET", "k:e1", "d", "EX", "86400"});
  CHECK(args(p.unmark("e2")) == std::vector<std::string>{"DEL", "k:e2"});
}

TEST_CASE("dedup protocol: TTLs round up to whole seconds, at least one") {
  CHECK(DedupProtocol::ttl_seconds(Millis{1}) == "1");
  CHECK(DedupProtocol::ttl_seconds(Millis{0}) == "1");
  CHECK(DedupProtocol::ttl_seconds(Millis{1000}) == "1");
  CHECK(DedupProtocol::ttl_seconds(Millis{1001}) == "2");
  DedupProtocol p("", Millis{1500}, Millis{2500});
  CHECK(args(p.claim("x")).back() == "2");
  CHECK(args(p.mark_done("x")).back() == "3");
}

TEST_CASE("dedup protocol: a command's key is its own until the next command") {
  DedupProtocol p("pre:", Millis{1000}, Millis{1000});
  const std::string long_id(1000, 'z');  // longer than the reserved key buffer
  CHECK(args(p.claim(long_id))[1] == "pre:" + long_id);
  CHECK(args(p.claim("short"))[1] == "pre:short");
}

TEST_CASE("dedup protocol: claim replies map to outcomes") {
  using T = RedisReply::Type;
  CHECK(DedupProtocol::claim_result(reply(T::kNil)) == DedupResult::kFirstSeen);
  CHECK(DedupProtocol::claim_result(reply(T::kString, "d")) == DedupResult::kDone);
  CHECK(DedupProtocol::claim_result(reply(T::kString, "p")) == DedupResult::kInFlight);
  // Errors and a lost connection: unavailable (the stage applies on_redis_error).
  CHECK(DedupProtocol::claim_result(reply(T::kError, "ERR wrong number of arguments")) == DedupResult::kUnavailable);
  CHECK(DedupProtocol::claim_result(reply(T::kLost)) == DedupResult::kUnavailable);
  // A mark we did not write: unavailable, publish and let Nats-Msg-Id decide.
  CHECK(DedupProtocol::claim_result(reply(T::kString, "dd")) == DedupResult::kUnavailable);
  CHECK(DedupProtocol::claim_result(reply(T::kString, "")) == DedupResult::kUnavailable);
  CHECK(DedupProtocol::claim_result(reply(T::kStatus, "OK")) == DedupResult::kUnavailable);
  CHECK(DedupProtocol::claim_result(reply(T::kInteger)) == DedupResult::kUnavailable);
  CHECK(DedupProtocol::claim_result(reply(T::kArray)) == DedupResult::kUnavailable);
}
