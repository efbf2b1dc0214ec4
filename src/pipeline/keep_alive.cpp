#include "cdc/pipeline/keep_alive.hpp"

#include "cdc/pipeline/ports.hpp"

namespace cdc {

bool KeepAlive::touch(Event& ev, std::int64_t now) noexcept {
  if (ev.source.empty() || now - ev.progress_ns < half_ack_wait_ns_) return false;
  completer_->in_progress(ev.source);
  ev.progress_ns = now;
  ++signals_;
  return true;
}

}  // namespace cdc
