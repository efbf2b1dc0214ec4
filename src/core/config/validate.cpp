// Validation: the rules of each key and across keys, run after loading (and by validate() on a
// Config built in code). Start-up code: every message names the key, the rule and the value.

#include "validate.hpp"

#include <algorithm>
#include <charconv>
#include <set>

#include "cdc/core/subject.hpp"
#include "schema.hpp"
#include "text.hpp"

namespace cdc::config_detail {
namespace {

/// A subject, wildcards allowed: '.'-separated tokens, '*' a whole token, '>' the whole last one.
bool valid_subject(std::string_view s) noexcept {
  if (s.empty()) return false;
  const auto tokens = split(s, '.');
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const auto t = tokens[i];
    if (t == "*") continue;
    if (t == ">" && i + 1 == tokens.size()) continue;
    if (!is_valid_token(t)) return false;
  }
  return true;
}

/// Stream and durable consumer names: no '.', '*', '>', whitespace, control, or path separators
/// (the server uses stream names as directory names).
bool valid_name(std::string_view s) noexcept {
  return is_valid_token(s) && s.find_first_of("/\\") == std::string_view::npos;
}

class Checker {
 public:
  Checker(const Sources& sources, Errors* errors) : sources_(sources), errors_(errors) {}

  /// A ConfigError for `key`, named as the variable that set it when one did: thrown, or added
  /// to the errors when collecting (every rule below is an independent check, so validation
  /// goes on after a failed one).
  void fail(const std::string& key, const std::string& problem) const {
    const auto it = sources_.find(key);
    ConfigError error(it == sources_.end() ? key : it->second, problem);
    if (errors_ == nullptr) throw error;
    errors_->push_back(std::move(error));
  }

  void range(const std::string& key, long long value, IntRange r) const {
    if (!r.contains(value)) fail(key, "must be " + r.bounds() + ", got " + std::to_string(value));
  }
  void at_least(const std::string& key, Millis value, Millis min) const {
    if (value < min) fail(key, "must be at least " + format_duration(min) + ", got " + format_duration(value));
  }
  void zero_or_at_least(const std::string& key, Millis value, Millis min) const {
    if (value.count() != 0 && value < min) {
      fail(key, "must be 0 (off) or at least " + format_duration(min) + ", got " + format_duration(value));
    }
  }
  void non_negative(const std::string& key, Millis value) const {
    if (value.count() < 0) fail(key, "must not be negative, got " + std::to_string(value.count()) + "ms");
  }
  void stream_name(const std::string& key, const std::string& value) const {
    if (!valid_name(value)) {
      fail(key,
           "must be a non-empty name without '.', '*', '>', '/', '\\', whitespace or control "
           "characters, got " +
               quoted(value));
    }
  }
  void token(const std::string& key, const std::string& value) const {
    if (!is_valid_token(value)) {
      fail(key,
           "must be a valid subject token (non-empty, at most 128 bytes, no '.', '*', '>', "
           "whitespace or control characters), got " +
               quoted(value));
    }
  }

