#pragma once
/// Allocation counters of the benchmark binary (alloc_hook.cpp replaces the global operator
/// new/delete and, outside sanitizer builds, interposes malloc/calloc/realloc).

#include <cstdint>

namespace cdc::bench {

/// Calls of any global operator new since start (all threads).
std::uint64_t operator_new_calls() noexcept;
/// Calls of malloc/calloc/realloc since start, C libraries included (hiredis, nats.c), and
/// operator new's own mallocs; 0 forever when the interposer is compiled out (sanitizers).
std::uint64_t malloc_calls() noexcept;
/// True when malloc_calls() counts (not a sanitizer build).
bool malloc_counted() noexcept;

}  // namespace cdc::bench
