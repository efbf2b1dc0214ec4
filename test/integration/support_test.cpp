// The test support itself: real servers start, stop and restart; the probe publishes and reads
// back byte-exact; ServiceProcess reports output and exit codes.

#include <hiredis/hiredis.h>
#include <signal.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "jetstream_probe.hpp"
#include "servers.hpp"

using namespace std::chrono_literals;
using cdc::test::JetStreamProbe;
using cdc::test::NatsCluster;
using cdc::test::NatsServer;
using cdc::test::RedisServer;
using cdc::test::ServiceProcess;

namespace {

std::string redis_ping(const RedisServer& redis) {
  const timeval timeout{2, 0};
  std::unique_ptr<redisContext, decltype(&redisFree)> context(
      redisConnectWithTimeout("127.0.0.1", redis.port(), timeout), &redisFree);
  if (!context || context->err != 0) return "connect failed";
  std::unique_ptr<void, decltype(&freeReplyObject)> reply(redisCommand(context.get(), "PING"), &freeReplyObject);
  const auto* r = static_cast<const redisReply*>(reply.get());
  return r != nullptr ? std::string(r->str, r->len) : "no reply";
}

}  // namespace

TEST_CASE("support: servers start on free loopback ports", "[support]") {
  NatsServer nats;
  RedisServer redis;
  CHECK(nats.port() != 0);
  CHECK(redis.port() != 0);
  CHECK(nats.port() != redis.port());
  CHECK(nats.url() == "nats://127.0.0.1:" + std::to_string(nats.port()));
  CHECK(nats.address() == "127.0.0.1:" + std::to_string(nats.port()));
  CHECK(redis.address() == "127.0.0.1:" + std::to_string(redis.port()));
  CHECK(nats.running());
  CHECK(redis.running());
  CHECK(redis_ping(redis) == "PONG");

  const JetStreamProbe probe(nats.url());
  CHECK(probe.jetstream_ready());

  redis.restart();
  CHECK(redis_ping(redis) == "PONG");
  redis.kill();
  CHECK_FALSE(redis.running());
  CHECK(redis_ping(redis) == "connect failed");
}

TEST_CASE("support: the probe publishes and reads back byte-exact", "[support]") {
  NatsServer nats;
  JetStreamProbe probe(nats.url());
  probe.create_stream("cdc_events_stream", {"cdc.>"}, 5min);
  CHECK(probe.stream_exists("cdc_events_stream"));
  CHECK_FALSE(probe.stream_exists("nope"));
  CHECK(probe.count("cdc_events_stream") == 0);

  std::string body = "{\"record\":{\"message_text\":\"ol\xc3\xa1 \xf0\x9f\x91\x8d\"}}";
  body += std::string("\0\xff\r\n", 4);  // any bytes
  const auto first = probe.publish("cdc.co1.messages", body, {{"Nats-Msg-Id", "MTAxOjA="}, {"X-Trace", "a b"}});
  CHECK(first.stream == "cdc_events_stream");
  CHECK(first.seq == 1);
  CHECK_FALSE(first.duplicate);
  CHECK(probe.publish("cdc.co1.messages", body, {{"Nats-Msg-Id", "MTAxOjA="}}).duplicate);

  cdc::CaptureRecord record;
  record.subject = "cdc.acme.chats";
  record.headers = {{"Multi", "1"}, {"Multi", "2"}};
  record.data = "";
  CHECK(probe.publish(record).seq == 2);

  const auto messages = probe.read_stream("cdc_events_stream");
  REQUIRE(messages.size() == 2);
  CHECK(messages[0].subject == "cdc.co1.messages");
  CHECK(messages[0].data == body);
  CHECK(messages[0].seq == 1);
  CHECK(messages[0].time_ns > 0);
  const cdc::test::Headers expected{{"Nats-Msg-Id", "MTAxOjA="}, {"X-Trace", "a b"}};
  CHECK(messages[0].headers == expected);
  CHECK(messages[0].header("Nats-Msg-Id") == "MTAxOjA=");
  CHECK(messages[1].subject == "cdc.acme.chats");
  CHECK(messages[1].data.empty());
  const cdc::test::Headers multi{{"Multi", "1"}, {"Multi", "2"}};
  CHECK(messages[1].headers == multi);
  CHECK(probe.count("cdc_events_stream") == 2);
  CHECK(probe.wait_for_count("cdc_events_stream", 2, 1s) == 2);

  SECTION("consumer info for a durable") {
    jsConsumerConfig config;
    jsConsumerConfig_Init(&config);
    config.Durable = "cdc_consumers";
    config.AckPolicy = js_AckExplicit;
    config.FilterSubject = "cdc.*.*";
    jsConsumerInfo* info = nullptr;
    REQUIRE(js_AddConsumer(&info, probe.jetstream(), "cdc_events_stream", &config, nullptr, nullptr) == NATS_OK);
    jsConsumerInfo_Destroy(info);
    CHECK(probe.consumer_exists("cdc_events_stream", "cdc_consumers"));
    CHECK_FALSE(probe.consumer_exists("cdc_events_stream", "other"));
    const auto state = probe.consumer_info("cdc_events_stream", "cdc_consumers");
    CHECK(state.num_pending == 2);
    CHECK(state.num_ack_pending == 0);
    CHECK(state.num_redelivered == 0);
    CHECK_THROWS_WITH(probe.consumer_info("cdc_events_stream", "other"), Catch::Contains("consumer info"));
    probe.delete_consumer("cdc_events_stream", "cdc_consumers");
    CHECK_FALSE(probe.consumer_exists("cdc_events_stream", "cdc_consumers"));
    CHECK_THROWS_WITH(probe.delete_consumer("cdc_events_stream", "cdc_consumers"), Catch::Contains("delete consumer"));
  }

  SECTION("delete stream") {
    probe.delete_stream("cdc_events_stream");
    CHECK_FALSE(probe.stream_exists("cdc_events_stream"));
    CHECK_THROWS_AS(probe.count("cdc_events_stream"), std::runtime_error);
  }
}

