// Issue 13, the contract side: input an attacker or a careless producer sends, against the real
// service process, nats-server -js and redis-server. Each case failed on the code before the fix:
//   - the same commit position and key in two tenants: both published (CONTRACT.md section 3)
//   - a key given twice: dead-lettered invalid_shape, not routed by one copy (section 6)
//   - -0 as a routing id: dead-lettered invalid_token, never wa.co1.-0 (section 4)
//   - subjects that do not fit the layout: consumed, dead-lettered invalid_subject, counted in
//     the backlog while they wait, also with a consumer made with the old filter (section 1)
//   - dead-letter log lines carry company, table and event_id when known (section 8)

#include <catch2/catch.hpp>

#include <nats/nats.h>

#include "faults_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace cdc::test::faults;

namespace {

/// Environment for a service running on the previous version's push consumer (`on`), else none.
EnvOverrides push_mode(bool on) {
  if (!on) return {};
  return {{"DAISI_CDC_INGEST_MODE", "push"}};
}

/// A Sequin messages insert at `lsn`.0 for message `id`, routed by `agent` (JSON text).
std::string message_body(const std::string& id, const std::string& agent_json, std::uint64_t lsn,
                         const std::string& extra_record = "") {
  return R"({"record":{"message_id":")" + id + R"(","chat_id":"chat-12","agent_id":)" + agent_json + extra_record +
         R"(,"text":"hi"},"changes":null,"action":"insert","metadata":{"table_schema":"public","table_name":"messages",)"
         R"("commit_timestamp":"2026-11-22T10:00:00.125001Z","commit_lsn":)" +
         std::to_string(lsn) + R"(,"commit_idx":0,"record_pks":[")" + id + R"("],"database_name":"daisi"}})";
}

CaptureRecord record(const std::string& subject, std::string body, const std::string& msg_id) {
  CaptureRecord r;
  r.subject = subject;
  r.headers.emplace_back("Nats-Msg-Id", msg_id);
  r.data = std::move(body);
  return r;
}

struct Run {
  Outcome outcome;
  std::string log;      // the service's output
  std::string metrics;  // /metrics after settling
};

/// Starts the service, feeds `records` into the source stream, waits until everything is
/// answered and both streams hold what `want` says, stops the service.
Run run_service(NatsServer& nats, RedisServer& redis, const Config& config, const std::vector<CaptureRecord>& records,
                const Expected& want, bool create_stream = true) {
  JetStreamProbe probe(nats.url());
  if (create_stream) probe.create_stream(config.ingest.stream, {"cdc.>"});
  const std::uint16_t port = free_port();
  auto service = start_service(service_env(nats.url(), redis.address(), port));
  for (const auto& r : records) probe.publish(r);
  const bool settled = wait_settled(nats.url(), config, want.event_ids.size(), want.dead_letter_total(), 60s);
  Run run;
  run.metrics = http_get(port, "/metrics").second;
  CHECK(service->terminate(30s) == 0);
  run.log = service->output();
  INFO(run.log.substr(0, 4000));
  REQUIRE(settled);
  run.outcome = collect(probe, config, to_publish(want));
  return run;
}

/// The log lines of the service that contain `needle`.
std::vector<std::string> lines_with(const std::string& log, std::string_view needle) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < log.size()) {
    std::size_t end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    const std::string line = log.substr(start, end - start);
    if (line.find(needle) != std::string::npos) out.push_back(line);
    start = end + 1;
  }
  return out;
}

}  // namespace

TEST_CASE("two tenants with the same commit position and key: both changes are published",
          "[integration][faults][contract]") {
  NatsServer nats;
  RedisServer redis;
  const Config config = test_config(nats, redis);
  // Tenants in separate databases have independent LSNs: the same position and key happen.
  const std::string body = message_body("msg-789", R"("agent-7")", 27635224);
  const std::vector<CaptureRecord> records{record("cdc.co1.messages", body, "co1-Mjc2MzUyMjQ6MA=="),
                                           record("cdc.co2.messages", body, "co2-Mjc2MzUyMjQ6MA==")};
  const Expected want = expect(config, records);
  REQUIRE(want.event_ids ==
          std::vector<std::string>{"27635224.0:co1:messages:msg-789", "27635224.0:co2:messages:msg-789"});

  const Run run = run_service(nats, redis, config, records, want);
  report("two-tenants-same-position", figures(run.outcome));
  CHECK_OUTPUT_EXACT(run.outcome);
  JetStreamProbe probe(nats.url());
  std::set<std::string> subjects;
  for (const auto& m : probe.read_stream(config.publish.stream)) subjects.insert(m.subject);
  CHECK(subjects == std::set<std::string>{"wa.co1.agent-7.messages.chat-12", "wa.co2.agent-7.messages.chat-12"});
  CHECK(metric(run.metrics, "cdc_consumer_events_total", "result=\"duplicate\"") == 0);
  CHECK(metric(run.metrics, "cdc_consumer_events_total", "result=\"processed\"") == 2);
}

