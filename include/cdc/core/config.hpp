#pragma once
/// Service configuration: config.yaml, then environment overrides.
///
/// Precedence (lowest first): built-in defaults < config.yaml < short names of the contract
/// (NATS_URL, REDIS_ADDRESS, DEDUP_TTL, JS_ACK_WAIT, JS_MAX_DELIVER, LOG_LEVEL) <
/// DAISI_CDC_<SECTION>_<KEY>. Loading is start-up code: it throws ConfigError naming the key.

#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cdc/core/wait_strategy.hpp"

namespace cdc {

using Millis = std::chrono::milliseconds;

/// Thrown for any invalid configuration; what() is "<section.key>: <problem>".
class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& key, const std::string& problem)
      : std::runtime_error(key + ": " + problem), key_(key) {}
  [[nodiscard]] const std::string& key() const noexcept { return key_; }

 private:
  std::string key_;
};

/// How a NATS connection writes what its callers buffer (nats.write_mode, publish.write_mode).
enum class WriteMode : std::uint8_t {
  /// Experimental, not the default (docs/decisions.md). A stage's calls (publishes; acks) are
  /// written at the end of its batch, in one write; everything else (fetch requests, in-progress
  /// signals, API requests, PONGs) at once by the connection's own I/O thread.
  kBatch,
  kAsap,     ///< nats.c's SendAsap: one write per call
  kFlusher,  ///< nats.c's flusher thread: writes ~1 ms after the first buffered call
  /// publish.write_mode only, the default: two publish connections, one `asap` and one
  /// `flusher`; the publish stage chooses one per turn by its load (publish.batching_threshold)
  /// and switches only with nothing awaiting a PubAck, so order holds (docs/decisions.md).
  kAdaptive,
};

/// "batch", "asap", "flusher", "adaptive": the configuration's names.
std::string_view to_string(WriteMode mode) noexcept;

struct NatsConfig {
  std::string url = "nats://127.0.0.1:4222";  ///< comma-separated list allowed
  std::string name = "daisi-cdc-consumer";
  Millis connect_timeout{5000};
  Millis reconnect_wait{2000};
  int max_reconnect = -1;                      ///< -1 = forever
  WriteMode write_mode = WriteMode::kFlusher;  ///< the consume connection (fetches, acks)
  /// Replicas (1-5) of the streams the service creates (ingest.stream, publish.stream,
  /// publish.dlq_stream); 3 on a 3-node JetStream cluster. Existing streams keep theirs.
  int stream_replicas = 1;
  /// nats.c's buffer of pending writes per connection, in bytes (natsOptions_SetIOBufSize);
  /// 0 = nats.c's default (32 KiB). A full buffer is written at once, flusher or not.
  int io_buffer_size = 0;
  // TLS (any set: TLS required). Files are PEM; tls_cert and tls_key go together.
  std::string tls_ca;    ///< CA bundle trusted for the server certificate; empty = system roots
  std::string tls_cert;  ///< client certificate chain (mutual TLS)
  std::string tls_key;   ///< client private key
  // Authentication: at most one of creds_file, nkey + nkey_seed_file, user + password, token.
  std::string creds_file;      ///< JWT + seed (.creds), as written by nsc
  std::string nkey;            ///< public user NKey (U...), with nkey_seed_file
  std::string nkey_seed_file;  ///< file holding the NKey seed (SU...)
  std::string user;
  std::string password;  ///< secret; or password_file
  std::string password_file;
  std::string token;  ///< secret; or token_file
  std::string token_file;
};

enum class IngestMode : std::uint8_t { kPush, kPull };

struct IngestConfig {
  std::string stream = "cdc_events_stream";
  std::vector<std::string> stream_subjects{"cdc.>"};  ///< used only when creating the stream
  std::string consumer = "cdc_consumers";             ///< durable name
  std::string subject_layout = "cdc.{company}.{table}";
  std::string company_prefix = "";  ///< stripped from the company token ({schema} layouts)
  std::string filter_subject =
      "";  ///< empty = no filter: every subject of the stream (off-layout ones are dead-lettered)
  IngestMode mode = IngestMode::kPull;
  std::string queue_group = "cdc_consumers";  ///< push mode (one replica only: a queue group reorders)
  /// Source partitions P (the server's subject mapping); 1 = unpartitioned. With P > 1 the
  /// subject layout ends in {partition} and partition p has its own durable pull consumer.
  int partitions = 1;
  std::string lease_bucket = "cdc_consumer_leases";  ///< KV bucket: members, leases, checkpoints
  Millis lease_ttl{10000};                           ///< renewed every ttl/5; fenced at 0.8 x ttl
  std::string replica_id;                            ///< KV key token; empty = <hostname>-<pid>
  Millis checkpoint_interval{1000};                  ///< ack floors read and stored this often
  Millis ack_wait{30000};
  int max_ack_pending = 5000;
  int max_deliver = 3;         ///< -1 = unlimited
  int fetch_batch = 256;       ///< pull mode
  Millis fetch_expires{500};   ///< pull mode: how long an idle fetch waits
  bool create_streams = true;  ///< create missing streams/consumer at start-up
  std::vector<std::string> tables{"messages", "chats", "agents"};
  std::map<std::string, std::string> key_columns{
      {"messages", "message_id"}, {"chats", "chat_id"}, {"agents", "agent_id"}};
  std::size_t max_message_bytes = 1 << 20;
};