TEST_CASE("support: a partition mapping stores cdc.<company>.<table> as cdc.<company>.<table>.<p>", "[support]") {
  CHECK(cdc::test::partition_mapping(8) ==
        R"(mappings = { "cdc.*.*": "cdc.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(8,1,2)}}" })");
  cdc::test::NatsServerOptions options;
  options.config_lines = {cdc::test::partition_mapping(4)};
  NatsServer nats(options);
  JetStreamProbe probe(nats.url());
  probe.create_stream("cdc_events_stream", {"cdc.>"}, 5min);
  const std::vector<std::string> sources{"cdc.co1.messages", "cdc.acme.chats", "cdc.co1.messages", "cdc.Zeta-9.agents",
                                         "cdc.acme.chats"};
  for (const auto& s : sources) CHECK(probe.publish(s, "{}").stream == "cdc_events_stream");
  const auto messages = probe.read_stream("cdc_events_stream");
  REQUIRE(messages.size() == sources.size());
  std::map<std::string, std::string> partition_of;  // source subject -> partition token
  for (std::size_t i = 0; i < sources.size(); ++i) {
    INFO(messages[i].subject);
    const std::string prefix = sources[i] + ".";
    REQUIRE(messages[i].subject.rfind(prefix, 0) == 0);
    const std::string p = messages[i].subject.substr(prefix.size());
    CHECK((p == "0" || p == "1" || p == "2" || p == "3"));
    // Deterministic: every message of one source subject in one partition.
    CHECK(partition_of.emplace(sources[i], p).first->second == p);
  }
}

TEST_CASE("support: restart keeps JetStream data, kill too", "[support]") {
  NatsServer nats;
  const auto port = nats.port();
  {
    JetStreamProbe probe(nats.url());
    probe.create_stream("wa_stream", {"wa.>"}, 5min);
    for (int i = 0; i < 10; ++i) probe.publish("wa.co1.agent-7.agents", "event " + std::to_string(i));
  }
  CHECK(std::filesystem::exists(nats.store_dir()));

  nats.restart();
  CHECK(nats.port() == port);
  {
    JetStreamProbe probe(nats.url());
    CHECK(probe.count("wa_stream") == 10);
    CHECK(probe.read_stream("wa_stream")[9].data == "event 9");
    probe.publish("wa.co1.agent-7.agents", "event 10");
  }

  nats.kill();
  CHECK_FALSE(nats.running());
  CHECK_THROWS(JetStreamProbe(nats.url(), 500ms));
  nats.start();
  CHECK(nats.running());
  JetStreamProbe probe(nats.url());
  CHECK(probe.count("wa_stream") == 11);
  CHECK(nats.log().find("Server is ready") != std::string::npos);
}

