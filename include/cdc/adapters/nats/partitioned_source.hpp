#pragma once
/// The partitioned pull source: one durable pull consumer per source partition, fetched only
/// while the fleet says this replica owns the partition (PartitionTable), all through one core
/// subscription, so one blocking wait covers every partition and an idle replica sleeps.

#include <memory>

#include "cdc/core/config.hpp"
#include "cdc/adapters/nats/nats_connection.hpp"
#include "cdc/adapters/nats/partition_table.hpp"
#include "cdc/pipeline/ports.hpp"

namespace cdc {

/// Pull requests ($JS.API.CONSUMER.MSG.NEXT) on the consumers of the partitions whose slot has
/// a nonzero epoch and no stop_fetching; one outstanding request per partition, its batch bounded
/// by the free slots the caller offers. Messages carry their partition and the epoch they were
/// fetched under; those of a partition fenced meanwhile are released without an ack (JetStream
/// redelivers them to the next owner after AckWait). Reports fetch_idle and consumer_missing
/// back through the table. `table` and `nats` must outlive the source. Throws NatsError.
std::unique_ptr<MessageSource> make_partitioned_source(NatsConnection& nats, const Config& config,
                                                       PartitionTable& table);

}  // namespace cdc
