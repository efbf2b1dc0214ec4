#pragma once
/// HTTP endpoint for operators (CONTRACT.md section 7, docs/operations.md):
///   GET /metrics  Prometheus text format 0.0.4
///   GET /healthz  liveness: 503 when work is pending and nothing has completed for
///                 health.stall_timeout (the pipeline's monitor decides), else 200
///   GET /readyz   readiness: 200 when the pipeline runs, NATS is connected and Redis is up or
///                 the degraded policy (dedup.on_redis_error: publish) is declared, else 503
/// Other paths answer 404, other methods on these paths 405. Runs its own thread; reads the
/// pipeline only through its thread-safe accessors.

#include <memory>
#include <string>
#include <thread>

namespace cdc {

class Pipeline;

class HttpServer {
 public:
  /// Binds at once (throws std::runtime_error naming the address when it cannot); port 0 picks
  /// a free one (see port()).
  HttpServer(Pipeline& pipeline, const std::string& bind, int port);
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
