// The metrics registry and its Prometheus text exposition (format 0.0.4): label escaping,
// histogram rendering, the lag window, and the whole exposition checked by `promtool check metrics`.

#include "cdc/core/metrics.hpp"
#include "cdc/adapters/redis/redis_info_probe.hpp"

#include <stdlib.h>  // mkstemp
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

using cdc::Histogram;
using cdc::Metrics;
using cdc::ScrapeState;

constexpr std::int64_t kSec = 1'000'000'000;

struct Sample {
  std::string name;
  std::string labels;  // as rendered, without braces
  std::string value;
};

/// The sample lines of an exposition (comments skipped).
std::vector<Sample> samples_of(const std::string& text) {
  std::vector<Sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    const auto brace = line.find('{');
    const auto space = line.rfind(' ');
    if (brace != std::string::npos && brace < space) {
      s.name = line.substr(0, brace);
      const auto close = line.rfind('}');
      s.labels = line.substr(brace + 1, close - brace - 1);
    } else {
      s.name = line.substr(0, space);
    }
    s.value = line.substr(space + 1);
    out.push_back(s);
  }
  return out;
}

std::string value_of(const std::string& text, const std::string& name, const std::string& labels = "") {
  for (const auto& s : samples_of(text)) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  return "<missing>";
}

struct CommandResult {
  int status = -1;
  std::string output;
};

/// Runs `promtool check metrics` on `text`; status is the exit code.
CommandResult promtool_check(const std::string& text) {
  char path[] = "/tmp/cdc_metrics_test_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  close(fd);
  CommandResult r;
  const std::string cmd = std::string("promtool check metrics < ") + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  std::size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::remove(path);
  return r;
}

bool have_promtool() { return std::system("command -v promtool > /dev/null 2>&1") == 0; }

