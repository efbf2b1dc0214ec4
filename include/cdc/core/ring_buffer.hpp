#pragma once
/// Bounded single-producer/single-consumer ring (after rigtorp/SPSCQueue).
///
/// Thread contract: exactly one thread calls try_push(), exactly one (other) thread calls
/// front()/try_pop()/pop(). Capacity is a power of two; indices are free-running 64-bit counters
/// masked on access, so no slot is wasted. Waiting is not the ring's business: callers pair a ring
/// with a WaitStrategy (wait_strategy.hpp).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace cdc {

inline constexpr std::size_t kCacheLine = 64;

template <typename T>
class RingBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "RingBuffer carries handles, not owners");

 public:
  /// Throws std::invalid_argument unless capacity is a power of two >= 2.
  explicit RingBuffer(std::size_t capacity) : mask_(capacity - 1), slots_(std::make_unique<T[]>(capacity)) {
    if (capacity < 2 || (capacity & (capacity - 1)) != 0) {
      throw std::invalid_argument("ring capacity must be a power of two >= 2, got " + std::to_string(capacity));
    }
  }
  RingBuffer(const RingBuffer&) = delete;
  RingBuffer& operator=(const RingBuffer&) = delete;

  /// Producer only. Returns false when full.
  [[nodiscard]] bool try_push(const T& value) noexcept {
    const std::uint64_t w = write_.load(std::memory_order_relaxed);  // own index
    if (w - read_cached_ > mask_) {
      // acquire: the consumer's release on read_ guarantees it finished reading the slot.
      read_cached_ = read_.load(std::memory_order_acquire);
      if (w - read_cached_ > mask_) return false;
    }
    slots_[w & mask_] = value;
    // release: publishes the slot contents before the new index becomes visible.
    write_.store(w + 1, std::memory_order_release);
    return true;
  }

  /// Consumer only. Pointer to the oldest element, or nullptr when empty.
  [[nodiscard]] T* front() noexcept {
    const std::uint64_t r = read_.load(std::memory_order_relaxed);  // own index
    if (r == write_cached_) {
      // acquire: pairs with the producer's release so the slot contents are visible.
      write_cached_ = write_.load(std::memory_order_acquire);
      if (r == write_cached_) return nullptr;
    }
    return &slots_[r & mask_];
  }

  /// Consumer only. The i-th queued element (0 = front), or nullptr past the last one.
  [[nodiscard]] T* peek(std::size_t i) noexcept {
    const std::uint64_t r = read_.load(std::memory_order_relaxed);
    if (r + i >= write_cached_) {
      write_cached_ = write_.load(std::memory_order_acquire);
      if (r + i >= write_cached_) return nullptr;
    }
    return &slots_[(r + i) & mask_];
  }

  /// Consumer only; requires front() != nullptr.
  void pop() noexcept {
    const std::uint64_t r = read_.load(std::memory_order_relaxed);
    // release: the producer may reuse the slot only after we are done with it.
    read_.store(r + 1, std::memory_order_release);
  }

  /// Consumer only.
  [[nodiscard]] bool try_pop(T& out) noexcept {
    T* f = front();
    if (f == nullptr) return false;
    out = *f;
    pop();
    return true;
  }

  /// Any thread; approximate (for metrics and idle checks).
  [[nodiscard]] std::size_t size() const noexcept {
    const std::uint64_t w = write_.load(std::memory_order_acquire);
    const std::uint64_t r = read_.load(std::memory_order_acquire);
    return w >= r ? static_cast<std::size_t>(w - r) : 0;
  }
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }
  [[nodiscard]] std::size_t capacity() const noexcept { return mask_ + 1; }

 private:
  // Each index on its own cache line, next to the cached copy its owner keeps of the other index,
  // so the hot path rarely touches a line the other thread writes.
  alignas(kCacheLine) std::atomic<std::uint64_t> write_{0};
  std::uint64_t read_cached_ = 0;  // producer's copy of read_
  alignas(kCacheLine) std::atomic<std::uint64_t> read_{0};
  std::uint64_t write_cached_ = 0;  // consumer's copy of write_
  alignas(kCacheLine) const std::uint64_t mask_;
  std::unique_ptr<T[]> slots_;
};

}  // namespace cdc
