// Reload (SIGHUP): which keys differ, which of them the running service applies, and which need
// a restart. A key not listed in reloadable() is restart-only (every new key starts that way:
// e.g. pipeline.threads, since threads are created once at start-up).

#include <algorithm>

#include "cdc/core/config.hpp"
#include "schema.hpp"

namespace cdc {

using config_detail::dotted;
using config_detail::fields;

std::vector<std::string> changed_keys(const Config& a, const Config& b) {
  std::vector<std::string> out;
  for (const auto& f : fields()) {
    if (!f.same(a, b)) out.push_back(dotted(f));
  }
  return out;
}

bool reloadable(std::string_view key) noexcept {
  static constexpr std::string_view kReloadable[] = {
      "log.level",     "health.stall_timeout", "guard.max_failure_duration",
      "ingest.tables", "ingest.key_columns",   "ingest.max_message_bytes",
  };
  return std::find(std::begin(kReloadable), std::end(kReloadable), key) != std::end(kReloadable);
}

ReloadPlan plan_reload(const Config& running, const Config& next) {
  ReloadPlan plan;
  plan.result = running;
  for (const auto& f : fields()) {
    if (f.same(running, next)) continue;
    const std::string key = dotted(f);
    if (reloadable(key)) {
      f.copy(plan.result, next);
      plan.apply.push_back(key);
    } else {
      plan.restart.push_back(key);
    }
  }
  return plan;
}

}  // namespace cdc
