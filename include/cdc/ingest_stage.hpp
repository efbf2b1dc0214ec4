#pragma once
/// Ingest stage: takes source messages from the JetStream consumer (push queue subscription or
/// pull fetches) into free Event slots. It owns the consume subscription; it blocks only in
/// nats.c calls it owns and on the free ring (back-pressure).

#include <atomic>
#include <cstdint>

#include "cdc/config.hpp"
#include "cdc/metrics.hpp"
#include "cdc/nats_client.hpp"
#include "cdc/stage.hpp"

namespace cdc {

class IngestStage {
 public:
  /// `sub` is the bound consumer subscription (push: sync queue subscription, pull: pull sub).
  IngestStage(const Config& config, natsSubscription* sub, Link free_slots, Link out, std::atomic<bool>& done,
              Lifecycle& life, Metrics& metrics) noexcept;
  /// Stage thread. Returns after stop_intake, having NAKed what nats.c had already queued.
  void run() noexcept;

 private:
  bool take(natsMsg* msg) noexcept;
  void run_push() noexcept;
  void run_pull() noexcept;
  void nak_queued() noexcept;
  bool wait_free_slot() noexcept;

  const Config& config_;
  natsSubscription* sub_;
  Link free_;
  Link out_;
  std::atomic<bool>& done_;
  Lifecycle& life_;
  Metrics& metrics_;
  int max_deliver_;
};

}  // namespace cdc
