// dedup.batch against a real redis-server: the function library's claims and marks answer as the
// per-key commands would, a flushed library is loaded again without losing or misclassifying a
// claim, `pipeline` keeps today's commands, and a Redis that refuses the library gets per-key
// commands (auto) or no dedup commands at all (function).

#include <catch2/catch.hpp>
#include <hiredis/hiredis.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cdc/adapters/redis/redis_dedup_store.hpp"
#include "cdc/adapters/service_ports.hpp"
#include "cdc/core/dedup_protocol.hpp"
#include "cdc/pipeline/pipeline.hpp"
#include "pipeline_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace std::chrono_literals;

namespace {

/// A reply kept past the callback.
struct Kept {
  void* tag = nullptr;
  RedisReply::Type type = RedisReply::Type::kLost;
  std::string str;
  long long integer = 0;
  std::vector<RedisReply::Type> element_types;
  std::vector<std::string> element_text;
  std::vector<DedupResult> claims;  // DedupProtocol::claim_result of each element
};

struct Client {
  std::unique_ptr<DedupStore> store;
  std::vector<Kept> replies;

  Client(const std::string& address, DedupBatchMode mode, const std::string& user = {},
         const std::string& password = {}) {
    RedisConfig config;
    config.address = address;
    config.username = user;
    config.password = password;
    replies.reserve(64);  // references handed out by await() stay valid
    store = make_redis_dedup_store(config, "test", mode);
    store->set_handler(&Client::on_reply, this);
    store->start();
  }
  ~Client() { store->close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  static void on_reply(void* owner, void* tag, const RedisReply& r) {
    Kept k;
    k.tag = tag;
    k.type = r.type;
    k.str = std::string(r.str);
    k.integer = r.integer;
    for (std::size_t i = 0; i < r.elements.size(); ++i) {
      k.element_types.push_back(r.elements[i].type);
      k.element_text.emplace_back(r.elements[i].str);
    }
    for (std::size_t i = 0; i < static_cast<std::size_t>(r.type == RedisReply::Type::kArray ? r.integer : 0); ++i)
      k.claims.push_back(DedupProtocol::claim_result(DedupProtocol::batch_element(r, i)));
    static_cast<Client*>(owner)->replies.push_back(std::move(k));
  }

  template <typename Pred>
  bool poll_until(Pred pred, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      store->wait(5ms);
    }
    return true;
  }
  /// The reply of the command just sent (the n-th reply overall).
  const Kept& await(std::size_t n) {
    REQUIRE(poll_until([&] { return replies.size() >= n; }));
    return replies[n - 1];
  }
};

/// A hiredis connection for the test's own commands.
struct Direct {
  redisContext* rc;
  explicit Direct(std::uint16_t port) : rc(redisConnect("127.0.0.1", port)) {
    REQUIRE((rc != nullptr && rc->err == 0));
  }
  ~Direct() { redisFree(rc); }
  Direct(const Direct&) = delete;
  Direct& operator=(const Direct&) = delete;
  std::string run(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(rc, static_cast<int>(args.size()), argv.data(), lens.data()));
    REQUIRE(r != nullptr);
    std::string out =
        r->type == REDIS_REPLY_NIL ? "(nil)"
        : r->type == REDIS_REPLY_INTEGER
            ? std::to_string(r->integer)
            : (r->type == REDIS_REPLY_ARRAY ? "array:" + std::to_string(r->elements) : std::string(r->str, r->len));
    freeReplyObject(r);
    return out;
  }
  /// calls= of `cmdstat_<command>` in INFO commandstats (0 when never called).
  long long calls(const std::string& command) {
    const std::string info = run({"INFO", "commandstats"});
    const std::string key = "cmdstat_" + command + ":calls=";
    const auto at = info.find(key);
    return at == std::string::npos ? 0 : std::stoll(info.substr(at + key.size()));
  }
};

std::string address_of(const RedisServer& redis) { return "127.0.0.1:" + std::to_string(redis.port()); }

}  // namespace

