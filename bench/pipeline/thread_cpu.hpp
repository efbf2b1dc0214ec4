#pragma once
/// CPU time per thread of this process, by thread name (/proc/self/task/*/comm and schedstat,
/// nanoseconds). Taking a snapshot before and after a run gives each stage's CPU cost per event
/// without instrumenting the stages.

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
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

// The consumer under test (the service's Pipeline, or the relay) runs inside the harness
// process. Its CPU is that of every thread of the process except the harness's own: the main
// thread (the rate publisher, the polling), the harness's NATS connections (admin, backlog
// loader, rate publisher, latency subscriber) and their callback threads. Those are marked here
// by kernel thread id; the rest (stage threads, the consumer's nats.c and libuv threads, and
// nats.c's process-wide timer thread) is the consumer's.

/// Marks the calling thread as the harness's (idempotent, cheap after the first call per thread).
void mark_harness_thread() noexcept;

/// Marks every thread of the process but the calling one as nats.c's process-wide threads (its
/// timer, asynchronous-callback and garbage-collector threads, started by nats_Open()): call it
/// after nats_Open() and before any connection. They work for every connection of the process,
/// the harness's and the consumer's alike, so they are counted apart (library_thread_cpu_ns()).
void mark_library_threads();

/// Thread id -> CPU ns of nats.c's process-wide threads (mark_library_threads()).
std::map<pid_t, std::uint64_t> library_thread_cpu_ns();

/// Marks as the harness's every thread created while it lives: construct a harness NATS
/// connection inside one. Not while the consumer under test may start threads of its own.
class HarnessThreadScope {
 public:
  HarnessThreadScope();
  ~HarnessThreadScope();
  HarnessThreadScope(const HarnessThreadScope&) = delete;
  HarnessThreadScope& operator=(const HarnessThreadScope&) = delete;

 private:
  std::set<pid_t> before_;
};

/// Thread id -> CPU ns of every thread of the process not marked as the harness's or the library's.
std::map<pid_t, std::uint64_t> consumer_thread_cpu_ns();

/// Sum over the threads of `after` of their CPU since `before` (threads new in `after` count
/// from 0; threads that ended between the two are not seen: take `after` before stopping).
std::uint64_t cpu_delta_sum(const std::map<pid_t, std::uint64_t>& before, const std::map<pid_t, std::uint64_t>& after);

}  // namespace cdc::bench
