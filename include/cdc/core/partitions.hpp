#pragma once
/// Source partitions (CONTRACT.md section 11): which durable consumer and filter subject serve
/// partition p, and how the partitions are spread over the live replicas. Pure functions; the
/// leases that make one replica the owner are the fleet's (cdc/adapters/nats/fleet.hpp).

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cdc {

struct IngestConfig;

/// The durable consumer of partition `partition`: ingest.consumer with one partition (today's
/// name, so an unpartitioned deployment keeps its consumer), "<consumer>-<p>" with several.
std::string partition_consumer(const IngestConfig& ingest, std::uint32_t partition);

/// The filter subject of partition `partition`'s consumer: ingest.filter_subject with one
/// partition (empty = every subject of the stream), else the subject layout with each
/// placeholder as '*' and {partition} as the number ("cdc.*.*.3").
std::string partition_filter(const IngestConfig& ingest, std::uint32_t partition);

/// The partitions `self` should own when `members` (sorted, unique) are the live replicas:
/// partition p goes to members[p % n], so n members own P/n or P/n + 1 each. Empty when `self`
/// is not among them.
std::vector<std::uint32_t> assign_partitions(std::span<const std::string> members, std::string_view self,
                                             std::uint32_t partitions);

}  // namespace cdc
