#include "cdc/core/internal_error.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "cdc/core/log.hpp"

namespace cdc {

void on_internal_error(const char* what, const char* file, unsigned line, const char* function) noexcept {
  try {
    std::string text;
    const auto unix_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    log::format(text, unix_ns, log::Level::kError, "internal error",
                {{"invariant", what},
                 {"at", std::string(file).append(":").append(std::to_string(line))},
                 {"function", function}});
    // stderr, synchronously: the log writer thread's queue dies with the process.
    [[maybe_unused]] const auto n = ::write(2, text.data(), text.size());
  } catch (...) {
    static constexpr char kFallback[] = "internal error (could not format the log line)\n";
    [[maybe_unused]] const auto n = ::write(2, kFallback, sizeof kFallback - 1);
  }
  std::abort();
}

}  // namespace cdc
