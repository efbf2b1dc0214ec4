// Publishes that fail for one message or one subject, while the rest keeps flowing:
// - rejected for good (CONTRACT.md section 6, publish_rejected): over wa_stream's max_msg_size
//   (JetStream refuses it) or over the server's max_payload (the client refuses it); in the
//   second case the dead-letter record itself is over the limit and goes out with data_base64
//   truncated (docs/decisions.md);
// - failing transiently until the delivery count reaches max_deliver (no responders for one
//   company's subjects): dead-lettered with max_deliveries, then terminated, never lost.

#include <catch2/catch.hpp>

#include "faults_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace cdc::test::faults;

namespace {

/// A messages insert whose record carries `filler` bytes of text. Minimal metadata, a long pk:
/// the enriched payload (pk twice, routing fields) is larger than the body.
CaptureRecord big_insert(std::uint64_t lsn, const std::string& pk, std::size_t filler) {
  CaptureRecord r;
  r.subject = "cdc.co1.messages";
  r.headers.emplace_back("Nats-Msg-Id", "big-" + std::to_string(lsn));
  r.data = R"({"record":{"message_id":")" + pk + R"(","chat_id":"chat-big","agent_id":"agent-big","text":")" +
           std::string(filler, 'x') +
           R"("},"changes":null,"action":"insert","metadata":{"table_name":"messages","commit_lsn":)" +
           std::to_string(lsn) + R"(,"commit_idx":0}})";
  return r;
}

std::size_t enriched_size(Transformer& t, const CaptureRecord& r) {
  TransformOutput out;
  return t.transform(r.subject, r.data, r.header("Nats-Msg-Id"), out) == Disposition::kPublish ? out.payload.size() : 0;
}

}  // namespace

TEST_CASE("publish rejected for single messages: dead-lettered (publish_rejected), the rest flows",
          "[integration][faults]") {
  constexpr std::int64_t kMaxPayload = 64 * 1024;
  constexpr std::int64_t kStreamMaxMsg = 16 * 1024;
  NatsServerOptions nopt;
  nopt.max_payload = kMaxPayload;
  NatsServer nats(nopt);
  RedisServer redis;
  TempDir dir("cdc-faults");
  const Config config = test_config(nats, redis);
  auto records = generate(dir, "rejected", 3000, 65, {"--no-oversized"});

  // Bodies the broker delivers but whose enriched payload it cannot store.
  Transformer t(transform_rules(config));
  const std::string pk(64, 'k');
  std::vector<CaptureRecord> over_stream, over_server;
  for (std::uint64_t i = 0; i < 4; ++i) {
    over_stream.push_back(big_insert(1000 + i, pk + std::to_string(i), 20 * 1024));
    // Largest filler whose enriched payload is just over max_payload.
    CaptureRecord r = big_insert(2000 + i, pk + std::to_string(i), 0);
    const std::size_t base = enriched_size(t, r);
    r = big_insert(2000 + i, pk + std::to_string(i), static_cast<std::size_t>(kMaxPayload) + 1 - base);
    REQUIRE(enriched_size(t, r) == static_cast<std::size_t>(kMaxPayload) + 1);
    REQUIRE(r.data.size() + 64 < static_cast<std::size_t>(kMaxPayload));  // the body itself gets through
    over_server.push_back(r);
  }
  std::set<std::string> rejected_stream_ids, rejected_server_ids;
  for (std::size_t i = 0; i < 4; ++i) {
    TransformOutput out;
    t.transform(over_stream[i].subject, over_stream[i].data, "", out);
    rejected_stream_ids.insert(out.event_id);
    t.transform(over_server[i].subject, over_server[i].data, "", out);
    rejected_server_ids.insert(out.event_id);
    records.insert(records.begin() + static_cast<long>(300 + 700 * i), over_stream[i]);
    records.insert(records.begin() + static_cast<long>(600 + 700 * i), over_server[i]);
  }
  const Expected want = expect(config, records);
  auto must_publish = to_publish(want);
  for (const auto& id : rejected_stream_ids) must_publish.erase(id);
  for (const auto& id : rejected_server_ids) must_publish.erase(id);

  JetStreamProbe probe(nats.url());
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  StreamConfig wa;
  wa.name = config.publish.stream;
  wa.subjects = {"wa.>"};
  wa.duplicate_window = 5min;
  wa.max_msg_size = kStreamMaxMsg;
  probe.create_stream(wa);  // the service accepts an existing stream as it is

  const std::uint16_t port = free_port();
  auto service = start_service(service_env(nats.url(), redis.address(), port));
  Feeder feeder(nats.url(), records, 3000);
  feeder.start();
  REQUIRE(feeder.wait(60s));
  const bool settled = wait_settled(nats.url(), config, must_publish.size(), 8, 60s);
  const auto [status, metrics] = http_get(port, "/metrics");
  CHECK(service->terminate(30s) == 0);
  REQUIRE(settled);

  Outcome o = collect(probe, config, must_publish);
  std::size_t truncated = 0;
  for (const auto& d : o.letters) {
    INFO("dead letter " << d.event_id << " kind " << d.kind);
    CHECK(d.kind == "publish_rejected");
    CHECK(d.delivery_attempts == 1);
    CHECK(d.size <= static_cast<std::size_t>(kMaxPayload));
    if (rejected_stream_ids.count(d.event_id) != 0) {
      CHECK_FALSE(d.truncated);  // fits: the whole body is there
      CHECK(d.data.size() > 20 * 1024);
      CHECK(d.data.rfind("{\"record\":", 0) == 0);
    } else {
      CHECK(rejected_server_ids.count(d.event_id) == 1);
      CHECK(d.truncated);  // the record with the whole body would be over max_payload itself
      ++truncated;
      CHECK(d.data_bytes > d.data.size());
      CHECK(d.data_bytes + 64 < static_cast<std::uint64_t>(kMaxPayload));
      CHECK(d.data.rfind("{\"record\":", 0) == 0);  // a prefix of the body
    }
  }
  report("publish-rejected", "events=" + std::to_string(records.size()) +
                                 " rejected_by_stream=4 rejected_by_max_payload=4" +
                                 " dead_letters_truncated=" + std::to_string(truncated) + " " + figures(o));
  CHECK_OUTPUT_EXACT(o);
  CHECK(o.dead_letters == 8);
  CHECK(truncated == 4);
  CHECK(metric(metrics, "cdc_consumer_events_total", "result=\"dead_lettered\"") == 8);
  const ConsumerState cs = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  CHECK(cs.num_pending == 0);
  CHECK(cs.num_ack_pending == 0);
}

