#pragma once
// Shared pieces of the fault-injection suite (ctest label `faults`): generated captures, the
// service as a child process configured for fast redelivery, its HTTP endpoint, and the check
// every scenario ends with: what is in wa_stream and cdc_dlq_stream against what the capture
// must produce (zero missing, zero duplicates, dead letters exactly as expected).
//
// Every scenario prints one line "FAULTS <scenario>: events=... missing=... duplicates=...
// dead_letters=..." (and appends it to $CDC_FAULTS_REPORT when set), the figures the issue's
// closing note quotes.

#include <httplib.h>
#include <simdjson.h>

#include <signal.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cdc/core/dead_letter.hpp"
#include "cdc/core/partitions.hpp"
#include "feeder.hpp"
#include "order_check.hpp"
#include "pipeline_fixture.hpp"
#include "tcp_proxy.hpp"

namespace cdc::test::faults {

using namespace std::chrono_literals;

/// Runs `cdc-replay gen` and reads the capture back, every record with a Nats-Msg-Id.
inline std::vector<CaptureRecord> generate(const TempDir& dir, const std::string& name, std::size_t count,
                                           std::uint64_t seed, const std::vector<std::string>& extra = {}) {
  const std::string path = (dir.path() / (name + ".jsonl")).string();
  std::vector<std::string> args{"gen", "--out", path, "--count", std::to_string(count), "--seed", std::to_string(seed)};
  args.insert(args.end(), extra.begin(), extra.end());
  ServiceProcess gen(CDC_REPLAY_BINARY, args);
  const auto code = gen.wait(60s);
  if (code != std::optional<int>(0)) throw std::runtime_error("cdc-replay gen failed: " + gen.output());
  auto records = read_capture(path);
  ensure_msg_ids(records, name + "-");
  return records;
}

/// The service's environment for a fault test: short AckWait and pending TTL so redeliveries
/// come within seconds, fast retries and reconnects, a small pool. `extra` overrides.
inline EnvOverrides service_env(const std::string& nats_url, const std::string& redis_address,
                                std::uint16_t metrics_port, const EnvOverrides& extra = {}) {
  EnvOverrides env{{"NATS_URL", nats_url},
                   {"REDIS_ADDRESS", redis_address},
                   {"DAISI_CDC_METRICS_PORT", std::to_string(metrics_port)},
                   {"DAISI_CDC_METRICS_BIND", "127.0.0.1"},
                   {"DAISI_CDC_INGEST_ACK_WAIT", "2s"},
                   {"DAISI_CDC_DEDUP_PENDING_TTL", "2s"},
                   {"DAISI_CDC_INGEST_MAX_DELIVER", "10"},
                   {"DAISI_CDC_PIPELINE_RING_CAPACITY", "1024"},
                   // Everything JetStream delivers fits in the pool, so every held message is
                   // one the stages can keep alive with in-progress signals.
                   {"DAISI_CDC_INGEST_MAX_ACK_PENDING", "1024"},
                   {"DAISI_CDC_PUBLISH_MAX_PENDING", "256"},
                   {"DAISI_CDC_PUBLISH_ACK_TIMEOUT", "1s"},
                   {"DAISI_CDC_PUBLISH_RETRY_BACKOFF", "50ms"},
                   {"DAISI_CDC_PUBLISH_RETRY_BACKOFF_MAX", "500ms"},
                   {"DAISI_CDC_PUBLISH_NAK_DELAY", "500ms"},
                   {"DAISI_CDC_NATS_RECONNECT_WAIT", "200ms"},
                   {"DAISI_CDC_REDIS_COMMAND_TIMEOUT", "1s"},
                   {"DAISI_CDC_REDIS_CONNECT_TIMEOUT", "1s"},
                   {"DAISI_CDC_REDIS_RECONNECT_BACKOFF_MAX", "500ms"},
                   {"DAISI_CDC_PIPELINE_DRAIN_TIMEOUT", "5s"},
                   {"LOG_LEVEL", "info"}};
  for (const auto& [k, v] : extra) env[k] = v;
  return env;
}

/// Starts the service and waits until its pipeline runs (throws otherwise).
inline std::unique_ptr<ServiceProcess> start_service(const EnvOverrides& env) {
  auto p = std::make_unique<ServiceProcess>(CDC_BINARY, std::vector<std::string>{}, env);
  if (!p->wait_for_output("pipeline started", 30s)) {
    throw std::runtime_error("the service did not start:\n" + p->output().substr(0, 4000));
  }
  return p;
}

/// GET http://127.0.0.1:<port><path>; status and body (status 0 when nothing answered).
inline std::pair<int, std::string> http_get(std::uint16_t port, const std::string& path) {
  httplib::Client http("127.0.0.1", port);
  http.set_connection_timeout(2, 0);
  http.set_read_timeout(5, 0);
  auto res = http.Get(path.c_str());
  if (!res) return {0, {}};
  return {res->status, res->body};
}

/// Sum of the samples of metric `name` (exact name; any labels) whose label set contains
/// `labels` (e.g. "result=\"processed\""; empty = all). NaN when no sample matches, so a check
/// on a misspelt or unrendered series fails instead of comparing against 0.
inline double metric(const std::string& body, std::string_view name, std::string_view labels = {}) {
  double sum = 0;
  bool found = false;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.compare(0, name.size(), name) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;
    if (!labels.empty() && line.find(labels) == std::string::npos) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
    found = true;
  }
  return found ? sum : std::numeric_limits<double>::quiet_NaN();
}

