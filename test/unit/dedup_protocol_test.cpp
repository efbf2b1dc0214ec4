// The dedup protocol of CONTRACT.md section 5 without Redis: the commands each step sends and
// what a claim's reply means.

#include <catch2/catch.hpp>

#include <span>
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
  CHECK(args(p.claim(long_id))[1] == std::string("pre:").append(long_id));
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

namespace {
std::vector<std::string> args(std::span<const std::string_view> c) { return {c.begin(), c.end()}; }
}  // namespace

TEST_CASE("dedup protocol: a batch of claims is one FCALL of the library's claim function") {
  DedupProtocol p("dedup:", Millis{30000}, Millis{86400000});
  p.reserve_batch(4);
  p.begin_claims();
  p.add_to_batch("a");
  p.add_to_batch(std::string(300, 'x'));  // longer than reserved: the buffer grows, views stay right
  p.add_to_batch("c");
  CHECK(p.batch_size() == 3);
  CHECK(args(p.batch_command()) == std::vector<std::string>{"FCALL", "cdc_dedup_v1_claim", "3", "dedup:a",
                                                            std::string("dedup:").append(std::string(300, 'x')),
                                                            "dedup:c", "30"});
  // A new batch starts empty; marks carry the done TTL.
  p.begin_marks();
  CHECK(p.batch_size() == 0);
  for (int i = 0; i < 12; ++i) p.add_to_batch(std::string("e").append(std::to_string(i)));
  const auto m = args(p.batch_command());
  REQUIRE(m.size() == 16);
  CHECK(m[0] == "FCALL");
  CHECK(m[1] == "cdc_dedup_v1_mark");
  CHECK(m[2] == "12");
  CHECK(m[3] == "dedup:e0");
  CHECK(m[14] == "dedup:e11");
  CHECK(m[15] == "86400");
}

TEST_CASE("dedup protocol: the library declares the functions the batches call") {
  const std::string_view src = cdc::kDedupLibrarySource;
  CHECK(src.rfind(std::string("#!lua name=").append(std::string(cdc::kDedupLibrary)) + "\n", 0) == 0);
  CHECK(src.find(std::string("register_function('").append(std::string(cdc::kDedupClaimFunction)) + "'") !=
        std::string_view::npos);
  CHECK(src.find(std::string("register_function('").append(std::string(cdc::kDedupMarkFunction)) + "'") !=
        std::string_view::npos);
  // Every key comes in KEYS: the source builds none (a cluster routes by KEYS).
  CHECK(src.find("..") == std::string_view::npos);
}

TEST_CASE("dedup protocol: each element of a batch reply resolves its claim as the per-key reply would") {
  using T = RedisReply::Type;
  const std::vector<RedisReply> elements = {reply(T::kNil), reply(T::kString, "p"), reply(T::kString, "d"),
                                            reply(T::kString, "other"), reply(T::kError, "WRONGTYPE x")};
  RedisReply array = reply(T::kArray);
  array.integer = static_cast<long long>(elements.size());
  array.elements = elements;
  const auto result = [&](std::size_t i) {
    return DedupProtocol::claim_result(DedupProtocol::batch_element(array, i));
  };
  CHECK(result(0) == DedupResult::kFirstSeen);
  CHECK(result(1) == DedupResult::kInFlight);
  CHECK(result(2) == DedupResult::kDone);
  CHECK(result(3) == DedupResult::kUnavailable);  // a mark we did not write
  CHECK(DedupProtocol::batch_element(array, 4).failed());
  CHECK(DedupProtocol::batch_element(array, 4).str == "WRONGTYPE x");
  // A short array: the keys without an element failed; never a claim.
  CHECK(DedupProtocol::batch_element(array, 5).failed());
  CHECK(result(5) == DedupResult::kUnavailable);
}

TEST_CASE("dedup protocol: a failed batch reply fails every key of the batch") {
  using T = RedisReply::Type;
  for (const RedisReply& whole :
       {reply(T::kLost), reply(T::kError, "ERR Function not found"), reply(T::kNil), reply(T::kInteger)}) {
    for (std::size_t i = 0; i < 3; ++i) {
      const RedisReply e = DedupProtocol::batch_element(whole, i);
      CHECK(e.failed());
      if (whole.failed()) CHECK(e.error_text() == whole.error_text());
    }
  }
}
