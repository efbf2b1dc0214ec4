#include "pipeline/local_servers.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace cdc::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::string find_executable(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream ss(path);
    std::string d;
    while (std::getline(ss, d, ':')) dirs.push_back(d);
  }
  for (const char* d : {"/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin"}) dirs.emplace_back(d);
  for (const auto& d : dirs) {
    const std::string candidate = d + "/" + name;
    if (!d.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw std::runtime_error(name + " not found on PATH or in /usr/sbin, /usr/bin (apt-get install " + name + ")");
}

bool redis_pong(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    timeval tv{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    constexpr std::string_view kPing = "*1\r\n$4\r\nPING\r\n";
    char buf[16] = {};
    ok = ::send(fd, kPing.data(), kPing.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(kPing.size()) &&
         ::recv(fd, buf, sizeof buf - 1, 0) > 0 && std::strncmp(buf, "+PONG", 5) == 0;
  }
  ::close(fd);
  return ok;
}

bool jetstream_ready(const std::string& url) {
  natsConnection* nc = nullptr;
  natsOptions* opts = nullptr;
  natsOptions_Create(&opts);
  natsOptions_SetURL(opts, url.c_str());
  natsOptions_SetTimeout(opts, 1000);
  natsOptions_SetAllowReconnect(opts, false);
  bool ok = false;
  if (natsConnection_Connect(&nc, opts) == NATS_OK) {
    jsCtx* js = nullptr;
    if (natsConnection_JetStream(&js, nc, nullptr) == NATS_OK) {
      jsAccountInfo* ai = nullptr;
      jsErrCode err = static_cast<jsErrCode>(0);
      ok = js_GetAccountInfo(&ai, js, nullptr, &err) == NATS_OK;
      jsAccountInfo_Destroy(ai);
      jsCtx_Destroy(js);
    }
    natsConnection_Destroy(nc);
  }
  natsOptions_Destroy(opts);
  return ok;
}

template <typename Ready>
void wait_ready(const std::string& what, ChildProcess& child, Ready ready) {
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (!ready()) {
    if (!child.running()) throw std::runtime_error(what + " exited during start-up (see its log)");
    if (Clock::now() > deadline) throw std::runtime_error(what + " not ready after 20 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::vector<std::string> nats_arguments(const std::string& dir, std::uint16_t port, int partitions) {
  std::vector<std::string> args{"nats-server",        "-a",  "127.0.0.1", "-p",
                                std::to_string(port), "-js", "-sd",       dir + "/jetstream"};
  if (partitions > 1) {
    const std::string path = dir + "/nats-server.conf";
    std::ofstream out(path);
    out << "mappings = { \"cdc.*.*\": \"cdc.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(" << partitions
        << ",1,2)}}\" }\n";
    if (!out) throw std::runtime_error("cannot write " + path);
    args.insert(args.end(), {"-c", path});
  }
  return args;
}

}  // namespace

TempDir::TempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::system_error(errno, std::generic_category(), "mkdtemp");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  if (!ok) throw std::system_error(errno, std::generic_category(), "bind 127.0.0.1:0");
  return ntohs(addr.sin_port);
}

std::uint64_t child_cpu_ns(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  std::getline(in, text);
  const std::size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  // Fields after the command: state(3) ... utime(14) stime(15).
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  const long hz = ::sysconf(_SC_CLK_TCK);
  return (utime + stime) * (1'000'000'000ULL / static_cast<unsigned long long>(hz > 0 ? hz : 100));
}

ChildProcess::ChildProcess(std::vector<std::string> argv, const std::string& log) {
  argv[0] = find_executable(argv[0]);
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) throw std::system_error(errno, std::generic_category(), "open " + log);
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::setpgid(0, 0);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  ::close(out);
}

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void ChildProcess::stop(std::chrono::milliseconds grace) {
  if (!running()) return;
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + grace;
  while (Clock::now() < deadline) {
    if (!running()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

ChildProcess::~ChildProcess() { stop(); }

LocalNats::LocalNats(const std::string& dir, int partitions)
    : port_(free_port()), process_(nats_arguments(dir, port_, partitions), dir + "/nats-server.log") {
  wait_ready("nats-server", process_, [this] { return jetstream_ready(url()); });
}

LocalRedis::LocalRedis(const std::string& dir)
    : port_(free_port()),
      process_({"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                "no", "--dir", dir},
               dir + "/redis-server.log") {
  wait_ready("redis-server", process_, [this] { return redis_pong(port_); });
}

}  // namespace cdc::bench