struct PublishConfig {
  std::string stream = "wa_stream";
  std::string subject_prefix = "wa";
  Millis duplicate_window{300000};  ///< wa_stream's, when created; must be >= dedup.ttl
  std::string dlq_stream = "cdc_dlq_stream";
  std::string dlq_subject_prefix = "cdc_dlq";
  int max_pending = 1024;                       ///< publishes awaiting their PubAck
  WriteMode write_mode = WriteMode::kAdaptive;  ///< the publish connection(s)
  /// write_mode adaptive: from this many events waiting for or held by the publish stage at the
  /// end of a turn it writes through the batching (`flusher`) connection, and back through the
  /// eager (`asap`) one once the load has stayed at an eighth of it or less for 5 ms.
  int batching_threshold = 256;
  Millis ack_timeout{5000};   ///< PubAck wait before a publish counts as failed
  int max_retries = 6;        ///< transient failures retried in place before NAK
  Millis retry_backoff{100};  ///< first retry delay, doubled per attempt
  Millis retry_backoff_max{5000};
  Millis nak_delay{5000};  ///< delay on NAK after the retry budget is spent
};

enum class RedisErrorPolicy : std::uint8_t { kPublish, kBlock };

/// How a batch's claims and done marks reach Redis (dedup.batch): kFunction = one FCALL of the
/// service's function library per batch, kPipeline = one command per key (pipelined), kAuto =
/// functions when the server loads the library and is not a cluster, per key otherwise.
/// kPipeline is the default: measured, the functions cost Redis more CPU per event, not less
/// (docs/decisions.md).
enum class DedupBatchMode : std::uint8_t { kAuto, kFunction, kPipeline };

struct DedupConfig {
  bool enabled = true;
  std::string key_prefix = "dedup:";
  Millis ttl{300000};     ///< lifetime of the 'd' (done) mark
  Millis pending_ttl{0};  ///< lifetime of the 'p' mark; 0 = ingest.ack_wait
  RedisErrorPolicy on_redis_error = RedisErrorPolicy::kPublish;
  DedupBatchMode batch = DedupBatchMode::kPipeline;  ///< per-key commands, or one function call per batch
};

struct RedisConfig {
  std::string address = "127.0.0.1:6379";  ///< host:port
  int db = 0;
  Millis connect_timeout{2000};
  Millis command_timeout{2000};
  Millis reconnect_backoff{100};
  Millis reconnect_backoff_max{5000};
  std::string username;  ///< ACL user (Redis 6+); empty = AUTH <password> only
  std::string password;  ///< secret; or password_file. Sent with AUTH right after connect.
  std::string password_file;
};

struct PipelineConfig {
  std::size_t ring_capacity = 8192;  ///< events in flight; power of two
  int batch_size = 256;              ///< max events a stage handles before end_of_batch
  WaitStrategyKind wait_strategy = WaitStrategyKind::kBlocking;
  Millis drain_timeout{10000};
  /// CPU per stage; -1 = no affinity. Keys: ingest, parse, dedup, publish, ack.
  std::map<std::string, int> cpu{{"ingest", -1}, {"parse", -1}, {"dedup", -1}, {"publish", -1}, {"ack", -1}};
  /// Which stages share a thread, in pipeline order: e.g. {{"ingest","parse"},{"dedup","publish","ack"}}.
  /// Empty = one thread per stage (the default). When set, every stage appears exactly once.
  std::vector<std::vector<std::string>> threads;
};

struct MetricsConfig {
  bool enabled = true;
  std::string bind = "0.0.0.0";
  int port = 8080;
  Millis backlog_interval{5000};  ///< how often the consumer backlog is read from JetStream; 0 = never
};

struct HealthConfig {
  /// /healthz fails when work has been pending this long with nothing completed; 0 = never.
  /// Reloaded on SIGHUP.
  Millis stall_timeout{120000};
};

