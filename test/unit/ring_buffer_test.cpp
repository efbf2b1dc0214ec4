#include "cdc/core/ring_buffer.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>

#include "cdc/core/wait_strategy.hpp"

namespace {

using cdc::RingBuffer;

/// Two words, so a torn or stale slot read shows up as a mismatch between them.
struct Item {
  std::uint64_t seq;
  std::uint64_t check;
};
constexpr std::uint64_t kMix = 0x9e3779b97f4a7c15ULL;
Item item(std::uint64_t seq) { return Item{seq, seq * kMix}; }

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::uint64_t kStressItems = 500'000;  // sanitizers slow each operation 5-20x
#else
constexpr std::uint64_t kStressItems = 5'000'000;
#endif

struct StressResult {
  std::uint64_t received = 0;
  std::uint64_t mismatches = 0;
  std::uint64_t first_bad_index = 0;
  Item first_bad{0, 0};
  std::uint64_t timeouts = 0;  ///< waits that gave up: a lost wake-up would show here
  std::size_t left_in_ring = 0;
};

/// One producer, one consumer (this thread), both waiting with park: the producer when the ring is
/// full, the consumer when it is empty. Every value must arrive exactly once and in order.
StressResult stress(std::size_t capacity, std::uint64_t n) {
  RingBuffer<Item> ring(capacity);
  cdc::WaitStrategy not_empty(cdc::WaitStrategyKind::kBlocking);  // consumer waits on it, producer notifies
  cdc::WaitStrategy not_full(cdc::WaitStrategyKind::kBlocking);   // producer waits on it, consumer notifies
  std::atomic<bool> producer_done{false};
  std::atomic<std::uint64_t> producer_timeouts{0};
  constexpr auto kWait = std::chrono::seconds(5);

  std::thread producer([&] {
    for (std::uint64_t i = 0; i < n; ++i) {
      while (!ring.try_push(item(i))) {
        if (!not_full.wait_for([&] { return ring.size() < ring.capacity(); }, kWait)) {
          producer_timeouts.fetch_add(1, std::memory_order_relaxed);
        }
      }
      not_empty.notify();
    }
    producer_done.store(true, std::memory_order_release);
    not_empty.notify();
  });

  StressResult r;
  while (true) {
    Item* f = ring.front();
    if (f == nullptr) {
      if (producer_done.load(std::memory_order_acquire) && ring.front() == nullptr) break;
      if (!not_empty.wait_for([&] { return ring.front() != nullptr || producer_done.load(std::memory_order_acquire); },
                              kWait)) {
        ++r.timeouts;
      }
      continue;
    }
    if (f->seq != r.received || f->check != r.received * kMix) {
      if (r.mismatches++ == 0) {
        r.first_bad_index = r.received;
        r.first_bad = *f;
      }
    }
    ++r.received;
    ring.pop();
    not_full.notify();
  }
  producer.join();
  r.timeouts += producer_timeouts.load();
  r.left_in_ring = ring.size();
  return r;
}

}  // namespace

TEST_CASE("capacity must be a power of two >= 2", "[ring]") {
  for (std::size_t bad : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{1000}, std::size_t{1025}}) {
    INFO("capacity " << bad);
    CHECK_THROWS_AS(RingBuffer<int>(bad), std::invalid_argument);
  }
  CHECK_THROWS_WITH(RingBuffer<int>(1000), Catch::Contains("1000"));
  for (std::size_t good : {std::size_t{2}, std::size_t{64}, std::size_t{1024}, std::size_t{1} << 20}) {
    INFO("capacity " << good);
    RingBuffer<int> ring(good);
    CHECK(ring.capacity() == good);
    CHECK(ring.empty());
  }
}

TEST_CASE("a new ring is empty", "[ring]") {
  RingBuffer<int> ring(8);
  CHECK(ring.empty());
  CHECK(ring.size() == 0);
  CHECK(ring.front() == nullptr);
  int out = -1;
  CHECK_FALSE(ring.try_pop(out));
  CHECK(out == -1);
}

TEST_CASE("values come out in the order they went in", "[ring]") {
  RingBuffer<int> ring(16);
  for (int i = 0; i < 16; ++i) REQUIRE(ring.try_push(i * 3));
  for (int i = 0; i < 16; ++i) {
    int out = -1;
    REQUIRE(ring.try_pop(out));
    CHECK(out == i * 3);
  }
  CHECK(ring.empty());
}

