// The operator HTTP endpoint under hostile clients (issue 13, defects 2 and 3): slow-header
// clients, hundreds to thousands of idle connections, pipelined requests, and a second process
// on the same port. The in-process cases drive cdc::HttpServer with raw sockets; the port case
// runs the service twice against a real nats-server.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "cdc/adapters/http/http_server.hpp"
#include "servers.hpp"

namespace {

using namespace std::chrono_literals;
using cdc::test::free_port;
using Clock = std::chrono::steady_clock;

/// A blocking loopback TCP socket with receive/send timeouts; -1 when the connect fails.
int connect_to(int port, std::chrono::milliseconds timeout = 2000ms) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

/// Reads until the peer closes or the receive timeout passes.
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

/// One probe on a fresh connection: the status code (0 when nothing answered within the
/// timeout) and how long it took.
std::pair<int, Clock::duration> probe(int port, const std::string& path, std::chrono::milliseconds timeout = 2000ms) {
  const auto start = Clock::now();
  const int fd = connect_to(port, timeout);
  if (fd < 0) return {0, Clock::now() - start};
  int status = 0;
  if (send_all(fd, "GET " + path + " HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")) {
    const std::string reply = read_all(fd);
    if (reply.rfind("HTTP/1.1 ", 0) == 0 && reply.size() >= 12) status = std::stoi(reply.substr(9, 3));
  }
  ::close(fd);
  return {status, Clock::now() - start};
}

std::vector<cdc::HttpRoute> test_routes() {
  return {{"/healthz",
           [] {
             return cdc::HttpResponse{200, "application/json", "{\"status\":\"ok\"}\n"};
           }},
          {"/metrics", [] {
             return cdc::HttpResponse{200, "text/plain; version=0.0.4", "metric_a 1\n"};
           }}};
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Latencies {
  std::vector<double> ms_values;
  int failures = 0;
  [[nodiscard]] double p50() const {
    std::vector<double> v = ms_values;
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
  }
  [[nodiscard]] double max() const {
    return ms_values.empty() ? 0 : *std::max_element(ms_values.begin(), ms_values.end());
  }
};

/// Probes /healthz and /metrics alternately every 100 ms for `duration`.
Latencies probe_for(int port, std::chrono::milliseconds duration) {
  Latencies l;
  const auto end = Clock::now() + duration;
  int i = 0;
  while (Clock::now() < end) {
    const auto [status, took] = probe(port, (i++ % 2) == 0 ? "/healthz" : "/metrics");
    if (status != 200) ++l.failures;
    l.ms_values.push_back(ms(took));
    std::this_thread::sleep_for(100ms);
  }
  return l;
}

}  // namespace

TEST_CASE("probes answer in well under a second with slow-header and hundreds of idle clients open",
          "[integration][http]") {
  cdc::HttpServer server("127.0.0.1", 0, test_routes());
  const int port = server.port();
  REQUIRE(probe(port, "/healthz").first == 200);

  // 400 idle connections that never send a byte.
  std::vector<int> idle;
  for (int i = 0; i < 400; ++i) {
    const int fd = connect_to(port);
    REQUIRE(fd >= 0);
    idle.push_back(fd);
  }
  // 8 slow clients trickling one header byte every second, never finishing the request.
  std::atomic<bool> stop{false};
  std::atomic<int> trickle_closed{0};
  std::vector<std::thread> slow;
  for (int i = 0; i < 8; ++i) {
    slow.emplace_back([port, &stop, &trickle_closed] {
      const int fd = connect_to(port);
      if (fd < 0) return;
      const std::string header =
          "GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
      for (std::size_t b = 0; b < header.size() && !stop.load(); ++b) {
        if (!send_all(fd, header.substr(b, 1))) {
          trickle_closed.fetch_add(1);  // the server cut us off
          break;
        }
        char c;
        // A closed connection reads 0 at once; otherwise this waits out the second.
        timeval tv{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (::recv(fd, &c, 1, 0) == 0) {
          trickle_closed.fetch_add(1);
          break;
        }
      }
      ::close(fd);
    });
  }
  std::this_thread::sleep_for(500ms);  // let the slow clients start (not a synchronisation)
  const Latencies l = probe_for(port, 8000ms);
  stop = true;
  for (auto& t : slow) t.join();
  for (const int fd : idle) ::close(fd);
  std::printf(
      "HTTP slow+idle: 8 slow-header clients, 400 idle connections: %zu probes, p50=%.2f ms max=%.2f ms failures=%d\n",
      l.ms_values.size(), l.p50(), l.max(), l.failures);
  CHECK(l.failures == 0);
  CHECK(l.ms_values.size() >= 20);
  CHECK(l.max() < 500.0);
  // The header timeout (5 s by default) cut every slow client off within the 8 s.
  CHECK(trickle_closed.load() == 8);
}

TEST_CASE("two thousand idle connections do not block probes", "[integration][http]") {
  cdc::HttpServer server("127.0.0.1", 0, test_routes());
  const int port = server.port();
  std::vector<int> idle;
  Latencies l;
  for (int i = 0; i < 2000; ++i) {
    const int fd = connect_to(port);
    if (fd >= 0) idle.push_back(fd);
    if (i % 200 == 199) {
      const auto [status, took] = probe(port, "/metrics");
      if (status != 200) ++l.failures;
      l.ms_values.push_back(ms(took));
    }
  }
  const Latencies after = probe_for(port, 2000ms);
  for (const int fd : idle) ::close(fd);
  l.ms_values.insert(l.ms_values.end(), after.ms_values.begin(), after.ms_values.end());
  l.failures += after.failures;
  std::printf("HTTP 2000 idle: %zu connects, %zu probes, p50=%.2f ms max=%.2f ms failures=%d\n", idle.size(),
              l.ms_values.size(), l.p50(), l.max(), l.failures);
  CHECK(idle.size() == 2000);
  CHECK(l.failures == 0);
  CHECK(l.max() < 500.0);
}

TEST_CASE("pipelined requests in one write get one answer each in order", "[integration][http]") {
  cdc::HttpServer server("127.0.0.1", 0, test_routes());
  const int fd = connect_to(server.port());
  REQUIRE(fd >= 0);
  REQUIRE(send_all(fd,
                   "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
                   "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"
                   "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
  const std::string reply = read_all(fd);
  ::close(fd);
  const std::size_t first = reply.find("HTTP/1.1 200");
  const std::size_t second = reply.find("HTTP/1.1 404", first == std::string::npos ? 0 : first + 1);
  const std::size_t third = reply.find("HTTP/1.1 200", second == std::string::npos ? 0 : second + 1);
  INFO(reply);
  REQUIRE(first != std::string::npos);
  REQUIRE(second != std::string::npos);
  REQUIRE(third != std::string::npos);
  CHECK(first < second);
  CHECK(second < third);
  CHECK(reply.find("{\"status\":\"ok\"}") < second);
  CHECK(reply.find("metric_a 1") > third);
}

TEST_CASE("HEAD and 404 and 405 with Allow", "[integration][http]") {
  cdc::HttpServer server("127.0.0.1", 0, test_routes());
  const auto raw = [&server](const std::string& request) {
    const int fd = connect_to(server.port());
    if (fd < 0) return std::string();
    send_all(fd, request);
    std::string reply = read_all(fd);
    ::close(fd);
    return reply;
  };
  const std::string head = raw("HEAD /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  CHECK(head.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(head.find("metric_a") == std::string::npos);
  const std::string del = raw("DELETE /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  CHECK(del.rfind("HTTP/1.1 405", 0) == 0);
  CHECK(del.find("Allow: GET, HEAD") != std::string::npos);
  const std::string post = raw("POST /nope HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
  CHECK(post.rfind("HTTP/1.1 404", 0) == 0);
}

TEST_CASE("the metrics port is bound exclusively", "[integration][http]") {
  cdc::HttpServer first("127.0.0.1", 0, test_routes());
  try {
    cdc::HttpServer second("127.0.0.1", first.port(), test_routes());
    FAIL("a second server bound port " << first.port());
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("Address already in use") != std::string::npos);
  }
}

TEST_CASE("a second service on a taken metrics port exits 1 before connecting to NATS", "[integration][http]") {
  cdc::test::NatsServer nats;
  cdc::test::RedisServer redis;
  const std::uint16_t port = free_port();
  const cdc::test::EnvOverrides env{{"NATS_URL", nats.url()},
                                    {"REDIS_ADDRESS", redis.address()},
                                    {"DAISI_CDC_METRICS_PORT", std::to_string(port)},
                                    {"DAISI_CDC_METRICS_BIND", "127.0.0.1"},
                                    {"LOG_LEVEL", "info"}};
  cdc::test::ServiceProcess first(CDC_BINARY, {}, env);
  REQUIRE(first.wait_for_output("service started", 20s));
  cdc::test::ServiceProcess second(CDC_BINARY, {}, env);
  const auto code = second.wait(20s);
  INFO(second.output());
  CHECK(code == std::optional<int>(1));
  CHECK(second.output().find("cannot bind 127.0.0.1:" + std::to_string(port)) != std::string::npos);
  CHECK(second.output().find("nats connected") == std::string::npos);
  // The first instance still serves the port alone.
  CHECK(probe(port, "/healthz").first == 200);
  CHECK(first.terminate(30s) == 0);
}
