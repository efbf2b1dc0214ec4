// cdc-replay (tools/replay) against real servers: capture/publish round trip, `transform` equal to
// what the service really publishes, and `dlq redrive` of dead letters once their cause is fixed.

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "cdc/adapters/service_ports.hpp"
#include "cdc/pipeline/pipeline.hpp"
#include "pipeline_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace std::chrono_literals;

namespace {

/// Runs cdc-replay with `args`; returns its exit code (-1 on timeout) and its stdout+stderr.
int replay(const std::vector<std::string>& args, std::string* output = nullptr,
           std::chrono::milliseconds timeout = 120s) {
  ServiceProcess p(CDC_REPLAY_BINARY, args);
  const auto code = p.wait(timeout);
  if (output != nullptr) *output = p.output();
  if (!code) {
    UNSCOPED_INFO("cdc-replay timed out: " << p.output());
    return -1;
  }
  if (*code != 0) UNSCOPED_INFO("cdc-replay output: " << p.output());
  return *code;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_capture(const std::filesystem::path& path, const std::vector<CaptureRecord>& records) {
  std::ofstream out(path, std::ios::binary);
  for (const auto& r : records) out << format_capture_line(r) << '\n';
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

/// The string value of `"key":"..."` in a JSON line (no escapes in the values we read).
std::string field(const std::string& line, const std::string& key) {
  const std::string needle = "\"" + key + "\":\"";
  const auto at = line.find(needle);
  if (at == std::string::npos) return {};
  const auto start = at + needle.size();
  return line.substr(start, line.find('"', start) - start);
}

/// The sample with the bad examples mixed into good traffic.
std::vector<CaptureRecord> sample_with_bad() {
  auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  const auto bad = read_capture(sample_path("bad-examples.jsonl"));
  for (std::size_t i = 0; i < bad.size(); ++i)
    records.insert(records.begin() + static_cast<long>(100 + 300 * i), bad[i]);
  return records;
}

void require_same_messages(const std::vector<StreamMessage>& a, const std::vector<StreamMessage>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("message " << i);
    CHECK(a[i].subject == b[i].subject);
    CHECK(a[i].headers == b[i].headers);
    CHECK(a[i].data == b[i].data);
  }
}

}  // namespace

TEST_CASE("capture, publish into a fresh server, capture again: byte for byte the same", "[integration][replay]") {
  TempDir dir("cdc-replay-test");
  const auto records = sample_with_bad();

  NatsServer first;
  JetStreamProbe source(first.url());
  source.create_stream("cdc_events_stream", {"cdc.>"});
  for (const auto& r : records) source.publish(r);
  const auto stored = source.read_stream("cdc_events_stream");
  REQUIRE(stored.size() > 2000);

  const auto c1 = dir.path() / "first.jsonl";
  REQUIRE(replay({"capture", "--url", first.url(), "--stream", "cdc_events_stream", "--no-meta", "-o", c1.string(),
                  "--quiet"}) == 0);
  REQUIRE(lines_of(read_file(c1)).size() == stored.size());
  // The non-UTF-8 bad example survives as data_base64.
  CHECK(read_file(c1).find("\"data_base64\":") != std::string::npos);

  NatsServer second;
  std::string out;
  REQUIRE(replay({"publish", c1.string(), "--url", second.url(), "--create-stream", "cdc_events_stream", "--json"},
                 &out) == 0);
  CHECK(out.find("\"published\":" + std::to_string(stored.size()) + ",") != std::string::npos);
  CHECK(out.find("\"failed\":0,") != std::string::npos);

  const auto c2 = dir.path() / "second.jsonl";
  REQUIRE(replay({"capture", "--url", second.url(), "--stream", "cdc_events_stream", "--no-meta", "-o", c2.string(),
                  "--quiet"}) == 0);
  CHECK(read_file(c1) == read_file(c2));

  JetStreamProbe target(second.url());
  require_same_messages(stored, target.read_stream("cdc_events_stream"));

  // With metadata: the same sequence numbers (both streams were filled in the same order).
  const auto c3 = dir.path() / "meta.jsonl";
  REQUIRE(replay({"capture", "--url", second.url(), "--stream", "cdc_events_stream", "-o", c3.string(), "--quiet"}) ==
          0);
  const auto with_meta = read_capture(c3.string());
  REQUIRE(with_meta.size() == stored.size());
  for (std::size_t i = 0; i < stored.size(); ++i) {
    REQUIRE(with_meta[i].stream_seq.has_value());
    CHECK(*with_meta[i].stream_seq == stored[i].seq);
    CHECK(with_meta[i].time.has_value());
  }
}

TEST_CASE("transform prints what the service really publishes and dead-letters", "[integration][replay]") {
  TempDir dir("cdc-replay-test");
  NatsServer nats;
  RedisServer redis;
  // A non-default rule in both: agents are skipped.
  Config config = test_config(nats, redis);
  config.ingest.tables = {"messages", "chats"};
  const auto yaml = dir.path() / "config.yaml";
  {
    std::ofstream out(yaml);
    out << "ingest:\n  tables: [messages, chats]\n";
  }
  const auto records = sample_with_bad();
  const auto capture = dir.path() / "in.jsonl";
  write_capture(capture, records);

  std::string out;
  REQUIRE(replay({"transform", capture.string(), "--config", yaml.string(), "--quiet"}, &out) == 0);
  const auto lines = lines_of(out);
  REQUIRE(lines.size() == records.size());
  std::vector<CaptureRecord> publish;                     // the publish lines read as capture lines
  std::vector<std::pair<std::string, std::string>> dead;  // (dlq_subject, error_kind)
  std::size_t duplicates = 0, skipped = 0;
  std::string error;
  for (const auto& line : lines) {
    const std::string outcome = field(line, "outcome");
    if (outcome == "publish") {
      CaptureRecord r;
      REQUIRE(parse_capture_line(line, r, error));
      publish.push_back(std::move(r));
    } else if (outcome == "dead_letter") {
      dead.emplace_back(field(line, "dlq_subject"), field(line, "error_kind"));
    } else if (outcome == "duplicate") {
      ++duplicates;
    } else {
      REQUIRE(outcome == "skip");
      ++skipped;
    }
  }
  REQUIRE(publish.size() > 1000);
  REQUIRE(duplicates > 0);
  REQUIRE(skipped > 0);
  // The bad examples on messages and chats; the one on agents (not UTF-8) is skipped here.
  REQUIRE(dead.size() == 4);

  Pipeline pipeline(config, make_service_ports(config));
  pipeline.start();
  JetStreamProbe probe(nats.url());
  publish_all(probe, records);
  REQUIRE(wait_consumer_idle(probe, config, 60s));
  REQUIRE(probe.wait_for_count(config.publish.stream, publish.size(), 10s) == publish.size());
  REQUIRE(probe.wait_for_count(config.publish.dlq_stream, dead.size(), 10s) == dead.size());
  pipeline.stop();

  const auto got = probe.read_stream(config.publish.stream);
  REQUIRE(got.size() == publish.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("message " << i);
    CHECK(got[i].subject == publish[i].subject);
    CHECK(got[i].header("Nats-Msg-Id") == publish[i].header("Nats-Msg-Id"));
    CHECK(got[i].data == publish[i].data);
  }
  std::vector<std::pair<std::string, std::string>> landed;
  for (const auto& m : probe.read_stream(config.publish.dlq_stream))
    landed.emplace_back(m.subject, field(m.data, "error_kind"));
  std::sort(dead.begin(), dead.end());
  std::sort(landed.begin(), landed.end());
  CHECK(landed == dead);

  // The table format says the same in fewer words.
  REQUIRE(replay({"transform", capture.string(), "--config", yaml.string(), "--format", "table"}, &out) == 0);
  CHECK(out.find(std::to_string(publish.size()) + " publish, " + std::to_string(duplicates) + " duplicate, " +
                 std::to_string(skipped) + " skip, 4 dead_letter") != std::string::npos);
  // Usage and file errors exit 2.
  CHECK(replay({"transform", (dir.path() / "missing.jsonl").string()}) == 2);
  CHECK(replay({"transform", capture.string(), "--format", "xml"}) == 2);
  {
    std::ofstream bad_yaml(dir.path() / "bad.yaml");
    bad_yaml << "ingest:\n  max_message_bytes: 12\n";
  }
  CHECK(replay({"transform", capture.string(), "--config", (dir.path() / "bad.yaml").string()}) == 2);
}

TEST_CASE("dlq redrive sends dead letters back once the cause is fixed, and removes them", "[integration][replay]") {
  NatsServer nats;
  RedisServer redis;
  // The cause: a limit too small for these bodies. The fix: the default limit.
  Config strict = test_config(nats, redis);
  strict.ingest.max_message_bytes = 1024;
  const Config fixed = test_config(nats, redis);

  auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  records.resize(120);
  const std::string pad = "\"pad\":\"" + std::string(1500, 'x') + "\",";
  for (std::size_t i = 0; i < records.size(); ++i) {
    auto& r = records[i];
    REQUIRE(r.data.front() == '{');
    r.data.insert(1, pad);  // an unknown top-level key: ignored by the transform
    // A fresh id per line: every copy is stored, repeats of a change included.
    r.headers = {{"Nats-Msg-Id", "redrive-test-" + std::to_string(i)}};
  }
  const Expected before = expect(strict, records);
  const Expected after = expect(fixed, records);
  REQUIRE(before.subjects.empty());
  const std::size_t dead = before.dead_letter_total();
  REQUIRE(before.dead_letters.at("oversized") == static_cast<int>(dead));
  REQUIRE(after.subjects.size() > 50);
  REQUIRE(after.duplicates > 0);

  JetStreamProbe probe(nats.url());
  {
    Pipeline pipeline(strict, make_service_ports(strict));
    pipeline.start();
    publish_all(probe, records);
    REQUIRE(wait_consumer_idle(probe, strict, 60s));
    REQUIRE(probe.wait_for_count(strict.publish.dlq_stream, dead, 10s) == dead);
    pipeline.stop();
  }
  const auto source_count = probe.count(strict.ingest.stream);

  std::string out;
  REQUIRE(replay({"dlq", "stats", "--url", nats.url(), "--format", "json"}, &out) == 0);
  CHECK(out.find("\"total\":" + std::to_string(dead)) != std::string::npos);
  CHECK(out.find("\"oversized\":" + std::to_string(dead)) != std::string::npos);
  REQUIRE(replay({"dlq", "list", "--url", nats.url(), "--seq", "1", "-q"}, &out) == 0);
  const auto listed = lines_of(out);
  REQUIRE(listed.size() == 1);
  CHECK(field(listed[0], "source_subject") == records[0].subject);
  CHECK(field(listed[0], "error_kind") == "oversized");
  CHECK(listed[0].find("\"headers\":{\"Nats-Msg-Id\":\"redrive-test-0\"}") != std::string::npos);
  CHECK(listed[0].find(",\"data\":\"{\\\"pad\\\":") != std::string::npos);

  // No selection: usage error. Within the source stream's duplicate window the original
  // Nats-Msg-Id makes JetStream drop the redrive: reported as failed, nothing removed.
  CHECK(replay({"dlq", "redrive", "--url", nats.url()}) == 2);
  CHECK(replay({"dlq", "redrive", "--url", nats.url(), "--kind", "oversized"}, &out) == 1);
  CHECK(out.find("duplicate") != std::string::npos);
  CHECK(probe.count(strict.publish.dlq_stream) == dead);
  CHECK(probe.count(strict.ingest.stream) == source_count);
  REQUIRE(replay({"dlq", "redrive", "--url", nats.url(), "--all", "--dry-run"}) == 0);
  CHECK(probe.count(strict.publish.dlq_stream) == dead);

  Pipeline pipeline(fixed, make_service_ports(fixed));
  pipeline.start();
  REQUIRE(replay({"dlq", "redrive", "--url", nats.url(), "--kind", "oversized", "--drop-msg-id", "-q"}, &out) == 0);
  CHECK(probe.count(strict.publish.dlq_stream) == 0);
  CHECK(probe.count(strict.ingest.stream) == source_count + dead);
  REQUIRE(probe.wait_for_count(fixed.publish.stream, after.subjects.size(), 30s) == after.subjects.size());
  REQUIRE(wait_consumer_idle(probe, fixed, 60s));
  // Nothing left to redrive; a second run changes nothing.
  REQUIRE(replay({"dlq", "redrive", "--url", nats.url(), "--all"}, &out) == 0);
  CHECK(out.find("selected: 0") != std::string::npos);
  pipeline.stop();

  // Processed once each, in order, repeats of a change counted as duplicates.
  const auto got = probe.read_stream(fixed.publish.stream);
  REQUIRE(got.size() == after.subjects.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("message " << i);
    CHECK(got[i].subject == after.subjects[i]);
    CHECK(got[i].header("Nats-Msg-Id") == after.event_ids[i]);
    CHECK(got[i].data == after.payloads[i]);
  }
  CHECK(probe.count(fixed.publish.dlq_stream) == 0);
}

TEST_CASE("capture of a partitioned stream, publish into a server with another partition count",
          "[integration][replay][partitions]") {
  TempDir dir("cdc-replay-test");
  auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  records.resize(400);

  // The source: P = 4, so the stream holds cdc.<company>.<table>.<p>.
  NatsServerOptions four;
  four.config_lines = {partition_mapping(4)};
  NatsServer first(four);
  JetStreamProbe source(first.url());
  source.create_stream("cdc_events_stream", {"cdc.>"});
  for (const auto& r : records) source.publish(r);
  const auto stored = source.read_stream("cdc_events_stream");
  REQUIRE(stored.size() == records.size());
  for (std::size_t i = 0; i < stored.size(); ++i) {
    INFO(stored[i].subject);
    REQUIRE(stored[i].subject.rfind(records[i].subject + ".", 0) == 0);
  }

  // Verbatim, the capture keeps the partition; --strip-partition gives back the producer's subjects.
  const auto verbatim = dir.path() / "verbatim.jsonl";
  const auto stripped = dir.path() / "stripped.jsonl";
  REQUIRE(replay({"capture", "--url", first.url(), "--stream", "cdc_events_stream", "--no-meta", "-o",
                  verbatim.string(), "--quiet"}) == 0);
  REQUIRE(replay({"capture", "--url", first.url(), "--stream", "cdc_events_stream", "--no-meta", "--strip-partition",
                  "-o", stripped.string(), "--quiet"}) == 0);
  const auto verbatim_records = read_capture(verbatim.string());
  const auto stripped_records = read_capture(stripped.string());
  REQUIRE(verbatim_records.size() == records.size());
  REQUIRE(stripped_records.size() == records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    CHECK(verbatim_records[i].subject == stored[i].subject);
    CHECK(stripped_records[i].subject == records[i].subject);
    CHECK(stripped_records[i].data == records[i].data);
  }

  // Into P = 8: the stripped capture as it is, the verbatim one with publish --strip-partition.
  // Both land on the target's own partitions, the same for both, one per source subject.
  NatsServerOptions eight;
  eight.config_lines = {partition_mapping(8)};
  std::vector<std::vector<StreamMessage>> targets;
  for (const auto& [file, flag] : {std::pair{stripped, false}, std::pair{verbatim, true}}) {
    NatsServer target(eight);
    std::vector<std::string> args{"publish",         file.string(),       "--url",  target.url(),
                                  "--create-stream", "cdc_events_stream", "--quiet"};
    if (flag) args.emplace_back("--strip-partition");
    REQUIRE(replay(args) == 0);
    JetStreamProbe probe(target.url());
    targets.push_back(probe.read_stream("cdc_events_stream"));
  }
  REQUIRE(targets[0].size() == records.size());
  REQUIRE(targets[1].size() == records.size());
  std::map<std::string, std::string> partition_of;
  for (std::size_t i = 0; i < records.size(); ++i) {
    INFO(targets[0][i].subject);
    CHECK(targets[0][i].subject == targets[1][i].subject);
    REQUIRE(targets[0][i].subject.rfind(records[i].subject + ".", 0) == 0);
    const std::string p = targets[0][i].subject.substr(records[i].subject.size() + 1);
    CHECK(std::stoi(p) < 8);
    CHECK(partition_of.emplace(records[i].subject, p).first->second == p);
    CHECK(targets[1][i].data == records[i].data);
  }
}
