#pragma once
/// Real servers and processes for integration tests: `nats-server -js` and `redis-server` on
/// free loopback ports, and the service (or any executable) as a child process.
///
/// Everything is RAII: destructors stop the children (SIGTERM, then SIGKILL after a timeout) and
/// remove their temporary directories, so a failing REQUIRE cleans up like a passing test.
/// Children also get PR_SET_PDEATHSIG(SIGKILL), so they die with the test binary if it crashes;
/// that signal fires when the *thread* that started them exits, so start them from the test's
/// own thread, not from a short-lived worker thread.
///
/// Set CDC_TEST_KEEP_TMP=1 to keep the temporary directories (logs, JetStream storage).
///
/// Thread contract: an object is used from one thread at a time.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace cdc::test {

using namespace std::chrono_literals;

/// A directory under $TMPDIR (or /tmp) removed with its contents on destruction.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "cdc-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

/// A loopback TCP port that was free a moment ago (bind 127.0.0.1:0, read it, close).
[[nodiscard]] std::uint16_t free_port();

/// Full path of `name`: as given when it contains '/', else found on PATH, then in /usr/sbin,
/// /usr/bin, /sbin, /bin. Throws std::runtime_error when not found.
[[nodiscard]] std::string find_executable(const std::string& name);

/// Environment overrides for a child: a value replaces (or adds) the variable, nullopt removes it.
using EnvOverrides = std::map<std::string, std::optional<std::string>>;

/// An executable run as a child process with stdin from /dev/null and stdout+stderr captured
/// in one file. The child runs in its own process group; kill() signals the whole group.
class ServiceProcess {
 public:
  /// Starts `executable` (see find_executable) with `args` (argv[1..]) and the current
  /// environment plus `env`. `output_path` empty: a temp file owned by this object; otherwise
  /// output is appended to that file. Throws std::runtime_error when the exec fails.
  ServiceProcess(const std::string& executable, std::vector<std::string> args, const EnvOverrides& env = {},
                 std::filesystem::path output_path = {});
  /// Stops the child like terminate() when it still runs.
  ~ServiceProcess();
  ServiceProcess(const ServiceProcess&) = delete;
  ServiceProcess& operator=(const ServiceProcess&) = delete;

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  /// True while the child has not exited (reaps it when it has).
  [[nodiscard]] bool running();
  /// Everything the child wrote to stdout and stderr so far.
  [[nodiscard]] std::string output() const;
  [[nodiscard]] const std::filesystem::path& output_path() const noexcept { return output_path_; }
  /// Waits until output() contains `needle`; false on timeout or when the child exited first
  /// without writing it.
  bool wait_for_output(std::string_view needle, std::chrono::milliseconds timeout = 10s);

  /// Sends `signal` to the child (e.g. SIGHUP). No effect once it has exited.
  void signal(int signal);
  /// Waits for the child to exit on its own; its exit code, or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  /// SIGTERM, waits up to `timeout`, then SIGKILL. Returns the exit code: the status for a normal
  /// exit, 128 + signal number when a signal ended it. Returns the saved code when already exited.
  int terminate(std::chrono::milliseconds timeout = 10s);
  /// SIGKILL to the child's process group; returns the exit code (137 unless it had exited).
  int kill();
  /// Exit code once the child has exited and been reaped.
  [[nodiscard]] std::optional<int> exit_code() const noexcept { return exit_code_; }

 private:
  bool reap(bool block);

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::optional<TempDir> own_dir_;
  std::filesystem::path output_path_;
};

/// What NatsServer and RedisServer share: a server binary run as a child on a loopback port
/// chosen once, with its files in a temp dir, its log appended across runs.
class ServerProcess {
 public:
  virtual ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  /// "127.0.0.1:<port>"
  [[nodiscard]] std::string address() const;
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  /// The server's output across all its runs.
  [[nodiscard]] std::string log() const;
  [[nodiscard]] bool running();

  /// Graceful stop (SIGTERM, SIGKILL after `timeout`). No-op when stopped.
  void stop(std::chrono::milliseconds timeout = 10s);
  /// SIGKILL: a crash; storage stays as the server left it.
  void kill();
  /// Starts again on the same port and directory; returns once ready. No-op when running.
  void start();
  /// stop() then start().
  void restart();

 protected:
  ServerProcess(std::string binary, std::chrono::milliseconds start_timeout);
  /// Picks a free port and starts, picking another port if this one was taken meanwhile
  /// (free_port() probes, it does not reserve). Called by the derived constructor.
  void start_first();
  [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_.path(); }

 private:
  /// Command-line arguments for the current port.
  [[nodiscard]] virtual std::vector<std::string> arguments() const = 0;
  /// One readiness probe: true when the server serves; otherwise sets `error`.
  virtual bool ready(std::string& error) = 0;
  void launch_and_wait();

  std::string binary_;
  std::chrono::milliseconds start_timeout_;
  TempDir dir_;
  std::uint16_t port_ = 0;
  std::optional<ServiceProcess> process_;
};

