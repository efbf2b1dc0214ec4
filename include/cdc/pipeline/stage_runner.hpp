#pragma once
/// The stage runner: one loop, in the mould of the Disruptor's BatchEventProcessor, that runs
/// one or several stages on one thread. A stage is a StageHandler without a loop of its own;
/// the runner pops up to pipeline.batch_size events from the stage's input ring, hands them to
/// on_event(event, end_of_batch), calls on_idle(now) for timers, retries and replies, notifies
/// the downstream thread once per turn, and waits (one idle timeout for every stage) when no
/// stage of its thread has anything to do. A stage is finished once its input is drained and it
/// holds nothing; the runner then calls on_shutdown() and tells the next stage.
///
/// Waiting with several stages on one thread: the rings into the thread's stages share the
/// thread's WaitStrategy, so a notify into any of them wakes it. A stage that waits on something
/// no ring announces (Redis replies, new source messages) blocks in its own wait_outside() only
/// while every other stage of the thread is quiescent; otherwise the runner polls it between
/// short bounded waits, so no stage is starved by another's wait.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cdc/core/config.hpp"
#include "cdc/core/metrics.hpp"
#include "cdc/core/wait_strategy.hpp"
#include "cdc/pipeline/event.hpp"
#include "cdc/pipeline/link.hpp"

namespace cdc {

/// The idle timeout of every stage: the longest a runner sleeps before it looks at its stages'
/// timers again (reconnects, overdue replies, keep-alive, the drain deadline).
inline constexpr std::chrono::milliseconds kStageIdleTimeout{50};

/// What the runner owns for each stage and the stage uses: its configuration, its links, the
/// done flag its consumer reads, the pipeline's lifecycle and metrics.
struct StageContext {
  StageContext(const char* stage_name, const Config& cfg, Link input, Link output, std::atomic<bool>& done_flag,
               Lifecycle& lifecycle, Metrics& m) noexcept
      : name(stage_name), config(cfg), in(input), out(output), done(done_flag), life(lifecycle), metrics(m) {}

  const char* name;  ///< "ingest", "parse", ...
  const Config& config;
  Link in;                  ///< the ring the stage consumes (ingest: the free slots)
  Link out;                 ///< the ring the stage fills (ack: the free slots)
  std::atomic<bool>& done;  ///< set (release) once the stage will push nothing more
  Lifecycle& life;
  Metrics& metrics;
  bool pushed = false;  ///< this turn pushed into `out`; the runner notifies once and clears it

  /// Passes `ev` downstream (the notify comes at the end of the runner's turn).
  void emit(Event& ev) noexcept {
    push_or_die(*out.ring, &ev);
    pushed = true;
  }
};

/// A stage, as the runner drives it. Every method runs on the stage's thread.
class StageHandler {
 public:
  static constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();
  virtual ~StageHandler() = default;

  /// Once, on the stage's thread, before anything else (connects its store).
  virtual void on_start() noexcept {}
  /// How many input events the stage takes now: 0 holds them in the ring (back-pressure).
  [[nodiscard]] virtual std::size_t accepting() const noexcept { return kUnlimited; }
  /// Before a batch of `count` events.
  virtual void on_batch_start(std::size_t count) noexcept { (void)count; }
  /// One event of the batch; `end_of_batch` on the last one.
  virtual void on_event(Event& ev, bool end_of_batch) noexcept = 0;
  /// Every turn, after the batch (or when there was none): timers, retries, replies, forwarding
  /// what became ready. True when it moved something (the runner turns again at once).
  virtual bool on_idle(std::int64_t now) noexcept = 0;
  /// Any events or replies held (not quiescent): the stage may be woken by more than its ring.
  [[nodiscard]] virtual bool holding() const noexcept { return false; }
  /// Something besides new input that should wake the thread (e.g. the head's PubAck came).
  [[nodiscard]] virtual bool ready() const noexcept { return false; }
  /// Steady-clock ns by which on_idle() must run again (0 = no deadline of its own).
  [[nodiscard]] virtual std::int64_t wake_at_ns() const noexcept { return 0; }
  /// The stage waits on something no ring announces (replies, source messages).
  [[nodiscard]] virtual bool waits_outside() const noexcept { return false; }
  /// Blocks in that outside wait for at most `timeout` (handling what comes).
  virtual void wait_outside(std::chrono::nanoseconds timeout) noexcept { (void)timeout; }
  /// The stage is done; `input_drained`: its producer is done and its ring is empty.
  [[nodiscard]] virtual bool finished(bool input_drained) const noexcept { return input_drained && !holding(); }
  /// Once, when finished, before the next stage is told (flush, close the store, stop a source).
  virtual void on_shutdown() noexcept {}
  /// True for the source stage: the runner does not pop its input ring (it takes slots itself).
  [[nodiscard]] virtual bool pops_own_input() const noexcept { return false; }
};

/// One stage of a runner: its handler and its context.
struct RunnerStage {
  StageHandler* handler = nullptr;
  StageContext* context = nullptr;
};

/// Runs one or several stages, in pipeline order, on the calling thread.
class StageRunner {
 public:
  /// `waiter`: the WaitStrategy every input ring of `stages` names as its consumer's.
  /// `thread_name` (<= 15 characters) and `cpu` (-1 = unpinned) are applied by run().
  StageRunner(std::string thread_name, int cpu, WaitStrategy& waiter, std::size_t batch_size,
              const std::vector<RunnerStage>& stages);
  /// The thread's body. Returns once every stage has finished.
  void run() noexcept;
  [[nodiscard]] const std::string& thread_name() const noexcept { return thread_name_; }

 private:
  struct Slot {
    RunnerStage stage;
    bool finished = false;
  };
  bool turn(Slot& slot, std::int64_t now) noexcept;
  bool has_work(const Slot& slot) const noexcept;
  void wait(std::int64_t now) noexcept;

  std::string thread_name_;
  int cpu_;
  WaitStrategy& waiter_;
  std::size_t batch_size_;
  std::vector<Slot> slots_;
};

/// Names the calling thread (at most 15 characters are kept) and pins it to `cpu` (-1 = leave
/// it to the scheduler).
void setup_stage_thread(const char* name, int cpu) noexcept;

/// The thread name of a group of stages (a pthread name holds 15 characters): "cdc-<stage>" for
/// one ("cdc-publish"), the stages joined by '+' when that fits, else their three-letter forms
/// (ingest ing, parse prs, dedup ddp, publish pub, ack ack): "cdc-ing+prs", "cdc-ddp+pub+ack";
/// "cdc-pipeline" for all five.
std::string stage_thread_name(const std::vector<std::string>& stages);

}  // namespace cdc
