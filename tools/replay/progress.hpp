#pragma once
/// A one-line progress report on stderr for long runs (count, rate, ETA), redrawn at most four
/// times a second, only when stderr is a terminal and the run is not --quiet.
///
/// Thread contract: one thread (the subcommand's own loop).

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <utility>

namespace cdc::replay {

class Progress {
 public:
  /// `verb` names the count ("published", "captured"). Disabled unless `enabled` and stderr is a TTY.
  Progress(std::string verb, bool enabled) : verb_(std::move(verb)), enabled_(enabled && isatty(STDERR_FILENO) == 1) {}
  ~Progress() { finish(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// `done` so far of `total` (0 = unknown: no percentage, no ETA).
  void update(std::size_t done, std::size_t total) {
    if (!enabled_) return;
    const auto now = Clock::now();
    if (drawn_ && now - last_ < std::chrono::milliseconds(250)) return;
    last_ = now;
    drawn_ = true;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
    char line[160];
    int n = std::snprintf(line, sizeof line, "\r%s %zu", verb_.c_str(), done);
    if (total > 0 && n > 0 && static_cast<std::size_t>(n) < sizeof line) {
      n += std::snprintf(line + n, sizeof line - static_cast<std::size_t>(n), "/%zu (%.1f%%)", total,
                         100.0 * static_cast<double>(done) / static_cast<double>(total));
    }
    if (n > 0 && static_cast<std::size_t>(n) < sizeof line) {
      n += std::snprintf(line + n, sizeof line - static_cast<std::size_t>(n), "  %.0f msg/s", rate);
    }
    if (total > done && rate > 0 && n > 0 && static_cast<std::size_t>(n) < sizeof line) {
      n += std::snprintf(line + n, sizeof line - static_cast<std::size_t>(n), "  ETA %.0f s",
                         static_cast<double>(total - done) / rate);
    }
    std::fprintf(stderr, "%s\033[K", line);
    std::fflush(stderr);
  }

  /// Clears the line (before the summary is printed).
  void finish() {
    if (!enabled_ || !drawn_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::string verb_;
  bool enabled_;
  bool drawn_ = false;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_{};
};

}  // namespace cdc::replay
