#pragma once
/// The service's outside: what Pipeline(config, ports) runs on in production. Connects both NATS
/// connections, creates/binds the streams and the consumer, and builds the NATS source,
/// completer and publisher, the Redis dedup stores, the INFO probe and the connection monitor.

#include "cdc/core/config.hpp"
#include "cdc/pipeline/pipeline.hpp"

namespace cdc {

/// Start-up zone: validates `config` first (ConfigError), then connects; throws NatsError /
/// ConfigError / std::runtime_error with a precise message, releasing what it built.
/// The ports carry the binary's build information (version, git revision, library versions).
Ports make_service_ports(const Config& config);

}  // namespace cdc
