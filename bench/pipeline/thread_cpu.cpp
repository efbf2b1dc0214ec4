#include "pipeline/thread_cpu.hpp"

#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

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

std::uint64_t process_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace cdc::bench
