#pragma once
/// Real servers for the end-to-end modes: `nats-server -js` and `redis-server` started as child
/// processes on free loopback ports with their files in a temporary directory, stopped (SIGTERM,
/// then SIGKILL) and cleaned up on destruction. Children die with the harness (PDEATHSIG).

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace cdc::bench {

/// mkdtemp under $TMPDIR or /tmp; removed with its contents on destruction (unless keep()).
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

/// A loopback TCP port that was free a moment ago.
std::uint16_t free_port();

/// CPU time (user + system) of process `pid` so far, ns (clock-tick resolution); 0 if unknown.
std::uint64_t child_cpu_ns(pid_t pid);

class ChildProcess {
 public:
  /// Starts argv[0] (searched on PATH, then /usr/sbin, /usr/bin) with output appended to `log`.
  ChildProcess(std::vector<std::string> argv, const std::string& log);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] bool running();
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

 private:
  pid_t pid_ = -1;
};

/// nats-server -js on a free port; ready once a connection works and JetStream answers. With
/// `partitions` > 1 its config maps cdc.<company>.<table> to cdc.<company>.<table>.<p>
/// (CONTRACT.md section 11), as a partitioned deployment's servers do.
class LocalNats {
 public:
  explicit LocalNats(const std::string& dir, int partitions = 1);
  [[nodiscard]] std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] pid_t pid() const noexcept { return process_.pid(); }

 private:
  std::uint16_t port_;
  ChildProcess process_;
};

/// redis-server without persistence on a free port; ready once PING answers.
class LocalRedis {
 public:
  explicit LocalRedis(const std::string& dir);
  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] pid_t pid() const noexcept { return process_.pid(); }

 private:
  std::uint16_t port_;
  ChildProcess process_;
};

}  // namespace cdc::bench
