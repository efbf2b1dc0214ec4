// Security options end to end: the service (a child process) authenticates to nats-server with a
// user and a password and to redis-server with AUTH and SELECT, both passwords read from files; a
// wrong password stops start-up; no secret ever reaches the service's output.

#include <catch2/catch.hpp>
#include <hiredis/hiredis.h>

#include <fstream>
#include <memory>

#include "pipeline_fixture.hpp"

using namespace cdc;
using namespace cdc::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* kNatsUser = "cdc";
constexpr const char* kNatsPassword = "nats-Secret-7f3a91";
constexpr const char* kRedisPassword = "redis-Secret-c0ffee42";

/// nats-server with two users: `probe` (what unauthenticated clients become: it may only ask
/// the JetStream API whether it is up, so the readiness probe works) and `cdc` with a password.
NatsServerOptions auth_options() {
  NatsServerOptions o;
  o.config_lines = {
      "authorization {",
      "  users = [",
      "    {user: probe, password: probe, permissions: {publish: [\"$JS.API.INFO\"], subscribe: [\"_INBOX.>\"]}}",
      std::string("    {user: ") + kNatsUser + ", password: \"" + kNatsPassword + "\"}",
      "  ]",
      "}",
      "no_auth_user: probe",
  };
  return o;
}

struct RedisReplyDeleter {
  void operator()(void* r) const noexcept { freeReplyObject(r); }
};
struct RedisContextDeleter {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};

constexpr int kRedisDb = 3;

/// Runs one command on `redis` (after AUTH when `password` is set, in database `db`); the reply
/// as text.
std::string redis_command(const RedisServer& redis, const std::vector<std::string>& args, const char* password,
                          int db = 0) {
  std::unique_ptr<redisContext, RedisContextDeleter> c(redisConnect("127.0.0.1", redis.port()));
  REQUIRE(c);
  REQUIRE(c->err == 0);
  const auto run = [&](const std::vector<std::string>& a) {
    std::vector<const char*> argv;
    std::vector<std::size_t> len;
    for (const auto& s : a) {
      argv.push_back(s.c_str());
      len.push_back(s.size());
    }
    std::unique_ptr<void, RedisReplyDeleter> reply(
        redisCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(), len.data()));
    const auto* r = static_cast<const redisReply*>(reply.get());
    REQUIRE(r != nullptr);
    if (r->type == REDIS_REPLY_INTEGER) return std::to_string(r->integer);
    if (r->str != nullptr) return std::string(r->str, r->len);
    return std::string();
  };
  if (password != nullptr) REQUIRE(run({"AUTH", password}) == "OK");
  if (db != 0) REQUIRE(run({"SELECT", std::to_string(db)}) == "OK");
  return run(args);
}

std::string write_secret(const TempDir& dir, const std::string& name, const std::string& secret) {
  const auto path = dir.path() / name;
  std::ofstream(path) << secret << "\n";
  return path.string();
}

EnvOverrides secure_env(const NatsServer& nats, const RedisServer& redis, const std::string& nats_password_file,
                        const std::string& redis_password_file) {
  return {{"NATS_URL", nats.url()},
          {"REDIS_ADDRESS", redis.address()},
          {"DAISI_CDC_NATS_USER", kNatsUser},
          {"DAISI_CDC_NATS_PASSWORD_FILE", nats_password_file},
          {"DAISI_CDC_REDIS_PASSWORD_FILE", redis_password_file},
          {"DAISI_CDC_REDIS_DB", std::to_string(kRedisDb)},
          {"DAISI_CDC_NATS_CONNECT_TIMEOUT", "2s"},
          {"DAISI_CDC_METRICS_ENABLED", "false"},
          {"DAISI_CDC_PIPELINE_RING_CAPACITY", "1024"},
          {"DAISI_CDC_PUBLISH_MAX_PENDING", "256"},
          {"DAISI_CDC_DEDUP_PENDING_TTL", "2s"},
          // debug: the most the service ever logs, all of it checked for secrets.
          {"LOG_LEVEL", "debug"}};
}

void check_no_secrets(const std::string& output) {
  INFO(output.substr(0, 4000));
  CHECK(output.find(kNatsPassword) == std::string::npos);
  CHECK(output.find(kRedisPassword) == std::string::npos);
}

}  // namespace

