#pragma once
/// The wiring: event pool, rings, stages, threads and the monitor, on the ports it is given (the
/// service's: make_service_ports in cdc/adapters/service_ports.hpp; tests and bench/: in-process
/// mocks). See src/pipeline/pipeline.cpp for the topology.

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cdc/core/config.hpp"
#include "cdc/core/failure_guard.hpp"
#include "cdc/core/metrics.hpp"
#include "cdc/core/stall_detector.hpp"
#include "cdc/pipeline/link.hpp"
#include "cdc/pipeline/ports.hpp"
#include "cdc/pipeline/stage_runner.hpp"

namespace cdc {

class IngestStage;
class ParseStage;
class DedupStage;
class PublishStage;
class AckStage;

/// The stages in pipeline order, as pipeline.threads and pipeline.cpu name them.
inline constexpr std::array<const char*, 5> kStageNames{"ingest", "parse", "dedup", "publish", "ack"};

/// pipeline.threads resolved: for each thread, the indexes (into kStageNames) of its stages;
/// empty `threads` gives one thread per stage. Throws std::invalid_argument when a stage is
/// unknown, missing or named twice.
std::vector<std::vector<std::size_t>> stage_threads(const std::vector<std::vector<std::string>>& threads);

/// What /healthz and /readyz report.
struct HealthReport {
  bool running = false;                 ///< stage threads started and not finished
  bool nats_connected = false;          ///< both NATS connections up
  bool redis_up = false;                ///< dedup connection up (true when dedup is disabled)
  bool redis_degraded_ok = false;       ///< Redis down but on_redis_error=publish keeps events flowing
  std::uint64_t completed = 0;          ///< source messages completed
  std::size_t in_flight = 0;            ///< events between intake and completion
  std::int64_t last_completion_ns = 0;  ///< steady clock, 0 = none
  std::int64_t backlog = -1;            ///< consumer num_pending as last read (-1 = not known)
  bool stalled = false;                 ///< liveness fails: work pending, nothing completed for health.stall_timeout
  std::int64_t waiting_ms = 0;          ///< how long work has been pending without a completion
  std::int64_t failing_ms = 0;          ///< how long processing has been failing (panic guard)
  bool fleet_ready = true;              ///< the fleet member joined, its partitions' consumers present (no fleet: true)
  bool outputs_present = true;          ///< output and dead-letter streams present (as the monitor last saw them)

  /// /readyz: running, NATS connected, Redis up or the degraded policy declared, the fleet member
  /// ready and both output streams present.
  [[nodiscard]] bool ready() const noexcept {
    return running && nats_connected && (redis_up || redis_degraded_ok) && fleet_ready && outputs_present;
  }
};

/// The outside of a pipeline: JetStream and the dedup store (tests and bench/ pass in-process
/// mocks; the stores may be null when dedup is disabled). Destroyed in reverse order: the
/// monitor, which may own the connections the other ports use, goes last.
struct Ports {
  std::unique_ptr<ConnectionMonitor> monitor;  ///< null: no connections to report (in-process ports)
  /// Partition leases; null: an unleased source (in-process ports, push mode). Declared after
  /// the monitor (whose connections it uses) and before the source (which reads its table), so
  /// it is destroyed between them.
  std::unique_ptr<FleetMember> fleet;
  std::unique_ptr<MessageSource> source;
  std::unique_ptr<Completer> completer;
  std::unique_ptr<Publisher> publisher;
  std::unique_ptr<DedupStore> claims;  ///< the dedup stage's connection
  std::unique_ptr<DedupStore> marks;   ///< the ack stage's connection
  BuildInfo build;                     ///< for cdc_consumer_build_info
};

class Pipeline {
 public:
  /// Builds the stages and rings on the given ports (the service passes make_service_ports(config)).
  /// Start-up zone: throws ConfigError (validate), std::invalid_argument (pipeline.threads, or a
  /// port missing) or std::runtime_error with a precise message.
  Pipeline(Config config, Ports ports);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  /// Starts the stage threads (pipeline.threads: one per stage by default).
  void start();
  /// Stops intake; in-flight work finishes until drain_timeout, then the rest is NAKed. Blocks
  /// until every stage has finished and the threads are joined. Idempotent.
  void stop();
  /// Any thread: true once every stage has finished (after stop(), or after a fatal error).
  [[nodiscard]] bool finished() const noexcept;

