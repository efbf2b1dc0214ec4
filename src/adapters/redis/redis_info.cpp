#include "cdc/adapters/redis/redis_info_probe.hpp"

// The pure part of the INFO reader (the probe itself is in src/service/redis_info_probe.cpp).

namespace cdc {

bool redis_info_field(std::string_view info, std::string_view key, std::string_view& value) noexcept {
  std::size_t pos = 0;
  while (pos < info.size()) {
    std::size_t end = info.find('\n', pos);
    if (end == std::string_view::npos) end = info.size();
    std::string_view line = info.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      value = line.substr(key.size() + 1);
      return true;
    }
    pos = end + 1;
  }
  return false;
}

std::size_t redis_policy_index(std::string_view policy) noexcept {
  for (std::size_t i = 0; i + 1 < kRedisPolicies.size(); ++i) {
    if (kRedisPolicies[i] == policy) return i;
  }
  return kRedisPolicies.size() - 1;
}

bool redis_policy_can_evict(std::string_view policy) noexcept { return policy != "noeviction"; }

}  // namespace cdc