TEST_CASE("a key given twice in record, metadata or the body is dead-lettered invalid_shape, never routed",
          "[integration][faults][contract]") {
  NatsServer nats;
  RedisServer redis;
  const Config config = test_config(nats, redis);
  const std::vector<CaptureRecord> records{
      // agent-A first, agent-B last: JavaScript, Go and Python readers see agent-B.
      record("cdc.co1.messages", message_body("m-1", R"("agent-A","agent_id":"agent-B")", 500), "dup-1"),
      // The same key once escaped.
      record("cdc.co1.messages", message_body("m-2", R"("agent-A","agent\u005fid":"agent-B")", 501), "dup-2"),
      record("cdc.co1.messages",
             R"({"record":{"message_id":"m-3","chat_id":"c","agent_id":"a"},"action":"insert",)"
             R"("metadata":{"commit_lsn":502,"commit_lsn":503,"table_name":"messages"}})",
             "dup-3"),
      record("cdc.co1.messages",
             R"({"record":{"message_id":"m-4","chat_id":"c","agent_id":"a"},"action":"insert","action":"delete",)"
             R"("metadata":{"commit_lsn":504,"table_name":"messages"}})",
             "dup-4"),
      // And a good one, which still flows.
      record("cdc.co1.messages", message_body("m-5", R"("agent-A")", 505), "ok-5"),
  };
  const Expected want = expect(config, records);
  REQUIRE(want.event_ids.size() == 1);
  REQUIRE(want.dead_letters == std::map<std::string, int>{{"invalid_shape", 4}});

  const Run run = run_service(nats, redis, config, records, want);
  report("duplicate-keys", figures(run.outcome));
  CHECK_OUTPUT_EXACT(run.outcome);
  CHECK(run.outcome.kinds == want.dead_letters);
  JetStreamProbe probe(nats.url());
  for (const auto& m : probe.read_stream(config.publish.stream)) CHECK(m.subject == "wa.co1.agent-A.messages.chat-12");
}

TEST_CASE("a routing id of -0 is dead-lettered invalid_token while 0 and -7 route", "[integration][faults][contract]") {
  NatsServer nats;
  RedisServer redis;
  const Config config = test_config(nats, redis);
  const std::vector<CaptureRecord> records{
      record("cdc.co1.messages", message_body("m-1", "-0", 600), "nz-1"),
      record("cdc.co1.chats",
             R"({"record":{"chat_id":-0,"agent_id":"agent-1"},"action":"insert","metadata":{"commit_lsn":601}})",
             "nz-2"),
      record("cdc.co1.messages", message_body("m-3", "0", 602), "z-3"),
      record("cdc.co1.messages", message_body("m-4", "-7", 603), "n-4"),
  };
  const Expected want = expect(config, records);
  REQUIRE(want.event_ids.size() == 2);
  REQUIRE(want.dead_letters == std::map<std::string, int>{{"invalid_token", 2}});

  const Run run = run_service(nats, redis, config, records, want);
  report("negative-zero-id", figures(run.outcome));
  CHECK_OUTPUT_EXACT(run.outcome);
  CHECK(run.outcome.kinds == want.dead_letters);
  JetStreamProbe probe(nats.url());
  std::set<std::string> subjects;
  for (const auto& m : probe.read_stream(config.publish.stream)) subjects.insert(m.subject);
  CHECK(subjects == std::set<std::string>{"wa.co1.0.messages.chat-12", "wa.co1.-7.messages.chat-12"});
}

