#pragma once
/// daisi-dlq-worker: a durable pull consumer on the dead-letter stream. Retryable dead letters
/// go back to their source subject after a backoff; the others, and those whose retries are
/// spent, go to PostgreSQL (exhausted_events). docs/dlq-worker.md describes it.
///
/// Thread contract: run() loops on the calling thread and is the only writer of the metrics;
/// render_metrics(), healthy() and ready() may be called from the HTTP thread.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cdc/core/config.hpp"
#include "cdc/dlq_worker/postgres.hpp"
#include "cdc/core/dlq_record.hpp"
#include "cdc/core/dlq_worker_config.hpp"
#include "cdc/core/metrics.hpp"
#include "cdc/adapters/nats/nats_connection.hpp"

namespace cdc {

/// Everything the worker counts; one writer (the loop), read by scrapes.
struct DlqWorkerMetrics {
  /// Label values of `kind`: the contract's error kinds, then "unreadable" (not a dead-letter
  /// record) and "other" (a kind this build does not know).
  static constexpr std::array<std::string_view, 11> kKinds{
      "invalid_json", "invalid_shape",  "missing_field",    "invalid_token", "table_mismatch", "invalid_subject",
      "oversized",    "max_deliveries", "publish_rejected", "unreadable",    "other"};
  [[nodiscard]] static std::size_t kind_index(std::string_view kind) noexcept;

  std::array<Counter, kKinds.size()> retries;    ///< retries stored in the source stream
  std::array<Counter, kKinds.size()> deferred;   ///< NAKed to wait for their backoff
  std::array<Counter, kKinds.size()> exhausted;  ///< records committed to PostgreSQL (and acked)
  Counter retry_errors;                          ///< retries that could not be published (NAKed, tried again)
  Counter rows_written;                          ///< rows inserted
  Counter rows_existing;                         ///< rows already there (a redelivered record)
  Counter batches;
  Counter batch_failures;
  Histogram batch_latency;  ///< one transaction, BEGIN to COMMIT
  Gauge postgres_up;
  Gauge nats_up;
  Gauge buffered;     ///< records waiting for their transaction
  Gauge backlog;      ///< consumer num_pending; -1 = not known yet
  Gauge ack_pending;  ///< consumer num_ack_pending (includes retries waiting for their backoff)
  Gauge last_loop_unix_ms;

  [[nodiscard]] std::string render(std::string_view version) const;
};

class DlqWorker {
 public:
  /// Connects to NATS (throws NatsError) and creates the durable consumer when missing; waits
  /// for the dead-letter stream while it does not exist (until `stop`). PostgreSQL is
  /// connected lazily and retried: the worker runs (retrying) while it is down.
  DlqWorker(const Config& config, const DlqWorkerSettings& settings, const std::atomic<bool>& stop);
  ~DlqWorker();
  DlqWorker(const DlqWorker&) = delete;
  DlqWorker& operator=(const DlqWorker&) = delete;

  /// Loops until `stop`; then writes what is buffered (when PostgreSQL answers) and returns.
  void run();

  [[nodiscard]] std::string render_metrics() const;
  /// The loop turned within the last minute.
  [[nodiscard]] bool healthy() const noexcept;
  /// NATS connected and PostgreSQL reachable.
  [[nodiscard]] bool ready() const noexcept;
  [[nodiscard]] const DlqWorkerMetrics& metrics() const noexcept { return metrics_; }

 private:
  struct Pending {
    NatsMsgPtr msg;
    ExhaustedRow row;
    std::size_t kind = 0;
  };
  using Clock = std::chrono::steady_clock;

  void subscribe();
  void handle(NatsMsgPtr msg);
  void retry(NatsMsgPtr msg, const DlqRecord& record, std::uint64_t dlq_seq, std::uint32_t attempt);
  void keep(NatsMsgPtr msg, std::uint64_t dlq_seq, ExhaustedRow row, std::string_view kind);
  bool connect_postgres();
  void flush();
  void touch_pending();
  void read_backlog();

  const Config& config_;
  const DlqWorkerSettings& settings_;
  const std::atomic<bool>& stop_;
  DlqWorkerMetrics metrics_;
  std::unique_ptr<NatsConnection> nats_;
  NatsSubPtr sub_;
  std::unique_ptr<PgConnection> pg_;
  std::vector<Pending> pending_;
  std::unordered_map<std::uint64_t, std::size_t> pending_index_;  ///< dlq seq -> index in pending_
  Clock::time_point oldest_pending_{};
  Clock::time_point last_progress_{};
  Clock::time_point next_pg_attempt_{};
  Clock::time_point last_pg_check_{};
  Clock::time_point next_backlog_{};
  /// After a retry could not be published, the due retries behind it are NAKed at once until
  /// then, instead of each waiting out its own publish_timeout.
  Clock::time_point retries_paused_until_{};
  std::chrono::milliseconds pg_backoff_{100};
  std::string filter_;
};

}  // namespace cdc
