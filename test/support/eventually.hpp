#pragma once
// Polling a condition another thread makes true, for the tests that watch a running pipeline.

#include <chrono>
#include <thread>

namespace cdc_test {

/// True as soon as `predicate()` is; false if it is still false after `limit`. Polls every 2 ms.
template <typename Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace cdc_test
