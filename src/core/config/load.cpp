// Loading: built-in defaults < config.yaml < the contract's short names < DAISI_CDC_<SECTION>_<KEY>,
// then validation (validate.cpp). --check-config also resolves the secrets (secrets.cpp).

#include "load.hpp"

#include <unistd.h>  // environ

#include <algorithm>

#include "cdc/core/dlq_worker_config.hpp"
#include "schema.hpp"
#include "secrets.hpp"
#include "validate.hpp"

namespace cdc::config_detail {

YAML::Node parse_yaml(const std::string& text, const std::string& origin) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError("config", origin + ":" + std::to_string(e.mark.line + 1) + ":" +
                                    std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
}

std::map<std::string, std::string, std::less<>> environment_variables(const std::vector<std::string>& env) {
  std::map<std::string, std::string, std::less<>> vars;
  for (const auto& entry : env) {
    const auto eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    vars.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return vars;
}

namespace {

void apply_yaml(Config& config, const YAML::Node& root, const std::string& origin, Errors* errors) {
  if (root.IsNull()) return;  // empty file: defaults
  if (!root.IsMap()) {
    throw ConfigError("config", origin + ": expected a map of sections at the top level, got " + shape_of(root));
  }
  const auto sections = section_names();
  std::set<std::string> seen_sections;
  for (const auto& entry : root) {
    collect(errors, [&] {
      if (!entry.first.IsScalar()) throw ConfigError("config", origin + ": section names must be plain strings");
      const std::string section = entry.first.Scalar();
      if (is_dlq_worker_section(section)) return;  // daisi-dlq-worker's (dlq_worker_config.cpp)
      if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
        const std::vector<std::string_view> names(sections.begin(), sections.end());
        throw ConfigError(section,
                          "unknown section" + suggestion(section, sections) + "; sections are " + join(names, ", "));
      }
      if (!seen_sections.insert(section).second) throw ConfigError(section, "duplicate section");
      apply_section(config, section, entry.second, fields(), errors);
    });
  }
}

void apply_short_names(Config& config, const std::map<std::string, std::string, std::less<>>& vars, Sources& sources,
                       Errors* errors) {
  for (const auto& s : short_names()) {
    const auto it = vars.find(s.env);
    // An empty short name counts as unset: these generic names are often passed through empty
    // (compose files, `${NATS_URL}`); DAISI_CDC_* variables are ours and taken literally.
    if (it == vars.end() || trim(it->second).empty()) continue;
    const Field* field = find_field(s.section, s.key);
    sources[dotted(*field)] = it->first;
    collect(errors, [&] { field->set(config, Value{nullptr, it->second, it->first}); });
  }
}

void apply_env(Config& config, const std::vector<std::string>& env, Sources& sources, Errors* errors) {
  const auto vars = environment_variables(env);
  apply_short_names(config, vars, sources, errors);
  std::vector<std::string> known;
  for (const auto& f : fields()) known.push_back(env_name(f));
  for (const auto& var : vars) {
    const auto& name = var.first;  // not a structured binding: clang 14 (tidy) cannot capture one
    const auto& value = var.second;
    if (name.compare(0, kEnvPrefix.size(), kEnvPrefix) != 0) continue;
    if (is_dlq_worker_variable(name)) continue;  // daisi-dlq-worker's
    collect(errors, [&] {
      const auto it = std::find(known.begin(), known.end(), name);
      if (it == known.end()) {
        throw ConfigError(name, "unknown variable: no configuration key has this name" + suggestion(name, known));
      }
      const Field& field = fields()[static_cast<std::size_t>(it - known.begin())];
      sources[dotted(field)] = name;
      field.set(config, Value{nullptr, value, name});
    });
  }
}

Config load(const std::string& text, const std::string& origin, const std::vector<std::string>& env,
            Errors* errors = nullptr) {
  Config config;
  apply_yaml(config, parse_yaml(text, origin), origin, errors);
  Sources sources;
  apply_env(config, env, sources, errors);
  validate_all(config, sources, errors);
  return config;
}

}  // namespace
}  // namespace cdc::config_detail

namespace cdc {

using config_detail::Errors;
using config_detail::load;
using config_detail::read_file;

Config load_config_text(const std::string& yaml_text, const std::vector<std::string>& env) {
  return load(yaml_text, "<text>", env);
}

Config load_config(const std::string& path, const std::vector<std::string>& env) {
  if (path.empty()) return load(std::string(), "<defaults>", env);
  return load(read_file("config", path), path, env);
}

std::vector<ConfigError> check_config(const std::string& path, const std::vector<std::string>& env, Config& out) {
  Errors errors;
  try {
    const std::string text = path.empty() ? std::string() : read_file("config", path);
    out = load(text, path.empty() ? "<defaults>" : path, env, &errors);
  } catch (const ConfigError& e) {
    errors.push_back(e);  // unreadable file or YAML syntax: nothing further can be checked
    return errors;
  }
  Config resolved = out;
  config_detail::resolve_secrets(resolved, &errors);
  return errors;
}

std::vector<std::string> process_environment() {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) out.emplace_back(*e);
  return out;
}

std::map<std::string, std::string> env_sources(const std::vector<std::string>& env) {
  Config scratch;
  config_detail::Sources sources;
  config_detail::apply_env(scratch, env, sources, nullptr);
  return sources;
}

}  // namespace cdc
