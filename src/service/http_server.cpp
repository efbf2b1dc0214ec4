#include "cdc/http_server.hpp"

#include <httplib.h>

#include <stdexcept>

#include "cdc/pipeline.hpp"
#include "cdc/stage.hpp"

namespace cdc {

struct HttpServer::Impl {
  httplib::Server server;
};

namespace {
const char* json_bool(bool b) { return b ? "true" : "false"; }
}  // namespace

HttpServer::HttpServer(Pipeline& pipeline, const std::string& bind, int port)
    : impl_(std::make_unique<Impl>()), port_(port) {
  auto& srv = impl_->server;
  srv.Get("/metrics", [&pipeline](const httplib::Request&, httplib::Response& res) {
    res.set_content(pipeline.render_metrics(), "text/plain; version=0.0.4; charset=utf-8");
  });
  srv.Get("/healthz", [&pipeline](const httplib::Request&, httplib::Response& res) {
    const HealthReport h = pipeline.health();
    res.status = h.stalled ? 503 : 200;
    std::string body = "{\"status\":\"";
    body += h.stalled ? "stalled" : "ok";
    body += "\",\"waiting_ms\":" + std::to_string(h.waiting_ms);
    body += ",\"in_flight\":" + std::to_string(h.in_flight);
    body += ",\"backlog\":" + std::to_string(h.backlog);
    body += ",\"completed\":" + std::to_string(h.completed);
    body += ",\"failing_ms\":" + std::to_string(h.failing_ms);
    body += "}\n";
    res.set_content(body, "application/json");
  });
  srv.Get("/readyz", [&pipeline](const httplib::Request&, httplib::Response& res) {
    const HealthReport h = pipeline.health();
    const bool ready = h.ready();
    res.status = ready ? 200 : 503;
    std::string body = "{\"ready\":";
    body += json_bool(ready);
    body += ",\"running\":";
    body += json_bool(h.running);
    body += ",\"nats_connected\":";
    body += json_bool(h.nats_connected);
    body += ",\"redis_up\":";
    body += json_bool(h.redis_up);
    body += ",\"redis_degraded\":";
    body += json_bool(h.redis_degraded_ok);
    body += "}\n";
    res.set_content(body, "application/json");
  });
  // Unknown paths: 404; other methods on our paths: 405. Decided before routing, so that a body
  // the request does not frame (a POST without Content-Length) cannot turn either into a 400.
  srv.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    const bool ours = req.path == "/metrics" || req.path == "/healthz" || req.path == "/readyz";
    if (ours && (req.method == "GET" || req.method == "HEAD")) return httplib::Server::HandlerResponse::Unhandled;
    res.status = ours ? 405 : 404;
    if (ours) res.set_header("Allow", "GET, HEAD");
    return httplib::Server::HandlerResponse::Handled;
  });
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