TEST_CASE("subjects that do not fit the layout are counted in the backlog, consumed and dead-lettered invalid_subject",
          "[integration][faults][contract]") {
  NatsServer nats;
  RedisServer redis;
  const Config config = test_config(nats, redis);
  JetStreamProbe probe(nats.url());
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  const bool old_consumer = GENERATE(false, true);
  INFO((old_consumer ? "a consumer created with the old filter cdc.*.*" : "a fresh consumer"));
  if (old_consumer) {
    // What the previous version created: the same durable push consumer, filtered on the layout.
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = config.ingest.consumer.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.AckWait = std::int64_t{2000} * 1'000'000;
    cc.MaxAckPending = 1024;
    cc.MaxDeliver = 10;
    cc.FilterSubject = "cdc.*.*";
    const std::string deliver = "_CDC_DELIVER." + config.ingest.consumer;
    cc.DeliverSubject = deliver.c_str();
    cc.DeliverGroup = config.ingest.queue_group.c_str();
    jsConsumerInfo* ci = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    REQUIRE(js_AddConsumer(&ci, probe.jetstream(), config.ingest.stream.c_str(), &cc, nullptr, &err) == NATS_OK);
    jsConsumerInfo_Destroy(ci);
  }
  const std::uint16_t port = free_port();
  {
    // Once, so the service's consumer exists (or is updated), then stopped with nothing to do.
    // The previous version's consumer is a push consumer: the service runs in push mode on it.
    auto service = start_service(service_env(nats.url(), redis.address(), port, push_mode(old_consumer)));
    CHECK(service->terminate(30s) == 0);
    if (old_consumer) CHECK(service->output().find("consumer filter changed") != std::string::npos);
  }
  const std::vector<CaptureRecord> records{
      record("cdc.a.b.messages", message_body("m-1", R"("agent-1")", 700), "s-1"),
      record("cdc.messages", message_body("m-2", R"("agent-1")", 701), "s-2"),
      record("cdc.co1.messages.v2", message_body("m-3", R"("agent-1")", 702), "s-3"),
      record("cdc.co1.messages", message_body("m-4", R"("agent-1")", 703), "ok-4"),
  };
  const Expected want = expect(config, records);
  REQUIRE(want.event_ids.size() == 1);
  REQUIRE(want.dead_letters == std::map<std::string, int>{{"invalid_subject", 3}});
  for (const auto& r : records) probe.publish(r);
  // While nobody consumes, they are the consumer's backlog (what cdc_consumer_backlog reports).
  CHECK(probe.consumer_info(config.ingest.stream, config.ingest.consumer).num_pending == records.size());

  auto service = start_service(service_env(nats.url(), redis.address(), port, push_mode(old_consumer)));
  const bool settled = wait_settled(nats.url(), config, want.event_ids.size(), want.dead_letter_total(), 60s);
  const std::string metrics = http_get(port, "/metrics").second;
  CHECK(service->terminate(30s) == 0);
  INFO(service->output().substr(0, 4000));
  REQUIRE(settled);
  const Outcome o = collect(probe, config, to_publish(want));
  report(std::string("invalid-subjects") + (old_consumer ? "-old-consumer" : ""), figures(o));
  CHECK_OUTPUT_EXACT(o);
  CHECK(o.kinds == want.dead_letters);
  // Unattributable: company and table unknown, so <dlq>._._; the record keeps the subject.
  std::set<std::string> sources;
  for (const auto& m : probe.read_stream(config.publish.dlq_stream)) {
    CHECK(m.subject == "cdc_dlq._._");
    const auto at = m.data.find("\"source_subject\":\"");
    REQUIRE(at != std::string::npos);
    sources.insert(m.data.substr(at + 18, m.data.find('"', at + 18) - at - 18));
  }
  CHECK(sources == std::set<std::string>{"cdc.a.b.messages", "cdc.messages", "cdc.co1.messages.v2"});
  const ConsumerState cs = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  CHECK(cs.num_pending == 0);
  CHECK(cs.num_ack_pending == 0);
  CHECK(metric(metrics, "cdc_consumer_dead_letters_total", "error_kind=\"invalid_subject\"") == 3);
}