TEST_CASE("full and empty edges", "[ring]") {
  RingBuffer<int> ring(4);
  for (int i = 0; i < 4; ++i) {
    CHECK(ring.size() == static_cast<std::size_t>(i));
    REQUIRE(ring.try_push(i));
  }
  // Every slot is usable: a capacity-4 ring holds 4, not 3.
  CHECK(ring.size() == 4);
  CHECK_FALSE(ring.empty());
  CHECK_FALSE(ring.try_push(99));
  CHECK_FALSE(ring.try_push(100));
  CHECK(ring.size() == 4);

  // A refused push did not overwrite anything; one pop makes room for exactly one push.
  int out = -1;
  REQUIRE(ring.try_pop(out));
  CHECK(out == 0);
  CHECK(ring.size() == 3);
  CHECK(ring.try_push(4));
  CHECK_FALSE(ring.try_push(5));
  for (int expected = 1; expected <= 4; ++expected) {
    REQUIRE(ring.try_pop(out));
    CHECK(out == expected);
  }
  CHECK(ring.empty());
  CHECK(ring.front() == nullptr);
  CHECK_FALSE(ring.try_pop(out));
  CHECK(ring.try_push(6));  // usable again after draining
  CHECK(ring.size() == 1);
}

TEST_CASE("front() shows the oldest value until pop()", "[ring]") {
  RingBuffer<Item> ring(4);
  REQUIRE(ring.try_push(item(10)));
  REQUIRE(ring.try_push(item(11)));

  Item* first = ring.front();
  REQUIRE(first != nullptr);
  CHECK(first->seq == 10);
  CHECK(ring.front() == first);  // peeking does not consume
  CHECK(ring.size() == 2);

  // The consumer may work on the slot in place before releasing it.
  first->check = 7;
  CHECK(ring.front()->check == 7);
  ring.pop();
  CHECK(ring.size() == 1);

  Item* second = ring.front();
  REQUIRE(second != nullptr);
  CHECK(second->seq == 11);
  CHECK(second->check == 11 * kMix);
  ring.pop();
  CHECK(ring.front() == nullptr);
  CHECK(ring.empty());
}

TEST_CASE("wrap-around over many cycles matches a reference queue", "[ring]") {
  for (std::size_t capacity : {std::size_t{2}, std::size_t{4}, std::size_t{8}}) {
    INFO("capacity " << capacity);
    RingBuffer<std::uint64_t> ring(capacity);
    std::deque<std::uint64_t> model;
    std::mt19937_64 rng(capacity);
    std::uint64_t next = 0;
    std::uint64_t pushed = 0;
    std::uint64_t mismatches = 0;
    for (int step = 0; step < 400'000; ++step) {
      if (rng() % 2 == 0) {
        const bool accepted = ring.try_push(next);
        if (accepted != (model.size() < capacity)) ++mismatches;
        if (accepted) {
          model.push_back(next++);
          ++pushed;
        }
      } else {
        std::uint64_t out = 0;
        const bool got = ring.try_pop(out);
        if (got != !model.empty()) ++mismatches;
        if (got) {
          if (out != model.front()) ++mismatches;
          model.pop_front();
        }
      }
      if (ring.size() != model.size()) ++mismatches;
    }
    CHECK(mismatches == 0);
    // Indices went round the ring many times.
    CHECK(pushed / capacity > 10'000);
  }
}

TEST_CASE("fill and drain cycles keep order across the index wrap", "[ring]") {
  RingBuffer<std::uint64_t> ring(8);
  std::uint64_t in = 0;
  std::uint64_t out = 0;
  std::uint64_t bad = 0;
  for (int cycle = 0; cycle < 100'000; ++cycle) {
    const int fill = 1 + cycle % 8;  // 1..8, so the ring is sometimes exactly full
    for (int i = 0; i < fill; ++i) {
      if (!ring.try_push(in++)) ++bad;
    }
    if (fill == 8 && ring.try_push(~0ULL)) ++bad;
    std::uint64_t v = 0;
    while (ring.try_pop(v)) {
      if (v != out++) ++bad;
    }
  }
  CHECK(bad == 0);
  CHECK(in == out);
  CHECK(in == 450'000);
}

TEST_CASE("two threads: every value arrives once and in order (capacity 64)", "[ring][stress]") {
  const StressResult r = stress(64, kStressItems);
  CHECK(r.received == kStressItems);
  INFO("first bad value at index " << r.first_bad_index << ": seq " << r.first_bad.seq);
  CHECK(r.mismatches == 0);
  CHECK(r.timeouts == 0);
  CHECK(r.left_in_ring == 0);
}

TEST_CASE("two threads: every value arrives once and in order (capacity 1024)", "[ring][stress]") {
  const StressResult r = stress(1024, kStressItems);
  CHECK(r.received == kStressItems);
  INFO("first bad value at index " << r.first_bad_index << ": seq " << r.first_bad.seq);
  CHECK(r.mismatches == 0);
  CHECK(r.timeouts == 0);
  CHECK(r.left_in_ring == 0);
}
