#pragma once
// Private to the configuration units: the field table, the one list of every key of config.hpp
// (in declaration order) that loading, printing, reloading and the environment names are
// derived from. A key added to a struct in config.hpp is added here, once.

#include <yaml-cpp/yaml.h>

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cdc/core/config.hpp"
#include "values.hpp"

namespace cdc::config_detail {

constexpr std::string_view kEnvPrefix = "DAISI_CDC_";

struct Field {
  std::string_view section;
  std::string_view key;
  void (*set)(Config&, const Value&);          ///< parses a value into the field (load)
  bool (*same)(const Config&, const Config&);  ///< equal values in both (reload)
  void (*copy)(Config&, const Config&);        ///< takes the value of the second (reload)
  void (*print)(const Config&, YAML::Node&);   ///< adds section: key: value (--print-config)
};

/// Every key, in declaration order.
const std::vector<Field>& fields();
/// "section.key"
std::string dotted(const Field& f);
/// DAISI_CDC_<SECTION>_<KEY>
std::string env_name(const Field& f);
/// The field of `section.key`, or nullptr.
const Field* find_field(std::string_view section, std::string_view key);
/// The sections, in declaration order.
std::vector<std::string> section_names();

/// The contract's short names (section 10), applied above config.yaml and below DAISI_CDC_*.
struct ShortName {
  std::string_view env;
  std::string_view section;
  std::string_view key;
};
std::span<const ShortName> short_names() noexcept;

/// The stage names of pipeline.cpu and pipeline.threads, in pipeline order.
const std::vector<std::string>& stage_names();

}  // namespace cdc::config_detail
