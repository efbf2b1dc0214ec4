#include "cdc/core/log.hpp"

#include <concurrentqueue/concurrentqueue.h>
#include <unistd.h>

#include <pthread.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <thread>

#include "cdc/core/json_writer.hpp"

namespace cdc::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::atomic<std::uint64_t> g_dropped{0};

struct Writer {
  moodycamel::ConcurrentQueue<std::string> queue{1024};
  std::size_t capacity = 65536;
  std::atomic<int> fd{STDOUT_FILENO};  // relaxed: set before the writer starts / after it stopped
  std::atomic<bool> running{false};
  std::thread thread;
  std::mutex sync_mutex;  // only for synchronous writes before start()/after stop()
};

Writer& writer() {
  static Writer w;
  return w;
}

void write_all(int fd, std::string_view text) noexcept {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

/// Writes what is queued, in batches of up to 64 KiB; false when the queue was empty.
bool drain(Writer& w, std::string& batch, std::string& line) {
  bool any = false;
  while (true) {
    batch.clear();
    while (batch.size() < 64 * 1024 && w.queue.try_dequeue(line)) batch += line;
    if (batch.empty()) return any;
    // This thread alone may block here (a slow stdout); stages keep going and drop when full.
    write_all(w.fd.load(std::memory_order_relaxed), batch);
    any = true;
  }
}

void writer_loop() {
  pthread_setname_np(pthread_self(), "cdc-log");
  Writer& w = writer();
  std::string batch;
  std::string line;
  while (w.running.load(std::memory_order_acquire)) {
    if (!drain(w, batch, line)) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // A line enqueued by a thread that saw `running` just before stop() is written here.
  drain(w, batch, line);
}

}  // namespace

bool parse_level(std::string_view text, Level& out) noexcept {
  if (text == "trace") out = Level::kTrace;
  else if (text == "debug") out = Level::kDebug;
  else if (text == "info") out = Level::kInfo;
  else if (text == "warn") out = Level::kWarn;
  else if (text == "error") out = Level::kError;
  else return false;
  return true;
}

std::string_view to_string(Level level) noexcept {
  switch (level) {
    case Level::kTrace: return "trace";
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

void set_level(Level l) noexcept { g_level.store(l, std::memory_order_relaxed); }
Level level() noexcept { return g_level.load(std::memory_order_relaxed); }
std::uint64_t dropped() noexcept { return g_dropped.load(std::memory_order_relaxed); }

void start(std::size_t queue_capacity, int fd) {
  Writer& w = writer();
  if (w.running.load()) return;
  w.capacity = queue_capacity;
  w.fd.store(fd, std::memory_order_relaxed);
  w.running.store(true, std::memory_order_release);
  w.thread = std::thread(writer_loop);
}

void stop() {
  Writer& w = writer();
  if (!w.running.exchange(false)) return;
  if (w.thread.joinable()) w.thread.join();
  w.fd.store(STDOUT_FILENO, std::memory_order_relaxed);  // synchronous lines from now on go to stdout
}

void format(std::string& line, std::int64_t unix_ns, Level l, std::string_view msg, std::span<const Field> fields) {
  line += "{\"time\":\"";
  append_rfc3339(unix_ns, line);
  line += "\",\"level\":\"";
  line += to_string(l);
  line += "\",\"msg\":";
  append_json_string(msg, line);
  for (const Field& f : fields) {
    line += ',';
    append_json_string(f.key, line);
    line += ':';
    switch (f.kind) {
      case Field::Kind::kString: append_json_string(f.s, line); break;
      case Field::Kind::kInt: append_int(f.i, line); break;
      case Field::Kind::kUint: append_uint(f.u, line); break;
      case Field::Kind::kDouble:
        if (std::isfinite(f.d)) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.3f", f.d);
          line += buf;
        } else {
          line += "null";  // JSON has no NaN or infinity
        }
        break;
      case Field::Kind::kBool: line += f.b ? "true" : "false"; break;
    }
  }
  line += "}\n";
}

void write(Level l, std::string_view msg, std::span<const Field> fields) noexcept {
  try {
    std::string line;
    line.reserve(192 + msg.size());
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    format(line, std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(), l, msg, fields);
    Writer& w = writer();
    if (w.running.load(std::memory_order_acquire)) {
      // Never wait: a full queue (the writer is behind, stdout is slow) drops the line.
      if (w.queue.size_approx() >= w.capacity || !w.queue.enqueue(std::move(line))) {
        g_dropped.fetch_add(1, std::memory_order_relaxed);
      }
      return;
    }
    std::lock_guard<std::mutex> lock(w.sync_mutex);
    write_all(w.fd.load(std::memory_order_relaxed), line);
  } catch (...) {
    g_dropped.fetch_add(1, std::memory_order_relaxed);
  }
}

std::string_view trace_id_from_traceparent(std::string_view tp) noexcept {
  // version "-" trace-id (32 lower-case hex, not all zero) "-" parent-id (16 hex) "-" flags (2 hex)
  const auto hex = [](std::string_view s) {
    for (char c : s) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
  };
  if (tp.size() < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return {};
  const std::string_view id = tp.substr(3, 32);
  if (!hex(tp.substr(0, 2)) || tp.substr(0, 2) == "ff" || !hex(id) || !hex(tp.substr(36, 16)) ||
      !hex(tp.substr(53, 2))) {
    return {};
  }
  if (id.find_first_not_of('0') == std::string_view::npos) return {};
  return id;
}

bool RateLimiter::allow(std::uint64_t& suppressed) noexcept {
  return allow(suppressed,
               std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
                   .count());
}

bool RateLimiter::allow(std::uint64_t& suppressed, std::int64_t now) noexcept {
  if (now - window_start_ >= interval_ns_) {
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ < per_interval_) {
    ++in_window_;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }
  ++suppressed_;
  return false;
}

}  // namespace cdc::log
