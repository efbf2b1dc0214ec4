#include "tcp_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace cdc::test {
namespace {

constexpr int kPollMs = 50;  // how often blocked threads look at the stop flag
constexpr std::size_t kChunk = 64 * 1024;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

bool send_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

struct TcpProxy::Link {
  int client = -1;
  int upstream = -1;
  std::thread up;    // client -> upstream
  std::thread down;  // upstream -> client

  ~Link() {
    if (client >= 0) ::close(client);
    if (upstream >= 0) ::close(upstream);
  }
  /// Wakes both pumps: reads return 0, writes fail.
  void cut() const noexcept {
    ::shutdown(client, SHUT_RDWR);
    ::shutdown(upstream, SHUT_RDWR);
  }
};

TcpProxy::TcpProxy(std::uint16_t upstream_port, std::chrono::milliseconds delay)
    : upstream_port_(upstream_port), delay_ms_(delay.count()) {
  start();
}

TcpProxy::~TcpProxy() { stop(); }

std::string TcpProxy::address() const { return "127.0.0.1:" + std::to_string(port_); }

std::string TcpProxy::nats_url() const { return "nats://" + address(); }

void TcpProxy::start() {
  if (listen_fd_ >= 0) return;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno("socket");
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = loopback(port_);  // port 0 the first time: any free port
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 64) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    throw_errno("proxy listen on 127.0.0.1:" + std::to_string(port_));
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  listen_fd_ = fd;
  stopping_.store(false);
  acceptor_ = std::thread([this] { accept_loop(); });
}

void TcpProxy::stop() {
  if (listen_fd_ < 0) return;
  stopping_.store(true);
  if (acceptor_.joinable()) acceptor_.join();
  ::close(listen_fd_);
  listen_fd_ = -1;
  std::list<std::unique_ptr<Link>> links;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    links.swap(links_);
  }
  for (auto& link : links) link->cut();
  for (auto& link : links) {
    if (link->up.joinable()) link->up.join();
    if (link->down.joinable()) link->down.join();
  }
}

void TcpProxy::accept_loop() {
  while (!stopping_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, kPollMs) <= 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    auto link = std::make_unique<Link>();
    link->client = client;
    link->upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in addr = loopback(upstream_port_);
    if (link->upstream < 0 || ::connect(link->upstream, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      continue;  // the server is down: the client sees its connection closed (Link closes both)
    }
    const int one = 1;
    ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(link->upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    accepted_.fetch_add(1, std::memory_order_relaxed);
    Link& l = *link;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      links_.push_back(std::move(link));
    }
    l.up = std::thread([this, &l] { pump(l, l.client, l.upstream); });
    l.down = std::thread([this, &l] { pump(l, l.upstream, l.client); });
  }
}

void TcpProxy::pump(Link& link, int from, int to) {
  std::unique_ptr<char[]> buffer(new char[kChunk]);
  while (!stopping_.load()) {
    pollfd p{from, POLLIN, 0};
    const int ready = ::poll(&p, 1, kPollMs);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    const ssize_t n = ::recv(from, buffer.get(), kChunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    // The added latency: sleep in short steps so stop() is not held up by a long delay.
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms_.load(std::memory_order_relaxed));
    while (!stopping_.load() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          until - std::chrono::steady_clock::now(), std::chrono::milliseconds(kPollMs)));
    }
    if (!send_all(to, buffer.get(), static_cast<std::size_t>(n))) break;
    bytes_.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
  }
  // One side closed or failed: close the other too, as a plain TCP path would.
  link.cut();
}

}  // namespace cdc::test