TEST_CASE("support: a 3-node JetStream cluster keeps an R3 stream through a node's kill and restart",
          "[support][scale]") {
  NatsCluster cluster;
  REQUIRE(cluster.size() == 3);
  const std::string urls = cluster.url();
  CHECK(std::count(urls.begin(), urls.end(), ',') == 2);
  {
    JetStreamProbe probe(cluster.url());  // a comma-separated list: the probe takes any node
    cdc::test::StreamConfig config;
    config.name = "wa_stream";
    config.subjects = {"wa.>"};
    config.replicas = 3;
    probe.create_stream(config);
    for (int i = 0; i < 5; ++i) probe.publish("wa.co1.agent-7.agents", "event " + std::to_string(i));
    const auto state = probe.stream_state("wa_stream");
    CHECK(state.replicas == 3);
    CHECK(cluster.index_of(state.leader) < cluster.size());
  }
  // Kill the stream's leader: the two left elect another and keep the data.
  std::size_t victim = 0;
  {
    JetStreamProbe probe(cluster.url());
    victim = cluster.index_of(probe.stream_state("wa_stream").leader);
  }
  REQUIRE(victim < cluster.size());
  cluster.kill(victim);
  CHECK_FALSE(cluster.running(victim));
  CHECK(cluster.running_url().find(cluster.node(victim).url()) == std::string::npos);
  cluster.wait_ready();  // a meta leader that places streams on the two running nodes
  {
    JetStreamProbe probe(cluster.running_url());
    // Until the stream has a new leader a publish gets no PubAck (no responders): try again.
    bool stored = false;
    for (int attempt = 0; attempt < 200 && !stored; ++attempt) {
      try {
        probe.publish("wa.co1.agent-7.agents", "event 5", {{"Nats-Msg-Id", "event-5"}});
        stored = true;
      } catch (const std::exception&) {
        std::this_thread::sleep_for(100ms);
      }
    }
    REQUIRE(stored);
    CHECK(probe.count("wa_stream") == 6);
    CHECK(cluster.index_of(probe.stream_state("wa_stream").leader) != victim);
  }
  cluster.start(victim);
  CHECK(cluster.running(victim));
  // The restarted node catches up from the others: until then it may answer with its old state.
  JetStreamProbe probe(cluster.node(victim).url());
  auto state = probe.stream_state("wa_stream");
  for (int i = 0; i < 300 && (state.leader.empty() || state.last_seq < 6); ++i) {
    std::this_thread::sleep_for(100ms);
    state = probe.stream_state("wa_stream");
  }
  // Reading through it may still come up short while it catches up: read again until whole.
  auto messages = probe.read_stream("wa_stream");
  for (int i = 0; i < 100 && messages.size() < 6; ++i) {
    std::this_thread::sleep_for(100ms);
    messages = probe.read_stream("wa_stream");
  }
  INFO("leader " << state.leader << " first " << state.first_seq << " last " << state.last_seq);
  REQUIRE(messages.size() == 6);
  CHECK(messages[5].data == "event 5");
}

TEST_CASE("support: ServiceProcess reports output and exit code", "[support]") {
  SECTION("exit on its own") {
    ServiceProcess process("/bin/sh", {"-c", "echo hi; echo err >&2; exit 3"});
    REQUIRE(process.wait(10s) == 3);
    CHECK_FALSE(process.running());
    CHECK(process.terminate() == 3);
    CHECK(process.exit_code() == 3);
    CHECK(process.output() == "hi\nerr\n");
  }
  SECTION("found on PATH, environment overrides") {
    ::setenv("CDC_SUPPORT_TEST_UNSET", "present", 1);
    ServiceProcess process("sh", {"-c", "echo \"$CDC_A|${CDC_SUPPORT_TEST_UNSET-gone}\""},
                           {{"CDC_A", "value a"}, {"CDC_SUPPORT_TEST_UNSET", std::nullopt}});
    REQUIRE(process.wait(10s) == 0);
    CHECK(process.output() == "value a|gone\n");
    ::unsetenv("CDC_SUPPORT_TEST_UNSET");
  }
  SECTION("terminate sends SIGTERM") {
    ServiceProcess process("/bin/sh",
                           {"-c", "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.05; done"});
    REQUIRE(process.wait_for_output("ready"));
    CHECK(process.running());
    CHECK(process.terminate(10s) == 0);
    CHECK(process.output() == "ready\nbye\n");
  }
  SECTION("terminate falls back to SIGKILL; kill") {
    ServiceProcess stubborn("/bin/sh", {"-c", "trap '' TERM; echo ready; while true; do sleep 0.05; done"});
    REQUIRE(stubborn.wait_for_output("ready"));
    CHECK(stubborn.terminate(200ms) == 128 + SIGKILL);
    ServiceProcess sleeper("/bin/sleep", {"30"});
    CHECK(sleeper.running());
    CHECK(sleeper.kill() == 128 + SIGKILL);
    CHECK_FALSE(sleeper.running());
  }
  SECTION("a missing executable throws") {
    CHECK_THROWS_AS(ServiceProcess("definitely-not-a-cdc-binary", {}), std::runtime_error);
    CHECK_THROWS_AS(ServiceProcess("/nonexistent/bin", {}), std::runtime_error);
  }
}
