#pragma once
/// A small HTTP/1.1 endpoint for operators: a fixed set of GET routes, each answered by a
/// handler that returns the whole response. Other paths answer 404, other methods on a known
/// path 405 (with `Allow: GET, HEAD`); HEAD answers a GET route's headers without its body.
///
/// Built on libmicrohttpd in epoll mode with one internal thread: a connection costs a file
/// descriptor and a few KiB, never a thread, so slow or idle clients cannot hold up a probe.
/// Every connection must deliver its request headers within HttpServerOptions::header_timeout
/// (counted from the connect, or from the end of its previous response), and at most
/// max_connections are open: past that, the oldest connections that are not in a request are
/// closed to make room. Pipelined requests on one connection are answered in order.
///
/// The port is bound exclusively (SO_REUSEADDR for TIME_WAIT only, never SO_REUSEPORT), so a
/// second process on the same port fails instead of sharing it.
///
/// Handlers are called on the server's thread and must be thread-safe with respect to the rest
/// of the process.
///
/// The service's routes (/metrics, /healthz, /readyz) are built by pipeline_routes()
/// (pipeline_http.hpp); the dead-letter worker has its own.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace cdc {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

/// One GET (and HEAD) route: an exact path and the handler that answers it.
struct HttpRoute {
  std::string path;
  std::function<HttpResponse()> handler;
};

/// Limits against slow, idle and too many clients (docs/operations.md, "HTTP endpoint").
struct HttpServerOptions {
  /// A request's headers must be complete this long after the connect (or after the previous
  /// response on a kept-alive connection); otherwise the connection is closed. Also the longest
  /// a kept-alive connection may sit idle between requests.
  std::chrono::milliseconds header_timeout{5000};
  /// A connection with no traffic at all for this long is closed (e.g. a client that stopped
  /// reading its response). Whole seconds, at least 1.
  std::chrono::seconds idle_timeout{10};
  /// Open connections at most; a new one past max_connections - 16 closes the oldest idle ones.
  unsigned max_connections = 256;
};

class HttpServer {
 public:
  /// Binds at once (throws std::runtime_error naming the address and the reason when it
  /// cannot, e.g. the port is taken); port 0 picks a free one (see port()). Serves from then on.
  HttpServer(const std::string& bind, int port, std::vector<HttpRoute> routes, HttpServerOptions options = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  [[nodiscard]] int port() const noexcept { return port_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_;
};

}  // namespace cdc
