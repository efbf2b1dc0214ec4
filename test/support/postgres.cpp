#include "postgres.hpp"

#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace cdc::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string find_bindir() {
  if (const char* env = std::getenv("CDC_TEST_PG_BINDIR"); env != nullptr && *env != '\0') return env;
  std::vector<std::filesystem::path> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    if (std::filesystem::exists(entry.path() / "bin" / "initdb")) found.push_back(entry.path() / "bin");
  }
  if (!found.empty()) {
    // Newest major version first ("15" > "13"; compare numerically).
    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
      return std::atoi(a.parent_path().filename().c_str()) > std::atoi(b.parent_path().filename().c_str());
    });
    return found.front().string();
  }
  return std::filesystem::path(find_executable("initdb")).parent_path().string();
}

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void chown_tree(const std::filesystem::path& root, unsigned uid, unsigned gid) {
  if (::chown(root.c_str(), uid, gid) != 0) throw std::runtime_error("chown " + root.string() + " failed");
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (::lchown(entry.path().c_str(), uid, gid) != 0)
      throw std::runtime_error("chown " + entry.path().string() + " failed");
  }
}

}  // namespace

PostgresServer::PostgresServer(PostgresServerOptions options)
    : options_(std::move(options)), bindir_(find_bindir()), dir_("cdc-postgres") {
  if (::geteuid() == 0) {
    // initdb and postgres refuse root: run them as the package's system user.
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) pw = ::getpwnam("nobody");
    if (pw == nullptr) throw std::runtime_error("running as root and neither user postgres nor nobody exists");
    owner_ = std::make_pair(static_cast<unsigned>(pw->pw_uid), static_cast<unsigned>(pw->pw_gid));
    // The owner must reach the directory: TMPDIR itself must be searchable by it (/tmp is).
    std::filesystem::permissions(dir_.path(), std::filesystem::perms::owner_all);
    chown_tree(dir_.path(), owner_->first, owner_->second);
  }
  {
    auto [exe, args] = as_owner("initdb", {"-D", (dir_.path() / "data").string(), "-U", "postgres", "-A", "trust", "-E",
                                           "UTF8", "--locale=C", "--no-sync", "--no-instructions"});
    ServiceProcess initdb(exe, std::move(args), EnvOverrides{{"LC_ALL", "C"}}, dir_.path() / "initdb.log");
    const auto code = initdb.wait(std::chrono::seconds(120));
    if (code != std::optional<int>(0)) {
      throw std::runtime_error("initdb failed (exit " + std::to_string(code.value_or(-1)) + "):\n" +
                               read_all(dir_.path() / "initdb.log"));
    }
  }
  for (int attempt = 0;; ++attempt) {
    port_ = free_port();
    try {
      launch_and_wait();
      return;
    } catch (const std::exception&) {
      const bool taken = log().find("already in use") != std::string::npos;
      if (!taken || attempt >= 2) throw;
      kill();
    }
  }
}

PostgresServer::~PostgresServer() {
  try {
    stop();
  } catch (...) {
    // A destructor must not throw; the server is killed or was already gone.
  }
}

std::pair<std::string, std::vector<std::string>> PostgresServer::as_owner(const std::string& binary,
                                                                          std::vector<std::string> args) const {
  const std::string path = bindir_ + "/" + binary;
  if (!owner_) return {path, std::move(args)};
  std::vector<std::string> out{"--reuid=" + std::to_string(owner_->first), "--regid=" + std::to_string(owner_->second),
                               "--clear-groups", "--", path};
  out.insert(out.end(), args.begin(), args.end());
  return {find_executable("setpriv"), std::move(out)};
}

std::string PostgresServer::conninfo(const std::string& dbname) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + dbname + " user=postgres";
}

std::string PostgresServer::log() const { return read_all(dir_.path() / "postgres.log"); }

bool PostgresServer::running() { return process_ && process_->running(); }

void PostgresServer::launch_and_wait() {
  process_.reset();
  std::vector<std::string> args{"-D", (dir_.path() / "data").string(), "-p", std::to_string(port_), "-h", "127.0.0.1",
                                "-c", "unix_socket_directories=",      "-c", "max_connections=40"};
  if (options_.fast) {
    // Not synchronous_commit=off: that acknowledges a COMMIT before its WAL leaves shared
    // memory, so a killed server loses it (kill() must lose nothing committed).
    for (const char* s : {"fsync=off", "full_page_writes=off"}) {
      args.insert(args.end(), {"-c", s});
    }
  }
  for (const auto& s : options_.extra_settings) args.insert(args.end(), {"-c", s});
  auto [executable, argv] = as_owner("postgres", std::move(args));
  process_.emplace(executable, std::move(argv), EnvOverrides{{"LC_ALL", "C"}}, dir_.path() / "postgres.log");
  const auto deadline = Clock::now() + options_.start_timeout;
  const std::string ping = conninfo() + " connect_timeout=1";
  while (true) {
    if (!process_->running()) {
      throw std::runtime_error("postgres exited with code " + std::to_string(process_->exit_code().value_or(-1)) +
                               " before it was ready; log:\n" + log());
    }
    if (PQping(ping.c_str()) == PQPING_OK) return;
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("postgres on port " + std::to_string(port_) + " not ready; log:\n" + log());
}

void PostgresServer::stop(std::chrono::milliseconds timeout) {
  if (!process_) return;
  if (process_->running()) {
    process_->signal(SIGINT);
    if (!process_->wait(timeout)) process_->kill();
  }
  process_.reset();
}

void PostgresServer::kill() {
  if (process_) process_->kill();
  process_.reset();
}

void PostgresServer::start() {
  if (!running()) launch_and_wait();
}

}  // namespace cdc::test
