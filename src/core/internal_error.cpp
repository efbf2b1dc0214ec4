#include "cdc/core/internal_error.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "cdc/core/log.hpp"

namespace cdc {

void on_internal_error(const char* what, std::source_location where) noexcept {
  try {
    std::string line;
    const auto unix_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    log::format(line, unix_ns, log::Level::kError, "internal error",
                {{"invariant", what},
                 {"at", std::string(where.file_name()).append(":").append(std::to_string(where.line()))},
                 {"function", where.function_name()}});
    // stderr, synchronously: the log writer thread's queue dies with the process.
    [[maybe_unused]] const auto n = ::write(2, line.data(), line.size());
  } catch (...) {
    static constexpr char kFallback[] = "internal error (could not format the log line)\n";
    [[maybe_unused]] const auto n = ::write(2, kFallback, sizeof kFallback - 1);
  }
  std::abort();
}

}  // namespace cdc
