// Structured logs (CONTRACT.md section 8): one JSON object per line with the contract's fields,
// a writer thread that never makes a caller wait, drops counted, and the rate limiter.

#include "cdc/core/log.hpp"

#include "cdc/core/internal_error.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <simdjson.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

namespace {

/// Parses one line as JSON and returns its keys in order (fails the test when it is not JSON).
std::vector<std::string> keys_of(const std::string& line) {
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  REQUIRE(parser.parse(line).get(obj) == simdjson::SUCCESS);
  std::vector<std::string> keys;
  for (auto field : obj) keys.emplace_back(field.key);
  return keys;
}

}  // namespace

TEST_CASE("a log line is one JSON object with time, level and msg first", "[log]") {
  std::string line;
  // 2023-11-14T22:13:20.123456789Z
  cdc::log::format(line, 1'700'000'000'123'456'789LL, cdc::log::Level::kInfo, "event completed",
                   {{"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"},
                    {"event_id", "27635224.0:co1:messages:msg-789"},
                    {"company", "co1"},
                    {"table", "messages"},
                    {"latency_ms", 1.23456},
                    {"redis_hit", false},
                    {"delivery_attempt", 2u},
                    {"error", "agent_id contains '.'"},
                    {"seq", -3},
                    {"big", 18446744073709551615ULL}});
  CHECK(line ==
        "{\"time\":\"2023-11-14T22:13:20.123456Z\",\"level\":\"info\",\"msg\":\"event completed\","
        "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"event_id\":\"27635224.0:co1:messages:msg-789\","
        "\"company\":\"co1\",\"table\":\"messages\",\"latency_ms\":1.235,\"redis_hit\":false,"
        "\"delivery_attempt\":2,\"error\":\"agent_id contains '.'\",\"seq\":-3,\"big\":18446744073709551615}\n");
  CHECK(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);  // exactly one line
  const auto keys = keys_of(line.substr(0, line.size() - 1));
  REQUIRE(keys.size() == 13);
  CHECK(keys[0] == "time");
  CHECK(keys[1] == "level");
  CHECK(keys[2] == "msg");
}

TEST_CASE("log lines escape what JSON needs and stay on one line", "[log]") {
  std::string line;
  cdc::log::format(line, 0, cdc::log::Level::kError, "bad \"quote\"\nnext line\\",
                   {{"error", std::string_view("ctl\x01\t\r", 6)}, {"nan", std::nan("")}, {"inf", INFINITY}});
  CHECK(line.find('\n') == line.size() - 1);
  CHECK(line.find("\"time\":\"1970-01-01T00:00:00Z\"") != std::string::npos);
  CHECK(line.find("\"level\":\"error\"") != std::string::npos);
  CHECK(line.find("\"msg\":\"bad \\\"quote\\\"\\nnext line\\\\\"") != std::string::npos);
  CHECK(line.find("\"error\":\"ctl\\u0001\\t\\r\"") != std::string::npos);
  CHECK(line.find("\"nan\":null,\"inf\":null") != std::string::npos);
  keys_of(line.substr(0, line.size() - 1));
}

TEST_CASE("levels parse and print", "[log]") {
  for (const char* name : {"trace", "debug", "info", "warn", "error"}) {
    cdc::log::Level l{};
    REQUIRE(cdc::log::parse_level(name, l));
    CHECK(cdc::log::to_string(l) == name);
  }
  cdc::log::Level l = cdc::log::Level::kWarn;
  CHECK_FALSE(cdc::log::parse_level("verbose", l));
  CHECK(l == cdc::log::Level::kWarn);
  const auto saved = cdc::log::level();
  cdc::log::set_level(cdc::log::Level::kWarn);
  CHECK_FALSE(cdc::log::enabled(cdc::log::Level::kInfo));
  CHECK(cdc::log::enabled(cdc::log::Level::kError));
  cdc::log::set_level(saved);
}