 private:
  const Sources& sources_;
  Errors* errors_;
};

void validate_nats(const Checker& check, const NatsConfig& n) {
  if (trim(n.url).empty()) check.fail("nats.url", "must not be empty");
  for (const auto part : split(n.url, ',')) {
    const auto url = trim(part);
    const bool scheme_ok = url.rfind("nats://", 0) == 0 || url.rfind("tls://", 0) == 0;
    const std::size_t scheme_len = url.rfind("nats://", 0) == 0 ? 7 : 6;
    if (!scheme_ok || url.size() == scheme_len || has_whitespace(url)) {
      check.fail("nats.url", "each comma-separated server must look like nats://host:port or tls://host:port, got " +
                                 quoted(redact_url(url)) + " in " + quoted(redact_url(n.url)));
    }
  }
  check.at_least("nats.connect_timeout", n.connect_timeout, Millis{1});
  check.non_negative("nats.reconnect_wait", n.reconnect_wait);
  check.range("nats.max_reconnect", n.max_reconnect, kMinusOneOrMore);
  if (n.write_mode == WriteMode::kAdaptive) {
    check.fail("nats.write_mode",
               "adaptive is a publish.write_mode only (the publish stage chooses per batch); use asap, flusher or "
               "batch for the consume connection");
  }
  check.range("nats.stream_replicas", n.stream_replicas, kStreamReplicas);
  check.range("nats.io_buffer_size", n.io_buffer_size, kIoBufferRange);

  // Secrets never appear in these messages: only key names.
  if (!n.tls_cert.empty() && n.tls_key.empty()) check.fail("nats.tls_key", "must be set with nats.tls_cert");
  if (n.tls_cert.empty() && !n.tls_key.empty()) check.fail("nats.tls_cert", "must be set with nats.tls_key");
  const bool has_password = !n.password.empty() || !n.password_file.empty();
  if (!n.user.empty() && !has_password)
    check.fail("nats.password", "must be set (or nats.password_file) with nats.user");
  if (n.user.empty() && has_password) check.fail("nats.user", "must be set with nats.password / nats.password_file");
  if (!n.nkey_seed_file.empty() && n.nkey.empty())
    check.fail("nats.nkey", "must be set (the public user NKey) with nats.nkey_seed_file");
  if (n.nkey_seed_file.empty() && !n.nkey.empty()) check.fail("nats.nkey_seed_file", "must be set with nats.nkey");
  if (!n.nkey.empty() && (n.nkey.front() != 'U' || n.nkey.size() != 56)) {
    check.fail("nats.nkey", "must be a public user NKey (56 characters starting with U)");
  }
}

void validate_ingest(const Checker& check, const IngestConfig& in, std::size_t ring_capacity) {
  check.stream_name("ingest.stream", in.stream);
  if (in.stream_subjects.empty()) check.fail("ingest.stream_subjects", "must list at least one subject");
  for (const auto& s : in.stream_subjects) {
    if (!valid_subject(s)) check.fail("ingest.stream_subjects", "invalid subject " + quoted(s));
  }
  check.stream_name("ingest.consumer", in.consumer);

  const std::size_t tables = count_of(in.subject_layout, "{table}");
  const std::size_t owners = count_of(in.subject_layout, "{company}") + count_of(in.subject_layout, "{schema}");
  if (tables != 1 || owners != 1) {
    check.fail("ingest.subject_layout",
               "must contain {table} once and exactly one of {company} or {schema}, got " + quoted(in.subject_layout));
  }
  if (!in.filter_subject.empty() && !valid_subject(in.filter_subject)) {
    check.fail("ingest.filter_subject", "must be empty (derived from ingest.subject_layout) or a valid subject, got " +
                                            quoted(in.filter_subject));
  }
  check.range("ingest.partitions", in.partitions, kPartitions);
  const std::size_t partition_tokens = count_of(in.subject_layout, "{partition}");
  if (in.partitions > 1 && partition_tokens != 1) {
    check.fail("ingest.subject_layout",
               "must end in .{partition} with ingest.partitions " + std::to_string(in.partitions) +
                   " (the server's subject mapping adds the partition token), e.g. " +
                   quoted(in.subject_layout + ".{partition}") + ", got " + quoted(in.subject_layout));
  }
  if (in.partitions == 1 && partition_tokens != 0) {
    check.fail("ingest.subject_layout",
               "has {partition} but ingest.partitions is 1 (unpartitioned); set ingest.partitions to the "
               "server mapping's partition count, got " +
                   quoted(in.subject_layout));
  }
  if (in.partitions > 1 && !in.filter_subject.empty()) {
    check.fail("ingest.filter_subject",
               "must be empty with ingest.partitions > 1 (each partition's consumer "
               "filters on its own partition), got " +
                   quoted(in.filter_subject));
  }
  if (in.mode == IngestMode::kPush && in.partitions > 1) {
    check.fail("ingest.mode", "must be pull with ingest.partitions > 1 (partitions are leased pull consumers)");
  }
  if (in.mode == IngestMode::kPull) {
    check.stream_name("ingest.lease_bucket", in.lease_bucket);
    if (!in.replica_id.empty()) check.token("ingest.replica_id", in.replica_id);
    check.at_least("ingest.lease_ttl", in.lease_ttl, Millis{1000});
    check.at_least("ingest.checkpoint_interval", in.checkpoint_interval, Millis{100});
  }
  if (in.mode == IngestMode::kPush && (in.queue_group.empty() || has_whitespace(in.queue_group))) {
    check.fail("ingest.queue_group",
               "must be a non-empty name without whitespace in push mode, got " + quoted(in.queue_group));
  }
  check.at_least("ingest.ack_wait", in.ack_wait, Millis{1000});
  check.range("ingest.max_ack_pending", in.max_ack_pending, kPositive);
  if (in.max_deliver != -1 && in.max_deliver < 1) {
    check.fail("ingest.max_deliver", "must be -1 (unlimited) or at least 1, got " + std::to_string(in.max_deliver));
  }
  if (in.fetch_batch < 1 || static_cast<std::size_t>(in.fetch_batch) > ring_capacity) {
    check.fail("ingest.fetch_batch", "must be 1-" + std::to_string(ring_capacity) + " (pipeline.ring_capacity), got " +
                                         std::to_string(in.fetch_batch));
  }
  check.at_least("ingest.fetch_expires", in.fetch_expires, Millis{1});

  if (in.tables.empty()) check.fail("ingest.tables", "must list at least one table");
  std::set<std::string> seen;
  for (const auto& t : in.tables) {
    check.token("ingest.tables", t);
    if (!seen.insert(t).second) check.fail("ingest.tables", "table " + quoted(t) + " is listed twice");
    const auto it = in.key_columns.find(t);
    if (it == in.key_columns.end() || it->second.empty()) {
      check.fail("ingest.key_columns", "no key column for table " + quoted(t) + " (listed in ingest.tables)");
    }
  }
  if (in.max_message_bytes < kKiB || in.max_message_bytes > 64 * kMiB) {
    check.fail("ingest.max_message_bytes", "must be 1KiB-64MiB, got " + format_bytes(in.max_message_bytes));
  }
}

void validate_publish(const Checker& check, const PublishConfig& p, const Config& c) {
  check.stream_name("publish.stream", p.stream);
  check.token("publish.subject_prefix", p.subject_prefix);
  if (p.duplicate_window < c.dedup.ttl) {
    check.fail("publish.duplicate_window", "must be at least dedup.ttl (" + format_duration(c.dedup.ttl) + "), got " +
                                               format_duration(p.duplicate_window));
  }
  check.stream_name("publish.dlq_stream", p.dlq_stream);
  check.token("publish.dlq_subject_prefix", p.dlq_subject_prefix);
  if (p.dlq_stream == p.stream) {
    check.fail("publish.dlq_stream", "must differ from publish.stream, got " + quoted(p.dlq_stream));
  }
  check.range("publish.max_pending", p.max_pending, kMaxPendingRange);
  check.range("publish.batching_threshold", p.batching_threshold, kPositive);
  if (static_cast<std::size_t>(p.max_pending) > c.pipeline.ring_capacity) {
    check.fail("publish.max_pending", "must be at most pipeline.ring_capacity (" +
                                          std::to_string(c.pipeline.ring_capacity) + "), got " +
                                          std::to_string(p.max_pending));
  }
  check.at_least("publish.ack_timeout", p.ack_timeout, Millis{1});
  check.range("publish.max_retries", p.max_retries, kNonNegative);
  check.at_least("publish.retry_backoff", p.retry_backoff, Millis{1});
  if (p.retry_backoff_max < p.retry_backoff) {
    check.fail("publish.retry_backoff_max", "must be at least publish.retry_backoff (" +
                                                format_duration(p.retry_backoff) + "), got " +
                                                format_duration(p.retry_backoff_max));
  }
  check.non_negative("publish.nak_delay", p.nak_delay);
}

void validate_redis(const Checker& check, const RedisConfig& r) {
  // host:port, or [v6-address]:port
  const std::string& a = r.address;
  const auto colon = a.rfind(':');
  bool ok = colon != std::string::npos && colon > 0 && !has_whitespace(a);
  if (ok && a.front() == '[') ok = colon >= 3 && a[colon - 1] == ']';
  else if (ok) ok = a.find(':') == colon;
  const std::string port = ok ? a.substr(colon + 1) : std::string();
  long long p = 0;
  const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (!ok || port.empty() || ec != std::errc() || ptr != port.data() + port.size() || !kPortRange.contains(p)) {
    check.fail("redis.address", "must be host:port with a port 1-65535, got " + quoted(a));
  }
  check.range("redis.db", r.db, kNonNegative);
  if (!r.username.empty() && r.password.empty() && r.password_file.empty()) {
    check.fail("redis.password", "must be set (or redis.password_file) with redis.username");
  }
  if (has_whitespace(r.username)) check.fail("redis.username", "must not contain whitespace");
  check.at_least("redis.connect_timeout", r.connect_timeout, Millis{1});
  check.at_least("redis.command_timeout", r.command_timeout, Millis{1});
  check.at_least("redis.reconnect_backoff", r.reconnect_backoff, Millis{1});
  if (r.reconnect_backoff_max < r.reconnect_backoff) {
    check.fail("redis.reconnect_backoff_max", "must be at least redis.reconnect_backoff (" +
                                                  format_duration(r.reconnect_backoff) + "), got " +
                                                  format_duration(r.reconnect_backoff_max));
  }
}

/// "[[ingest, parse], [dedup, publish, ack]]", as the operator wrote it.
std::string describe_groups(const std::vector<std::vector<std::string>>& groups) {
  std::vector<std::string> parts;
  for (const auto& group : groups) {
    const std::vector<std::string_view> names(group.begin(), group.end());
    // append(), not "[" + ...: GCC 12 at -O3 reports a false -Wrestrict on the latter (bug 105329).
    parts.push_back(std::string("[").append(join(names, ", ")).append("]"));
  }
  return std::string("[").append(join(std::vector<std::string_view>(parts.begin(), parts.end()), ", ")).append("]");
}

/// The stages of pipeline.threads in the order given; an error for each unknown, repeated or
/// missing one and each empty group. Returns false when any was found.
bool check_thread_stages(const Checker& check, const std::vector<std::vector<std::string>>& groups,
                         std::vector<std::string>& listed) {
  const std::string key = "pipeline.threads";
  const auto& stages = stage_names();
  const auto has = [](const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  bool ok = true;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (groups[g].empty()) {
      check.fail(key, "group " + std::to_string(g + 1) + " is empty: each thread runs at least one stage");
      ok = false;
    }
    for (const auto& stage : groups[g]) {
      if (!has(stages, stage)) {
        check.fail(key, "unknown stage " + quoted(stage) + suggestion(stage, stages) +
                            "; stages are ingest, parse, dedup, publish, ack");
        ok = false;
      } else if (has(listed, stage)) {
        check.fail(key, "stage " + quoted(stage) + " is listed twice: each stage runs on exactly one thread");
        ok = false;
      } else {
        listed.push_back(stage);
      }
    }
  }
  for (const auto& stage : stages) {
    if (!has(listed, stage)) {
      check.fail(key, "missing stage " + quoted(stage) +
                          ": when pipeline.threads is set, every stage (ingest, parse, dedup, publish, ack) "
                          "appears exactly once");
      ok = false;
    }
  }
  return ok;
}

/// pipeline.threads: each stage exactly once, groups in pipeline order, no empty group, and one
/// CPU per thread: the stages of a group may not ask pipeline.cpu for different CPUs (-1 mixes
/// with N: the thread is pinned to N).
void validate_threads(const Checker& check, const PipelineConfig& p) {
  if (p.threads.empty()) return;  // one thread per stage
  const std::string key = "pipeline.threads";
  std::vector<std::string> listed;
  if (check_thread_stages(check, p.threads, listed) && listed != stage_names()) {
    check.fail(key, "list the stages in pipeline order (ingest, parse, dedup, publish, ack), got " +
                        describe_groups(p.threads));
  }
  for (const auto& group : p.threads) {
    const std::string* pinned_by = nullptr;
    int cpu = -1;
    for (const auto& stage : group) {
      const auto it = p.cpu.find(stage);
      if (it == p.cpu.end() || it->second < 0) continue;
      if (pinned_by == nullptr) {
        pinned_by = &stage;
        cpu = it->second;
      } else if (it->second != cpu) {
        check.fail(key, "stages " + quoted(*pinned_by) + " and " + quoted(stage) +
                            " share a thread but pipeline.cpu pins them to different CPUs (" + std::to_string(cpu) +
                            " and " + std::to_string(it->second) + "); give them the same CPU, or -1");
      }
    }
  }
}

void validate_pipeline(const Checker& check, const PipelineConfig& p) {
  const std::size_t cap = p.ring_capacity;
  if (cap == 0 || (cap & (cap - 1)) != 0) {
    check.fail("pipeline.ring_capacity", "must be a power of two, got " + std::to_string(cap));
  }
  if (cap < static_cast<std::size_t>(kRingRange.min) || cap > static_cast<std::size_t>(kRingRange.max)) {
    check.fail("pipeline.ring_capacity", "must be a power of two between 64 and 1048576, got " + std::to_string(cap));
  }
  if (p.batch_size < 1 || static_cast<std::size_t>(p.batch_size) > cap) {
    check.fail("pipeline.batch_size",
               "must be 1-" + std::to_string(cap) + " (pipeline.ring_capacity), got " + std::to_string(p.batch_size));
  }
  WaitStrategyKind parsed{};
  if (!parse_wait_kind(to_string(p.wait_strategy), parsed) || parsed != p.wait_strategy) {
    check.fail("pipeline.wait_strategy", "unknown wait strategy " + std::to_string(static_cast<int>(p.wait_strategy)));
  }
  check.non_negative("pipeline.drain_timeout", p.drain_timeout);
  const auto& stages = stage_names();
  for (const auto& [stage, cpu] : p.cpu) {
    if (std::find(stages.begin(), stages.end(), stage) == stages.end()) {
      check.fail("pipeline.cpu", "unknown stage " + quoted(stage) + suggestion(stage, stages) +
                                     "; stages are ingest, parse, dedup, publish, ack");
    }
    if (!kCpuRange.contains(cpu)) {
      check.fail("pipeline.cpu",
                 "stage " + quoted(stage) + ": must be -1 (no affinity) or a CPU 0-1023, got " + std::to_string(cpu));
    }
  }
  // The stages look their entry up with at(); the loader merges into the defaults, so only a
  // Config built in code can miss one.
  for (const auto& stage : stages) {
    if (p.cpu.count(stage) == 0) check.fail("pipeline.cpu", "missing stage " + quoted(stage) + " (-1 = no affinity)");
  }
  validate_threads(check, p);
}

}  // namespace