/// Resident set size of a process, KiB (0 when it is gone).
inline std::int64_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return 0;
}

/// One record of cdc_dlq_stream, parsed.
struct DeadLetterSeen {
  std::string msg_id;  // Nats-Msg-Id header
  std::uint64_t source_seq = 0;
  std::uint64_t delivery_attempts = 0;
  std::string kind;
  std::string event_id;  // "" for null
  std::string data;      // decoded data_base64
  bool truncated = false;
  std::uint64_t data_bytes = 0;  // data_bytes when truncated
  std::size_t size = 0;          // record size on the wire
};

inline std::vector<DeadLetterSeen> read_dead_letters(const JetStreamProbe& probe, const std::string& stream) {
  std::vector<DeadLetterSeen> out;
  simdjson::dom::parser parser;
  for (const auto& m : probe.read_stream(stream)) {
    DeadLetterSeen d;
    d.msg_id = m.header("Nats-Msg-Id");
    d.size = m.data.size();
    simdjson::dom::element doc;
    if (parser.parse(m.data).get(doc) != simdjson::SUCCESS)
      throw std::runtime_error("dead letter is not JSON: " + m.data.substr(0, 200));
    std::uint64_t u = 0;
    std::string_view s;
    if (doc["source_seq"].get(u) == simdjson::SUCCESS) d.source_seq = u;
    if (doc["delivery_attempts"].get(u) == simdjson::SUCCESS) d.delivery_attempts = u;
    if (doc["error_kind"].get(s) == simdjson::SUCCESS) d.kind = s;
    if (doc["event_id"].get(s) == simdjson::SUCCESS) d.event_id = s;
    bool b = false;
    if (doc["data_truncated"].get(b) == simdjson::SUCCESS) d.truncated = b;
    if (doc["data_bytes"].get(u) == simdjson::SUCCESS) d.data_bytes = u;
    if (doc["data_base64"].get(s) == simdjson::SUCCESS && !decode_base64(s, d.data)) {
      throw std::runtime_error("dead letter data_base64 is not base64");
    }
    out.push_back(std::move(d));
  }
  return out;
}

/// What landed, compared with what must land.
struct Outcome {
  std::size_t expected = 0;                // distinct events to publish
  std::size_t published = 0;               // messages in wa_stream
  std::size_t missing = 0;                 // expected ids not in wa_stream
  std::size_t duplicates = 0;              // messages in wa_stream beyond the first of their Nats-Msg-Id
  std::size_t unexpected = 0;              // ids in wa_stream that must not be there
  std::size_t wrong_payload = 0;           // payload differs from the transform's
  std::size_t dead_letters = 0;            // records in cdc_dlq_stream
  std::size_t dead_letter_duplicates = 0;  // beyond the first per source message
  std::map<std::string, int> kinds;        // error_kind -> count
  std::vector<DeadLetterSeen> letters;
};

/// Reads both streams. `must_publish`: event id -> payload (the transform's).
inline Outcome collect(const JetStreamProbe& probe, const Config& config,
                       const std::map<std::string, std::string>& must_publish) {
  Outcome o;
  o.expected = must_publish.size();
  std::set<std::string> seen;
  for (const auto& m : probe.read_stream(config.publish.stream)) {
    ++o.published;
    const std::string id = m.header("Nats-Msg-Id");
    if (!seen.insert(id).second) {
      ++o.duplicates;
      continue;
    }
    const auto it = must_publish.find(id);
    if (it == must_publish.end()) {
      ++o.unexpected;
    } else if (it->second != m.data) {
      ++o.wrong_payload;
    }
  }
  for (const auto& [id, payload] : must_publish) {
    if (seen.count(id) == 0) ++o.missing;
  }
  o.letters = read_dead_letters(probe, config.publish.dlq_stream);
  std::set<std::uint64_t> sources;
  for (const auto& d : o.letters) {
    ++o.dead_letters;
    if (!sources.insert(d.source_seq).second) ++o.dead_letter_duplicates;
    ++o.kinds[d.kind];
  }
  return o;
}

