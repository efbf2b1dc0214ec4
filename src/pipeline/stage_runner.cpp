#include "cdc/pipeline/stage_runner.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <map>
#include <utility>

#include "cdc/core/internal_error.hpp"
#include "cdc/core/log.hpp"

namespace cdc {
namespace {

/// With several stages on the thread and one of them waiting outside the rings while another
/// holds work, the runner waits in slices this long between polls of the outside waits: a
/// reply or a source message is seen within it, and a notify into any ring still ends the wait
/// at once (blocking strategy).
constexpr std::int64_t kSharedPollNs = 200'000;

}  // namespace

StageRunner::StageRunner(std::string thread_name, int cpu, WaitStrategy& waiter, std::size_t batch_size,
                         const std::vector<RunnerStage>& stages)
    : thread_name_(std::move(thread_name)),
      cpu_(cpu),
      waiter_(waiter),
      batch_size_(std::max<std::size_t>(1, batch_size)) {
  slots_.reserve(stages.size());
  for (const RunnerStage& s : stages) slots_.push_back(Slot{s, false});
}

bool StageRunner::turn(Slot& slot, std::int64_t now) noexcept {
  StageHandler& h = *slot.stage.handler;
  StageContext& ctx = *slot.stage.context;
  bool progressed = false;
  if (!h.pops_own_input()) {
    // The consumer's view of the ring's size is a lower bound: every one of these pops succeeds.
    const std::size_t n = std::min({batch_size_, h.accepting(), ctx.in.ring->size()});
    if (n > 0) {
      h.on_batch_start(n);
      for (std::size_t i = 0; i < n; ++i) {
        Event* ev = nullptr;
        if (!ctx.in.ring->try_pop(ev)) on_internal_error("input ring shorter than its size");
        h.on_event(*ev, i + 1 == n);
      }
      progressed = true;
    }
  }
  if (h.on_idle(now)) progressed = true;
  if (ctx.pushed) {
    ctx.pushed = false;
    ctx.out.waiter->notify();  // once per turn: the downstream thread wakes for the whole batch
  }
  return progressed;
}

bool StageRunner::has_work(const Slot& slot) const noexcept {
  const StageHandler& h = *slot.stage.handler;
  const Link& in = slot.stage.context->in;
  if (h.ready()) return true;
  if (h.pops_own_input()) return false;
  if (h.accepting() == 0) return false;
  // A finished producer is news only to a stage that can finish now; one still holding events
  // waits for what releases them (ready(), its outside wait, a timer).
  return in.ring->front() != nullptr || (!h.holding() && in.producer_done->load(std::memory_order_acquire));
}

void StageRunner::wait(std::int64_t now) noexcept {
  std::int64_t timeout_ns = std::chrono::nanoseconds(kStageIdleTimeout).count();
  std::size_t outside = 0;
  std::size_t holding = 0;
  Slot* outside_slot = nullptr;
  for (Slot& s : slots_) {
    if (s.finished) continue;
    const StageHandler& h = *s.stage.handler;
    if (const std::int64_t at = h.wake_at_ns(); at != 0) timeout_ns = std::min(timeout_ns, at - now);
    if (h.waits_outside()) {
      ++outside;
      outside_slot = &s;
    } else if (h.holding()) {
      ++holding;
    }
  }
  timeout_ns = std::max<std::int64_t>(timeout_ns, 0);
  if (outside == 1 && holding == 0) {
    // The only thing that can happen is outside the rings (or a notify a stage that holds
    // nothing does not need promptly): block there, as a stage alone on its thread does.
    bool others_idle = true;
    for (const Slot& s : slots_) {
      if (&s != outside_slot && !s.finished && has_work(s)) others_idle = false;
    }
    if (others_idle) {
      outside_slot->stage.handler->wait_outside(std::chrono::nanoseconds(timeout_ns));
      return;
    }
    timeout_ns = 0;
  } else if (outside > 0) {
    timeout_ns = std::min(timeout_ns, kSharedPollNs);
  }
  waiter_.wait_for(
      [this] {
        for (const Slot& s : slots_) {
          if (!s.finished && has_work(s)) return true;
        }
        return false;
      },
      std::chrono::nanoseconds(timeout_ns));
}

void StageRunner::run() noexcept {
  setup_stage_thread(thread_name_.c_str(), cpu_);
  for (Slot& s : slots_) s.stage.handler->on_start();
  std::size_t running = slots_.size();
  while (running > 0) {
    bool progressed = false;
    const std::int64_t now = now_ns();
    for (Slot& s : slots_) {
      if (s.finished) continue;
      if (turn(s, now)) progressed = true;
    }
    if (progressed) continue;
    for (Slot& s : slots_) {
      if (s.finished) continue;
      const Link& in = s.stage.context->in;
      if (!s.stage.handler->finished(in.drained())) continue;
      s.stage.handler->on_shutdown();
      s.finished = true;
      --running;
      StageContext& ctx = *s.stage.context;
      ctx.done.store(true, std::memory_order_release);
      ctx.out.waiter->notify();
      progressed = true;
    }
    if (progressed || running == 0) continue;
    wait(now_ns());
  }
}

void setup_stage_thread(const char* name, int cpu) noexcept {
  pthread_setname_np(pthread_self(), std::string(name).substr(0, 15).c_str());
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
    log::warn("cannot pin stage thread; running unpinned", {{"stage", name}, {"cpu", cpu}});
  }
}

std::string stage_thread_name(const std::vector<std::string>& stages) {
  if (stages.size() == 5) return "cdc-pipeline";
  std::string full = "cdc-";
  for (std::size_t i = 0; i < stages.size(); ++i) full += (i > 0 ? "+" : "") + stages[i];
  if (full.size() <= 15) return full;
  static const std::map<std::string, std::string> kShort{
      {"ingest", "ing"}, {"parse", "prs"}, {"dedup", "ddp"}, {"publish", "pub"}, {"ack", "ack"}};
  std::string name = "cdc-";
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const auto it = kShort.find(stages[i]);
    name += (i > 0 ? "+" : "") + (it != kShort.end() ? it->second : stages[i]);
  }
  return name.substr(0, 15);
}

}  // namespace cdc
