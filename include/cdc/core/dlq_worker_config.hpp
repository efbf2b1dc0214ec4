#pragma once
/// Configuration of daisi-dlq-worker: the `dlq_worker:` and `postgres:` sections of the
/// service's config.yaml, with the same environment override rule (DAISI_CDC_DLQ_WORKER_<KEY>,
/// DAISI_CDC_POSTGRES_<KEY>). The worker also reads the service's own sections (nats, ingest,
/// publish, log) through load_config(); the service's loader accepts these two sections and
/// their variables without reading them. Start-up code: throws ConfigError naming the key.

#include <string>
#include <string_view>
#include <vector>

#include "cdc/core/config.hpp"

namespace cdc {

struct DlqWorkerConfig {
  std::string consumer = "cdc_dlq_worker";  ///< durable pull consumer on publish.dlq_stream
  /// Error kinds retried (republished to their source subject); every other kind goes to
  /// PostgreSQL at once. A publish_rejected whose reason is a size limit is never retried.
  std::vector<std::string> retry_kinds{"max_deliveries", "publish_rejected"};
  int max_attempts = 5;           ///< retries per event before it is exhausted
  Millis backoff_base{60000};     ///< retry n waits base * 2^(n-1) after the failure ...
  Millis backoff_max{900000};     ///< ... at most this long
  Millis ack_wait{30000};         ///< the consumer's AckWait
  int max_ack_pending = 50000;    ///< the consumer's MaxAckPending (bounds retries waiting at once)
  int fetch_batch = 256;          ///< records per pull request
  Millis fetch_expires{500};      ///< how long an idle pull waits
  Millis publish_timeout{5000};   ///< PubAck wait for a retry
  Millis retry_delay{5000};       ///< NAK delay when a retry cannot be published now
  Millis backlog_interval{5000};  ///< how often the consumer's backlog is read; 0 = never
  std::string metrics_bind = "0.0.0.0";
  int metrics_port = 8081;  ///< /metrics, /healthz, /readyz; 0 = no HTTP endpoint
};

struct PostgresConfig {
  /// libpq connection string or URI ("host=... dbname=..." or "postgresql://user@host/db").
  /// The password belongs in PGPASSWORD, a passfile or the URI; it is never logged.
  std::string conninfo = "host=127.0.0.1 port=5432 dbname=daisi_cdc user=daisi_cdc";
  int batch_size = 1000;       ///< rows per transaction: flush at this many ...
  Millis flush_interval{500};  ///< ... or when the oldest buffered row is this old
  Millis connect_timeout{5000};
  Millis reconnect_backoff_max{5000};  ///< retry wait after a failure, doubling from 100 ms
};

struct DlqWorkerSettings {
  DlqWorkerConfig dlq_worker;
  PostgresConfig postgres;
};

/// Reads the `dlq_worker` and `postgres` sections of the YAML file (other sections are the
/// service's: ignored here) and the DAISI_CDC_DLQ_WORKER_* / DAISI_CDC_POSTGRES_* variables of
/// `env`, then validates. An empty path means defaults. Throws ConfigError.
DlqWorkerSettings load_dlq_worker_config(const std::string& path, const std::vector<std::string>& env);
/// Same, from YAML text.
DlqWorkerSettings load_dlq_worker_config_text(const std::string& yaml_text, const std::vector<std::string>& env);
/// True for the top-level sections that belong to the worker (the service's loader skips them).
[[nodiscard]] bool is_dlq_worker_section(std::string_view section) noexcept;
/// True for a DAISI_CDC_ variable of one of the worker's sections.
[[nodiscard]] bool is_dlq_worker_variable(std::string_view name) noexcept;
/// `conninfo` with any password (keyword form or URI) replaced by ***, for logs.
std::string redact_conninfo(std::string_view conninfo);

}  // namespace cdc
