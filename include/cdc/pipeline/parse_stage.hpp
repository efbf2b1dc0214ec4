#pragma once
/// Parse/filter stage: applies the contract's transform to each event (tables not kept are
/// skipped from the subject alone) and prepares the dead-letter record of invalid ones.

#include <atomic>
#include <memory>

#include "cdc/core/config.hpp"
#include "cdc/core/log.hpp"
#include "cdc/core/metrics.hpp"
#include "cdc/core/transform.hpp"
#include "cdc/pipeline/stage_runner.hpp"

namespace cdc {

/// Fills ev->dlq_subject / ev->dlq_payload for `kind` and points the event at the DLQ.
/// Reads the source message's headers (allocates: dead letters are off the hot path).
/// `max_bytes` (0 = no limit) caps the record, cutting data_base64 (DeadLetter::max_bytes).
void prepare_dead_letter(const Config& config, Event& ev, ErrorKind kind, std::string_view error,
                         std::size_t max_bytes = 0) noexcept;

/// Writes one dead-letter log line about `ev` at `level`: trace_id, error_kind (the event's, or
/// `kind` when the caller is about to dead-letter it as such), error, subject, stream_seq,
/// delivery_attempt, suppressed, plus `company` and `table` when the subject told them and
/// `event_id` when it is known (CONTRACT.md section 8). Allocation-free apart from the logger's.
void log_dead_letter(log::Level level, std::string_view msg, const Event& ev, ErrorKind kind, std::string_view error,
                     std::uint64_t suppressed) noexcept;

class ParseStage final : public StageHandler {
 public:
  explicit ParseStage(StageContext& ctx);
  ~ParseStage() override;
  ParseStage(const ParseStage&) = delete;
  ParseStage& operator=(const ParseStage&) = delete;
  /// Takes reloaded rules before the batch.
  void on_batch_start(std::size_t count) noexcept override;
  void on_event(Event& ev, bool end_of_batch) noexcept override;
  /// Takes reloaded rules also while no events come (one relaxed load).
  bool on_idle(std::int64_t) noexcept override {
    take_offer();
    return false;
  }
  /// One event (also used by tests and the bench without threads).
  void process(Event& ev) noexcept;
  /// Any thread (SIGHUP): hands the stage new rules, which run() takes before its next batch
  /// with one atomic exchange (no lock; the hot path only loads the pointer once per batch).
  /// Replaces an earlier offer the stage has not taken yet.
  void offer(std::unique_ptr<Transformer> next) noexcept;

 private:
  void take_offer() noexcept;

  StageContext& ctx_;
  std::unique_ptr<Transformer> transformer_;
  std::atomic<Transformer*> offered_{nullptr};
  StageTimer timer_;
};

}  // namespace cdc
