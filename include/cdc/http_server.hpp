#pragma once
/// HTTP endpoint for operators: GET /metrics, /healthz, /readyz (CONTRACT.md section 7).
/// Runs its own thread; reads the pipeline only through its thread-safe accessors.

#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace cdc {

class Pipeline;

class HttpServer {
 public:
  /// Binds at once (throws std::runtime_error naming the address when it cannot).
  HttpServer(Pipeline& pipeline, const std::string& bind, int port, std::chrono::milliseconds stall_timeout);
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
