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

namespace {

/// The next '.'-separated token of `s` from `pos` (pos moves past it and its dot).
std::string_view next_token(std::string_view s, std::size_t& pos) noexcept {
  const std::size_t dot = s.find('.', pos);
  const std::size_t end = dot == std::string_view::npos ? s.size() : dot;
  const std::string_view token = s.substr(pos, end - pos);
  pos = dot == std::string_view::npos ? s.size() + 1 : dot + 1;
  return token;
}

/// NATS subject matching: '*' is one token, a last '>' one or more.
bool subject_matches(std::string_view filter, std::string_view subject) noexcept {
  std::size_t fp = 0;
  std::size_t sp = 0;
  while (fp <= filter.size()) {
    const std::string_view f = next_token(filter, fp);
    if (sp > subject.size()) return false;  // the subject has fewer tokens
    const std::string_view t = next_token(subject, sp);
    if (f == ">") return !t.empty();
    if (f != "*" && f != t) return false;
    if (t.empty()) return false;
  }
  return sp > subject.size();  // the subject has no more tokens
}

}  // namespace

bool partition_takes(const IngestConfig& ingest, std::string_view subject) {
  if (ingest.partitions <= 1) return ingest.filter_subject.empty() || subject_matches(ingest.filter_subject, subject);
  // The partition filters are the layout with each placeholder as '*' and {partition} as a
  // canonical decimal below P: exactly what the layout's split accepts.
  const SubjectLayout layout(ingest.subject_layout, ingest.company_prefix,
                             static_cast<std::uint32_t>(ingest.partitions));
  std::string_view company;
  std::string_view table;
  return layout.split(subject, company, table);
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