TEST_CASE("publish failing until max_deliver: dead-lettered (max_deliveries), terminated, none lost",
          "[integration][faults]") {
  NatsServer nats;
  RedisServer redis;
  TempDir dir("cdc-faults");
  const Config config = test_config(nats, redis);
  auto records = generate(dir, "max-deliver", 3000, 66, {"--no-oversized"});
  const Expected want = expect(config, records);
  // wa_stream takes every company but one: publishes for Zeta-9 find no responders (transient,
  // as during a stream's leader election), retried in place, NAKed, and on the last delivery
  // dead-lettered.
  const std::string lost_company = "Zeta-9";
  auto must_publish = to_publish(want);
  std::map<std::string, int> must_dead_letter;  // event id -> source messages carrying it
  {
    Transformer t(transform_rules(config));
    TransformOutput out;
    for (const auto& r : records) {
      if (t.transform(r.subject, r.data, r.header("Nats-Msg-Id"), out) == Disposition::kPublish &&
          out.company == lost_company) {
        ++must_dead_letter[out.event_id];
        must_publish.erase(out.event_id);
      }
    }
  }
  std::size_t dead_letter_total = 0;
  for (const auto& [id, n] : must_dead_letter) dead_letter_total += static_cast<std::size_t>(n);
  REQUIRE(dead_letter_total > 100);

  JetStreamProbe probe(nats.url());
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  StreamConfig wa;
  wa.name = config.publish.stream;
  wa.subjects = {"wa.co1.>", "wa.acme.>", "wa.tenant_42.>"};
  wa.duplicate_window = 5min;
  probe.create_stream(wa);

  const std::uint16_t port = free_port();
  auto service = start_service(service_env(nats.url(), redis.address(), port,
                                           {{"DAISI_CDC_INGEST_MAX_DELIVER", "2"},
                                            {"DAISI_CDC_PUBLISH_MAX_RETRIES", "1"},
                                            {"DAISI_CDC_PUBLISH_NAK_DELAY", "200ms"}}));
  Feeder feeder(nats.url(), records, 3000);
  feeder.start();
  REQUIRE(feeder.wait(60s));
  const bool settled = wait_settled(nats.url(), config, must_publish.size(), dead_letter_total, 90s);
  const auto [status, metrics] = http_get(port, "/metrics");
  CHECK(service->terminate(30s) == 0);
  REQUIRE(settled);

  Outcome o = collect(probe, config, must_publish);
  std::map<std::string, int> got;
  std::size_t wrong = 0;
  for (const auto& d : o.letters) {
    ++got[d.event_id];
    if (d.kind != "max_deliveries" || d.delivery_attempts != 2) ++wrong;
  }
  report(
      "max-deliver",
      "events=" + std::to_string(records.size()) + " max_deliver=2 failing_company=" + lost_company +
          " expected_dead_letters=" + std::to_string(dead_letter_total) + " terms=" +
          std::to_string(static_cast<long>(metric(metrics, "cdc_consumer_source_completions_total", "kind=\"term\""))) +
          " " + figures(o));
  CHECK_OUTPUT_EXACT(o);
  CHECK(wrong == 0);
  CHECK(got == must_dead_letter);
  const ConsumerState cs = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  CHECK(cs.num_pending == 0);
  CHECK(cs.num_ack_pending == 0);  // terminated, not left to expire
}