TEST_CASE("dead-letter log lines carry company, table and event_id when they are known",
          "[integration][faults][contract]") {
  NatsServer nats;
  RedisServer redis;
  const Config config = test_config(nats, redis);
  const std::vector<CaptureRecord> in_layout{
      // Known: company, table and event_id (the position and pk come before the routing check).
      record("cdc.co1.messages", message_body("m-1", R"("agent.7")", 800), "log-1"),
      // Known: company and table; no event_id (the body is not JSON).
      record("cdc.co2.chats", "this is not json", "log-2"),
  };
  // Nothing known but the subject (fed second, so the lines above are checked on their own).
  const CaptureRecord off_layout = record("cdc.x.y.messages", message_body("m-3", R"("agent-1")", 802), "log-3");
  REQUIRE(expect(config, in_layout).dead_letter_total() == 2);

  JetStreamProbe probe(nats.url());
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  const std::uint16_t port = free_port();
  auto service = start_service(service_env(nats.url(), redis.address(), port));
  const auto dead_letter_lines = [&] {
    return lines_with(service->output(), "\"msg\":\"invalid message dead-lettered\"");
  };
  const auto line_of = [&](std::string_view subject) {
    for (const auto& l : dead_letter_lines()) {
      if (l.find("\"subject\":\"" + std::string(subject) + "\"") != std::string::npos) return l;
    }
    return std::string();
  };
  for (const auto& r : in_layout) probe.publish(r);
  REQUIRE(service->wait_for_output("\"subject\":\"cdc.co2.chats\"", 30s));
  REQUIRE(service->wait_for_output("\"subject\":\"cdc.co1.messages\"", 30s));
  const std::string first = line_of("cdc.co1.messages");
  INFO(first);
  CHECK(first.find("\"company\":\"co1\"") != std::string::npos);
  CHECK(first.find("\"table\":\"messages\"") != std::string::npos);
  CHECK(first.find("\"event_id\":\"800.0:co1:messages:m-1\"") != std::string::npos);
  CHECK(first.find("\"error_kind\":\"invalid_token\"") != std::string::npos);
  const std::string second = line_of("cdc.co2.chats");
  INFO(second);
  CHECK(second.find("\"company\":\"co2\"") != std::string::npos);
  CHECK(second.find("\"table\":\"chats\"") != std::string::npos);
  CHECK(second.find("\"event_id\"") == std::string::npos);

  probe.publish(off_layout);
  const bool third_logged = service->wait_for_output("\"subject\":\"cdc.x.y.messages\"", 30s);
  CHECK(service->terminate(30s) == 0);
  REQUIRE(third_logged);
  const std::string third = line_of("cdc.x.y.messages");
  INFO(third);
  CHECK(third.find("\"company\"") == std::string::npos);
  CHECK(third.find("\"table\"") == std::string::npos);
  CHECK(third.find("\"error_kind\":\"invalid_subject\"") != std::string::npos);
  CHECK(dead_letter_lines().size() == 3);
}

// Pins what docs/operations.md tells the operator: nats-server 2.9 does not go back when a
// filter widens, so such a message stays in the stream below the sequence the service logs.
TEST_CASE("an off-layout message the old filter had already passed over stays in the stream, its sequence logged",
          "[integration][faults][contract]") {
  NatsServer nats;
  RedisServer redis;
  const Config config = test_config(nats, redis);
  JetStreamProbe probe(nats.url());
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  // The old version's consumer, which delivered (and had acknowledged) a good message stored
  // after an off-layout one: its position is past the off-layout message.
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = config.ingest.consumer.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.DeliverPolicy = js_DeliverAll;
  cc.AckWait = std::int64_t{2000} * 1'000'000;
  cc.MaxAckPending = 1024;
  cc.MaxDeliver = 10;
  cc.FilterSubject = "cdc.*.*";
  const std::string deliver = "_CDC_DELIVER." + config.ingest.consumer;
  cc.DeliverSubject = deliver.c_str();
  cc.DeliverGroup = config.ingest.queue_group.c_str();
  jsConsumerInfo* ci = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  REQUIRE(js_AddConsumer(&ci, probe.jetstream(), config.ingest.stream.c_str(), &cc, nullptr, &err) == NATS_OK);
  jsConsumerInfo_Destroy(ci);
  probe.publish(record("cdc.early.off.layout", message_body("m-0", R"("agent-1")", 900), "early-0"));
  probe.publish(record("cdc.co1.messages", message_body("m-1", R"("agent-1")", 901), "good-1"));
  {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = config.ingest.stream.c_str();
    so.Consumer = config.ingest.consumer.c_str();
    so.Queue = config.ingest.queue_group.c_str();
    so.ManualAck = true;
    natsSubscription* sub = nullptr;
    REQUIRE(js_SubscribeSync(&sub, probe.jetstream(), "cdc.*.*", nullptr, &so, &err) == NATS_OK);
    natsMsg* msg = nullptr;
    REQUIRE(natsSubscription_NextMsg(&msg, sub, 5000) == NATS_OK);
    CHECK(std::string(natsMsg_GetSubject(msg)) == "cdc.co1.messages");
    natsMsg_AckSync(msg, nullptr, nullptr);
    natsMsg_Destroy(msg);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
  }
  const ConsumerState before = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  const std::uint16_t port = free_port();
  auto service = start_service(service_env(nats.url(), redis.address(), port, push_mode(true)));
  const bool dead_lettered = probe.wait_for_count(config.publish.dlq_stream, 1, 10s) == 1;
  const ConsumerState after = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  CHECK(service->terminate(30s) == 0);
  report("off-layout-passed-over", std::string("dead_lettered=") + (dead_lettered ? "yes" : "no") +
                                       " pending_before=" + std::to_string(before.num_pending) +
                                       " pending_after=" + std::to_string(after.num_pending));
  CHECK_FALSE(dead_lettered);
  CHECK(after.num_pending == 0);
  CHECK(probe.get_message(config.ingest.stream, 1).subject == "cdc.early.off.layout");  // still there
  CHECK(service->output().find("\"passed_over_below_stream_seq\":3") != std::string::npos);
}
