#include "cdc/http_server.hpp"

#include <httplib.h>

#include <stdexcept>

namespace cdc {

struct HttpServer::Impl {
  httplib::Server server;
};

HttpServer::HttpServer(const std::string& bind, int port, std::vector<HttpRoute> routes)
    : impl_(std::make_unique<Impl>()), port_(port) {
  auto& srv = impl_->server;
  std::vector<std::string> paths;
  for (auto& route : routes) {
    paths.push_back(route.path);
    srv.Get(route.path, [handler = std::move(route.handler)](const httplib::Request&, httplib::Response& res) {
      HttpResponse r = handler();
      res.status = r.status;
      res.set_content(r.body, r.content_type);
    });
  }
  // Unknown paths: 404; other methods on our paths: 405. Decided before routing, so that a body
  // the request does not frame (a POST without Content-Length) cannot turn either into a 400.
  srv.set_pre_routing_handler([paths = std::move(paths)](const httplib::Request& req, httplib::Response& res) {
    bool ours = false;
    for (const auto& p : paths) ours = ours || req.path == p;
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
