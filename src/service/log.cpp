#include "cdc/log.hpp"

#include <concurrentqueue/concurrentqueue.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include "cdc/dead_letter.hpp"
#include "cdc/transform.hpp"

namespace cdc::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::atomic<std::uint64_t> g_dropped{0};

struct Writer {
  moodycamel::ConcurrentQueue<std::string> queue{1024};
  std::size_t capacity = 65536;
  std::atomic<bool> running{false};
  std::thread thread;
  std::mutex sync_mutex;  // only for synchronous writes before start()/after stop()
};

Writer& writer() {
  static Writer w;
  return w;
}

void write_all(std::string_view text) noexcept {
  while (!text.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, text.data(), text.size());
    if (n <= 0) return;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

void writer_loop() {
  Writer& w = writer();
  std::string batch;
  std::string line;
  while (true) {
    batch.clear();
    while (batch.size() < 64 * 1024 && w.queue.try_dequeue(line)) batch += line;
    if (!batch.empty()) {
      write_all(batch);
      continue;
    }
    if (!w.running.load(std::memory_order_acquire)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
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

void start(std::size_t queue_capacity) {
  Writer& w = writer();
  if (w.running.exchange(true)) return;
  w.capacity = queue_capacity;
  w.thread = std::thread(writer_loop);
}

void stop() {
  Writer& w = writer();
  if (!w.running.exchange(false)) return;
  if (w.thread.joinable()) w.thread.join();
}

void write(Level l, std::string_view msg, std::initializer_list<Field> fields) noexcept {
  try {
    std::string line;
    line.reserve(160 + msg.size());
    line += "{\"time\":";
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    std::string ts;
    append_rfc3339(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(), ts);
    append_json_string(ts, line);
    line += ",\"level\":\"";
    line += to_string(l);
    line += "\",\"msg\":";
    append_json_string(msg, line);
    for (const Field& f : fields) {
      line += ',';
      append_json_string(f.key, line);
      line += ':';
      switch (f.kind) {
        case Field::Kind::kString: append_json_string(f.s, line); break;
        case Field::Kind::kInt: line += std::to_string(f.i); break;
        case Field::Kind::kUint: line += std::to_string(f.u); break;
        case Field::Kind::kDouble: {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.3f", f.d);
          line += buf;
          break;
        }
        case Field::Kind::kBool: line += f.b ? "true" : "false"; break;
      }
    }
    line += "}\n";
    Writer& w = writer();
    if (w.running.load(std::memory_order_acquire)) {
      if (w.queue.size_approx() >= w.capacity || !w.queue.enqueue(std::move(line))) {
        g_dropped.fetch_add(1, std::memory_order_relaxed);
      }
      return;
    }
    std::lock_guard<std::mutex> lock(w.sync_mutex);
    write_all(line);
  } catch (...) {
    g_dropped.fetch_add(1, std::memory_order_relaxed);
  }
}

bool RateLimiter::allow(std::uint64_t& suppressed) noexcept {
  const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now().time_since_epoch()).count();
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
