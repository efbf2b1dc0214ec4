#include "cdc/pipeline/link.hpp"

#include "cdc/core/internal_error.hpp"
#include "cdc/core/log.hpp"

namespace cdc {

void push_or_die(EventRing& ring, Event* event) noexcept {
  if (!ring.try_push(event)) {
    // Every ring can hold the whole pool, so a full ring means an event was duplicated.
    on_internal_error("ring full while pushing an event (an event is in two places)");
  }
}

std::string_view trace_id(const Event& ev) noexcept {
  const std::string_view value = ev.source.header("traceparent");
  if (value.empty()) return {};
  return log::trace_id_from_traceparent(value);
}

}  // namespace cdc
