#include "cdc/adapters/http/pipeline_routes.hpp"

#include <string>

#include "cdc/pipeline/pipeline.hpp"
#include "cdc/pipeline/link.hpp"

namespace cdc {

namespace {
const char* json_bool(bool b) { return b ? "true" : "false"; }
}  // namespace

std::vector<HttpRoute> pipeline_routes(Pipeline& pipeline) {
  std::vector<HttpRoute> routes;
  routes.push_back({"/metrics", [&pipeline] {
                      return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", pipeline.render_metrics()};
                    }});
  routes.push_back({"/healthz", [&pipeline] {
                      const HealthReport h = pipeline.health();
                      std::string body = "{\"status\":\"";
                      body += h.stalled ? "stalled" : "ok";
                      body += "\",\"waiting_ms\":" + std::to_string(h.waiting_ms);
                      body += ",\"in_flight\":" + std::to_string(h.in_flight);
                      body += ",\"backlog\":" + std::to_string(h.backlog);
                      body += ",\"completed\":" + std::to_string(h.completed);
                      body += ",\"failing_ms\":" + std::to_string(h.failing_ms);
                      body += "}\n";
                      return HttpResponse{h.stalled ? 503 : 200, "application/json", std::move(body)};
                    }});
  routes.push_back({"/readyz", [&pipeline] {
                      const HealthReport h = pipeline.health();
                      const bool ready = h.ready();
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
                      body += ",\"fleet_ready\":";
                      body += json_bool(h.fleet_ready);
                      body += ",\"output_streams\":";
                      body += json_bool(h.outputs_present);
                      body += "}\n";
                      return HttpResponse{ready ? 200 : 503, "application/json", std::move(body)};
                    }});
  return routes;
}

}  // namespace cdc
