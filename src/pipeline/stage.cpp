#include "cdc/pipeline/stage.hpp"

#include <pthread.h>
#include <sched.h>

#include "cdc/core/internal_error.hpp"
#include "cdc/core/log.hpp"
#include "cdc/pipeline/ports.hpp"

namespace cdc {

void push_or_die(EventRing& ring, Event* event) noexcept {
  if (!ring.try_push(event)) {
    // Every ring can hold the whole pool, so a full ring means an event was duplicated.
    on_internal_error("ring full while pushing an event (an event is in two places)");
  }
}

bool KeepAlive::touch(Event& ev, std::int64_t now) noexcept {
  if (ev.source.empty() || now - ev.progress_ns < half_ack_wait_ns_) return false;
  completer_->in_progress(ev.source);
  ev.progress_ns = now;
  ++signals_;
  return true;
}

void setup_stage_thread(const char* name, int cpu) noexcept {
  pthread_setname_np(pthread_self(), name);
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
    log::warn("cannot pin stage thread; running unpinned", {{"stage", name}, {"cpu", cpu}});
  }
}

std::string_view trace_id(const Event& ev) noexcept {
  const std::string_view value = ev.source.header("traceparent");
  if (value.empty()) return {};
  return log::trace_id_from_traceparent(value);
}

}  // namespace cdc
