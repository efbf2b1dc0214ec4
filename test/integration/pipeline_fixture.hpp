#pragma once
// Shared pieces of the pipeline integration tests: servers, a test configuration, reading
// captures, and the expected outcome of a capture computed with the service's own transform.

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cdc/core/capture.hpp"
#include "cdc/core/config.hpp"
#include "cdc/pipeline/parse_stage.hpp"
#include "cdc/core/transform.hpp"
#include "jetstream_probe.hpp"
#include "servers.hpp"

namespace cdc::test {

inline std::vector<CaptureRecord> read_capture(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<CaptureRecord> out;
  std::string line;
  std::string error;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    CaptureRecord r;
    if (!parse_capture_line(line, r, error)) throw std::runtime_error(path + ":" + std::to_string(n) + ": " + error);
    out.push_back(std::move(r));
  }
  return out;
}

inline std::string sample_path(const std::string& name) {
  return std::string(CDC_SOURCE_DIR) + "/tools/samples/" + name;
}

/// A configuration for the servers of a test: small ring, no metrics port, fast retries.
inline Config test_config(const NatsServer& nats, const RedisServer& redis) {
  // DAISI_CDC_DEDUP_BATCH in the test's environment runs the in-process suites with that
  // dedup.batch (the service processes of the fault tests read it themselves), so the function
  // calls get the whole suite as well as the default per-key commands.
  std::vector<std::string> env;
  if (const char* batch = std::getenv("DAISI_CDC_DEDUP_BATCH"))
    env.push_back(std::string("DAISI_CDC_DEDUP_BATCH=") + batch);
  Config c = load_config_text("", env);
  c.nats.url = nats.url();
  c.redis.address = redis.address();
  c.metrics.enabled = false;
  c.pipeline.ring_capacity = 1024;
  c.publish.max_pending = 512;
  c.pipeline.drain_timeout = std::chrono::seconds(10);
  c.publish.retry_backoff = std::chrono::milliseconds(50);
  c.publish.retry_backoff_max = std::chrono::milliseconds(500);
  c.publish.nak_delay = std::chrono::milliseconds(500);
  // A repeat that arrives while its first delivery is in flight is NAKed for pending_ttl.
  c.dedup.pending_ttl = std::chrono::seconds(2);
  return c;
}

/// What a capture should produce, by the service's own transform and the dedup rule (one
/// output per event id, in order of first appearance).
struct Expected {
  std::vector<std::string> subjects;  // wa_stream, in order
  std::vector<std::string> payloads;
  std::vector<std::string> event_ids;
  std::map<std::string, int> dead_letters;  // error_kind -> count
  int skipped = 0;
  std::map<std::string, int> skipped_tables;  // table -> skipped messages
  int duplicates = 0;
  std::size_t dead_letter_total() const {
    std::size_t n = 0;
    for (const auto& [k, v] : dead_letters) n += static_cast<std::size_t>(v);
    return n;
  }
};

inline Expected expect(const Config& config, const std::vector<CaptureRecord>& records) {
  Transformer t(transform_rules(config));
  TransformOutput out;
  Expected e;
  std::set<std::string> seen;
  for (const auto& r : records) {
    switch (t.transform(r.subject, r.data, r.header("Nats-Msg-Id"), out)) {
      case Disposition::kSkip:
        ++e.skipped;
        ++e.skipped_tables[std::string(out.table)];
        break;
      case Disposition::kDeadLetter: ++e.dead_letters[std::string(to_string(out.error_kind))]; break;
      case Disposition::kPublish:
        if (!seen.insert(out.event_id).second) {
          ++e.duplicates;
          break;
        }
        e.subjects.push_back(out.subject);
        e.payloads.push_back(out.payload);
        e.event_ids.push_back(out.event_id);
        break;
    }
  }
  return e;
}

/// Publishes every record into the source stream (waiting for each PubAck).
inline void publish_all(JetStreamProbe& probe, const std::vector<CaptureRecord>& records) {
  for (const auto& r : records) probe.publish(r);
}

/// Waits until the durable consumer has delivered and had acknowledged everything.
inline bool wait_consumer_idle(JetStreamProbe& probe, const Config& config, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const ConsumerState s = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
    if (s.num_pending == 0 && s.num_ack_pending == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace cdc::test