void validate_all(const Config& c, const Sources& sources, Errors* errors) {
  const Checker check(sources, errors);
  validate_nats(check, c.nats);
  validate_pipeline(check, c.pipeline);  // before the rules that compare against ring_capacity
  validate_ingest(check, c.ingest, c.pipeline.ring_capacity);
  check.at_least("dedup.ttl", c.dedup.ttl, Millis{1000});
  if (c.dedup.pending_ttl.count() != 0) check.at_least("dedup.pending_ttl", c.dedup.pending_ttl, Millis{1000});
  validate_publish(check, c.publish, c);
  validate_redis(check, c.redis);
  if (c.metrics.bind.empty() || has_whitespace(c.metrics.bind)) {
    check.fail("metrics.bind", "must be a non-empty address without whitespace, got " + quoted(c.metrics.bind));
  }
  check.range("metrics.port", c.metrics.port, kPortRange);
  check.zero_or_at_least("metrics.backlog_interval", c.metrics.backlog_interval, Millis{100});
  check.zero_or_at_least("health.stall_timeout", c.health.stall_timeout, Millis{1000});
  check.zero_or_at_least("guard.max_failure_duration", c.guard.max_failure_duration, Millis{1000});
  if (std::find(std::begin(kLogLevels), std::end(kLogLevels), c.log.level) == std::end(kLogLevels)) {
    check.fail("log.level", "must be one of trace, debug, info, warn, error, got " + quoted(c.log.level));
  }
}

}  // namespace cdc::config_detail

namespace cdc {

void validate(const Config& config) { config_detail::validate_all(config, config_detail::Sources{}); }

}  // namespace cdc
