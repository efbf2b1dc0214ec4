#pragma once
/// A producer for fault tests: publishes capture records into JetStream on a thread of its own,
/// at a set rate, and rides out server restarts. A record whose publish fails (no connection,
/// no PubAck in time) is published again until JetStream stores it; every record must carry a
/// Nats-Msg-Id (see ensure_msg_ids), so a retry whose first attempt did land is dropped by the
/// stream's duplicate window and each record is stored exactly once.
///
/// Thread contract: construct, start(), wait() and read the counters from one thread (the
/// test's); the publishing runs on the feeder's thread. The destructor stops and joins it.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cdc/core/capture.hpp"

namespace cdc::test {

/// Gives every record without a Nats-Msg-Id the id "<prefix><index>" (as a producer that
/// restarted would send a change again under a new id: the service still sees a repeat).
void ensure_msg_ids(std::vector<CaptureRecord>& records, const std::string& prefix = "feeder-");

class Feeder {
 public:
  /// `rate` records per second; 0 = as fast as synchronous publishes go.
  Feeder(std::string url, std::vector<CaptureRecord> records, double rate);
  ~Feeder();
  Feeder(const Feeder&) = delete;
  Feeder& operator=(const Feeder&) = delete;

  void start();
  /// Waits until every record is stored; false on timeout.
  bool wait(std::chrono::milliseconds timeout);
  /// Records stored so far.
  [[nodiscard]] std::size_t stored() const noexcept { return stored_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::size_t total() const noexcept { return records_.size(); }
  /// Publishes that failed and were repeated.
  [[nodiscard]] std::uint64_t retries() const noexcept { return retries_.load(std::memory_order_relaxed); }
  /// The last publish error, for failure messages.
  [[nodiscard]] std::string last_error() const;

 private:
  void run();

  std::string url_;
  std::vector<CaptureRecord> records_;
  double rate_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::atomic<std::size_t> stored_{0};
  std::atomic<std::uint64_t> retries_{0};
  mutable std::mutex mutex_;  // guards last_error_
  std::string last_error_;
};

}  // namespace cdc::test
