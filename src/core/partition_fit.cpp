#include "cdc/core/partition_fit.hpp"

#include <string_view>

#include "cdc/core/config.hpp"
#include "cdc/core/transform.hpp"

namespace cdc {
namespace {

std::vector<std::string_view> tokens(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = s.find('.', start);
    out.push_back(s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return out;
}

/// The layout without its trailing ".{partition}" token (the subjects the producer publishes).
std::string unpartitioned_layout(const IngestConfig& ingest) {
  const std::string& layout = ingest.subject_layout;
  static constexpr std::string_view kToken = ".{partition}";
  if (layout.size() > kToken.size() && layout.compare(layout.size() - kToken.size(), kToken.size(), kToken) == 0)
    return layout.substr(0, layout.size() - kToken.size());
  return layout;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out.append(out.empty() ? "" : ", ").append(s);
  return out;
}

}  // namespace

bool subject_covers(const std::string& pattern, const std::string& filter) {
  const auto p = tokens(pattern);
  const auto f = tokens(filter);
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] == ">") return f.size() > i;
    if (i >= f.size()) return false;
    if (f[i] == ">") return false;  // the filter takes more tokens than the pattern can
    if (p[i] == "*") continue;
    if (p[i] != f[i]) return false;
  }
  return p.size() == f.size();
}

std::string partition_mapping(const IngestConfig& ingest) {
  const std::string source = SubjectLayout(unpartitioned_layout(ingest), ingest.company_prefix).filter_subject();
  std::string target;
  std::string wildcards;
  int n = 0;
  for (const auto token : tokens(source)) {
    if (!target.empty()) target += '.';
    if (token == "*") {
      ++n;
      target.append("{{wildcard(").append(std::to_string(n)).append(")}}");
      wildcards.append(wildcards.empty() ? "" : ",").append(std::to_string(n));
    } else {
      target.append(token);
    }
  }
  target.append(".{{partition(")
      .append(std::to_string(ingest.partitions))
      .append(wildcards.empty() ? "" : ",")
      .append(wildcards)
      .append(")}}");
  return std::string("mappings = { \"").append(source).append("\": \"").append(target).append("\" }");
}

std::string partition_fit_error(const IngestConfig& ingest, const std::vector<std::string>& stream_subjects,
                                const std::vector<std::string>& stored) {
  const auto partitions = static_cast<std::uint32_t>(ingest.partitions);
  const std::string plain_layout = unpartitioned_layout(ingest);
  const SubjectLayout plain(plain_layout, ingest.company_prefix);
  const SubjectLayout partitioned(plain_layout + ".{partition}", ingest.company_prefix);
  std::string_view company;
  std::string_view table;
  if (partitions <= 1) {
    for (const auto& subject : stored) {
      if (!plain.split(subject, company, table) && partitioned.split(subject, company, table)) {
        return std::string("ingest.partitions is 1 but stream ")
            .append(ingest.stream)
            .append(" stores partitioned subjects (")
            .append(subject)
            .append("): set ingest.partitions to the server mapping's partition count and ingest.subject_layout to ")
            .append(plain_layout)
            .append(".{partition}, or remove the mapping");
      }
    }
    return {};
  }
  const std::string advice = std::string(" Add to the nats-server configuration (every server of the cluster): ")
                                 .append(partition_mapping(ingest))
                                 .append(" and keep ingest.subject_layout ")
                                 .append(ingest.subject_layout)
                                 .append("; changing the partition count means a drain (docs/operations.md).");
  const std::string filter =
      SubjectLayout(ingest.subject_layout, ingest.company_prefix, partitions).partition_filter(0);
  bool covered = false;
  for (const auto& s : stream_subjects) covered = covered || subject_covers(s, filter);
  if (!covered) {
    return std::string("stream ")
        .append(ingest.stream)
        .append(" listens on [")
        .append(join(stream_subjects))
        .append("], which does not take the partitioned subjects ")
        .append(SubjectLayout(ingest.subject_layout, ingest.company_prefix).filter_subject())
        .append(" of ingest.partitions ")
        .append(std::to_string(partitions))
        .append(": add that subject (or a wider one) to the stream.")
        .append(advice);
  }
  const SubjectLayout bounded(ingest.subject_layout, ingest.company_prefix, partitions);
  for (const auto& subject : stored) {
    if (bounded.split(subject, company, table)) continue;
    if (plain.split(subject, company, table)) {
      return std::string("stream ")
          .append(ingest.stream)
          .append(" stores unpartitioned subjects (")
          .append(subject)
          .append(") but ingest.partitions is ")
          .append(std::to_string(partitions))
          .append(": the server does not partition them.")
          .append(advice);
    }
    if (partitioned.split(subject, company, table)) {
      return std::string("stream ")
          .append(ingest.stream)
          .append(" stores ")
          .append(subject)
          .append(", a partition outside 0..")
          .append(std::to_string(partitions - 1))
          .append(": the server mapping partitions into another count than ingest.partitions ")
          .append(std::to_string(partitions))
          .append(" (or the stream still holds subjects of an earlier count; purge them after the drain).")
          .append(advice);
    }
  }
  return {};
}

}  // namespace cdc
