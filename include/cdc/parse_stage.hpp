#pragma once
/// Parse/filter stage: applies the contract's transform to each event (tables not kept are
/// skipped from the subject alone) and prepares the dead-letter record of invalid ones.

#include <atomic>

#include "cdc/config.hpp"
#include "cdc/metrics.hpp"
#include "cdc/stage.hpp"
#include "cdc/transform.hpp"

namespace cdc {

/// Transform rules from the configuration.
TransformRules transform_rules(const Config& config);

/// Fills ev->dlq_subject / ev->dlq_payload for `kind` and points the event at the DLQ.
/// Reads the source message's headers (allocates: dead letters are off the hot path).
void prepare_dead_letter(const Config& config, Event& ev, ErrorKind kind, std::string_view error) noexcept;

class ParseStage {
 public:
  ParseStage(const Config& config, Link in, Link out, std::atomic<bool>& done, Lifecycle& life, Metrics& metrics);
  void run() noexcept;
  /// One event (also used by tests and the bench without threads).
  void process(Event& ev) noexcept;

 private:
  const Config& config_;
  Transformer transformer_;
  Link in_;
  Link out_;
  std::atomic<bool>& done_;
  Lifecycle& life_;
  Metrics& metrics_;
};

}  // namespace cdc
