#pragma once
/// This replica's membership of the fleet (CONTRACT.md section 11, docs/operations.md
/// "Partitions and replicas"): member key, partition leases and checkpoints in the JetStream
/// key-value bucket ingest.lease_bucket, and the per-partition durable consumers, on a thread of
/// its own. Decides through the PartitionTable, which the partitioned source and the publish
/// stage read without a lock. The rules themselves (expiry, fencing, take-over, hand-over) are
/// pure functions in cdc/core/lease_rules.hpp.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "cdc/core/config.hpp"
#include "cdc/adapters/nats/nats_connection.hpp"
#include "cdc/adapters/nats/partition_table.hpp"
#include "cdc/pipeline/ports.hpp"

namespace cdc {

/// `ingest.replica_id`, or `<hostname>-<pid>` when empty (dots and other characters a KV key
/// token cannot hold become '-').
std::string fleet_replica_id(const IngestConfig& ingest);

/// Creates partition `partition`'s durable pull consumer (explicit ack, ingest.ack_wait,
/// max_ack_pending, max_deliver, filter partition_filter) from the checkpoint `ckpt.<p>` in `kv`
/// (the larger of it and `checkpoint`, which it updates): DeliverByStartSequence = checkpoint + 1,
/// DeliverAll only without a checkpoint (first deployment) or when the stream's last sequence is
/// below it (the stream was recreated). Returns the start sequence (0 = all). An existing one is
/// left as it is. Throws NatsError.
std::uint64_t create_partition_consumer(jsCtx* js, kvStore* kv, const Config& config, std::uint32_t partition,
                                        std::uint64_t& checkpoint);

/// The fleet member on the consume connection. Thread-safety: table(), current(), ready(),
/// owned() and backlog() from any thread; attach/start from the start-up thread; release_all()
/// and stop() from the thread stopping the pipeline.
class Fleet final : public FleetMember {
 public:
  /// Start-up zone: opens the lease bucket (ensure_jetstream_objects creates it) with a
  /// JetStream context of its own whose calls time out after lease::call_timeout (ttl / 10, at
  /// least 100 ms), so no call can hold the thread past a fence. Throws NatsError. `nats` must
  /// outlive the fleet.
  Fleet(NatsConnection& nats, const Config& config);
  ~Fleet() override;
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  /// The table the partitioned source fetches by (one slot per partition).
  [[nodiscard]] PartitionTable& table() noexcept { return table_; }
  [[nodiscard]] const PartitionTable& table() const noexcept { return table_; }
  /// This replica's name in the bucket (member.<id>, lease owner).
  [[nodiscard]] const std::string& replica_id() const noexcept { return id_; }

  void attach(Metrics& metrics) override;
  /// Joins (writes member.<id>) and starts the thread; throws NatsError when the bucket cannot
  /// be written.
  void start() override;
  /// Releases every held lease by revision (owner "", at once), deletes member.<id>, and stops
  /// acquiring. Waits for the fleet thread's current step; bounded by a few KV calls.
  void release_all() noexcept override;
  /// Stops the thread; leases not released expire (every slot's epoch goes to 0 first).
  void stop() noexcept override;
  /// Joined, and no owned partition's consumer missing.
  [[nodiscard]] bool ready() const noexcept override;
  /// Partitions whose lease this replica holds now.
  [[nodiscard]] std::uint32_t owned() const noexcept override;
  [[nodiscard]] bool current(std::uint32_t partition, std::uint32_t epoch) const noexcept override {
    return table_.current(partition, epoch);
  }
  /// Any thread: the latest consumer readings of the partitions held, summed (what the monitor
  /// reports as the replica's backlog; no request; zero on a replica holding nothing, so a
  /// standby is never "stalled"). False before start().
  bool backlog(ConsumerBacklog& out) const noexcept;

  /// How often the owner of partition 0 looks for stored subjects no partition consumer takes
  /// (30 s; also once right after acquiring partition 0). Tests only: a shorter interval, set
  /// before start(); zero or negative restores the default.
  static void set_stray_check_interval_for_tests(std::chrono::milliseconds interval) noexcept;
  /// At most this many stored subjects are looked at per check.
  static constexpr std::size_t kStrayCheckMaxSubjects = 10'000;

  /// Opaque: the fleet thread's view of the bucket (members, leases, checkpoints; fleet.cpp).
  struct State;

 private:
  class Steps;  // what the thread does on the state (fleet.cpp)

  void run() noexcept;

  Config config_;
  NatsConnection& nats_;
  std::string id_;
  PartitionTable table_;
  std::unique_ptr<State> state_;
  std::unique_ptr<Steps> steps_;  // from start()
  Metrics* metrics_ = nullptr;

  std::mutex mutex_;            // the state: the fleet thread's steps, release_all()
  std::condition_variable cv_;  // with mutex_: stop() and release_all() wake the thread
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> joined_{false};
  std::atomic<std::uint32_t> owned_{0};
  std::atomic<std::uint32_t> missing_{0};
  std::atomic<bool> started_{false};
  std::unique_ptr<std::atomic<std::int64_t>[]> pending_;      // per partition, -1 = not held / not read
  std::unique_ptr<std::atomic<std::int64_t>[]> ack_pending_;  // per partition, -1 = not held / not read
};

}  // namespace cdc
