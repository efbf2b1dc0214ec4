#pragma once
/// The service's operator routes (CONTRACT.md section 7, docs/operations.md):
///   GET /metrics  Prometheus text format 0.0.4
///   GET /healthz  liveness: 503 when work is pending and nothing has completed for
///                 health.stall_timeout (the pipeline's monitor decides), else 200
///   GET /readyz   readiness: 200 when the pipeline runs, NATS is connected and Redis is up or
///                 the degraded policy (dedup.on_redis_error: publish) is declared, else 503
/// The handlers read the pipeline only through its thread-safe accessors.

#include <vector>

#include "cdc/adapters/http/http_server.hpp"

namespace cdc {

class Pipeline;

/// The routes above, bound to `pipeline` (which must outlive the server that serves them).
[[nodiscard]] std::vector<HttpRoute> pipeline_routes(Pipeline& pipeline);

}  // namespace cdc
