#include "cdc/core/config.hpp"
#include "cdc/core/transform.hpp"

namespace cdc {

TransformRules transform_rules(const Config& config) {
  TransformRules r;
  r.subject_layout = config.ingest.subject_layout;
  r.company_prefix = config.ingest.company_prefix;
  r.tables = config.ingest.tables;
  r.key_columns = config.ingest.key_columns;
  r.max_message_bytes = config.ingest.max_message_bytes;
  r.subject_prefix = config.publish.subject_prefix;
  return r;
}

}  // namespace cdc