  [[nodiscard]] const Config& config() const noexcept { return config_; }
  [[nodiscard]] Metrics& metrics() noexcept { return *metrics_; }
  /// Any thread: the Prometheus text exposition (all families, including ring occupancy).
  [[nodiscard]] std::string render_metrics() const;
  /// Any thread.
  [[nodiscard]] HealthReport health() const noexcept;

  /// Any thread (SIGHUP): the liveness and panic-guard limits, from the monitor's next tick; 0 = off.
  void set_stall_timeout(Millis timeout) noexcept;
  void set_max_failure_duration(Millis limit) noexcept;
  /// Signal thread (SIGHUP): builds a Transformer from `config`'s ingest rules and hands it to
  /// the parse stage. Throws std::invalid_argument (nothing changes) when the rules are invalid.
  void set_transform_rules(const Config& config);
  /// Any thread: true once the panic guard has tripped (the service should exit with code 3).
  [[nodiscard]] bool guard_tripped() const noexcept { return guard_tripped_.load(std::memory_order_acquire); }
  /// Why the guard tripped ("" before).
  [[nodiscard]] std::string guard_reason() const;

 private:
  Config config_;
  std::unique_ptr<Metrics> metrics_;
  Ports ports_;
  std::unique_ptr<Event[]> pool_;
  std::size_t pool_size_;
  // Rings, each able to hold the whole pool: free -> ingest -> parse -> dedup -> publish -> ack -> free.
  EventRing free_ring_, parse_ring_, dedup_ring_, publish_ring_, ack_ring_;
  // One WaitStrategy per stage thread; every ring into a thread's stages names it.
  std::vector<std::unique_ptr<WaitStrategy>> waiters_;
  std::array<WaitStrategy*, kStageNames.size()> waiter_of_{};  // by stage index
  std::vector<std::unique_ptr<StageContext>> contexts_;        // by stage index
  std::vector<std::unique_ptr<StageRunner>> runners_;
  std::atomic<bool> ingest_done_{false}, parse_done_{false}, dedup_done_{false}, publish_done_{false}, ack_done_{false};
  std::atomic<bool> never_{false};  // the free ring's producer (ack) is "done" only at the end
  Lifecycle life_;
  std::unique_ptr<IngestStage> ingest_;
  std::unique_ptr<ParseStage> parse_;
  std::unique_ptr<DedupStage> dedup_;
  std::unique_ptr<PublishStage> publish_stage_;
  std::unique_ptr<AckStage> ack_;
  std::vector<std::thread> threads_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};

  // Monitor thread: consumer backlog, liveness, panic guard (one tick every kMonitorTick).
  std::thread monitor_;
  std::mutex monitor_mutex_;
  std::condition_variable monitor_cv_;
  bool monitor_stop_ = false;  // guarded by monitor_mutex_
  std::atomic<std::int64_t> stall_timeout_ms_;
  std::atomic<std::int64_t> max_failure_ms_;
  std::atomic<bool> stalled_{false};
  std::atomic<std::int64_t> waiting_ms_{0};
  std::atomic<bool> guard_tripped_{false};
  mutable std::mutex guard_mutex_;
  std::string guard_reason_;  // guarded by guard_mutex_
  ProgressTracker progress_;  // monitor thread only
  StallDetector stall_;       // monitor thread only
  FailureGuard guard_;        // monitor thread only

  void build();
  /// Destroys the stages and the ports in dependency order (destructor, failed construction).
  void release() noexcept;
  void monitor() noexcept;
  void read_backlog() noexcept;
  /// Monitor thread: the output streams, every kStreamCheckInterval and at once after a
  /// publish found no stream.
  void check_output_streams(std::int64_t now) noexcept;
  std::int64_t next_stream_check_ns_ = 0;  // monitor thread only
  std::uint64_t seen_no_responders_ = 0;   // monitor thread only
  /// Inputs of health() that do not depend on the monitor.
  [[nodiscard]] HealthReport base_health() const noexcept;
};

}  // namespace cdc
