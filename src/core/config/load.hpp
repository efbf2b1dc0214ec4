#pragma once
// Private to the configuration units: the loading machinery the service's loader (load.cpp)
// and daisi-dlq-worker's (dlq_worker_config.cpp) share. Precedence and the environment rule are
// described in config.hpp.

#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cdc/core/config.hpp"
#include "text.hpp"
#include "values.hpp"

namespace cdc::config_detail {

/// Parses YAML text; a syntax error is ConfigError("config", "<origin>:<line>:<column>: ...").
YAML::Node parse_yaml(const std::string& text, const std::string& origin);

/// NAME=VALUE strings as a map; the first occurrence of a name wins, as with getenv().
std::map<std::string, std::string, std::less<>> environment_variables(const std::vector<std::string>& env);

/// Applies the map `body` of `section` through `table` (entries with section, key and
/// set(Settings&, const Value&)): unknown keys (with a did-you-mean suggestion) and duplicate
/// keys are errors naming section.key. Each key on its own when collecting `errors`.
template <typename Settings, typename Table>
void apply_section(Settings& settings, const std::string& section, const YAML::Node& body, const Table& table,
                   Errors* errors) {
  if (body.IsNull()) return;
  if (!body.IsMap()) throw ConfigError(section, "expected a map of keys, got " + shape_of(body));
  std::set<std::string> seen_keys;
  for (const auto& kv : body) {
    collect(errors, [&] {
      if (!kv.first.IsScalar()) throw ConfigError(section, "key names must be plain strings");
      const std::string key = kv.first.Scalar();
      const std::string name = section + "." + key;
      const typename Table::value_type* field = nullptr;
      std::vector<std::string> keys;
      for (const auto& f : table) {
        if (f.section == section && f.key == key) field = &f;
        if (f.section == section) keys.emplace_back(f.key);
      }
      if (field == nullptr) {
        throw ConfigError(name, "unknown key" + suggestion(key, keys));
      }
      if (!seen_keys.insert(key).second) throw ConfigError(name, "duplicate key");
      const YAML::Node& node = kv.second;
      field->set(settings, Value{&node, {}, name});
    });
  }
}

}  // namespace cdc::config_detail
