#include "pipeline/thread_cpu.hpp"

#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>

namespace cdc::bench {

std::map<std::string, std::uint64_t> thread_cpu_ns() {
  std::map<std::string, std::uint64_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(entry.path() / "comm");
    std::string name;
    std::getline(comm, name);
    // Unnamed threads inherit the process name: tell the main thread from library threads.
    if (entry.path().filename() == std::to_string(::getpid())) name = "main";
    else if (name == "cdc_pipeline_be") name = "unnamed (nats.c, libuv)";
    std::ifstream sched(entry.path() / "schedstat");
    std::uint64_t run_ns = 0;
    if (!(sched >> run_ns)) continue;  // thread gone meanwhile
    out[name] += run_ns;
  }
  return out;
}

std::map<std::string, std::uint64_t> cpu_delta(const std::map<std::string, std::uint64_t>& before,
                                               const std::map<std::string, std::uint64_t>& after) {
  std::map<std::string, std::uint64_t> out;
  for (const auto& [name, ns] : after) {
    const auto it = before.find(name);
    const std::uint64_t base = it == before.end() ? 0 : it->second;
    out[name] = ns >= base ? ns - base : 0;
  }
  return out;
}

namespace {

std::mutex& harness_mutex() {
  static std::mutex m;
  return m;
}

std::set<pid_t>& harness_tids() {
  static std::set<pid_t> tids;
  return tids;
}

std::set<pid_t>& library_tids() {
  static std::set<pid_t> tids;
  return tids;
}

std::set<pid_t> thread_ids() {
  std::set<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    out.insert(static_cast<pid_t>(std::stol(entry.path().filename().string())));
  }
  return out;
}

}  // namespace

void mark_harness_thread() noexcept {
  thread_local bool marked = false;
  if (marked) return;
  marked = true;
  try {
    const std::lock_guard<std::mutex> lock(harness_mutex());
    harness_tids().insert(::gettid());
  } catch (...) {  // NOLINT(bugprone-empty-catch): an unmarked thread only counts as the consumer's
  }
}

void mark_library_threads() {
  std::set<pid_t> tids = thread_ids();
  tids.erase(::gettid());
  const std::lock_guard<std::mutex> lock(harness_mutex());
  library_tids() = std::move(tids);
}

std::map<pid_t, std::uint64_t> library_thread_cpu_ns() {
  std::set<pid_t> library;
  {
    const std::lock_guard<std::mutex> lock(harness_mutex());
    library = library_tids();
  }
  std::map<pid_t, std::uint64_t> out;
  for (const pid_t tid : library) {
    std::ifstream sched("/proc/self/task/" + std::to_string(tid) + "/schedstat");
    std::uint64_t run_ns = 0;
    if (sched >> run_ns) out[tid] = run_ns;
  }
  return out;
}

HarnessThreadScope::HarnessThreadScope() : before_(thread_ids()) {}

HarnessThreadScope::~HarnessThreadScope() {
  try {
    const std::set<pid_t> now = thread_ids();
    const std::lock_guard<std::mutex> lock(harness_mutex());
    for (const pid_t tid : now) {
      if (before_.count(tid) == 0) harness_tids().insert(tid);
    }
  } catch (...) {  // NOLINT(bugprone-empty-catch): an unmarked thread only counts as the consumer's
  }
}

std::map<pid_t, std::uint64_t> consumer_thread_cpu_ns() {
  const std::set<pid_t> live = thread_ids();
  std::set<pid_t> harness;
  {
    const std::lock_guard<std::mutex> lock(harness_mutex());
    // Forget harness threads that ended (a closed connection's): the kernel may reuse their ids.
    std::erase_if(harness_tids(), [&](pid_t tid) { return live.count(tid) == 0; });
    harness = harness_tids();
    harness.insert(library_tids().begin(), library_tids().end());
  }
  std::map<pid_t, std::uint64_t> out;
  for (const pid_t tid : live) {
    if (harness.count(tid) != 0) continue;
    std::ifstream sched("/proc/self/task/" + std::to_string(tid) + "/schedstat");
    std::uint64_t run_ns = 0;
    if (sched >> run_ns) out[tid] = run_ns;  // else: ended meanwhile
  }
  return out;
}

std::uint64_t cpu_delta_sum(const std::map<pid_t, std::uint64_t>& before, const std::map<pid_t, std::uint64_t>& after) {
  std::uint64_t sum = 0;
  for (const auto& [tid, ns] : after) {
    const auto it = before.find(tid);
    const std::uint64_t base = it == before.end() ? 0 : it->second;
    if (ns > base) sum += ns - base;
  }
  return sum;
}

std::uint64_t process_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace cdc::bench
