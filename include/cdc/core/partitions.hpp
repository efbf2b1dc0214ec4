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

/// Whether some partition's consumer takes `subject` (it matches partition_filter(ingest, p)
/// for a p below ingest.partitions; with one partition: ingest.filter_subject matches, or it is
/// empty). A stored subject for which this is false is never consumed: the fleet reports it
/// (cdc_consumer_unconsumed_messages). With several partitions this is the subject layout's own
/// split (SubjectLayout, which checks the {partition} token); it builds the layout, so it
/// allocates: for the fleet's periodic check, not for a hot path.
bool partition_takes(const IngestConfig& ingest, std::string_view subject);

}  // namespace cdc