TEST_CASE("redis functions: a batch of claims answers each key as SET NX GET would, marks set d",
          "[integration][redis_batch]") {
  RedisServer redis;
  Direct direct(redis.port());
  direct.run({"SET", "dedup:done", "d"});
  direct.run({"SET", "dedup:pending", "p"});
  direct.run({"SET", "dedup:other", "x"});
  direct.run({"RPUSH", "dedup:list", "a"});

  Client c(address_of(redis), DedupBatchMode::kAuto);
  REQUIRE(c.poll_until([&] { return c.store->functions(); }));
  DedupProtocol p("dedup:", Millis{30000}, Millis{300000});
  p.begin_claims();
  for (const char* id : {"new", "pending", "done", "other", "list", "new"}) p.add_to_batch(id);
  int tag = 0;
  REQUIRE(c.store->send_batch(p.batch_command(), &tag));
  const Kept& r = c.await(1);
  CHECK(r.tag == &tag);
  REQUIRE(r.type == RedisReply::Type::kArray);
  REQUIRE(r.claims.size() == 6);
  CHECK(r.claims[0] == DedupResult::kFirstSeen);
  CHECK(r.claims[1] == DedupResult::kInFlight);
  CHECK(r.claims[2] == DedupResult::kDone);
  CHECK(r.claims[3] == DedupResult::kUnavailable);  // a mark we did not write
  CHECK(r.element_types[4] == RedisReply::Type::kError);
  CHECK(r.element_text[4].rfind("WRONGTYPE", 0) == 0);
  CHECK(r.claims[5] == DedupResult::kInFlight);  // the same key again in one batch: our own 'p'
  // What SET NX GET EX leaves: 'p' with the pending TTL where nothing was, the rest untouched.
  CHECK(direct.run({"GET", "dedup:new"}) == "p");
  const long long ttl = std::stoll(direct.run({"TTL", "dedup:new"}));
  CHECK((ttl > 0 && ttl <= 30));
  CHECK(direct.run({"GET", "dedup:done"}) == "d");
  CHECK(direct.run({"TTL", "dedup:done"}) == "-1");
  CHECK(direct.calls("fcall") == 1);  // (commandstats counts the SETs inside it as well)

  p.begin_marks();
  p.add_to_batch("new");
  p.add_to_batch("fresh");
  REQUIRE(c.store->send_batch(p.batch_command(), nullptr));
  const Kept& m = c.await(2);
  CHECK(m.type == RedisReply::Type::kInteger);
  CHECK(m.integer == 2);
  CHECK(direct.run({"GET", "dedup:new"}) == "d");
  CHECK(direct.run({"GET", "dedup:fresh"}) == "d");
  const long long done_ttl = std::stoll(direct.run({"TTL", "dedup:fresh"}));
  CHECK((done_ttl > 30 && done_ttl <= 300));
}

TEST_CASE("redis functions: FUNCTION FLUSH between batches reloads the library, every claim answered once",
          "[integration][redis_batch]") {
  RedisServer redis;
  Direct direct(redis.port());
  Client c(address_of(redis), DedupBatchMode::kAuto);
  REQUIRE(c.poll_until([&] { return c.store->functions(); }));
  DedupProtocol p("dedup:", Millis{30000}, Millis{300000});

  p.begin_claims();
  p.add_to_batch("a");
  REQUIRE(c.store->send_batch(p.batch_command(), nullptr));
  CHECK(c.await(1).claims == std::vector<DedupResult>{DedupResult::kFirstSeen});

  // An operator flushes the functions: the next batches meet "Function not found".
  CHECK(direct.run({"FUNCTION", "FLUSH"}) == "OK");
  CHECK(direct.run({"FUNCTION", "LIST"}) == "array:0");
  direct.run({"SET", "dedup:c", "d"});
  p.begin_claims();
  for (const char* id : {"a", "b", "c"}) p.add_to_batch(id);
  REQUIRE(c.store->send_batch(p.batch_command(), nullptr));
  // A second batch already on the wire behind the first: it fails too and is sent again.
  p.begin_claims();
  p.add_to_batch("b");
  p.add_to_batch("e");
  REQUIRE(c.store->send_batch(p.batch_command(), nullptr));
  const Kept& r = c.await(2);
  REQUIRE(r.type == RedisReply::Type::kArray);
  // Not applied twice: 'b' answered nil (first seen), not our own 'p'.
  CHECK(r.claims == std::vector<DedupResult>{DedupResult::kInFlight, DedupResult::kFirstSeen, DedupResult::kDone});
  const Kept& r2 = c.await(3);
  CHECK(r2.claims == std::vector<DedupResult>{DedupResult::kInFlight, DedupResult::kFirstSeen});
  CHECK(c.replies.size() == 3);
  CHECK(direct.run({"FUNCTION", "LIST"}) == "array:1");
  CHECK(c.store->functions());
  // Two failed calls, two sent again, the first one and one load: five FCALLs... and one LOAD
  // after the initial one.
  CHECK(direct.calls("fcall") == 5);
  CHECK(direct.calls("function|load") == 2);
}

