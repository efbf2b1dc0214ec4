#include "servers.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "jetstream_probe.hpp"

extern char** environ;

namespace cdc::test {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

/// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) noexcept : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const noexcept { return fd_; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

bool tcp_accepts(std::uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string tail(const std::string& text, std::size_t bytes = 4000) {
  return text.size() <= bytes ? text : "..." + text.substr(text.size() - bytes);
}

bool keep_tmp() {
  const char* keep = std::getenv("CDC_TEST_KEEP_TMP");
  return keep != nullptr && *keep != '\0' && std::string_view(keep) != "0";
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

/// The child side of fork(): only async-signal-safe calls until execve.
[[noreturn]] void exec_child(const char* path, char* const* argv, char* const* envp, int output_fd, int error_fd,
                             pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
  ::setpgid(0, 0);

  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (const int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD}) ::signal(sig, SIG_DFL);

  const int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd < 0 || ::dup2(null_fd, STDIN_FILENO) < 0 || ::dup2(output_fd, STDOUT_FILENO) < 0 ||
      ::dup2(output_fd, STDERR_FILENO) < 0 || ::dup2(error_fd, 3) < 0) {
    const int err = errno;
    [[maybe_unused]] const auto n = ::write(error_fd, &err, sizeof err);
    ::_exit(127);
  }
  ::fcntl(3, F_SETFD, FD_CLOEXEC);
  // Sockets and files of the test process (NATS connections...) must not live on in the child.
  ::close_range(4, ~0U, 0);

  ::execve(path, argv, envp);
  const int err = errno;
  [[maybe_unused]] const auto n = ::write(3, &err, sizeof err);
  ::_exit(127);
}

std::vector<std::string> merged_environment(const EnvOverrides& overrides) {
  std::map<std::string, std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const auto eq = text.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  for (const auto& [name, value] : overrides) {
    if (value) {
      env[name] = *value;
    } else {
      env.erase(name);
    }
  }
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [name, value] : env) out.push_back(name + "=" + value);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// TempDir, free_port, find_executable

TempDir::TempDir(std::string_view prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" + std::string(prefix) + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw_errno("mkdtemp " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  if (keep_tmp()) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::uint16_t free_port() {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw_errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) throw_errno("bind 127.0.0.1:0");
  socklen_t len = sizeof addr;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) throw_errno("getsockname");
  return ntohs(addr.sin_port);
}

