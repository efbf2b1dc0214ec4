#pragma once
/// A tiny in-process Redis for the bench's in-process mode and the pipeline stress test: one thread, a loopback TCP
/// listener, RESP2 over any number of connections. Enough for the service's dedup and ack
/// stages: SET key value [NX|XX] [GET] [EX s|PX ms|KEEPTTL], DEL, SELECT, PING, and the dedup
/// function library (FUNCTION LOAD / FLUSH, FCALL cdc_dedup_v1_claim / _mark, as
/// src/core/dedup_protocol.cpp defines them; INFO is refused, so the service sees no cluster).
///
/// Replies go out in order per connection, each `rtt` after its command was read (0: as soon as
/// the batch read is handled), so a pipelined client sees a configurable round trip.
/// Keys live in an open-addressing table of 64-bit key hashes (no allocation per key; a hash
/// collision between two keys is ignored: at 2^-64 per pair it does not happen in a run).
/// Expiry is not modelled: a run is far shorter than any TTL the service sets.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

namespace cdc::mocks {

class FakeRedis {
 public:
  struct Stats {
    std::uint64_t commands = 0, sets = 0, set_hits = 0, dels = 0, connections = 0, errors = 0;
    std::uint64_t fcalls = 0;  ///< function calls (their keys count in `sets`)
  };

  /// Listens on 127.0.0.1:<ephemeral>, sized for about `expected_keys` keys, and starts its thread.
  /// Throws std::system_error when the socket cannot be set up.
  FakeRedis(std::chrono::microseconds rtt, std::size_t expected_keys);
  ~FakeRedis();
  FakeRedis(const FakeRedis&) = delete;
  FakeRedis& operator=(const FakeRedis&) = delete;

  /// "127.0.0.1:<port>"
  [[nodiscard]] std::string address() const;
  /// Any thread; exact once the server has been destroyed... or approximately while it runs.
  [[nodiscard]] Stats stats() const noexcept;

 private:
  void run() noexcept;

  struct Impl;
  Impl* impl_;
  std::thread thread_;
};

}  // namespace cdc::mocks