TEST_CASE("redis functions: dedup.batch pipeline sends per-key commands and loads nothing",
          "[integration][redis_batch]") {
  RedisServer redis;
  Direct direct(redis.port());
  Client c(address_of(redis), DedupBatchMode::kPipeline);
  REQUIRE(c.poll_until([&] { return c.store->ready(); }));
  DedupProtocol p("dedup:", Millis{30000}, Millis{300000});
  REQUIRE(c.store->send(p.claim("a"), nullptr));
  CHECK(c.await(1).type == RedisReply::Type::kNil);
  CHECK_FALSE(c.store->functions());
  CHECK_FALSE(c.store->send_batch(p.batch_command(), nullptr));
  CHECK(direct.run({"FUNCTION", "LIST"}) == "array:0");
  CHECK(direct.calls("set") == 1);
}

TEST_CASE("redis functions: a Redis that refuses the library gets per-key commands (auto) or none (function)",
          "[integration][redis_batch]") {
  RedisServer redis;
  Direct direct(redis.port());
  // A user without FUNCTION: as on a managed Redis that forbids it (or Redis 6, which has none).
  CHECK(direct.run({"ACL", "SETUSER", "cdc", "on", ">secret", "~*", "+@all", "-function"}) == "OK");
  DedupProtocol p("dedup:", Millis{30000}, Millis{300000});
  {
    Client c(address_of(redis), DedupBatchMode::kAuto, "cdc", "secret");
    REQUIRE(c.poll_until([&] { return c.store->ready(); }));
    // Queued behind the load: once it is answered, the load's reply was seen.
    REQUIRE(c.store->send(p.claim("a"), nullptr));
    CHECK(c.await(1).type == RedisReply::Type::kNil);
    CHECK_FALSE(c.store->functions());
    CHECK(c.store->up());
  }
  {
    Client c(address_of(redis), DedupBatchMode::kFunction, "cdc", "secret");
    // function mode: the refused load drops the connection (retried with backoff), and it
    // never offers batches.
    REQUIRE(c.poll_until([&] { return c.store->failures() >= 2; }));
    CHECK_FALSE(c.store->functions());
  }
  CHECK(direct.run({"FUNCTION", "LIST"}) == "array:0");
}

TEST_CASE("redis functions: the pipeline dedups with one call per batch, or per key when told",
          "[integration][redis_batch]") {
  const DedupBatchMode mode = GENERATE(DedupBatchMode::kAuto, DedupBatchMode::kPipeline);
  INFO("dedup.batch " << (mode == DedupBatchMode::kAuto ? "auto" : "pipeline"));
  NatsServer nats;
  RedisServer redis;
  Config config = test_config(nats, redis);
  config.dedup.batch = mode;
  const auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  std::vector<CaptureRecord> first(records.begin(), records.begin() + 300);
  std::vector<CaptureRecord> again = first;
  for (auto& r : again) r.headers.clear();  // a producer's resend: new msg id, same events
  const Expected want = expect(config, first);
  REQUIRE(want.event_ids.size() > 100);

  Direct direct(redis.port());
  JetStreamProbe probe(nats.url());
  Pipeline pipeline(config, make_service_ports(config));
  pipeline.start();
  publish_all(probe, first);
  REQUIRE(wait_consumer_idle(probe, config, 30s));
  publish_all(probe, again);
  REQUIRE(wait_consumer_idle(probe, config, 30s));
  pipeline.stop();

  const auto out = probe.read_stream(config.publish.stream);
  REQUIRE(out.size() == want.event_ids.size());
  for (std::size_t i = 0; i < out.size(); ++i) CHECK(out[i].header("Nats-Msg-Id") == want.event_ids[i]);
  // Every published event ends 'd' in Redis.
  for (const auto& id : want.event_ids) CHECK(direct.run({"GET", "dedup:" + id}) == "d");
  CHECK(pipeline.metrics().dedup.hit.value() >= want.event_ids.size());
  CHECK(pipeline.metrics().dedup.errors.value() == 0);
  CHECK(pipeline.metrics().ack.redis_mark_errors.value() == 0);
  const long long fcalls = direct.calls("fcall");
  const long long sets = direct.calls("set");
  if (mode == DedupBatchMode::kAuto) {
    // Claims and marks in function calls, at most one of each per batch (commandstats counts the
    // SETs the functions run as well, so they say nothing here). How many events a batch holds
    // depends on timing: a fast machine may see batches of one.
    CHECK(fcalls > 0);
    CHECK(fcalls <= 2 * static_cast<long long>(want.event_ids.size()));
  } else {
    CHECK(fcalls == 0);
    CHECK(sets >= 2 * static_cast<long long>(want.event_ids.size()));
  }
}
