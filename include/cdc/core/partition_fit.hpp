#pragma once
/// Start-up check that the source stream fits ingest.partitions (CONTRACT.md section 11): with
/// P > 1 the server's subject mapping must partition the subjects into P, with P = 1 it must not
/// partition them. Pure: the caller reads the stream (its subjects, its latest stored subjects).

#include <string>
#include <vector>

namespace cdc {

struct IngestConfig;

/// True when every subject `filter` matches is also matched by `pattern` (NATS wildcards '*'
/// and '>'), so a stream listening on `pattern` stores what the filter selects.
bool subject_covers(const std::string& pattern, const std::string& filter);

/// The server mapping that partitions the layout's subjects into ingest.partitions (P > 1):
/// `mappings = { "cdc.*.*": "cdc.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(P,1,2)}}" }`.
std::string partition_mapping(const IngestConfig& ingest);

/// "" when the stream fits, else the reason with the fix (the mapping to add or remove).
/// `stream_subjects` are the stream's configured subjects; `stored` a sample of subjects it
/// stores (its latest message's subject, and with P > 1 the partitioned subjects it holds).
std::string partition_fit_error(const IngestConfig& ingest, const std::vector<std::string>& stream_subjects,
                                const std::vector<std::string>& stored);

}  // namespace cdc
