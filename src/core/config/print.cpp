// --print-config: the configuration as YAML the loader reads back, secrets redacted.

#include "cdc/core/config.hpp"
#include "schema.hpp"
#include "text.hpp"

namespace cdc {

std::string config_to_yaml(const Config& config) {
  YAML::Node root;
  for (const auto& f : config_detail::fields()) f.print(config, root);
  // Secrets never leave the process: set or not is all that shows.
  for (const auto& [section, key] : {std::pair{"nats", "password"}, {"nats", "token"}, {"redis", "password"}}) {
    if (!root[section][key].as<std::string>().empty()) root[section][key] = "<redacted>";
  }
  root["nats"]["url"] = redact_url(config.nats.url);
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

std::string redact_url(std::string_view url) {
  std::string out;
  for (const auto part : config_detail::split(url, ',')) {
    if (!out.empty()) out += ',';
    std::string_view u = part;
    const auto scheme = u.find("://");
    const std::size_t host_start = scheme == std::string_view::npos ? 0 : scheme + 3;
    const auto slash = u.find('/', host_start);
    const auto at = u.rfind('@', slash == std::string_view::npos ? u.size() : slash);
    if (at != std::string_view::npos && at >= host_start) {
      out += std::string(u.substr(0, host_start)) + "***@" + std::string(u.substr(at + 1));
    } else {
      out += std::string(u);
    }
  }
  return out;
}

}  // namespace cdc
