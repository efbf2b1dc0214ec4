#include "cdc/http_server.hpp"

#include <httplib.h>

#include <stdexcept>

#include "cdc/pipeline.hpp"
#include "cdc/stage.hpp"

namespace cdc {

struct HttpServer::Impl {
  httplib::Server server;
};

HttpServer::HttpServer(Pipeline& pipeline, const std::string& bind, int port, std::chrono::milliseconds stall_timeout)
    : impl_(std::make_unique<Impl>()), port_(port) {
  auto& srv = impl_->server;
  srv.Get("/metrics", [&pipeline](const httplib::Request&, httplib::Response& res) {
    res.set_content(pipeline.render_metrics(), "text/plain; version=0.0.4; charset=utf-8");
  });
  srv.Get("/healthz", [&pipeline, stall_timeout](const httplib::Request&, httplib::Response& res) {
    const HealthReport h = pipeline.health();
    // Stalled: messages are held but nothing has been completed for stall_timeout.
    const std::int64_t since = h.last_completion_ns == 0 ? 0 : now_ns() - h.last_completion_ns;
    const bool stalled = h.in_flight > 0 && h.last_completion_ns != 0 &&
                         since > std::chrono::duration_cast<std::chrono::nanoseconds>(stall_timeout).count();
    res.status = stalled ? 503 : 200;
    res.set_content(stalled ? "{\"status\":\"stalled\"}\n" : "{\"status\":\"ok\"}\n", "application/json");
  });
  srv.Get("/readyz", [&pipeline](const httplib::Request&, httplib::Response& res) {
    const HealthReport h = pipeline.health();
    const bool ready = h.running && h.nats_connected && (h.redis_up || h.redis_degraded_ok);
    res.status = ready ? 200 : 503;
    std::string body = "{\"ready\":";
    body += ready ? "true" : "false";
    body += ",\"running\":";
    body += h.running ? "true" : "false";
    body += ",\"nats_connected\":";
    body += h.nats_connected ? "true" : "false";
    body += ",\"redis_up\":";
    body += h.redis_up ? "true" : "false";
    body += ",\"redis_degraded\":";
    body += h.redis_degraded_ok ? "true" : "false";
    body += "}\n";
    res.set_content(body, "application/json");
  });
  for (const char* path : {"/metrics", "/healthz", "/readyz"}) {
    auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
      res.status = 405;
      res.set_header("Allow", "GET");
    };
    srv.Post(path, not_allowed);
    srv.Put(path, not_allowed);
    srv.Delete(path, not_allowed);
    srv.Patch(path, not_allowed);
  }
  if (port == 0) {
    port_ = srv.bind_to_any_port(bind.c_str());
    if (port_ <= 0) throw std::runtime_error("metrics: cannot bind " + bind + ":0");
  } else if (!srv.bind_to_port(bind.c_str(), port)) {
    throw std::runtime_error("metrics: cannot bind " + bind + ":" + std::to_string(port) + " (in use?)");
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "cdc-http");
    impl_->server.listen_after_bind();
  });
}

HttpServer::~HttpServer() {
  impl_->server.stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace cdc