/// A registry with every counter, gauge and histogram set to something, as a running service has.
std::string busy_exposition() {
  Metrics m({"messages", "chats", "agents"});
  for (std::size_t t = 0; t < m.table_labels().size(); ++t) {
    for (std::size_t r = 0; r < Metrics::kResults; ++r) m.ack.events[t][r].inc(t * 10 + r + 1);
    m.ack.processing[t].observe_ns(static_cast<std::int64_t>(t + 1) * 3'000'000);
  }
  for (std::size_t k = 0; k < Metrics::kErrorKinds; ++k) m.ack.dead_letters[k].inc(k);
  m.ack.acks.inc(100);
  m.ack.naks.inc(3);
  m.ack.terms.inc(2);
  m.ack.completion_errors.inc();
  m.ack.redis_mark_errors.inc(4);
  m.ack.lag.observe(5 * kSec, 1'500'000);
  m.ack.last_completion_unix_ms.set(1'700'000'000'123);
  m.ack.stage.observe_ns(2'000'000);
  m.publish.published.inc(90);
  m.publish.publish_errors.inc(2);
  m.publish.retries.inc(2);
  m.publish.timeouts.inc(1);
  m.publish.in_flight.set(7);
  m.publish.stage.observe_ns(1'000'000);
  m.puback.acks.inc(88);
  m.puback.duplicates.inc(2);
  m.puback.errors.inc(1);
  m.puback.stale.inc(1);
  m.puback.latency.observe_ns(700'000);
  m.dedup.hit.inc(5);
  m.dedup.miss.inc(85);
  m.dedup.errors.inc(1);
  m.dedup.round_trip.observe_ns(300'000);
  m.dedup.stage.observe_ns(400'000);
  m.parse.parsed.inc(95);
  m.parse.invalid.inc(5);
  m.parse.stage.observe_ns(100'000);
  m.monitor.backlog.set(1234);
  m.monitor.ack_pending.set(56);
  m.monitor.backlog_unix_ms.set(1'700'000'000'000);
  m.monitor.backlog_errors.inc();
  m.monitor.failing_ms.set(2500);
  m.control.reloads_ok.inc();
  m.parse.skipped_tables.inc("audit");
  m.parse.skipped_tables.inc("invoices");
  m.monitor.redis_evicted_keys.set(17);
  m.monitor.redis_policy.set(1);
  m.fleet.resize(4);
  m.fleet.owned.set(2);
  m.fleet.acquisitions.inc(3);
  m.fleet.losses.inc(1);
  m.fleet.releases.inc(1);
  m.fleet.rebalances.inc(2);
  m.fleet.consumers_recreated.inc(1);
  m.fleet.consumer_missing.set(0);
  m.fleet.partition_backlog[1].set(40);
  m.fleet.partition_backlog[3].set(2);
  m.fleet.checkpoint_lag[1].set(5);
  m.fleet.checkpoint_lag[3].set(0);
  m.fleet.unconsumed.set(3);
  ScrapeState st;
  st.revision = "0123456789ab";
  st.dependencies = {{{"nats_c", "3.3.0"}, {"simdjson", "3.0.1"}, {"hiredis", "0.14.1"}, {"libuv", "1.44.2"}}};
  st.guard_max_failure_ms = 900'000;
  st.ring_occupancy = {1000, 2, 3, 4, 5};
  st.ring_capacity = 1024;
  st.in_flight = 24;
  st.running = st.ready = true;
  for (auto& c : st.nats) c = {c.name, true, true, 1, 1};
  for (auto& c : st.redis) c = {c.name, true, false, 2, 7};
  st.log_dropped = 9;
  st.version = "0.1.0";
  return m.render(st);
}

}  // namespace

TEST_CASE("label values escape backslash, double quote and newline", "[metrics]") {
  std::string out;
  cdc::append_label_value("plain", out);
  CHECK(out == "plain");
  out.clear();
  cdc::append_label_value("a\\b\"c\nd", out);
  CHECK(out == "a\\\\b\\\"c\\nd");
  out.clear();
  // Other bytes, UTF-8 included, pass as they are (the format is UTF-8).
  cdc::append_label_value("t\xC3\xA9l\xC3\xA9phone\t{x=1}", out);
  CHECK(out == "t\xC3\xA9l\xC3\xA9phone\t{x=1}");
  out.clear();
  // HELP text escapes backslash and newline only.
  cdc::append_help_text("a\\b\"c\nd", out);
  CHECK(out == "a\\\\b\"c\\nd");
}

TEST_CASE("escaped label values render and parse back", "[metrics]") {
  Metrics m({"messages"});
  ScrapeState st;
  st.version = "1.0 \"rc\\1\"\nx";
  const std::string text = m.render(st);
  CHECK(text.find("cdc_consumer_build_info{version=\"1.0 \\\"rc\\\\1\\\"\\nx\",revision=\"unknown\"} 1\n") !=
        std::string::npos);
  if (have_promtool()) {
    const CommandResult r = promtool_check(text);
    INFO(r.output);
    CHECK(r.status == 0);
  }
}

TEST_CASE("histograms render cumulative buckets, _sum and _count equal to the +Inf bucket", "[metrics]") {
  Histogram h;
  h.observe_ns(0);          // le 5e-05
  h.observe_ns(50'000);     // exactly on a bound: le 5e-05 (le is inclusive)
  h.observe_ns(50'001);     // le 0.0001
  h.observe_ns(1'000'000);  // le 0.001
  h.observe_ns(-5);         // clamped to 0: le 5e-05
  h.observe_ns(11 * kSec);  // only +Inf
  h.observe_ns(3 * kSec);   // le 5
  std::string text;
  h.render(text, "x_seconds", "table=\"messages\"");

  const auto samples = samples_of(text);
  REQUIRE(samples.size() == Histogram::kBuckets + 3);
  std::map<std::string, std::uint64_t> buckets;
  std::uint64_t previous = 0;
  for (std::size_t i = 0; i <= Histogram::kBuckets; ++i) {
    const Sample& s = samples[i];
    CHECK(s.name == "x_seconds_bucket");
    const std::string le = i < Histogram::kBuckets ? std::string(Histogram::kLe[i]) : "+Inf";
    CHECK(s.labels == "table=\"messages\",le=\"" + le + "\"");
    const std::uint64_t v = std::stoull(s.value);
    CHECK(v >= previous);  // cumulative
    previous = v;
    buckets[le] = v;
  }
  CHECK(buckets["5e-05"] == 3);
  CHECK(buckets["0.0001"] == 4);
  CHECK(buckets["0.0005"] == 4);
  CHECK(buckets["0.001"] == 5);
  CHECK(buckets["2.5"] == 5);
  CHECK(buckets["5"] == 6);
  CHECK(buckets["10"] == 6);
  CHECK(buckets["+Inf"] == 7);
  CHECK(samples[Histogram::kBuckets + 1].name == "x_seconds_sum");
  CHECK(std::stod(samples[Histogram::kBuckets + 1].value) == Approx(14.001100001).epsilon(1e-12));
  CHECK(samples[Histogram::kBuckets + 2].name == "x_seconds_count");
  CHECK(samples[Histogram::kBuckets + 2].value == "7");
  CHECK(h.count() == 7);

  // Bounds in ns and le labels agree.
  for (std::size_t i = 0; i < Histogram::kBuckets; ++i) {
    INFO(Histogram::kLe[i]);
    CHECK(std::stod(std::string(Histogram::kLe[i])) * 1e9 == Approx(static_cast<double>(Histogram::kBoundsNs[i])));
  }

  // Without labels the le label stands alone.
  Histogram empty;
  std::string bare;
  empty.render(bare, "y_seconds", "");
  CHECK(bare.find("y_seconds_bucket{le=\"5e-05\"} 0\n") != std::string::npos);
  CHECK(bare.find("y_seconds_bucket{le=\"+Inf\"} 0\n") != std::string::npos);
  CHECK(bare.find("y_seconds_sum 0\n") != std::string::npos);
  CHECK(bare.find("y_seconds_count 0\n") != std::string::npos);
}

TEST_CASE("histogram quantiles are bucket upper bounds", "[metrics]") {
  Histogram h;
  CHECK(h.quantile(0.5) == 0);
  for (int i = 0; i < 90; ++i) h.observe_ns(80'000);      // le 0.0001
  for (int i = 0; i < 10; ++i) h.observe_ns(40'000'000);  // le 0.05
  CHECK(h.quantile(0.5) == Approx(0.0001));
  CHECK(h.quantile(0.9) == Approx(0.0001));
  CHECK(h.quantile(0.99) == Approx(0.05));
}

TEST_CASE("the lag window keeps the maximum of the last 10 seconds", "[metrics]") {
  cdc::WindowMax w;
  const std::int64_t t0 = 1000 * kSec;
  CHECK(w.max(t0) == 0);
  w.observe(t0, 300);
  w.observe(t0 + kSec / 2, 200);  // same second, smaller: kept 300
  w.observe(t0 + 3 * kSec, 100);
  CHECK(w.max(t0 + 3 * kSec) == 300);
  CHECK(w.max(t0 + 9 * kSec + kSec / 2) == 300);  // t0's slot is 9 s old: still in
  CHECK(w.max(t0 + 10 * kSec) == 100);            // 10 s old: out
  CHECK(w.max(t0 + 13 * kSec) == 0);              // everything out when idle
  // A slot is reused ten seconds later: the old maximum does not leak into the new second.
  w.observe(t0 + 20 * kSec, 5);
  CHECK(w.max(t0 + 20 * kSec) == 5);
  w.observe(t0 + 20 * kSec, 7);
  CHECK(w.max(t0 + 20 * kSec) == 7);
  // Negative latencies count as 0; huge ones are capped, not wrapped.
  w.observe(t0 + 21 * kSec, -4);
  CHECK(w.max(t0 + 21 * kSec) == 7);
  w.observe(t0 + 22 * kSec, std::int64_t{1} << 50);
  CHECK(w.max(t0 + 22 * kSec) == (std::int64_t{1} << 48) - 1);
  // Far in the future (the 16-bit second tag wraps after 65536 s) nothing stale comes back.
  CHECK(w.max(t0 + 65536 * kSec + 5 * kSec) >= 0);
}

TEST_CASE("the stage timer observes every noted event at the end of the batch", "[metrics]") {
  Histogram h;
  cdc::StageTimer timer(h, 4);
  CHECK(timer.empty());
  timer.note(1 * kSec);
  timer.note(1 * kSec + 500'000);
  CHECK_FALSE(timer.empty());
  CHECK(h.count() == 0);
  timer.flush(1 * kSec + 1'000'000);  // 1 ms and 0.5 ms
  CHECK(h.count() == 2);
  CHECK(h.sum_seconds() == Approx(0.0015));
  CHECK(timer.empty());
  // Beyond its capacity a batch is observed only in part, never out of bounds.
  for (int i = 0; i < 10; ++i) timer.note(0);
  timer.flush(kSec);
  CHECK(h.count() == 6);
}

TEST_CASE("the exposition has HELP and TYPE once per family, before its samples", "[metrics]") {
  const std::string text = busy_exposition();
  std::map<std::string, std::string> type_of;
  std::set<std::string> help;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      const std::string name = line.substr(7, line.find(' ', 7) - 7);
      CHECK(help.insert(name).second);
    } else if (line.rfind("# TYPE ", 0) == 0) {
      const std::string rest = line.substr(7);
      const std::string name = rest.substr(0, rest.find(' '));
      CHECK(help.count(name) == 1);
      CHECK(type_of.emplace(name, rest.substr(rest.find(' ') + 1)).second);
    } else {
      std::string name = line.substr(0, line.find_first_of("{ "));
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string s(suffix);
        if (type_of.count(name) == 0 && name.size() > s.size() &&
            name.compare(name.size() - s.size(), s.size(), s) == 0) {
          name = name.substr(0, name.size() - s.size());
        }
      }
      INFO(line);
      CHECK(type_of.count(name) == 1);
    }
  }
  // The contract's families, with their types (CONTRACT.md section 7).
  CHECK(type_of["cdc_consumer_events_total"] == "counter");
  CHECK(type_of["cdc_consumer_publish_errors_total"] == "counter");
  CHECK(type_of["cdc_consumer_processing_seconds"] == "histogram");
  CHECK(type_of["cdc_consumer_redis_hit_total"] == "counter");
  CHECK(type_of["cdc_consumer_lag_seconds"] == "gauge");
  // And what operators tune with.
  for (const char* name :
       {"cdc_consumer_stage_latency_seconds", "cdc_consumer_ring_occupancy", "cdc_consumer_publish_in_flight",
        "cdc_consumer_redis_errors_total", "cdc_consumer_redis_reconnects_total", "cdc_consumer_nats_reconnects_total",
        "cdc_consumer_dead_letters_total", "cdc_consumer_backlog_messages", "cdc_consumer_build_info",
        "cdc_consumer_log_dropped_total"}) {
    INFO(name);
    CHECK(type_of.count(name) == 1);
  }
}

TEST_CASE("the exposition carries the values of the registry", "[metrics]") {
  const std::string text = busy_exposition();
  CHECK(value_of(text, "cdc_consumer_events_total", "table=\"messages\",result=\"processed\"") == "1");
  CHECK(value_of(text, "cdc_consumer_events_total", "table=\"chats\",result=\"duplicate\"") == "13");
  CHECK(value_of(text, "cdc_consumer_events_total", "table=\"_other\",result=\"skipped\"") == "32");
  CHECK(value_of(text, "cdc_consumer_events_total", "table=\"agents\",result=\"dead_lettered\"") == "24");
  // retried is not a contract result: it has its own family.
  CHECK(value_of(text, "cdc_consumer_events_total", "table=\"messages\",result=\"retried\"") == "<missing>");
  CHECK(value_of(text, "cdc_consumer_retries_total") == std::to_string(5 + 15 + 25 + 35));
  CHECK(value_of(text, "cdc_consumer_publish_errors_total") == "4");  // 2 not sent + 1 timeout + 1 negative PubAck
  CHECK(value_of(text, "cdc_consumer_redis_hit_total", "result=\"hit\"") == "5");
  CHECK(value_of(text, "cdc_consumer_redis_hit_total", "result=\"miss\"") == "85");
  CHECK(value_of(text, "cdc_consumer_processing_seconds_count", "table=\"chats\"") == "1");
  CHECK(value_of(text, "cdc_consumer_dead_letters_total", "error_kind=\"invalid_json\"") == "1");
  CHECK(value_of(text, "cdc_consumer_dead_letters_total", "error_kind=\"publish_rejected\"") == "8");
  CHECK(value_of(text, "cdc_consumer_stage_latency_seconds_count", "stage=\"parse\"") == "1");
  CHECK(value_of(text, "cdc_consumer_ring_occupancy", "ring=\"free\"") == "1000");
  CHECK(value_of(text, "cdc_consumer_publish_in_flight") == "7");
  CHECK(value_of(text, "cdc_consumer_redis_errors_total", "connection=\"mark\"") == "4");
  CHECK(value_of(text, "cdc_consumer_redis_connect_failures_total", "connection=\"dedup\"") == "7");
  CHECK(value_of(text, "cdc_consumer_nats_reconnects_total", "connection=\"publish\"") == "1");
  CHECK(value_of(text, "cdc_consumer_backlog_messages") == "1234");
  CHECK(value_of(text, "cdc_consumer_ack_pending_messages") == "56");
  CHECK(value_of(text, "cdc_consumer_failing_seconds") == "2.5");
  CHECK(value_of(text, "cdc_consumer_log_dropped_total") == "9");
  CHECK(value_of(text, "cdc_consumer_build_info",
                 "version=\"0.1.0\",revision=\"0123456789ab\",nats_c=\"3.3.0\",simdjson=\"3.0.1\",hiredis=\"0.14.1\","
                 "libuv=\"1.44.2\"") == "1");
  CHECK(value_of(text, "cdc_consumer_last_completion_timestamp_seconds") == "1700000000.123");

  // Before the first backlog read the backlog series are absent, not a misleading 0.
  Metrics fresh({"messages"});
  const std::string none = fresh.render(ScrapeState{});
  CHECK(none.find("cdc_consumer_backlog_messages") == std::string::npos);
  // Connections not in use (in-process ports, dedup off) have no series.
  CHECK(none.find("cdc_consumer_nats_connected{") == std::string::npos);
}

TEST_CASE("promtool check metrics accepts the exposition", "[metrics][promtool]") {
  REQUIRE(have_promtool());  // Debian package prometheus (scripts/install-deps.sh)
  const std::string busy = busy_exposition();
  CommandResult r = promtool_check(busy);
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.empty());

  // A fresh registry too (empty histograms, no backlog yet).
  Metrics fresh({"messages", "chats", "agents"});
  r = promtool_check(fresh.render(ScrapeState{}));
  INFO(r.output);
  CHECK(r.status == 0);

  // The check is not vacuous: promtool refuses what breaks the format or its lint rules.
  r = promtool_check(busy + "cdc_consumer_events_total{table=\"messages\" 1\n");
  CHECK(r.status != 0);
  r = promtool_check("# HELP x counter without suffix\n# TYPE x counter\nx 1\n");
  CHECK(r.status != 0);
}

TEST_CASE("skipped messages count per table for the first 64 names, later names under _other", "[metrics]") {
  Metrics m({"messages"});
  // Fresh: only the overflow series, at 0 (the family exists for dashboards and alerts).
  std::string text = m.render(ScrapeState{});
  CHECK(value_of(text, "cdc_consumer_skipped_messages_total", "table=\"_other\"") == "0");
  CHECK(value_of(text, "cdc_consumer_skipped_messages_total", "table=\"invoices\"") == "<missing>");

  m.parse.skipped_tables.inc("invoices");
  m.parse.skipped_tables.inc("invoices");
  m.parse.skipped_tables.inc("audit");
  m.parse.skipped_tables.inc("invoices");
  text = m.render(ScrapeState{});
  CHECK(value_of(text, "cdc_consumer_skipped_messages_total", "table=\"invoices\"") == "3");
  CHECK(value_of(text, "cdc_consumer_skipped_messages_total", "table=\"audit\"") == "1");
  CHECK(value_of(text, "cdc_consumer_skipped_messages_total", "table=\"_other\"") == "0");

  // Fill the label set: names 63 more distinct tables take the remaining slots; the rest overflow.
  for (int i = 0; i < 100; ++i)
    m.parse.skipped_tables.inc(
        std::string("t").append(std::to_string(i)));  // not "t" + ...: GCC 12 -O3 -Wrestrict (bug 105329)
  CHECK(m.parse.skipped_tables.size() == cdc::NamedCounters::kSlots);
  text = m.render(ScrapeState{});
  CHECK(value_of(text, "cdc_consumer_skipped_messages_total", "table=\"t61\"") == "1");
  CHECK(value_of(text, "cdc_consumer_skipped_messages_total", "table=\"t62\"") == "<missing>");
  CHECK(value_of(text, "cdc_consumer_skipped_messages_total", "table=\"_other\"") == "38");
  // A name already counted keeps its own series; an over-long name and "_other" itself overflow.
  m.parse.skipped_tables.inc("invoices");
  m.parse.skipped_tables.inc(std::string(cdc::NamedCounters::kMaxName + 1, 'x'));
  text = m.render(ScrapeState{});
  CHECK(value_of(text, "cdc_consumer_skipped_messages_total", "table=\"invoices\"") == "4");
  CHECK(value_of(text, "cdc_consumer_skipped_messages_total", "table=\"_other\"") == "39");
  std::size_t series = 0;
  for (const auto& s : samples_of(text)) series += s.name == "cdc_consumer_skipped_messages_total" ? 1 : 0;
  CHECK(series == cdc::NamedCounters::kSlots + 1);
}

TEST_CASE("Redis evictions and policy render once read, absent before", "[metrics]") {
  Metrics m({"messages"});
  std::string text = m.render(ScrapeState{});
  CHECK(text.find("cdc_consumer_redis_evicted_keys") == std::string::npos);
  CHECK(text.find("cdc_consumer_redis_maxmemory_policy") == std::string::npos);
  m.monitor.redis_evicted_keys.set(42);
  m.monitor.redis_policy.set(static_cast<std::int64_t>(cdc::kRedisPolicies.size() - 2));  // volatile-random
  text = m.render(ScrapeState{});
  CHECK(value_of(text, "cdc_consumer_redis_evicted_keys") == "42");
  CHECK(value_of(text, "cdc_consumer_redis_maxmemory_policy", "policy=\"volatile-random\"") == "1");
}

TEST_CASE("build_info carries version, revision and dependency versions, and the guard limit renders", "[metrics]") {
  const std::string text = busy_exposition();
  CHECK(value_of(text, "cdc_consumer_build_info",
                 "version=\"0.1.0\",revision=\"0123456789ab\",nats_c=\"3.3.0\",simdjson=\"3.0.1\","
                 "hiredis=\"0.14.1\",libuv=\"1.44.2\"") == "1");
  CHECK(value_of(text, "cdc_consumer_guard_max_failure_seconds") == "900");
}

TEST_CASE("process metrics are read from /proc at scrape time", "[metrics]") {
  std::string text;
  Metrics::render_process(text);
  const auto number = [&](const std::string& name) {
    const std::string v = value_of(text, name);
    INFO(name << " = " << v);
    REQUIRE(v != "<missing>");
    return std::stod(v);
  };
  const double now = static_cast<double>(std::time(nullptr));
  CHECK(number("process_start_time_seconds") <= now + 1);
  CHECK(number("process_start_time_seconds") > now - 24 * 3600);  // this test binary started today
  CHECK(number("process_cpu_seconds_total") >= 0);
  CHECK(number("process_resident_memory_bytes") > 1024 * 1024);
  CHECK(number("process_virtual_memory_bytes") >= number("process_resident_memory_bytes"));
  // One more open file shows up in the next scrape.
  const double fds = number("process_open_fds");
  CHECK(fds >= 3);
  FILE* f = std::fopen("/proc/self/stat", "r");
  REQUIRE(f != nullptr);
  text.clear();
  Metrics::render_process(text);
  CHECK(number("process_open_fds") == fds + 1);
  std::fclose(f);
  CHECK(number("process_max_fds") >= fds);
  // A registry renders them unless told not to.
  CHECK(Metrics({"m"}).render(ScrapeState{}).find("process_open_fds ") != std::string::npos);
  ScrapeState no_process;
  no_process.process = false;
  CHECK(Metrics({"m"}).render(no_process).find("process_open_fds") == std::string::npos);
}

TEST_CASE("Redis INFO fields are read and every policy but noeviction can evict dedup marks", "[metrics][redis]") {
  const std::string info =
      "# Stats\r\ntotal_connections_received:3\r\nexpired_keys:5\r\nevicted_keys:1234\r\n"
      "evicted_clients:0\r\n# Memory\r\nmaxmemory:2097152\r\nmaxmemory_policy:volatile-lru\r\n";
  std::string_view v;
  REQUIRE(cdc::redis_info_field(info, "evicted_keys", v));
  CHECK(v == "1234");
  REQUIRE(cdc::redis_info_field(info, "maxmemory_policy", v));
  CHECK(v == "volatile-lru");
  REQUIRE(cdc::redis_info_field(info, "maxmemory", v));  // not confused with maxmemory_policy
  CHECK(v == "2097152");
  CHECK_FALSE(cdc::redis_info_field(info, "evicted", v));
  CHECK_FALSE(cdc::redis_info_field("", "evicted_keys", v));
  CHECK(cdc::redis_info_field("evicted_keys:7", "evicted_keys", v));  // last line without CRLF
  CHECK(v == "7");

  CHECK(cdc::kRedisPolicies[cdc::redis_policy_index("noeviction")] == "noeviction");
  CHECK(cdc::kRedisPolicies[cdc::redis_policy_index("allkeys-lfu")] == "allkeys-lfu");
  CHECK(cdc::kRedisPolicies[cdc::redis_policy_index("volatile-ttl")] == "volatile-ttl");
  CHECK(cdc::kRedisPolicies[cdc::redis_policy_index("some-future-policy")] == "other");
  CHECK_FALSE(cdc::redis_policy_can_evict("noeviction"));
  for (const char* p : {"allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-ttl",
                        "volatile-random"}) {
    INFO(p);
    CHECK(cdc::redis_policy_can_evict(p));  // dedup marks carry a TTL: volatile-* picks them too
  }
}

TEST_CASE("fleet series render once a fleet attached, per owned partition, absent before", "[metrics][fleet]") {
  Metrics m({"messages"});
  const ScrapeState st;
  CHECK(m.render(st).find("cdc_consumer_partitions") == std::string::npos);
  m.fleet.resize(8);
  m.fleet.owned.set(1);
  m.fleet.acquisitions.inc(2);
  m.fleet.partition_backlog[5].set(12);
  m.fleet.checkpoint_lag[5].set(3);
  const std::string text = m.render(st);
  CHECK(value_of(text, "cdc_consumer_partitions") == "8");
  CHECK(value_of(text, "cdc_consumer_partitions_owned") == "1");
  CHECK(value_of(text, "cdc_consumer_lease_acquisitions_total") == "2");
  CHECK(value_of(text, "cdc_consumer_partition_backlog", "partition=\"5\"") == "12");
  CHECK(value_of(text, "cdc_consumer_checkpoint_lag", "partition=\"5\"") == "3");
  CHECK(value_of(text, "cdc_consumer_unconsumed_messages") == "0");
  m.fleet.unconsumed.set(7);
  CHECK(value_of(m.render(st), "cdc_consumer_unconsumed_messages") == "7");
  // Partitions not owned have no sample.
  CHECK(text.find("cdc_consumer_partition_backlog{partition=\"4\"}") == std::string::npos);
}
