#pragma once
/// A loopback TCP relay that makes a server slow or unreachable on demand: the service is
/// pointed at the proxy's port, the proxy relays each connection to the real server, and
/// every chunk it relays waits `delay` first (per direction, so a request/response round trip
/// pays it twice, and a burst of chunks queues behind itself like on a slow link).
///
/// stop() closes the listener and cuts every relayed connection (the client sees the server
/// go away); start() listens again on the same port. RAII: the destructor stops it.
///
/// Thread contract: the public methods are called from one thread (the test's); the relay runs
/// on threads of its own (one accept thread, two pump threads per connection). set_delay() may
/// be called while it relays.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace cdc::test {

class TcpProxy {
 public:
  /// Listens on a free loopback port and relays to 127.0.0.1:`upstream_port`.
  explicit TcpProxy(std::uint16_t upstream_port, std::chrono::milliseconds delay = std::chrono::milliseconds(0));
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  /// "127.0.0.1:<port>"
  [[nodiscard]] std::string address() const;
  /// "nats://127.0.0.1:<port>"
  [[nodiscard]] std::string nats_url() const;

  /// Delay added before each relayed chunk, from now on.
  void set_delay(std::chrono::milliseconds delay) noexcept {
    delay_ms_.store(delay.count(), std::memory_order_relaxed);
  }
  /// Listens again on the same port (no-op when listening).
  void start();
  /// Closes the listener and every relayed connection, and joins their threads.
  void stop();

  /// Connections accepted so far (across start/stop).
  [[nodiscard]] std::uint64_t connections() const noexcept { return accepted_.load(std::memory_order_relaxed); }
  /// Bytes relayed so far, both directions.
  [[nodiscard]] std::uint64_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }

 private:
  struct Link;
  void accept_loop();
  void pump(Link& link, int from, int to);

  std::uint16_t upstream_port_;
  std::uint16_t port_ = 0;
  int listen_fd_ = -1;
  std::atomic<std::int64_t> delay_ms_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::thread acceptor_;
  std::mutex mutex_;                        // guards links_
  std::list<std::unique_ptr<Link>> links_;  // live and finished connections until stop()
};

}  // namespace cdc::test
