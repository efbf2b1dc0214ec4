#pragma once
// Private to the configuration units: the rules of every key and across keys.

#include "cdc/core/config.hpp"
#include "values.hpp"

namespace cdc::config_detail {

/// Checks `c`; an error names the variable that set the key when `sources` has one. Throws the
/// first error, or adds each to `errors` when collecting (--check-config).
void validate_all(const Config& c, const Sources& sources, Errors* errors = nullptr);

}  // namespace cdc::config_detail
