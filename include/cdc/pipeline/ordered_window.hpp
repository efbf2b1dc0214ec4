#pragma once
/// OrderedWindow: the events a stage has taken and not yet passed on, in the order they came.
/// The dedup stage holds events until their claim is answered, the publish stage until their
/// outcome is final; both pass them on from the front only, so the delivery order is kept.
/// A power-of-two ring of Event*, sized once (the pool size): no allocation after construction.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cdc/core/internal_error.hpp"
#include "cdc/pipeline/event.hpp"

namespace cdc {

class OrderedWindow {
 public:
  /// Room for `capacity` events (rounded up to a power of two).
  explicit OrderedWindow(std::size_t capacity)
      : slots_(std::bit_ceil(capacity < 1 ? std::size_t{1} : capacity), nullptr), mask_(slots_.size() - 1) {}

  /// Appends at the back. The window is sized for the pool, so full is a broken invariant.
  void push(Event* ev) noexcept {
    if (size() == slots_.size()) on_internal_error("ordered window full (an event is in two places)");
    slots_[tail_ & mask_] = ev;
    ++tail_;
  }
  /// The oldest event; requires !empty().
  [[nodiscard]] Event* front() const noexcept { return slots_[head_ & mask_]; }
  /// Removes the oldest event; requires !empty().
  void pop() noexcept { ++head_; }
  /// The i-th event from the front (0 = front); requires i < size().
  [[nodiscard]] Event* at(std::size_t i) const noexcept { return slots_[(head_ + i) & mask_]; }
  [[nodiscard]] std::size_t size() const noexcept { return static_cast<std::size_t>(tail_ - head_); }
  [[nodiscard]] bool empty() const noexcept { return head_ == tail_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return slots_.size(); }
  /// Free-running positions of the front and of the next push: a stage can remember "everything
  /// pushed so far" as back_position() and later compare front_position() against it.
  [[nodiscard]] std::uint64_t front_position() const noexcept { return head_; }
  [[nodiscard]] std::uint64_t back_position() const noexcept { return tail_; }

 private:
  std::vector<Event*> slots_;
  std::size_t mask_;
  std::uint64_t head_ = 0;
  std::uint64_t tail_ = 0;
};

}  // namespace cdc
