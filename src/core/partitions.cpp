#include "cdc/core/partitions.hpp"

#include <algorithm>

#include "cdc/core/config.hpp"
#include "cdc/core/transform.hpp"

namespace cdc {

std::string partition_consumer(const IngestConfig& ingest, std::uint32_t partition) {
  if (ingest.partitions <= 1) return ingest.consumer;
  return std::string(ingest.consumer).append("-").append(std::to_string(partition));
}

std::string partition_filter(const IngestConfig& ingest, std::uint32_t partition) {
  if (ingest.partitions <= 1) return ingest.filter_subject;
  return SubjectLayout(ingest.subject_layout, ingest.company_prefix, static_cast<std::uint32_t>(ingest.partitions))
      .partition_filter(partition);
}

std::vector<std::uint32_t> assign_partitions(std::span<const std::string> members, std::string_view self,
                                             std::uint32_t partitions) {
  std::vector<std::uint32_t> mine;
  const auto it = std::find(members.begin(), members.end(), self);
  if (it == members.end()) return mine;
  const auto index = static_cast<std::uint32_t>(it - members.begin());
  const auto n = static_cast<std::uint32_t>(members.size());
  for (std::uint32_t p = index; p < partitions; p += n) mine.push_back(p);
  return mine;
}

}  // namespace cdc
