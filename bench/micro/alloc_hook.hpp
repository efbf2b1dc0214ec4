#pragma once
/// Allocation counters of the benchmark binary (alloc_hook.cpp replaces the global operator
/// new/delete and, outside sanitizer builds, interposes malloc/calloc/realloc).

#include <benchmark/benchmark.h>

#include <cstdint>

namespace cdc::bench {

/// Calls of any global operator new since start (all threads).
std::uint64_t operator_new_calls() noexcept;
/// Calls of malloc/calloc/realloc since start, C libraries included (hiredis, nats.c), and
/// operator new's own mallocs; 0 forever when the interposer is compiled out (sanitizers).
std::uint64_t malloc_calls() noexcept;
/// True when malloc_calls() counts (not a sanitizer build).
bool malloc_counted() noexcept;

/// Allocation counters around a benchmark's timed loop, reported per iteration as the counters
/// `allocs_per_event` and (when counted) `mallocs_per_event`.
class AllocScope {
 public:
  AllocScope() : new0_(operator_new_calls()), malloc0_(malloc_calls()) {}
  void report(benchmark::State& state) const {
    const auto n = static_cast<double>(state.iterations());
    state.counters["allocs_per_event"] = static_cast<double>(operator_new_calls() - new0_) / n;
    if (malloc_counted()) state.counters["mallocs_per_event"] = static_cast<double>(malloc_calls() - malloc0_) / n;
  }

 private:
  std::uint64_t new0_, malloc0_;
};

}  // namespace cdc::bench
