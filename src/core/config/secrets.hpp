#pragma once
// Private to the configuration units: secrets read from files, and the start-up rules about
// them (one authentication method, a secret or its file, not both).

#include "cdc/core/config.hpp"
#include "values.hpp"

namespace cdc::config_detail {

/// resolve_secrets(), each check on its own when collecting `errors` (--check-config).
void resolve_secrets(Config& config, Errors* errors);

}  // namespace cdc::config_detail