struct GuardConfig {
  /// Exit with code 3 when processing has failed continuously this long; 0 = never.
  /// Reloaded on SIGHUP.
  Millis max_failure_duration{900000};
};

struct LogConfig {
  std::string level = "info";  ///< trace|debug|info|warn|error; reloaded on SIGHUP
};

struct Config {
  NatsConfig nats;
  IngestConfig ingest;
  PublishConfig publish;
  DedupConfig dedup;
  RedisConfig redis;
  PipelineConfig pipeline;
  MetricsConfig metrics;
  HealthConfig health;
  GuardConfig guard;
  LogConfig log;

  /// dedup.pending_ttl, resolved (0 means ingest.ack_wait).
  [[nodiscard]] Millis pending_ttl() const noexcept {
    return dedup.pending_ttl.count() > 0 ? dedup.pending_ttl : ingest.ack_wait;
  }
};

// The functions below are implemented by concern under src/core/config/ (docs/configuration.md,
// "Where the code is"): load.cpp, validate.cpp, values.cpp (parse_duration), secrets.cpp,
// print.cpp and reload.cpp, all reading the one field table of schema.cpp.

// Loading and validation (load.cpp, validate.cpp).

/// Loads a YAML file (path may be empty: defaults only) and applies the environment `env`
/// (NAME=VALUE strings, as in environ). Validates everything. Throws ConfigError.
Config load_config(const std::string& path, const std::vector<std::string>& env);
/// Same, from YAML text (for tests).
Config load_config_text(const std::string& yaml_text, const std::vector<std::string>& env);
/// Validates cross-field rules; throws ConfigError. Called by load_config*.
void validate(const Config& config);
/// Parses "30s", "500ms", "5m", "1h", "1m30s", "0" (whole milliseconds); throws ConfigError(key, ...) otherwise.
Millis parse_duration(const std::string& key, const std::string& text);
/// The process environment as NAME=VALUE strings.
std::vector<std::string> process_environment();
/// The keys the environment `env` sets, each with the variable that sets it ("section.key" ->
/// NAME; a DAISI_CDC_* variable wins over a short name, as in load_config). SIGHUP uses it to
/// name the keys of the reloaded file that the environment pins. Throws ConfigError like load_config.
std::map<std::string, std::string> env_sources(const std::vector<std::string>& env);

// Secrets (secrets.cpp) and the operator's command-line checks (load.cpp, print.cpp).

/// Start-up (and reload): reads nats.password_file, nats.token_file and redis.password_file into
/// nats.password, nats.token and redis.password (one trailing newline dropped), and checks that
/// nats.tls_ca, tls_cert, tls_key, creds_file and nkey_seed_file are readable. Throws ConfigError.
void resolve_secrets(Config& config);
/// --check-config: loads `path` ("" = defaults) with `env` like load_config() followed by
/// resolve_secrets(), but collects every error instead of stopping at the first (an unreadable
/// file or a YAML syntax error still ends it: nothing after can be read). Empty = valid. `out`
/// gets the configuration as loaded (keys with errors keep their defaults).
std::vector<ConfigError> check_config(const std::string& path, const std::vector<std::string>& env, Config& out);
/// --print-config: every key as YAML (sections and keys in declaration order), in the form the
/// loader reads back; nats.password, nats.token and redis.password show as <redacted> when set
/// and nats.url loses any user:password@ (the *_file keys show their paths, not the secrets).
std::string config_to_yaml(const Config& config);
/// `url` (comma-separated list allowed) with any user:password@ removed, for logs.
std::string redact_url(std::string_view url);

// Reload on SIGHUP (reload.cpp).

/// Every key ("section.key", in declaration order) whose value differs between `a` and `b`.
std::vector<std::string> changed_keys(const Config& a, const Config& b);

/// Keys SIGHUP applies to the running service (log.level, health.stall_timeout,
/// guard.max_failure_duration and the parse stage's rules: ingest.tables, ingest.key_columns,
/// ingest.max_message_bytes). Every other key needs a restart (the thread layout among them:
/// pipeline.threads and pipeline.cpu; threads are created once, at start-up).
[[nodiscard]] bool reloadable(std::string_view key) noexcept;

/// What a reload would do: the changed keys it applies and those it ignores until a restart.
struct ReloadPlan {
  std::vector<std::string> apply;
  std::vector<std::string> restart;
  /// `running` with the reloadable keys of `next`: the configuration in effect after the reload.
  Config result;
};
/// Compares the running configuration with a newly loaded (valid) one.
ReloadPlan plan_reload(const Config& running, const Config& next);

}  // namespace cdc