TEST_CASE("trace ids come from W3C traceparent values", "[log]") {
  using cdc::log::trace_id_from_traceparent;
  CHECK(trace_id_from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") ==
        "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(trace_id_from_traceparent("").empty());
  CHECK(trace_id_from_traceparent("4bf92f3577b34da6a3ce929d0e0e4736").empty());
  CHECK(trace_id_from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").empty());
  CHECK(trace_id_from_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").empty());
  CHECK(trace_id_from_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").empty());
  CHECK(trace_id_from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01").empty());
}

TEST_CASE("the rate limiter lets a few lines through and counts the rest", "[log]") {
  // The clock is the test's: window edges are exact, whatever the machine's load.
  constexpr std::int64_t kMs = 1'000'000;
  const std::int64_t t0 = 1'000'000 * kMs;
  cdc::log::RateLimiter limiter(200 * kMs, 3);  // 3 per 200 ms
  std::uint64_t suppressed = 99;
  for (int i = 0; i < 3; ++i) {
    CHECK(limiter.allow(suppressed, t0 + i));
    CHECK(suppressed == 0);
  }
  for (int i = 0; i < 10; ++i) CHECK_FALSE(limiter.allow(suppressed, t0 + 10 * kMs + i * 10 * kMs));
  // Still the same window 1 ns before its end.
  CHECK_FALSE(limiter.allow(suppressed, t0 + 200 * kMs - 1));
  CHECK(limiter.allow(suppressed, t0 + 200 * kMs));  // a new window
  CHECK(suppressed == 11);                           // the next line that passes says how many were dropped
  CHECK(limiter.allow(suppressed, t0 + 201 * kMs));
  CHECK(suppressed == 0);
  CHECK(limiter.allow(suppressed, t0 + 202 * kMs));
  CHECK_FALSE(limiter.allow(suppressed, t0 + 399 * kMs));  // 3 in this window already
  CHECK(limiter.allow(suppressed, t0 + 400 * kMs + 5));
  CHECK(suppressed == 1);
}

TEST_CASE("the rate limiter reads the steady clock by default", "[log]") {
  // One line per hour: the first passes, the next ones within the same hour do not.
  cdc::log::RateLimiter limiter(3'600'000'000'000LL, 1);
  std::uint64_t suppressed = 99;
  CHECK(limiter.allow(suppressed));
  CHECK(suppressed == 0);
  CHECK_FALSE(limiter.allow(suppressed));
  CHECK_FALSE(limiter.allow(suppressed));
}

TEST_CASE("a full log queue drops and counts lines instead of blocking the caller", "[log]") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const auto saved = cdc::log::level();
  cdc::log::set_level(cdc::log::Level::kInfo);
  const std::uint64_t dropped_before = cdc::log::dropped();
  // Nobody reads the pipe: the writer thread blocks once it is full, the queue (16 lines) fills.
  cdc::log::start(16, fds[1]);
  const std::string padding(400, 'x');
  constexpr int kLines = 2000;
  auto slowest = std::chrono::nanoseconds(0);
  for (int i = 0; i < kLines; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    cdc::log::info("line", {{"i", i}, {"padding", padding}});
    slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
  }
  const std::uint64_t dropped = cdc::log::dropped() - dropped_before;
  CHECK(dropped > 0);
  CHECK(dropped < static_cast<std::uint64_t>(kLines));
  // No call waited for the writer (a blocked write would wait forever here).
  CHECK(slowest < std::chrono::milliseconds(100));

  // Read everything, let stop() write what is queued, and count.
  std::string all;
  std::thread reader([&] {
    char buf[65536];
    ssize_t n = 0;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) all.append(buf, static_cast<std::size_t>(n));
  });
  cdc::log::stop();
  close(fds[1]);
  reader.join();
  close(fds[0]);
  cdc::log::set_level(saved);

  std::size_t lines = 0;
  std::size_t start = 0;
  while (start < all.size()) {
    const std::size_t end = all.find('\n', start);
    REQUIRE(end != std::string::npos);
    const auto keys = keys_of(all.substr(start, end - start));
    CHECK(keys.size() == 5);
    ++lines;
    start = end + 1;
  }
  CHECK(lines + dropped == static_cast<std::size_t>(kLines));
}

TEST_CASE("internal error: one error line on stderr naming the invariant and the call site, then abort",
          "[log][internal_error]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  constexpr int kCallLine = __LINE__ + 5;  // the line of the call below
  if (child == 0) {
    ::dup2(fds[1], STDERR_FILENO);
    // Catch's handler would report a failed test from the child.
    std::signal(SIGABRT, SIG_DFL);
    cdc::on_internal_error("test invariant");  // never returns
  }
  ::close(fds[1]);
  std::string text;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
  INFO(text);
  REQUIRE(!text.empty());
  CHECK(text.back() == '\n');
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  REQUIRE(parser.parse(text).get(obj) == simdjson::SUCCESS);
  CHECK(std::string_view(obj["level"].get_string().value_unsafe()) == "error");
  CHECK(std::string_view(obj["msg"].get_string().value_unsafe()) == "internal error");
  CHECK(std::string_view(obj["invariant"].get_string().value_unsafe()) == "test invariant");
  const std::string at(obj["at"].get_string().value_unsafe());
  CHECK(at.find("log_test.cpp:" + std::to_string(kCallLine)) != std::string::npos);
  CHECK_FALSE(std::string_view(obj["function"].get_string().value_unsafe()).empty());
}