/// Event id -> payload of everything `want` publishes.
inline std::map<std::string, std::string> to_publish(const Expected& want) {
  std::map<std::string, std::string> m;
  for (std::size_t i = 0; i < want.event_ids.size(); ++i) m.emplace(want.event_ids[i], want.payloads[i]);
  return m;
}

/// Waits until the consumer has nothing pending or unacknowledged and both streams hold at
/// least the expected counts. Polls with a fresh probe each time (servers may have restarted).
inline bool wait_settled(const std::string& url, const Config& config, std::size_t published, std::size_t dead_letters,
                         std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      JetStreamProbe probe(url);
      const ConsumerState s = probe.consumer_info(config.ingest.stream, config.ingest.consumer);
      if (s.num_pending == 0 && s.num_ack_pending == 0 && probe.count(config.publish.stream) >= published &&
          probe.count(config.publish.dlq_stream) >= dead_letters) {
        return true;
      }
    } catch (const std::exception&) {
      // The server is restarting; try again.
    }
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

/// Prints the scenario's figures (and appends them to $CDC_FAULTS_REPORT).
inline void report(const std::string& scenario, const std::string& figures) {
  const std::string line = "FAULTS " + scenario + ": " + figures + "\n";
  std::fputs(line.c_str(), stdout);
  std::fflush(stdout);
  if (const char* path = std::getenv("CDC_FAULTS_REPORT"); path != nullptr && *path != '\0') {
    std::ofstream(path, std::ios::app) << line;
  }
}

inline std::string figures(const Outcome& o) {
  std::string kinds;
  for (const auto& [k, v] : o.kinds) kinds += (kinds.empty() ? "" : ",") + k + ":" + std::to_string(v);
  return "published=" + std::to_string(o.published) + "/" + std::to_string(o.expected) +
         " missing=" + std::to_string(o.missing) + " duplicates=" + std::to_string(o.duplicates) +
         " unexpected=" + std::to_string(o.unexpected) + " wrong_payload=" + std::to_string(o.wrong_payload) +
         " dead_letters=" + std::to_string(o.dead_letters) + (kinds.empty() ? "" : " (" + kinds + ")") +
         " dead_letter_duplicates=" + std::to_string(o.dead_letter_duplicates);
}

/// The checks every scenario shares: output exactly the expected set, each once.
#define CHECK_OUTPUT_EXACT(o)               \
  do {                                      \
    CHECK((o).missing == 0);                \
    CHECK((o).duplicates == 0);             \
    CHECK((o).unexpected == 0);             \
    CHECK((o).wrong_payload == 0);          \
    CHECK((o).dead_letter_duplicates == 0); \
    CHECK((o).published == (o).expected);   \
  } while (false)

// ---------------------------------------------------------------------------------------------
// Partitions and replica fleets (issue 12, CONTRACT.md section 11)

/// The durable consumer of partition p (the service's own naming).
inline std::string partition_consumer_name(const Config& config, std::uint32_t p) {
  return partition_consumer(config.ingest, p);
}

/// Where every partition consumer stands, index = partition; a consumer that does not exist
/// (yet, or deleted) reads as nullopt.
inline std::vector<std::optional<ConsumerState>> partition_states(const JetStreamProbe& probe, const Config& config) {
  std::vector<std::optional<ConsumerState>> out;
  const auto partitions = static_cast<std::uint32_t>(std::max<std::int64_t>(1, config.ingest.partitions));
  for (std::uint32_t p = 0; p < partitions; ++p) {
    const std::string name = partition_consumer_name(config, p);
    if (probe.consumer_exists(config.ingest.stream, name)) {
      out.emplace_back(probe.consumer_info(config.ingest.stream, name));
    } else {
      out.emplace_back(std::nullopt);
    }
  }
  return out;
}