TEST_CASE("wa_stream deleted mid-stream: recreated, traffic flows, nothing dead-lettered or missing",
          "[integration][faults]") {
  NatsServer nats;
  RedisServer redis;
  TempDir dir("cdc-faults");
  const Config config = test_config(nats, redis);
  const auto records = generate(dir, "stream-deleted", 3000, 67, {"--no-oversized"});
  const std::vector<CaptureRecord> first(records.begin(), records.begin() + 1500);
  const Expected want_first = expect(config, first);
  const Expected want_all = expect(config, records);
  REQUIRE(want_all.dead_letter_total() == 0);
  const auto must_first = to_publish(want_first);
  // After the deletion the new stream gets what was first seen after it; repeats of earlier
  // changes are dedup hits ('d' marks), as they would be with the stream intact.
  auto must_second = to_publish(want_all);
  for (const auto& [id, payload] : must_first) must_second.erase(id);
  REQUIRE(must_second.size() > 500);

  const std::uint16_t port = free_port();
  // One delivery, one retry: a publish that gave up on the missing stream would be dead-lettered
  // at once, long before the monitor's check (its next tick) recreates the stream.
  auto service = start_service(service_env(nats.url(), redis.address(), port,
                                           {{"DAISI_CDC_INGEST_MAX_DELIVER", "1"},
                                            {"DAISI_CDC_PUBLISH_MAX_RETRIES", "1"},
                                            {"DAISI_CDC_PUBLISH_RETRY_BACKOFF", "20ms"}}));
  JetStreamProbe probe(nats.url());
  {
    Feeder feeder(nats.url(), first, 3000);
    feeder.start();
    REQUIRE(feeder.wait(60s));
  }
  REQUIRE(wait_settled(nats.url(), config, must_first.size(), 0, 60s));
  const Outcome before = collect(probe, config, must_first);
  CHECK_OUTPUT_EXACT(before);

  // The operator deletes wa_stream; traffic goes on at once. Publishes find no stream (no
  // responders): an outage, held and retried in place until the stream is back.
  probe.delete_stream(config.publish.stream);
  const std::vector<CaptureRecord> second(records.begin() + 1500, records.end());
  Feeder feeder(nats.url(), second, 3000);
  feeder.start();
  REQUIRE(feeder.wait(60s));
  const bool settled = wait_settled(nats.url(), config, must_second.size(), 0, 90s);
  const auto [status, metrics] = http_get(port, "/metrics");
  const auto [ready_status, ready_body] = http_get(port, "/readyz");
  CHECK(service->terminate(30s) == 0);
  INFO(service->output().substr(0, 6000));
  REQUIRE(settled);

  const Outcome after = collect(probe, config, must_second);
  report("wa-stream-deleted", "events=" + std::to_string(records.size()) +
                                  " before_deletion=" + std::to_string(before.published) + " recreated=" +
                                  std::to_string(static_cast<long>(metric(
                                      metrics, "cdc_consumer_streams_recreated_total", "stream=\"wa_stream\""))) +
                                  " " + figures(after));
  CHECK_OUTPUT_EXACT(after);
  CHECK(after.dead_letters == 0);
  CHECK(probe.count(config.publish.dlq_stream) == 0);
  CHECK(metric(metrics, "cdc_consumer_streams_recreated_total", "stream=\"wa_stream\"") == 1);
  CHECK(metric(metrics, "cdc_consumer_output_stream_missing", "stream=\"wa_stream\"") == 0);
  CHECK(metric(metrics, "cdc_consumer_dead_letters_total") == 0);
  CHECK(ready_status == 200);
  CHECK(service->output().find("output stream missing") != std::string::npos);
  const ConsumerState cs = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
  CHECK(cs.num_pending == 0);
  CHECK(cs.num_ack_pending == 0);
}
