// The service's --check-config and --print-config as an operator runs them (no servers needed,
// but they exercise the binary, so they live with the integration tests).

#include <catch2/catch.hpp>

#include <fstream>

#include "servers.hpp"

using namespace cdc::test;
using namespace std::chrono_literals;

TEST_CASE("the service's --check-config lists every error on stderr and names the file, exit 2",
          "[integration][config]") {
  TempDir dir("cdc-check-config");
  const std::string path = (dir.path() / "bad.yaml").string();
  std::ofstream(path) << "nats:\n  conect_timeout: 5s\npipeline:\n  ring_capacity: 1000\nlog:\n  level: loud\n";
  ServiceProcess p(CDC_BINARY, {"--config", path, "--check-config"}, {{"DAISI_CDC_DEDUP_TTL", "forever"}});
  REQUIRE(p.wait(20s) == 2);
  const std::string out = p.output();
  INFO(out);
  CHECK(out.find("configuration file " + path) != std::string::npos);
  CHECK(out.find("nats.conect_timeout: unknown key") != std::string::npos);
  CHECK(out.find("pipeline.ring_capacity: must be a power of two") != std::string::npos);
  CHECK(out.find("log.level: expected one of") != std::string::npos);
  CHECK(out.find("DAISI_CDC_DEDUP_TTL: ") != std::string::npos);
  CHECK(out.find("5 errors") != std::string::npos);  // the four above and max_pending over the ring
  CHECK(out.find("configuration is valid") == std::string::npos);
}

TEST_CASE("the service's --check-config without a file says the defaults were checked", "[integration][config]") {
  ServiceProcess p(CDC_BINARY, {"--check-config"}, {});
  REQUIRE(p.wait(20s) == 0);
  CHECK(
      p.output().find("no configuration file given (--config): built-in defaults with environment overrides: valid") !=
      std::string::npos);
}

TEST_CASE("the service's --print-config prints the effective configuration with secrets redacted",
          "[integration][config]") {
  ServiceProcess p(CDC_BINARY, {"--config", std::string(CDC_SOURCE_DIR) + "/config.yaml", "--print-config"},
                   {{"NATS_URL", "nats://svc:pa55word-xyz@nats.internal:4222"},
                    {"DAISI_CDC_REDIS_PASSWORD", "redis-secret-xyz"},
                    {"JS_ACK_WAIT", "42s"}});
  REQUIRE(p.wait(20s) == 0);
  const std::string out = p.output();
  INFO(out);
  CHECK(out.find("ack_wait: 42s") != std::string::npos);
  CHECK(out.find("nats://***@nats.internal:4222") != std::string::npos);
  CHECK(out.find("password: <redacted>") != std::string::npos);
  CHECK(out.find("pa55word-xyz") == std::string::npos);
  CHECK(out.find("redis-secret-xyz") == std::string::npos);
}

TEST_CASE("the service's --check-config names a bad pipeline.threads, --print-config shows the thread layout",
          "[integration][config]") {
  {
    ServiceProcess p(CDC_BINARY, {"--check-config"}, {{"DAISI_CDC_PIPELINE_THREADS", "ingest,parse/dedup,publish"}});
    REQUIRE(p.wait(20s) == 2);
    const std::string out = p.output();
    INFO(out);
    CHECK(out.find("DAISI_CDC_PIPELINE_THREADS: missing stage 'ack'") != std::string::npos);
  }
  // park, the wait strategy's earlier name, still loads and prints as blocking.
  ServiceProcess p(
      CDC_BINARY, {"--print-config"},
      {{"DAISI_CDC_PIPELINE_THREADS", "ingest,parse/dedup,publish,ack"}, {"DAISI_CDC_PIPELINE_WAIT_STRATEGY", "park"}});
  REQUIRE(p.wait(20s) == 0);
  const std::string out = p.output();
  INFO(out);
  CHECK(out.find("threads: [[ingest, parse], [dedup, publish, ack]]") != std::string::npos);
  CHECK(out.find("wait_strategy: blocking") != std::string::npos);
}
