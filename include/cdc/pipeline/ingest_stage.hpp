#pragma once
/// Ingest stage: takes delivered source messages into free Event slots. It owns the
/// MessageSource (the consume subscription); it blocks only in that source and on the free
/// ring (back-pressure: a full pool stops intake).

#include <atomic>
#include <cstdint>
#include <vector>

#include "cdc/core/config.hpp"
#include "cdc/core/metrics.hpp"
#include "cdc/pipeline/ports.hpp"
#include "cdc/pipeline/stage.hpp"

namespace cdc {

class IngestStage {
 public:
  IngestStage(const Config& config, MessageSource& source, Link free_slots, Link out, std::atomic<bool>& done,
              Lifecycle& life, Metrics& metrics);
  /// Stage thread. Returns after stop_intake, once the source has given back what it held.
  void run() noexcept;

 private:
  void take(const SourceMessage& msg) noexcept;

  const Config& config_;
  MessageSource& source_;
  Link free_;
  Link out_;
  std::atomic<bool>& done_;
  Lifecycle& life_;
  Metrics& metrics_;
  int max_deliver_;
  std::vector<SourceMessage> batch_;
};

}  // namespace cdc