struct NatsServerOptions {
  bool jetstream = true;
  /// Written to a config file when non-zero. The default lets bodies over 1 MiB (CONTRACT.md
  /// section 6, `oversized`) and their dead letters reach JetStream; 0 = the server's 1 MB.
  std::int64_t max_payload = 4 << 20;
  /// Extra lines for the config file (nats-server config syntax), e.g. "max_pending: 64MB".
  std::vector<std::string> config_lines;
  /// Extra command-line arguments, after the ones this class sets.
  std::vector<std::string> extra_args;
  std::chrono::milliseconds start_timeout = 15s;
  /// Ready also needs the JetStream API to answer. A clustered node cannot answer before a
  /// quorum of its peers runs (no meta leader yet): NatsCluster waits for the cluster instead.
  bool wait_for_jetstream = true;
};

/// The config line that partitions the source subjects as CONTRACT.md section 11 asks:
/// `mappings = { "<prefix>.*.*": "<prefix>.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(P,1,2)}}" }`,
/// so a publish to `cdc.<company>.<table>` is stored on `cdc.<company>.<table>.<p>`, p in [0, P),
/// the same p for every message of one company and table. For NatsServerOptions::config_lines
/// and NatsClusterOptions::config_lines.
[[nodiscard]] std::string partition_mapping(std::uint32_t partitions, std::string_view prefix = "cdc");

/// `nats-server -a 127.0.0.1 -p <free port> [-js -sd <dir>/store] [-c <dir>/nats-server.conf]`.
/// Ready once a nats.c connection works and, with JetStream (and wait_for_jetstream), the
/// JetStream API answers.
class NatsServer final : public ServerProcess {
 public:
  explicit NatsServer(NatsServerOptions options = {});

  /// "nats://127.0.0.1:<port>"
  [[nodiscard]] std::string url() const;
  /// JetStream storage directory (kept across restart() and kill()).
  [[nodiscard]] std::filesystem::path store_dir() const;

 private:
  [[nodiscard]] std::vector<std::string> arguments() const override;
  bool ready(std::string& error) override;

  NatsServerOptions options_;
};

struct NatsClusterOptions {
  std::size_t nodes = 3;
  std::string name = "cdc-test";  ///< cluster name; nodes are server_name n0, n1, ...
  std::int64_t max_payload = 4 << 20;
  /// Per node start, and for the cluster's JetStream (meta leader, peers) afterwards.
  std::chrono::milliseconds start_timeout = 30s;
  /// Extra lines for every node's config file (nats-server config syntax), e.g.
  /// partition_mapping(8): a subject mapping is per server, so every node needs it.
  std::vector<std::string> config_lines;
};

/// A JetStream cluster of NatsServer nodes on loopback: each node runs `nats-server -js` with
/// its own temp dir, store and config file (server_name, a cluster block listening on a free
/// loopback port with routes to the other nodes). Replicated (R>1) streams need it.
///
/// Ready (constructor, start()) once every node serves clients and JetStream has a meta leader
/// that can place a stream on every node (a memory stream of R<nodes> is created and deleted).
class NatsCluster {
 public:
  explicit NatsCluster(NatsClusterOptions options = {});
  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;

  [[nodiscard]] std::size_t size() const noexcept { return nodes_.size(); }
  [[nodiscard]] NatsServer& node(std::size_t i) { return *nodes_.at(i); }
  /// Every node's client URL, comma-separated (as NATS_URL for a cluster), killed ones included.
  [[nodiscard]] std::string url() const;
  /// The running nodes' client URLs, comma-separated (for probes after a kill).
  [[nodiscard]] std::string running_url();
  /// server_name of node i ("n<i>").
  [[nodiscard]] std::string server_name(std::size_t i) const;
  /// Index of the node with that server_name or client URL ("nats://127.0.0.1:<port>");
  /// size() when none.
  [[nodiscard]] std::size_t index_of(std::string_view name_or_url) const;
  [[nodiscard]] bool running(std::size_t i) { return nodes_.at(i)->running(); }

  /// SIGKILL node i (a crash: its store stays).
  void kill(std::size_t i);
  /// Starts node i again (same ports and store) and waits until the cluster is ready.
  void start(std::size_t i);
  /// Waits until JetStream can place a stream on every node, or, while a node is down, until a
  /// meta leader answers (streams may still be electing leaders); throws on timeout.
  void wait_ready();

 private:
  NatsClusterOptions options_;
  std::vector<std::uint16_t> cluster_ports_;
  std::vector<std::unique_ptr<NatsServer>> nodes_;
};

struct RedisServerOptions {
  std::vector<std::string> extra_args;
  std::chrono::milliseconds start_timeout = 15s;
};

/// `redis-server --port <free port> --bind 127.0.0.1 --save '' --appendonly no --dir <dir>`.
/// Ready once PING answers PONG. Data does not survive a restart (nothing is persisted).
class RedisServer final : public ServerProcess {
 public:
  explicit RedisServer(RedisServerOptions options = {});

  /// "redis://127.0.0.1:<port>"
  [[nodiscard]] std::string url() const;

 private:
  [[nodiscard]] std::vector<std::string> arguments() const override;
  bool ready(std::string& error) override;

  RedisServerOptions options_;
};

}  // namespace cdc::test