std::string find_executable(const std::string& name) {
  const auto executable = [](const std::filesystem::path& p) { return ::access(p.c_str(), X_OK) == 0; };
  if (name.find('/') != std::string::npos) {
    if (!executable(name)) throw std::runtime_error("not an executable: " + name);
    return name;
  }
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::string_view rest(path);
    while (!rest.empty()) {
      const auto colon = rest.find(':');
      dirs.emplace_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  for (const char* dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"}) dirs.emplace_back(dir);
  for (const auto& dir : dirs) {
    if (dir.empty()) continue;
    const auto candidate = std::filesystem::path(dir) / name;
    if (executable(candidate)) return candidate.string();
  }
  throw std::runtime_error("executable not found on PATH, /usr/sbin or /usr/bin: " + name);
}

// ---------------------------------------------------------------------------------------------
// ServiceProcess

ServiceProcess::ServiceProcess(const std::string& executable, std::vector<std::string> args, const EnvOverrides& env,
                               std::filesystem::path output_path) {
  const std::string path = find_executable(executable);
  if (output_path.empty()) {
    own_dir_.emplace("cdc-process");
    output_path_ = own_dir_->path() / "output.log";
  } else {
    output_path_ = std::move(output_path);
  }
  Fd output(::open(output_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (output.get() < 0) throw_errno("open " + output_path_.string());

  // Everything the child needs is prepared before fork(): it may not allocate afterwards.
  std::vector<std::string> argv_strings;
  argv_strings.reserve(args.size() + 1);
  argv_strings.push_back(path);
  for (auto& arg : args) argv_strings.push_back(std::move(arg));
  std::vector<std::string> env_strings = merged_environment(env);
  const std::vector<char*> argv = c_strings(argv_strings);
  const std::vector<char*> envp = c_strings(env_strings);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw_errno("pipe2");
  Fd error_read(pipe_fds[0]);
  Fd error_write(pipe_fds[1]);

  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw_errno("fork");
  if (pid_ == 0) exec_child(path.c_str(), argv.data(), envp.data(), output.get(), error_write.get(), parent);

  ::setpgid(pid_, pid_);  // also in the parent, so kill() never races the child's own setpgid
  error_write.reset();
  int child_errno = 0;
  ssize_t n = 0;
  do {
    n = ::read(error_read.get(), &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    reap(true);
    throw std::system_error(child_errno, std::generic_category(), "exec " + path);
  }
}

ServiceProcess::~ServiceProcess() {
  try {
    terminate(10s);
  } catch (...) {
    // A destructor must not throw; the child is killed or was already gone.
  }
}

bool ServiceProcess::reap(bool block) {
  if (exit_code_) return true;
  int status = 0;
  pid_t r = 0;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    exit_code_ = decode_status(status);
    return true;
  }
  if (r < 0) {
    exit_code_ = -1;  // not our child any more (cannot happen unless someone else reaped it)
    return true;
  }
  return false;
}

bool ServiceProcess::running() { return !reap(false); }

std::string ServiceProcess::output() const { return read_file(output_path_); }

bool ServiceProcess::wait_for_output(std::string_view needle, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (output().find(needle) != std::string::npos) return true;
    if (!running()) return output().find(needle) != std::string::npos;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

void ServiceProcess::signal(int signal) {
  if (!running()) return;
  ::kill(pid_, signal);
}

std::optional<int> ServiceProcess::wait(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!reap(false)) {
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
  return exit_code_;
}

int ServiceProcess::terminate(std::chrono::milliseconds timeout) {
  if (reap(false)) return *exit_code_;
  ::kill(pid_, SIGTERM);
  if (const auto code = wait(timeout)) return *code;
  return kill();
}

int ServiceProcess::kill() {
  if (reap(false)) return *exit_code_;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  reap(true);
  return *exit_code_;
}

// ---------------------------------------------------------------------------------------------
// ServerProcess

ServerProcess::ServerProcess(std::string binary, std::chrono::milliseconds start_timeout)
    : binary_(std::move(binary)), start_timeout_(start_timeout), dir_("cdc-" + binary_) {}

ServerProcess::~ServerProcess() {
  try {
    stop();
  } catch (...) {
    // A destructor must not throw; the child is killed or was already gone.
  }
}

std::string ServerProcess::address() const { return "127.0.0.1:" + std::to_string(port_); }
std::string ServerProcess::log() const { return read_file(dir_.path() / (binary_ + ".log")); }
bool ServerProcess::running() { return process_ && process_->running(); }

void ServerProcess::stop(std::chrono::milliseconds timeout) {
  if (process_) process_->terminate(timeout);
  process_.reset();
}

void ServerProcess::kill() {
  if (process_) process_->kill();
  process_.reset();
}

void ServerProcess::start() {
  if (!running()) launch_and_wait();
}

void ServerProcess::restart() {
  stop();
  start();
}

void ServerProcess::start_first() {
  for (int attempt = 0;; ++attempt) {
    port_ = free_port();
    try {
      launch_and_wait();
      return;
    } catch (const std::exception&) {
      const std::string text = log();
      const bool port_taken = text.find("address already in use") != std::string::npos ||
                              text.find("Address already in use") != std::string::npos;
      if (!port_taken || attempt >= 2) throw;
      stop();
    }
  }
}

void ServerProcess::launch_and_wait() {
  process_.reset();
  process_.emplace(binary_, arguments(), EnvOverrides{}, dir_.path() / (binary_ + ".log"));
  const auto deadline = Clock::now() + start_timeout_;
  std::string error = "not started";
  while (true) {
    if (!process_->running()) {
      throw std::runtime_error(binary_ + " exited with code " + std::to_string(process_->exit_code().value_or(-1)) +
                               " before it was ready; log:\n" + tail(log()));
    }
    if (ready(error)) return;
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(20ms);
  }
  throw std::runtime_error(binary_ + " on port " + std::to_string(port_) + " not ready after " +
                           std::to_string(start_timeout_.count()) + " ms (" + error + "); log:\n" + tail(log()));
}

// ---------------------------------------------------------------------------------------------
// NatsServer

std::string partition_mapping(std::uint32_t partitions, std::string_view prefix) {
  if (partitions == 0) throw std::invalid_argument("partition_mapping: partitions must be at least 1");
  const std::string p(prefix);
  return std::string("mappings = { \"")
      .append(p)
      .append(".*.*\": \"")
      .append(p)
      .append(".{{wildcard(1)}}.{{wildcard(2)}}.{{partition(")
      .append(std::to_string(partitions))
      .append(",1,2)}}\" }");
}

NatsServer::NatsServer(NatsServerOptions options)
    : ServerProcess("nats-server", options.start_timeout), options_(std::move(options)) {
  if (options_.max_payload > 0 || !options_.config_lines.empty()) {
    std::ofstream out(dir() / "nats-server.conf");
    if (options_.max_payload > 0) out << "max_payload: " << options_.max_payload << "\n";
    for (const auto& line : options_.config_lines) out << line << "\n";
    if (!out) throw std::runtime_error("cannot write " + (dir() / "nats-server.conf").string());
  }
  start_first();
}

std::string NatsServer::url() const { return "nats://" + address(); }
std::filesystem::path NatsServer::store_dir() const { return dir() / "store"; }

std::vector<std::string> NatsServer::arguments() const {
  std::vector<std::string> args{"-a", "127.0.0.1", "-p", std::to_string(port())};
  if (options_.jetstream) args.insert(args.end(), {"-js", "-sd", store_dir().string()});
  if (const auto config = dir() / "nats-server.conf"; std::filesystem::exists(config)) {
    args.insert(args.end(), {"-c", config.string()});
  }
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  return args;
}

bool NatsServer::ready(std::string& error) {
  if (!tcp_accepts(port())) {
    error = "no TCP connection";
    return false;
  }
  try {
    const JetStreamProbe probe(url(), 2s);
    if (!options_.jetstream || !options_.wait_for_jetstream || probe.jetstream_ready()) return true;
    error = "JetStream API not answering";
  } catch (const std::exception& e) {
    error = e.what();
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// NatsCluster

NatsCluster::NatsCluster(NatsClusterOptions options) : options_(std::move(options)) {
  if (options_.nodes == 0) throw std::invalid_argument("NatsCluster needs at least one node");
  // Route ports first: every node's config names the others'. free_port() only probes, so make
  // sure the picks differ; the client ports are picked (and retried) by each node's start.
  while (cluster_ports_.size() < options_.nodes) {
    const std::uint16_t p = free_port();
    if (std::find(cluster_ports_.begin(), cluster_ports_.end(), p) == cluster_ports_.end()) cluster_ports_.push_back(p);
  }
  for (std::size_t i = 0; i < options_.nodes; ++i) {
    NatsServerOptions node;
    node.max_payload = options_.max_payload;
    node.start_timeout = options_.start_timeout;
    node.wait_for_jetstream = false;  // no meta leader until a quorum runs: wait_ready() below
    std::string routes;
    for (std::size_t j = 0; j < options_.nodes; ++j) {
      if (j == i) continue;
      routes +=
          (routes.empty() ? "" : ", ") + std::string("nats-route://127.0.0.1:") + std::to_string(cluster_ports_[j]);
    }
    node.config_lines = {
        "server_name: " + server_name(i), "cluster {",
        "  name: " + options_.name,       "  listen: 127.0.0.1:" + std::to_string(cluster_ports_[i]),
        "  routes: [" + routes + "]",     "}",
    };
    node.config_lines.insert(node.config_lines.end(), options_.config_lines.begin(), options_.config_lines.end());
    nodes_.push_back(std::make_unique<NatsServer>(std::move(node)));
  }
  wait_ready();
}

// Appended piece by piece: `(out.empty() ? "" : ",") + n->url()` makes GCC 12 -O3 warn
// (-Wrestrict inside basic_string, GCC bug 105329).
std::string NatsCluster::url() const {
  std::string out;
  for (const auto& n : nodes_) {
    if (!out.empty()) out += ',';
    out += n->url();
  }
  return out;
}

std::string NatsCluster::running_url() {
  std::string out;
  for (const auto& n : nodes_) {
    if (!n->running()) continue;
    if (!out.empty()) out += ',';
    out += n->url();
  }
  return out;
}

std::string NatsCluster::server_name(std::size_t i) const { return "n" + std::to_string(i); }

std::size_t NatsCluster::index_of(std::string_view name_or_url) const {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (name_or_url == server_name(i) || name_or_url == nodes_[i]->url()) return i;
  }
  return nodes_.size();
}

void NatsCluster::kill(std::size_t i) { nodes_.at(i)->kill(); }

void NatsCluster::start(std::size_t i) {
  nodes_.at(i)->start();
  wait_ready();
}

void NatsCluster::wait_ready() {
  const auto deadline = Clock::now() + options_.start_timeout;
  std::string error = "not tried";
  for (int attempt = 0;; ++attempt) {
    std::size_t up = 0;
    for (const auto& n : nodes_) up += n->running() ? 1 : 0;
    try {
      JetStreamProbe probe(running_url(), 5s);
      if (up < nodes_.size()) {
        // A node is down: its peers only notice after a while, so placing a stream on "every
        // running node" may still pick the dead one. A meta leader that answers is enough.
        if (probe.jetstream_ready()) return;
        error = "no JetStream meta leader";
      } else {
        // Every node up: a stream of R<nodes> proves every node is a JetStream peer. A fresh
        // name per attempt, so a half-created one of an earlier attempt is not in the way.
        StreamConfig check;
        check.name = "_cdc_cluster_ready_" + std::to_string(attempt);
        check.subjects = {check.name};
        check.memory_storage = true;
        check.replicas = static_cast<int>(up);
        probe.create_stream(check);
        probe.delete_stream(check.name);
        return;
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(100ms);
  }
  std::string logs;
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    logs += "\n--- " + server_name(i) + ":\n" + tail(nodes_[i]->log(), 1500);
  throw std::runtime_error("JetStream cluster not ready after " + std::to_string(options_.start_timeout.count()) +
                           " ms (" + error + ")" + logs);
}

// ---------------------------------------------------------------------------------------------
// RedisServer

RedisServer::RedisServer(RedisServerOptions options)
    : ServerProcess("redis-server", options.start_timeout), options_(std::move(options)) {
  start_first();
}

std::string RedisServer::url() const { return "redis://" + address(); }

std::vector<std::string> RedisServer::arguments() const {
  std::vector<std::string> args{"--port", std::to_string(port()), "--bind", "127.0.0.1", "--save",
                                "",       "--appendonly",         "no",     "--dir",     dir().string()};
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  return args;
}

bool RedisServer::ready(std::string& error) {
  struct ContextDeleter {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
  };
  struct ReplyDeleter {
    void operator()(void* r) const noexcept { freeReplyObject(r); }
  };
  const timeval timeout{1, 0};
  const std::unique_ptr<redisContext, ContextDeleter> context(redisConnectWithTimeout("127.0.0.1", port(), timeout));
  if (!context || context->err != 0) {
    error = context ? context->errstr : "redisConnect failed";
    return false;
  }
  const std::unique_ptr<void, ReplyDeleter> reply(redisCommand(context.get(), "PING"));
  const auto* r = static_cast<const redisReply*>(reply.get());
  if (r != nullptr && r->type == REDIS_REPLY_STATUS && std::string_view(r->str, r->len) == "PONG") return true;
  // A server started with --requirepass serves, and wants a password first.
  if (r != nullptr && r->type == REDIS_REPLY_ERROR && std::string_view(r->str, r->len).rfind("NOAUTH", 0) == 0)
    return true;
  error = r != nullptr && r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "no PONG";
  return false;
}

}  // namespace cdc::test
