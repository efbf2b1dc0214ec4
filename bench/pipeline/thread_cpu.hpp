#pragma once
/// CPU time per thread of this process, by thread name (/proc/self/task/*/comm and schedstat,
/// nanoseconds). Taking a snapshot before and after a run gives each stage's CPU cost per event
/// without instrumenting the stages.

#include <cstdint>
#include <map>
#include <string>

namespace cdc::bench {

/// Thread name -> CPU ns (threads sharing a name are summed). Threads that ended are not seen,
/// so take the second snapshot while the pipeline still runs.
std::map<std::string, std::uint64_t> thread_cpu_ns();

/// after - before, per name (names only in `after` count from 0).
std::map<std::string, std::uint64_t> cpu_delta(const std::map<std::string, std::uint64_t>& before,
                                               const std::map<std::string, std::uint64_t>& after);

/// CPU ns of the whole process (user + system), including threads that already ended.
std::uint64_t process_cpu_ns();

}  // namespace cdc::bench
