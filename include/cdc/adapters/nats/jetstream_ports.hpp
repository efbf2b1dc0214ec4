#pragma once
/// The NATS implementations of the pipeline's ports (ports.hpp).

#include <memory>
#include <string>

#include "cdc/core/config.hpp"
#include "cdc/adapters/nats/nats_connection.hpp"
#include "cdc/pipeline/ports.hpp"

namespace cdc {

/// Push (sync queue subscription) or pull (fetch) consumer, per ingest.mode. Binds to the
/// durable consumer, which must exist (ensure_jetstream_objects). Throws NatsError.
std::unique_ptr<MessageSource> make_nats_source(NatsConnection& nats, const Config& config, const std::string& filter);

/// natsMsg_Ack / NakWithDelay / Term on the consume connection.
std::unique_ptr<Completer> make_nats_completer(NatsConnection& nats);

/// Core-NATS publishes with per-event reply subjects, and a subscription for their PubAcks on
/// each connection. `batching` (may be null): the batching lane's connection (publish.write_mode
/// adaptive); `nats` is then the eager one.
std::unique_ptr<Publisher> make_nats_publisher(NatsConnection& nats, NatsConnection* batching = nullptr);

}  // namespace cdc
