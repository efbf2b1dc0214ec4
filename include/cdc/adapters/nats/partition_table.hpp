#pragma once
/// What the fleet (the lease holder, cdc/adapters/nats/fleet.hpp) and the partitioned source
/// share about each partition, lock-free: the fleet decides, the source fetches accordingly and
/// reports back. The publish stage reads it through the PartitionGate port.

#include <atomic>
#include <cstdint>
#include <memory>

#include "cdc/pipeline/ports.hpp"

namespace cdc {

struct PartitionSlot {
  /// Nonzero: this replica fetches and publishes the partition under this lease epoch. Written
  /// by the fleet only (0 when not owned, fenced, or not yet fetchable after a take-over).
  std::atomic<std::uint32_t> epoch{0};
  /// Fleet -> source: hand-over begun, send no more pull requests for this partition.
  std::atomic<bool> stop_fetching{false};
  /// Source -> fleet: no pull request of ours is outstanding for this partition.
  std::atomic<bool> fetch_idle{true};
  /// Source -> fleet: a status said the partition's consumer is gone (deleted, lost).
  std::atomic<bool> consumer_missing{false};
};

class PartitionTable final : public PartitionGate {
 public:
  explicit PartitionTable(std::uint32_t partitions)
      : slots_(std::make_unique<PartitionSlot[]>(partitions)), size_(partitions) {}

  [[nodiscard]] std::uint32_t size() const noexcept { return size_; }
  [[nodiscard]] PartitionSlot& slot(std::uint32_t partition) noexcept { return slots_[partition]; }
  [[nodiscard]] const PartitionSlot& slot(std::uint32_t partition) const noexcept { return slots_[partition]; }

  /// Bumped by the fleet after each change of an epoch or stop_fetching; the source rescans the
  /// slots when it moved.
  [[nodiscard]] std::uint64_t version() const noexcept { return version_.load(std::memory_order_acquire); }
  void changed() noexcept { version_.fetch_add(1, std::memory_order_acq_rel); }

  [[nodiscard]] bool current(std::uint32_t partition, std::uint32_t epoch) const noexcept override {
    return epoch == 0 || (partition < size_ && slots_[partition].epoch.load(std::memory_order_acquire) == epoch);
  }

 private:
  std::unique_ptr<PartitionSlot[]> slots_;
  std::uint32_t size_;
  std::atomic<std::uint64_t> version_{0};
};

}  // namespace cdc
