// The table rules and the shape rules: which tables are allowed and what each must carry (from
// TransformRules, at start-up), and the contract's shape checks on a walked body, in a fixed
// order so the error reported for a broken message does not depend on the key order of its body.

#include <simdjson.h>

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cdc/core/config.hpp"
#include "cdc/core/subject.hpp"
#include "steps.hpp"

namespace cdc {

TransformRules transform_rules(const Config& config) {
  TransformRules r;
  r.subject_layout = config.ingest.subject_layout;
  r.company_prefix = config.ingest.company_prefix;
  r.partitions = static_cast<std::uint32_t>(config.ingest.partitions);
  r.tables = config.ingest.tables;
  r.key_columns = config.ingest.key_columns;
  r.max_message_bytes = config.ingest.max_message_bytes;
  r.subject_prefix = config.publish.subject_prefix;
  return r;
}

namespace transform_detail {
namespace {

/// A top-level member that must be an object (record, metadata).
bool check_object_member(std::string_view name, Seen seen, const char* what, TransformOutput& out) {
  if (seen == Seen::kOk) return true;
  out.error.assign(name);
  if (seen == Seen::kAbsent || seen == Seen::kNull) {
    out.error.append(seen == Seen::kAbsent ? " is missing" : " is null");
    return reject(out, ErrorKind::kMissingField);
  }
  out.error.append(" is ").append(what).append(", not an object");
  return reject(out, ErrorKind::kInvalidShape);
}

bool check_duplicate_key(const Facts& facts, TransformOutput& out) {
  if (facts.duplicate_in == nullptr) return true;
  // Readers disagree on which copy of a repeated key wins (first here, last in JavaScript,
  // Go, Python): routing by one while row_data carries both could misroute the event.
  out.error.assign(facts.duplicate_in);
  if (facts.duplicate_key.size() <= 64 &&
      simdjson::validate_utf8(facts.duplicate_key.data(), facts.duplicate_key.size())) {
    out.error.append(" has the key \"").append(facts.duplicate_key).append("\" twice");
  } else {
    out.error.append(" has a key twice");
  }
  return reject(out, ErrorKind::kInvalidShape);
}

bool check_action(const Facts& facts, TransformOutput& out) {
  switch (facts.action) {
    case Seen::kAbsent: return reject(out, ErrorKind::kMissingField, "action is missing");
    case Seen::kNull: return reject(out, ErrorKind::kMissingField, "action is null");
    case Seen::kWrongType:
      return reject(
          out, ErrorKind::kInvalidShape,
          facts.action_is_string ? "action is not one of insert, update, delete, read" : "action is not a string");
    case Seen::kOk: break;
  }
  return true;
}

bool check_metadata_scalars(const Facts& facts, const Table& table, TransformOutput& out) {
  if (facts.table_name == Seen::kWrongType) {
    return reject(out, ErrorKind::kInvalidShape, "metadata.table_name is not a string");
  }
  if (facts.table_name == Seen::kOk && facts.table_name_value != table.name) {
    out.error.assign("metadata.table_name \"").append(facts.table_name_value);
    out.error.append("\" does not match the subject's table \"").append(table.name).push_back('"');
    return reject(out, ErrorKind::kTableMismatch);
  }
  if (facts.commit_timestamp == Seen::kWrongType) {
    out.error.assign("metadata.commit_timestamp is ").append(facts.commit_timestamp_what);
    return reject(out, ErrorKind::kInvalidShape);
  }
  return true;
}

void check_subject_prefix(const std::string& prefix) {
  if (prefix.empty()) throw std::invalid_argument("subject_prefix is empty");
  for (std::size_t pos = 0;;) {
    const std::size_t dot = prefix.find('.', pos);
    const std::string_view token =
        std::string_view(prefix).substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (!is_valid_token(token)) {
      throw std::invalid_argument("subject_prefix \"" + prefix + "\" is not a valid subject prefix");
    }
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
}

}  // namespace

std::vector<Table> table_rules(const TransformRules& rules) {
  if (rules.tables.empty()) throw std::invalid_argument("tables is empty");
  if (rules.max_message_bytes == 0) throw std::invalid_argument("max_message_bytes must be greater than 0");
  if (rules.max_message_bytes > 0xFFFFFFF0u) {
    throw std::invalid_argument("max_message_bytes must be below 4 GiB");  // stage 1 uses 32-bit indexes
  }
  check_subject_prefix(rules.subject_prefix);
  std::vector<Table> tables;
  for (const std::string& name : rules.tables) {
    if (!is_valid_token(name)) throw std::invalid_argument("tables: \"" + name + "\" is not a valid subject token");
    for (const Table& t : tables) {
      if (t.name == name) throw std::invalid_argument("tables: \"" + name + "\" is listed twice");
    }
    const auto key = rules.key_columns.find(name);
    if (key == rules.key_columns.end() || key->second.empty()) {
      throw std::invalid_argument("key_columns: table \"" + name + "\" has no key column");
    }
    Table t;
    t.name = name;
    t.key_column = key->second;
    t.has_message_id = name == "messages";
    t.has_chat_id = name == "messages" || name == "chats";
    tables.push_back(std::move(t));
  }
  return tables;
}

bool check_shape(const Facts& facts, const Table& table, TransformOutput& out) {
  return check_duplicate_key(facts, out) && check_object_member("record", facts.record, facts.record_what, out) &&
         check_object_member("metadata", facts.metadata, facts.metadata_what, out) && check_action(facts, out) &&
         check_metadata_scalars(facts, table, out);
}

}  // namespace transform_detail
}  // namespace cdc
