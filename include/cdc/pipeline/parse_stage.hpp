#pragma once
/// Parse/filter stage: applies the contract's transform to each event (tables not kept are
/// skipped from the subject alone) and prepares the dead-letter record of invalid ones.

#include <atomic>
#include <memory>

#include "cdc/core/config.hpp"
#include "cdc/core/log.hpp"
#include "cdc/core/metrics.hpp"
#include "cdc/pipeline/stage.hpp"
#include "cdc/core/transform.hpp"

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

class ParseStage {
 public:
  ParseStage(const Config& config, Link in, Link out, std::atomic<bool>& done, Lifecycle& life, Metrics& metrics);
  ~ParseStage();
  ParseStage(const ParseStage&) = delete;
  ParseStage& operator=(const ParseStage&) = delete;
  void run() noexcept;
  /// One event (also used by tests and the bench without threads).
  void process(Event& ev) noexcept;
  /// Any thread (SIGHUP): hands the stage new rules, which run() takes before its next batch
  /// with one atomic exchange (no lock; the hot path only loads the pointer once per batch).
  /// Replaces an earlier offer the stage has not taken yet.
  void offer(std::unique_ptr<Transformer> next) noexcept;

 private:
  void take_offer() noexcept;

  const Config& config_;
  std::unique_ptr<Transformer> transformer_;
  std::atomic<Transformer*> offered_{nullptr};
  StageTimer timer_;
  Link in_;
  Link out_;
  std::atomic<bool>& done_;
  Lifecycle& life_;
  Metrics& metrics_;
};

}  // namespace cdc