/// wait_settled for a partitioned source: every partition's consumer exists and has nothing
/// pending or unacknowledged, and both output streams hold at least the expected counts.
inline bool wait_settled_partitions(const std::string& url, const Config& config, std::size_t published,
                                    std::size_t dead_letters, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      JetStreamProbe probe(url);
      bool idle = true;
      for (const auto& s : partition_states(probe, config)) {
        if (!s || s->num_pending != 0 || s->num_ack_pending != 0) {
          idle = false;
          break;
        }
      }
      if (idle && probe.stream_exists(config.publish.stream) && probe.count(config.publish.stream) >= published &&
          probe.stream_exists(config.publish.dlq_stream) && probe.count(config.publish.dlq_stream) >= dead_letters) {
        return true;
      }
    } catch (const std::exception&) {
      // A server is restarting or a stream is being recreated; try again.
    }
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

/// One line per partition consumer ("p3: pending=.. ack_pending=.. floor=.."), for failures.
inline std::string partition_report(const std::string& url, const Config& config) {
  std::string text;
  try {
    JetStreamProbe probe(url);
    const auto states = partition_states(probe, config);
    for (std::size_t p = 0; p < states.size(); ++p) {
      text.append("p").append(std::to_string(p)).append(": ");
      if (!states[p]) {
        text.append("no consumer\n");
        continue;
      }
      text.append("pending=")
          .append(std::to_string(states[p]->num_pending))
          .append(" ack_pending=")
          .append(std::to_string(states[p]->num_ack_pending))
          .append(" redelivered=")
          .append(std::to_string(states[p]->num_redelivered))
          .append(" floor=")
          .append(std::to_string(states[p]->ack_floor_stream_seq))
          .append("\n");
    }
  } catch (const std::exception& e) {
    text.append("(no consumer info: ").append(e.what()).append(")\n");
  }
  return text;
}

/// Every message of the source stream as stored, with its stream sequence.
inline std::vector<CaptureRecord> read_source_records(const JetStreamProbe& probe, const Config& config) {
  std::vector<CaptureRecord> source;
  for (auto& m : probe.read_stream(config.ingest.stream)) {
    CaptureRecord r;
    r.subject = std::move(m.subject);
    r.headers = std::move(m.headers);
    r.data = std::move(m.data);
    r.stream_seq = m.seq;
    source.push_back(std::move(r));
  }
  return source;
}

/// The order check over the real streams: positions from the source stream as stored (see
/// order_check.hpp for why the source stream and not the feeder's list), outputs from wa_stream.
inline OrderCheck check_stream_order(const JetStreamProbe& probe, const Config& config) {
  const std::vector<CaptureRecord> source = read_source_records(probe, config);
  std::vector<StoredOutput> stored;
  for (const auto& m : probe.read_stream(config.publish.stream)) {
    stored.push_back(StoredOutput{m.subject, m.header("Nats-Msg-Id"), m.seq});
  }
  return check_order(source_positions(config, source), stored);
}

/// Seconds as "12.3".
inline std::string fixed1(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", x);
  return buf;
}

/// N replicas of the service on one set of servers: one environment, each replica with its own
/// metrics port and `ingest.replica_id` ("replica-<n>", n counting every start, so a replica
/// started after a kill is a new member, as a restarted pod with a new name would be).
class ReplicaFleet {
 public:
  explicit ReplicaFleet(EnvOverrides env) : env_(std::move(env)) {}
  ReplicaFleet(const ReplicaFleet&) = delete;
  ReplicaFleet& operator=(const ReplicaFleet&) = delete;

  /// Starts one more replica and waits until its pipeline runs; its index.
  std::size_t start() {
    Replica r;
    r.id = "replica-" + std::to_string(replicas_.size());
    r.port = free_port();
    EnvOverrides env = env_;
    env["DAISI_CDC_METRICS_PORT"] = std::to_string(r.port);
    env["DAISI_CDC_INGEST_REPLICA_ID"] = r.id;
    env["DAISI_CDC_NATS_NAME"] = "cdc-" + r.id;
    r.process = start_service(env);
    replicas_.push_back(std::move(r));
    return replicas_.size() - 1;
  }

  [[nodiscard]] std::size_t size() const noexcept { return replicas_.size(); }
  [[nodiscard]] ServiceProcess& process(std::size_t i) { return *replicas_.at(i).process; }
  [[nodiscard]] const std::string& id(std::size_t i) const { return replicas_.at(i).id; }
  [[nodiscard]] std::uint16_t port(std::size_t i) const { return replicas_.at(i).port; }
  [[nodiscard]] bool running(std::size_t i) { return replicas_.at(i).process->running(); }