TEST_CASE("the service authenticates to NATS and Redis with passwords from files and never logs them",
          "[integration][security]") {
  NatsServer nats(auth_options());
  RedisServer redis;
  // Turn on AUTH once the server is up (its readiness probe sends a plain PING).
  REQUIRE(redis_command(redis, {"CONFIG", "SET", "requirepass", kRedisPassword}, nullptr) == "OK");
  TempDir secrets("cdc-secrets");
  const std::string nats_pw = write_secret(secrets, "nats-password", kNatsPassword);
  const std::string redis_pw = write_secret(secrets, "redis-password", kRedisPassword);

  Config config = test_config(nats, redis);
  const std::string authed_url = std::string("nats://") + kNatsUser + ":" + kNatsPassword + "@" + nats.address();
  JetStreamProbe probe(authed_url);
  const auto records = read_capture(sample_path("sequin-mixed-2k.jsonl"));
  const std::vector<CaptureRecord> some(records.begin(), records.begin() + 200);
  const Expected want = expect(config, some);
  probe.create_stream(config.ingest.stream, {"cdc.>"});
  publish_all(probe, some);

  {
    ServiceProcess service(CDC_BINARY, {}, secure_env(nats, redis, nats_pw, redis_pw));
    REQUIRE(service.wait_for_output("service started", 20s));
    REQUIRE(wait_consumer_idle(probe, config, 60s));
    CHECK(probe.count(config.publish.stream) == want.event_ids.size());
    // The dedup marks are in Redis, in the configured database: AUTH and SELECT worked (an
    // unauthenticated client gets NOAUTH).
    CHECK(std::stoul(redis_command(redis, {"DBSIZE"}, kRedisPassword, kRedisDb)) >= want.event_ids.size());
    CHECK(redis_command(redis, {"DBSIZE"}, kRedisPassword) == "0");
    CHECK(redis_command(redis, {"DBSIZE"}, nullptr).find("NOAUTH") != std::string::npos);
    CHECK(service.output().find("redis authentication failed") == std::string::npos);
    CHECK(service.terminate(30s) == 0);
    check_no_secrets(service.output());
  }

  SECTION("a wrong NATS password stops start-up with exit code 1") {
    const std::string wrong = write_secret(secrets, "wrong", "not-the-password");
    ServiceProcess service(CDC_BINARY, {}, secure_env(nats, redis, wrong, redis_pw));
    const auto code = service.wait(30s);
    REQUIRE(code.has_value());
    CHECK(*code == 1);
    CHECK(service.output().find("start-up failed") != std::string::npos);
    CHECK(service.output().find("not-the-password") == std::string::npos);
    check_no_secrets(service.output());
  }

  SECTION("without credentials the service cannot use JetStream and stops with exit code 1") {
    EnvOverrides env = secure_env(nats, redis, nats_pw, redis_pw);
    env["DAISI_CDC_NATS_USER"] = std::nullopt;
    env["DAISI_CDC_NATS_PASSWORD_FILE"] = std::nullopt;
    ServiceProcess service(CDC_BINARY, {}, env);
    const auto code = service.wait(60s);
    REQUIRE(code.has_value());
    CHECK(*code == 1);
  }

  SECTION("a wrong Redis password is reported, by name only, and retried") {
    const std::string wrong = write_secret(secrets, "wrong-redis", "not-the-redis-password");
    ServiceProcess service(CDC_BINARY, {}, secure_env(nats, redis, nats_pw, wrong));
    CHECK(service.wait_for_output("redis authentication failed", 20s));
    CHECK(service.terminate(30s) == 0);
    CHECK(service.output().find("not-the-redis-password") == std::string::npos);
    check_no_secrets(service.output());
  }

  SECTION("a database the server does not have is reported and retried") {
    EnvOverrides env = secure_env(nats, redis, nats_pw, redis_pw);
    env["DAISI_CDC_REDIS_DB"] = "99";  // redis-server has 16 by default
    ServiceProcess service(CDC_BINARY, {}, env);
    CHECK(service.wait_for_output("redis SELECT failed", 20s));
    CHECK(service.output().find("out of range") != std::string::npos);
    CHECK(service.terminate(30s) == 0);
    check_no_secrets(service.output());
  }

  SECTION("a password given in the URL is not logged") {
    EnvOverrides env = secure_env(nats, redis, nats_pw, redis_pw);
    env["DAISI_CDC_NATS_USER"] = std::nullopt;
    env["DAISI_CDC_NATS_PASSWORD_FILE"] = std::nullopt;
    env["NATS_URL"] = authed_url;
    ServiceProcess service(CDC_BINARY, {}, env);
    REQUIRE(service.wait_for_output("service started", 20s));
    CHECK(service.output().find("nats://***@" + nats.address()) != std::string::npos);
    CHECK(service.terminate(30s) == 0);
    check_no_secrets(service.output());
  }

  SECTION("an unreadable password file is invalid configuration (exit code 2)") {
    ServiceProcess service(CDC_BINARY, {}, secure_env(nats, redis, (secrets.path() / "missing").string(), redis_pw));
    REQUIRE(service.wait(20s) == std::optional<int>(2));
    CHECK(service.output().find("nats.password_file: cannot read") != std::string::npos);
  }
}
