#pragma once
/// A small HTTP/1.1 endpoint for operators: a fixed set of GET routes, each answered by a
/// handler that returns the whole response. Other paths answer 404, other methods on a known
/// path 405 (with `Allow: GET, HEAD`). Runs its own thread; handlers are called on that thread
/// and must be thread-safe with respect to the rest of the process.
///
/// The service's routes (/metrics, /healthz, /readyz) are built by pipeline_routes()
/// (pipeline_http.hpp); the dead-letter worker has its own.

#include <functional>
#include <memory>
#include <string>
#include <thread>
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

class HttpServer {
 public:
  /// Binds at once (throws std::runtime_error naming the address when it cannot); port 0 picks
  /// a free one (see port()).
  HttpServer(const std::string& bind, int port, std::vector<HttpRoute> routes);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  [[nodiscard]] int port() const noexcept { return port_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_;
  std::thread thread_;
};

}  // namespace cdc
