#pragma once
/// Ingest stage: takes delivered source messages into free Event slots. It owns the
/// MessageSource (the consume subscription); it blocks only in that source and on the free
/// ring (back-pressure: a full pool stops intake).

#include <cstdint>
#include <vector>

#include "cdc/pipeline/ports.hpp"
#include "cdc/pipeline/stage_runner.hpp"

namespace cdc {

class IngestStage final : public StageHandler {
 public:
  /// `ctx.in` is the ring of free slots, `ctx.out` the parse stage's input.
  IngestStage(StageContext& ctx, MessageSource& source);

  [[nodiscard]] bool pops_own_input() const noexcept override { return true; }
  void on_event(Event&, bool) noexcept override {}
  /// Takes what the source has now, without waiting.
  bool on_idle(std::int64_t now) noexcept override;
  /// A free slot came back after the pool ran dry, or intake stops.
  [[nodiscard]] bool ready() const noexcept override;
  /// With free slots the stage waits in the source.
  [[nodiscard]] bool waits_outside() const noexcept override;
  void wait_outside(std::chrono::nanoseconds timeout) noexcept override;
  /// Finished once intake stops (stop_intake), whatever the ring.
  [[nodiscard]] bool finished(bool input_drained) const noexcept override;
  /// Gives back what the source delivered but we did not take.
  void on_shutdown() noexcept override;

 private:
  [[nodiscard]] bool stopping() const noexcept;
  /// Takes up to the free slots from the source, waiting at most `wait` for the first; true when it took any.
  bool intake(std::chrono::milliseconds wait) noexcept;
  void take(const SourceMessage& msg) noexcept;

  StageContext& ctx_;
  MessageSource& source_;
  int max_deliver_;
  std::vector<SourceMessage> batch_;
  bool starved_ = false;  // the last intake found no free slot
};

}  // namespace cdc
