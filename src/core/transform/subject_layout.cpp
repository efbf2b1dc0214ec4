// SubjectLayout: the ingest subject's layout, parsed once at start-up, split per message.

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "cdc/core/subject.hpp"
#include "cdc/core/transform.hpp"

namespace cdc {

namespace {

/// A partition token: canonical decimal (no sign, no leading zero), below `partitions` when
/// that is not 0.
bool valid_partition(std::string_view token, std::uint32_t partitions) noexcept {
  if (token.empty() || token.size() > 9 || (token.size() > 1 && token.front() == '0')) return false;
  std::uint32_t value = 0;
  for (const char c : token) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return partitions == 0 || value < partitions;
}

}  // namespace

SubjectLayout::SubjectLayout(const std::string& layout, std::string company_prefix, std::uint32_t partitions)
    : company_prefix_(std::move(company_prefix)), partitions_(partitions) {
  if (layout.empty()) throw std::invalid_argument("subject_layout is empty");
  const std::string where = "subject_layout \"" + layout + "\"";
  int companies = 0, schemas = 0, tables = 0, partition_tokens = 0;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t dot = layout.find('.', pos);
    const std::string token = layout.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (token.empty()) throw std::invalid_argument(where + " has an empty token");
    Part part = Part::kLiteral;
    if (token.front() == '{') {
      if (token == "{company}") {
        part = Part::kCompany;
        ++companies;
      } else if (token == "{table}") {
        part = Part::kTable;
        ++tables;
      } else if (token == "{schema}") {
        part = Part::kSchema;
        ++schemas;
      } else if (token == "{partition}") {
        part = Part::kPartition;
        ++partition_tokens;
      } else if (token == "{database}" || token == "{action}" || token == "{*}") {
        part = Part::kOther;
      } else {
        throw std::invalid_argument(where + ": unknown placeholder \"" + token +
                                    "\" (known: {company} {table} {schema} {partition} {database} {action} {*})");
      }
    } else if (!is_valid_token(token) || token.find_first_of("{}") != std::string::npos) {
      throw std::invalid_argument(where + ": \"" + token + "\" is neither a placeholder nor a valid subject token");
    }
    parts_.emplace_back(part, part == Part::kLiteral ? token : std::string());
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  if (tables != 1) throw std::invalid_argument(where + " needs exactly one {table}");
  if (companies + schemas != 1) throw std::invalid_argument(where + " needs exactly one of {company} or {schema}");
  if (partition_tokens > 1) throw std::invalid_argument(where + " has more than one {partition}");
}

bool SubjectLayout::split(std::string_view subject, std::string_view& company, std::string_view& table) const noexcept {
  // company/table are filled as far as the subject goes, also when it does not match (they are
  // a best-effort hint for the dead-letter subject).
  company = {};
  table = {};
  bool match = true;
  std::size_t pos = 0;
  std::size_t i = 0;
  for (;; ++i) {
    const std::size_t dot = subject.find('.', pos);
    const std::string_view token =
        subject.substr(pos, dot == std::string_view::npos ? std::string_view::npos : dot - pos);
    if (i >= parts_.size()) return false;  // more tokens than the layout
    const auto& [part, literal] = parts_[i];
    if (token.empty()) match = false;
    switch (part) {
      case Part::kLiteral: match = match && token == literal; break;
      case Part::kCompany: company = token; break;
      case Part::kSchema:
        company = token;
        if (!company_prefix_.empty() && company.substr(0, company_prefix_.size()) == company_prefix_) {
          company.remove_prefix(company_prefix_.size());
        }
        break;
      case Part::kTable: table = token; break;
      case Part::kPartition: match = match && valid_partition(token, partitions_); break;
      case Part::kOther: break;
    }
    if (dot == std::string_view::npos) break;
    pos = dot + 1;
  }
  return match && i + 1 == parts_.size();
}

std::string SubjectLayout::filter_subject() const {
  std::string filter;
  for (const auto& [part, literal] : parts_) {
    if (!filter.empty()) filter.push_back('.');
    if (part == Part::kLiteral) {
      filter.append(literal);
    } else {
      filter.push_back('*');
    }
  }
  return filter;
}

std::string SubjectLayout::partition_filter(std::uint32_t partition) const {
  std::string filter;
  for (const auto& [part, literal] : parts_) {
    if (!filter.empty()) filter.push_back('.');
    if (part == Part::kLiteral) {
      filter.append(literal);
    } else if (part == Part::kPartition) {
      filter.append(std::to_string(partition));
    } else {
      filter.push_back('*');
    }
  }
  return filter;
}

bool SubjectLayout::partitioned() const noexcept {
  for (const auto& entry : parts_) {
    if (entry.first == Part::kPartition) return true;
  }
  return false;
}

}  // namespace cdc
