// The Grafana dashboard (deploy/grafana) and the alert rules (deploy/prometheus) against a real
// Prometheus (Debian's `prometheus`) scraping a running service under load: every panel's and
// every alert's expression goes through Prometheus' HTTP API and must not fail, must name only
// metrics the service exposes, and (panels) must return data; Prometheus evaluates the rules
// without error.

#include <catch2/catch.hpp>
#include <httplib.h>
#include <simdjson.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "pipeline_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace std::chrono_literals;

namespace {

const std::string kDashboard = std::string(CDC_SOURCE_DIR) + "/deploy/grafana/dashboards/daisi-cdc-consumer.json";
const std::string kAlerts = std::string(CDC_SOURCE_DIR) + "/deploy/prometheus/alerts.yml";

struct Query {
  std::string where;  // "panel 'Events by result' A" / "alert CdcDeadLetters"
  std::string expr;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Every target expression of every panel (rows' nested panels included). Grafana's
/// $__rate_interval becomes 30s (four times the 1 s scrape interval, and more).
std::vector<Query> panel_queries() {
  simdjson::dom::parser parser;
  const simdjson::padded_string json(read_file(kDashboard));
  simdjson::dom::element root = parser.parse(json);
  std::vector<Query> out;
  std::vector<simdjson::dom::array> lists{root["panels"].get_array().value()};
  while (!lists.empty()) {
    simdjson::dom::array list = lists.back();
    lists.pop_back();
    for (simdjson::dom::element panel : list) {
      simdjson::dom::array nested;
      if (panel["panels"].get(nested) == simdjson::SUCCESS) lists.push_back(nested);
      simdjson::dom::array targets;
      if (panel["targets"].get(targets) != simdjson::SUCCESS) continue;
      const std::string title(panel["title"].get_string().value());
      for (simdjson::dom::element t : targets) {
        std::string expr(t["expr"].get_string().value());
        for (std::size_t p; (p = expr.find("$__rate_interval")) != std::string::npos;) expr.replace(p, 16, "30s");
        out.push_back({"panel '" + title + "' " + std::string(t["refId"].get_string().value()), expr});
      }
    }
  }
  return out;
}

std::vector<Query> alert_queries() {
  std::vector<Query> out;
  const YAML::Node root = YAML::LoadFile(kAlerts);
  for (const auto& group : root["groups"]) {
    for (const auto& rule : group["rules"])
      out.push_back({"alert " + rule["alert"].as<std::string>(), rule["expr"].as<std::string>()});
  }
  return out;
}

/// The metric names an expression refers to: identifiers outside quoted strings that start with
/// the service's prefixes (cdc_consumer_, process_).
std::set<std::string> metric_names(const std::string& expr) {
  const std::string unquoted = std::regex_replace(expr, std::regex(R"("([^"\\]|\\.)*")"), "\"\"");
  std::set<std::string> names;
  const std::regex ident(R"([a-zA-Z_:][a-zA-Z0-9_:]*)");
  for (auto it = std::sregex_iterator(unquoted.begin(), unquoted.end(), ident); it != std::sregex_iterator(); ++it) {
    const std::string n = it->str();
    if (n.rfind("cdc_consumer_", 0) == 0 || n.rfind("process_", 0) == 0) names.insert(n);
  }
  return names;
}

/// A Prometheus server in a temp dir on a free port, scraping `target` every second and loading
/// the alert rules.
class Prometheus {
 public:
  explicit Prometheus(const std::string& target) : dir_("cdc-prometheus"), port_(free_port()) {
    std::ofstream(dir_.path() / "prometheus.yml")
        << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        << "rule_files: [\"" << kAlerts << "\"]\n"
        << "scrape_configs:\n  - job_name: daisi-cdc-consumer\n    static_configs: [{targets: [\"" << target
        << "\"]}]\n";
    process_.emplace(
        "/usr/bin/prometheus",
        std::vector<std::string>{"--config.file=" + (dir_.path() / "prometheus.yml").string(),
                                 "--storage.tsdb.path=" + (dir_.path() / "data").string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"});
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline && process_->running()) {
      httplib::Client http("127.0.0.1", port_);
      auto res = http.Get("/-/ready");
      if (res && res->status == 200) return;
      std::this_thread::sleep_for(100ms);
    }
    FAIL("prometheus did not become ready: " << process_->output());
  }

  /// POST /api/v1/query: the JSON answer ("" when the request itself failed).
  std::string query(const std::string& expr) const {
    httplib::Client http("127.0.0.1", port_);
    http.set_read_timeout(10, 0);
    auto res = http.Post("/api/v1/query", httplib::Params{{"query", expr}});
    return res ? res->body : std::string();
  }
  std::string get(const std::string& path) const {
    httplib::Client http("127.0.0.1", port_);
    auto res = http.Get(path.c_str());
    return res ? res->body : std::string();
  }

 private:
  TempDir dir_;
  std::uint16_t port_;
  std::optional<ServiceProcess> process_;
};

struct Answer {
  bool ok = false;
  std::string error;
  std::size_t series = 0;
};

Answer parse_answer(const std::string& body) {
  Answer a;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (body.empty() || parser.parse(body).get(root) != simdjson::SUCCESS) {
    a.error = "no JSON answer: " + body;
    return a;
  }
  std::string_view status;
  if (root["status"].get(status) != simdjson::SUCCESS || status != "success") {
    std::string_view e;
    if (root["error"].get(e) != simdjson::SUCCESS) e = "no error message";
    a.error = std::string(e);
    return a;
  }
  a.ok = true;
  simdjson::dom::element data = root["data"];
  std::string_view type = data["resultType"].get_string().value();
  if (type == "vector" || type == "matrix") a.series = data["result"].get_array().size();
  else a.series = 1;  // scalar
  return a;
}

std::set<std::string> exposed_names(const Prometheus& prom) {
  std::set<std::string> names;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(prom.get("/api/v1/label/__name__/values")).get(root) != simdjson::SUCCESS) return names;
  simdjson::dom::array list;
  if (root["data"].get(list) != simdjson::SUCCESS) return names;
  for (simdjson::dom::element n : list) names.emplace(n.get_string().value());
  return names;
}

/// What is wrong with `q` ("" when nothing): a query error, a metric not exposed, no data.
std::string problem(const Prometheus& prom, const Query& q, const std::set<std::string>& exposed, bool need_data) {
  for (const auto& n : metric_names(q.expr)) {
    if (exposed.count(n) == 0) return q.where + ": names " + n + ", which the service does not expose";
  }
  const Answer a = parse_answer(prom.query(q.expr));
  if (!a.ok) return q.where + ": query error: " + a.error;
  if (need_data && a.series == 0) return q.where + ": no data";
  return "";
}

}  // namespace

TEST_CASE("every dashboard panel and alert expression runs on a real Prometheus scraping the service",
          "[integration][observability][dashboard]") {
  const std::vector<Query> panels = panel_queries();
  const std::vector<Query> alerts = alert_queries();
  // The files are what they claim to be (the test is not vacuous).
  REQUIRE(panels.size() >= 40);
  REQUIRE(alerts.size() == 10);
  for (const auto& q : panels) CHECK_FALSE(q.expr.empty());

  NatsServer nats;
  // allkeys-lru: the eviction-policy series exist (and its alert expression has data to match).
  RedisServer redis(RedisServerOptions{{"--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"}});
  Config config = test_config(nats, redis);
  const std::uint16_t port = free_port();
  EnvOverrides env = {{"NATS_URL", nats.url()},
                      {"REDIS_ADDRESS", redis.address()},
                      {"DAISI_CDC_METRICS_PORT", std::to_string(port)},
                      {"DAISI_CDC_METRICS_BIND", "127.0.0.1"},
                      {"DAISI_CDC_METRICS_BACKLOG_INTERVAL", "200ms"},
                      {"DAISI_CDC_PIPELINE_RING_CAPACITY", "1024"},
                      {"LOG_LEVEL", "info"}};
  ServiceProcess service(CDC_BINARY, {}, env);
  REQUIRE(service.wait_for_output("service started", 20s));
  Prometheus prom("127.0.0.1:" + std::to_string(port));

  // A small load with every outcome: published, skipped, duplicates, dead letters.
  auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  const auto bad = read_capture(sample_path("bad-examples.jsonl"));
  records.insert(records.end(), bad.begin(), bad.end());
  JetStreamProbe probe(nats.url());
  publish_all(probe, records);
  REQUIRE(wait_consumer_idle(probe, config, 90s));

  // Poll until Prometheus has a few scrapes of everything (rates need two samples in 30 s).
  std::set<std::string> exposed;
  std::vector<std::string> problems;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  do {
    std::this_thread::sleep_for(1s);
    exposed = exposed_names(prom);
    problems.clear();
    for (const auto& q : panels) {
      if (auto p = problem(prom, q, exposed, true); !p.empty()) problems.push_back(p);
    }
    for (const auto& q : alerts) {
      if (auto p = problem(prom, q, exposed, false); !p.empty()) problems.push_back(p);
    }
  } while (!problems.empty() && std::chrono::steady_clock::now() < deadline);
  std::string all;
  for (const auto& p : problems) all += p + "\n";
  INFO(all);
  CHECK(problems.empty());
  CHECK(exposed.count("cdc_consumer_events_total") == 1);
  CHECK(exposed.count("process_cpu_seconds_total") == 1);

  // Prometheus loaded and evaluated every rule without error.
  simdjson::dom::parser parser;
  simdjson::dom::element rules = parser.parse(prom.get("/api/v1/rules"));
  std::size_t loaded = 0;
  for (simdjson::dom::element group : rules["data"]["groups"].get_array()) {
    for (simdjson::dom::element rule : group["rules"].get_array()) {
      ++loaded;
      std::string_view health = rule["health"].get_string().value();
      INFO(std::string(rule["name"].get_string().value()) << ": " << health);
      CHECK(health != "err");
    }
  }
  CHECK(loaded == alerts.size());

  // The checks can fail: an unknown metric, a syntax error and an empty answer are all caught.
  CHECK_FALSE(problem(prom, {"probe", "rate(cdc_consumer_no_such_metric_total[30s])"}, exposed, false).empty());
  CHECK_FALSE(problem(prom, {"probe", "sum(rate(cdc_consumer_events_total[30s])"}, exposed, false).empty());
  CHECK_FALSE(problem(prom, {"probe", "cdc_consumer_events_total{table=\"no-such\"}"}, exposed, true).empty());
  // ... and a quoted label value is not taken for a metric name.
  CHECK(problem(prom, {"probe", "cdc_consumer_events_total{table=\"cdc_consumer_x\"}"}, exposed, false).empty());
  CHECK(service.terminate(30s) == 0);
}
