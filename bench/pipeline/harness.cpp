#include "pipeline/harness.hpp"

#include <unistd.h>

#include <cstdio>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <stdexcept>

#include "cdc/pipeline/pipeline.hpp"

namespace cdc::bench {

std::string Variant::text() const {
  std::string out;
  for (const auto& [key, value] : keys) out.append(out.empty() ? "" : ", ").append(key).append("=").append(value);
  return out;
}

std::vector<std::string> Variant::environment() const {
  std::vector<std::string> env;
  for (const auto& [key, value] : keys) {
    std::string name("DAISI_CDC_");
    for (const char ch : key)
      name.push_back(ch == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
    env.push_back(name.append("=").append(value));
  }
  return env;
}

Variant parse_variant(const std::string& text) {
  const auto colon = text.find(':');
  if (colon == std::string::npos || colon == 0) {
    throw std::invalid_argument("--variant '" + text + "': expected NAME:key=value[,key=value...]");
  }
  Variant v;
  v.name = text.substr(0, colon);
  std::size_t at = colon + 1;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string piece = text.substr(at, comma - at);
    const auto eq = piece.find('=');
    const auto dot = piece.find('.');
    const bool is_key = eq != std::string::npos && dot != std::string::npos && dot > 0 && dot < eq &&
                        piece.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_.") >= eq;
    if (is_key) v.keys.emplace_back(piece.substr(0, eq), piece.substr(eq + 1));
    else if (!v.keys.empty()) v.keys.back().second.append(",").append(piece);  // a list value's comma
    else throw std::invalid_argument("--variant '" + text + "': expected section.key=value after '" + v.name + ":'");
    at = comma + 1;
  }
  if (v.keys.empty()) throw std::invalid_argument("--variant '" + text + "': no key=value");
  return v;
}

Config service_config(const HarnessOptions& o, const std::vector<std::string>& env) {
  Config c = o.config_path.empty() && env.empty() ? Config{} : load_config(o.config_path, env);
  if (o.ring_capacity != 0) c.pipeline.ring_capacity = o.ring_capacity;
  if (o.batch_size != 0) c.pipeline.batch_size = o.batch_size;
  if (!o.wait_strategy.empty() && !parse_wait_kind(o.wait_strategy, c.pipeline.wait_strategy)) {
    throw ConfigError("--wait-strategy", "expected busy_spin, yield, sleep or park, got '" + o.wait_strategy + "'");
  }
  if (o.max_pending != 0) c.publish.max_pending = o.max_pending;
  if (o.retry_backoff_ms >= 0) c.publish.retry_backoff = Millis(o.retry_backoff_ms);
  if (o.ingest_mode == "push") c.ingest.mode = IngestMode::kPush;
  else if (o.ingest_mode == "pull") c.ingest.mode = IngestMode::kPull;
  else if (!o.ingest_mode.empty()) throw ConfigError("--ingest-mode", "expected push or pull");
  if (o.send_asap >= 0) c.nats.write_mode = o.send_asap != 0 ? WriteMode::kAsap : WriteMode::kFlusher;
  if (o.publish_send_asap >= 0)
    c.publish.write_mode = o.publish_send_asap != 0 ? WriteMode::kAsap : WriteMode::kFlusher;
  for (const auto& kv : o.cpus) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || c.pipeline.cpu.count(kv.substr(0, eq)) == 0) {
      throw ConfigError("--cpu", "expected <stage>=<cpu> with stage ingest|parse|dedup|publish|ack, got '" + kv + "'");
    }
    c.pipeline.cpu[kv.substr(0, eq)] = std::stoi(kv.substr(eq + 1));
  }
  if (!o.threads.empty()) c.pipeline.threads = parse_thread_mapping(o.threads);
  validate(c);
  (void)stage_threads(c.pipeline.threads);  // std::invalid_argument names a bad mapping
  return c;
}

std::vector<std::vector<std::string>> parse_thread_mapping(const std::string& text) {
  std::vector<std::vector<std::string>> threads;
  std::size_t from = 0;
  while (from <= text.size()) {
    const std::size_t slash = std::min(text.find('/', from), text.size());
    std::vector<std::string> group;
    std::size_t at = from;
    while (at < slash) {
      const std::size_t comma = std::min(text.find(',', at), slash);
      if (comma > at) group.push_back(text.substr(at, comma - at));
      at = comma + 1;
    }
    threads.push_back(std::move(group));
    from = slash + 1;
  }
  return threads;
}

std::string thread_mapping_text(const Config& c) {
  if (c.pipeline.threads.empty()) return "one thread per stage";
  std::string out;
  for (const auto& group : c.pipeline.threads) {
    if (!out.empty()) out += " / ";
    for (std::size_t i = 0; i < group.size(); ++i) out += (i > 0 ? "," : "") + group[i];
  }
  return out;
}

Corpus prepare_corpus(const HarnessOptions& o, const std::string& tmp_dir) {
  if (!o.capture.empty()) return Corpus::load(o.capture);
#ifdef CDC_REPLAY_BINARY
  if (::access(CDC_REPLAY_BINARY, X_OK) == 0) {
    const std::string out = tmp_dir + "/corpus.jsonl";
    const std::string cmd = std::string("'") + CDC_REPLAY_BINARY + "' gen --out '" + out + "' --count " +
                            std::to_string(o.gen_count) + " --seed 1 --no-oversized > /dev/null";
    if (std::system(cmd.c_str()) == 0) return Corpus::load(out);
    std::fprintf(stderr, "warning: cdc-replay gen failed; using the sample capture\n");
  }
#else
  (void)tmp_dir;
#endif
  return Corpus::load(std::string(CDC_SOURCE_DIR) + "/tools/samples/sequin-mixed-2k.jsonl");
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c + " (" + std::to_string(::sysconf(_SC_NPROCESSORS_ONLN)) + " CPUs)";
}

}  // namespace cdc::bench