  /// Indices of the replicas still running.
  [[nodiscard]] std::vector<std::size_t> live() {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < replicas_.size(); ++i) {
      if (running(i)) out.push_back(i);
    }
    return out;
  }

  /// SIGKILL; the exit code (137).
  int kill(std::size_t i) { return process(i).kill(); }
  /// SIGTERM without waiting (the replica drains and hands over on its own).
  void sigterm(std::size_t i) { process(i).signal(SIGTERM); }
  /// SIGTERM and wait for the exit; its code.
  int terminate(std::size_t i, std::chrono::milliseconds timeout = 30s) { return process(i).terminate(timeout); }

  /// The replica's /metrics body, "" when it does not answer.
  [[nodiscard]] std::string metrics(std::size_t i) const {
    const auto [status, body] = http_get(port(i), "/metrics");
    return status == 200 ? body : std::string();
  }
  /// cdc_consumer_partitions_owned of replica i; NaN when missing (not running, not rendered).
  [[nodiscard]] double owned(std::size_t i) const { return metric(metrics(i), "cdc_consumer_partitions_owned"); }

  /// The live replicas' partitions_owned gauges, "replica-0=3 replica-1=3 replica-2=2".
  [[nodiscard]] std::string owned_text() {
    std::string text;
    for (const std::size_t i : live()) {
      const double v = owned(i);
      text.append(text.empty() ? "" : " ")
          .append(id(i))
          .append("=")
          .append(std::isnan(v) ? std::string("?") : std::to_string(static_cast<long>(v)));
    }
    return text;
  }

  /// Waits until every live replica renders the gauge, the gauges sum to `partitions` and none
  /// is above `max_each` (the spread of an even assignment); false on timeout.
  bool wait_spread(std::uint32_t partitions, double max_each, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      double sum = 0;
      bool ok = true;
      for (const std::size_t i : live()) {
        const double v = owned(i);
        if (std::isnan(v) || v > max_each) {
          ok = false;
          break;
        }
        sum += v;
      }
      if (ok && sum == static_cast<double>(partitions)) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(50ms);
    }
  }

  /// The last `bytes` of every replica's output, for a failure message.
  [[nodiscard]] std::string logs(std::size_t bytes = 3000) const {
    std::string text;
    for (const auto& r : replicas_) {
      const std::string out = r.process->output();
      text.append("\n--- ").append(r.id).append(":\n");
      text.append(out.size() <= bytes ? out : out.substr(out.size() - bytes));
    }
    return text;
  }

  /// Every line of every replica's output that contains `needle`, prefixed by the replica id.
  [[nodiscard]] std::string grep(std::string_view needle, std::size_t max_lines = 20) const {
    std::string text;
    std::size_t n = 0;
    for (const auto& r : replicas_) {
      std::istringstream in(r.process->output());
      std::string line;
      while (std::getline(in, line) && n < max_lines) {
        if (line.find(needle) == std::string::npos) continue;
        text.append(r.id).append(": ").append(line).append("\n");
        ++n;
      }
    }
    return text;
  }

 private:
  struct Replica {
    std::string id;
    std::uint16_t port = 0;
    std::unique_ptr<ServiceProcess> process;
  };
  EnvOverrides env_;
  std::vector<Replica> replicas_;
};

/// Seconds until every partition consumer progresses again after a replica stopped at `since`:
/// each partition's ack floor moved past `floors` (read right after the stop) or the partition
/// has nothing pending or unacknowledged. Needs traffic on every partition (a feeder running).
/// NaN on timeout.
inline double wait_partitions_flowing(const std::string& url, const Config& config,
                                      const std::vector<std::uint64_t>& floors,
                                      std::chrono::steady_clock::time_point since, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      JetStreamProbe probe(url);
      const auto states = partition_states(probe, config);
      bool flowing = states.size() == floors.size();
      for (std::size_t p = 0; flowing && p < states.size(); ++p) {
        const auto& s = states[p];
        flowing = s && (s->ack_floor_stream_seq > floors[p] || (s->num_pending == 0 && s->num_ack_pending == 0));
      }
      if (flowing) return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
    } catch (const std::exception&) {
      // A server is restarting; try again.
    }
    std::this_thread::sleep_for(50ms);
  }
  return std::numeric_limits<double>::quiet_NaN();
}

/// Every partition consumer's ack floor now (0 for a missing consumer).
inline std::vector<std::uint64_t> partition_floors(const std::string& url, const Config& config) {
  JetStreamProbe probe(url);
  std::vector<std::uint64_t> out;
  for (const auto& s : partition_states(probe, config)) out.push_back(s ? s->ack_floor_stream_seq : 0);
  return out;
}

}  // namespace cdc::test::faults
