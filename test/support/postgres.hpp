#pragma once
/// A throw-away PostgreSQL cluster for integration tests: `initdb` into a temp dir, `postgres`
/// on a free loopback port (TCP only, trust authentication, superuser `postgres`), stopped and
/// removed on destruction.
///
/// PostgreSQL refuses to run as root. When the test runs as root (containers, CI), initdb and
/// postgres run as the `postgres` system user the Debian package creates (else `nobody`),
/// through `setpriv`, with the temp dir handed to that user.
///
/// Binaries: $CDC_TEST_PG_BINDIR, else the newest /usr/lib/postgresql/<version>/bin (Debian's
/// postgresql-15 package, scripts/packages-test.txt), else PATH.
/// Set CDC_TEST_KEEP_TMP=1 to keep the directory (data and log).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "servers.hpp"

namespace cdc::test {

struct PostgresServerOptions {
  /// fsync and full_page_writes off: tests need no durability against a machine crash; a
  /// killed server still recovers every COMMIT it acknowledged (its WAL is in the page cache).
  /// False for measurements.
  bool fast = true;
  std::vector<std::string> extra_settings;  ///< "name=value", passed as -c name=value
  std::chrono::milliseconds start_timeout = std::chrono::seconds(30);
};

class PostgresServer {
 public:
  explicit PostgresServer(PostgresServerOptions options = {});
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  /// libpq keyword string for database `dbname` as superuser postgres.
  [[nodiscard]] std::string conninfo(const std::string& dbname = "postgres") const;
  /// The server's output across its runs.
  [[nodiscard]] std::string log() const;
  [[nodiscard]] bool running();

  /// Fast shutdown (SIGINT: open sessions are cut, committed work is kept); SIGKILL after
  /// `timeout`. No-op when stopped.
  void stop(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  /// SIGKILL of the whole process group: a crash; the next start() recovers.
  void kill();
  /// Starts again on the same port and data; returns once it accepts connections.
  void start();

 private:
  /// Executable and arguments that run `binary` with `args` as the cluster's owner (through
  /// setpriv when we are root).
  [[nodiscard]] std::pair<std::string, std::vector<std::string>> as_owner(const std::string& binary,
                                                                          std::vector<std::string> args) const;
  void launch_and_wait();

  PostgresServerOptions options_;
  std::string bindir_;
  TempDir dir_;
  std::uint16_t port_ = 0;
  std::optional<std::pair<unsigned, unsigned>> owner_;  ///< uid, gid when running as root
  std::optional<ServiceProcess> process_;
};

}  // namespace cdc::test
