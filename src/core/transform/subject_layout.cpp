// SubjectLayout: the ingest subject's layout, parsed once at start-up, split per message.

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "cdc/core/subject.hpp"
#include "cdc/core/transform.hpp"

namespace cdc {

SubjectLayout::SubjectLayout(const std::string& layout, std::string company_prefix)
    : company_prefix_(std::move(company_prefix)) {
  if (layout.empty()) throw std::invalid_argument("subject_layout is empty");
  const std::string where = "subject_layout \"" + layout + "\"";
  int companies = 0, schemas = 0, tables = 0;
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
      } else if (token == "{database}" || token == "{action}" || token == "{*}") {
        part = Part::kOther;
      } else {
        throw std::invalid_argument(where + ": unknown placeholder \"" + token +
                                    "\" (known: {company} {table} {schema} {database} {action} {*})");
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

}  // namespace cdc
