// Hand-off between two threads, named by topology like the Disruptor's perf tests:
//   OneToOneThroughput  one producer pushes as fast as it can, one consumer pops (items/s)
//   PingPongLatency     a message goes to the other thread and back (time = one round trip)
// Each for our RingBuffer (spinning, and with the pipeline's park WaitStrategy) and for
// moodycamel::ConcurrentQueue with producer/consumer tokens as the baseline.
// Threads are pinned to two different CPUs when the process may use two (CDC_BENCH_PIN=0: not).

#include <benchmark/benchmark.h>
#include <concurrentqueue/concurrentqueue.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <thread>

#include "cdc/core/ring_buffer.hpp"
#include "cdc/core/wait_strategy.hpp"

namespace cdc::bench {
namespace {

constexpr std::size_t kCapacity = 8192;  // the pipeline's default ring capacity

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/// The two CPUs to pin to, or none.
struct Pinning {
  bool enabled = false;
  int producer = -1, consumer = -1;
  cpu_set_t original{};

  Pinning() {
    CPU_ZERO(&original);
    if (sched_getaffinity(0, sizeof original, &original) != 0) return;
    const char* env = std::getenv("CDC_BENCH_PIN");
    if (env != nullptr && std::string_view(env) == "0") return;
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (!CPU_ISSET(c, &original)) continue;
      if (producer < 0) {
        producer = c;
      } else {
        consumer = c;
        enabled = true;
        break;
      }
    }
  }
  static void pin(int cpu) noexcept {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  }
  void pin_producer() const noexcept {
    if (enabled) pin(producer);
  }
  void pin_consumer() const noexcept {
    if (enabled) pin(consumer);
  }
  void restore() const noexcept {
    if (enabled) pthread_setaffinity_np(pthread_self(), sizeof original, &original);
  }
};

const Pinning& pinning() {
  static const Pinning p;
  return p;
}

/// Our ring; the consumer spins when it finds nothing.
struct SpinRing {
  RingBuffer<std::uint64_t> ring{kCapacity};
  bool push(std::uint64_t v) noexcept { return ring.try_push(v); }
  bool pop(std::uint64_t& v) noexcept { return ring.try_pop(v); }
  void notify() noexcept {}
  template <typename Pred>
  void wait(Pred&&) noexcept {
    cpu_relax();
  }
};

/// Our ring with the pipeline's default wait strategy: spin, yield, then park on a futex; the
/// producer notifies after each push (a fence and a load unless the consumer is parked).
struct ParkRing {
  RingBuffer<std::uint64_t> ring{kCapacity};
  WaitStrategy waiter{WaitStrategyKind::kBlocking};
  bool push(std::uint64_t v) noexcept { return ring.try_push(v); }
  bool pop(std::uint64_t& v) noexcept { return ring.try_pop(v); }
  void notify() noexcept { waiter.notify(); }
  template <typename Pred>
  void wait(Pred&& pred) noexcept {
    waiter.wait_for([&] { return ring.front() != nullptr || pred(); }, std::chrono::milliseconds(10));
  }
};

/// Baseline: moodycamel::ConcurrentQueue with tokens (its fast path for one producer).
struct MoodyQueue {
  moodycamel::ConcurrentQueue<std::uint64_t> queue{kCapacity};
  moodycamel::ProducerToken producer{queue};
  moodycamel::ConsumerToken consumer{queue};
  bool push(std::uint64_t v) noexcept { return queue.try_enqueue(producer, v); }
  bool pop(std::uint64_t& v) noexcept { return queue.try_dequeue(consumer, v); }
  void notify() noexcept {}
  template <typename Pred>
  void wait(Pred&&) noexcept {
    cpu_relax();
  }
};

template <typename Q>
void one_to_one_throughput(benchmark::State& state) {
  auto q = std::make_unique<Q>();
  std::atomic<bool> done{false};
  std::uint64_t received = 0, checksum = 0;
  std::thread consumer([&] {
    pinning().pin_consumer();
    std::uint64_t v = 0;
    while (true) {
      if (q->pop(v)) {
        ++received;
        checksum += v;
        continue;
      }
      if (done.load(std::memory_order_acquire)) {
        while (q->pop(v)) {
          ++received;
          checksum += v;
        }
        break;
      }
      q->wait([&] { return done.load(std::memory_order_acquire); });
    }
  });
  pinning().pin_producer();
  std::uint64_t sent = 0;
  for (auto _ : state) {
    while (!q->push(sent)) cpu_relax();
    q->notify();
    ++sent;
  }
  done.store(true, std::memory_order_release);
  q->notify();
  consumer.join();
  pinning().restore();
  if (received != sent || checksum != sent * (sent - 1) / 2) state.SkipWithError("lost or corrupted items");
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(sizeof(std::uint64_t)));
  state.SetLabel(pinning().enabled ? "pinned" : "unpinned");
}

template <typename Q>
void ping_pong_latency(benchmark::State& state) {
  auto ping = std::make_unique<Q>();
  auto pong = std::make_unique<Q>();
  std::atomic<bool> done{false};
  std::thread echo([&] {
    pinning().pin_consumer();
    std::uint64_t v = 0;
    while (true) {
      if (ping->pop(v)) {
        while (!pong->push(v)) cpu_relax();
        pong->notify();
        continue;
      }
      if (done.load(std::memory_order_acquire)) break;
      ping->wait([&] { return done.load(std::memory_order_acquire); });
    }
  });
  pinning().pin_producer();
  std::uint64_t i = 0, v = 0;
  bool ok = true;
  for (auto _ : state) {
    while (!ping->push(i)) cpu_relax();
    ping->notify();
    while (!pong->pop(v)) pong->wait([] { return false; });
    ok = ok && v == i;
    ++i;
  }
  done.store(true, std::memory_order_release);
  ping->notify();
  echo.join();
  pinning().restore();
  if (!ok) state.SkipWithError("round trip returned the wrong item");
  state.counters["round_trips"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.SetLabel(pinning().enabled ? "pinned" : "unpinned");
}

BENCHMARK(one_to_one_throughput<SpinRing>)->Name("OneToOneThroughput/RingBuffer")->UseRealTime();
BENCHMARK(one_to_one_throughput<ParkRing>)->Name("OneToOneThroughput/RingBuffer+park")->UseRealTime();
BENCHMARK(one_to_one_throughput<MoodyQueue>)->Name("OneToOneThroughput/moodycamel::ConcurrentQueue")->UseRealTime();
BENCHMARK(ping_pong_latency<SpinRing>)->Name("PingPongLatency/RingBuffer")->UseRealTime();
BENCHMARK(ping_pong_latency<ParkRing>)->Name("PingPongLatency/RingBuffer+park")->UseRealTime();
BENCHMARK(ping_pong_latency<MoodyQueue>)->Name("PingPongLatency/moodycamel::ConcurrentQueue")->UseRealTime();

}  // namespace
}  // namespace cdc::bench
