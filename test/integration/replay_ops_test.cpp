// cdc-replay as an operator uses it against a secured cluster: the service's NATS connection
// options (flags, --config's nats section, DAISI_CDC_NATS_* and NATS_URL), errors that name the
// cause, distinct exit codes (0 ok, 1 runtime failure, 2 usage or configuration), --version, and
// `gen` output a default server accepts.

#include <catch2/catch.hpp>

#include <fstream>

#include "servers.hpp"

using namespace cdc::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* kUser = "replay";
constexpr const char* kPassword = "replay-Pw-5e1f";

/// nats-server -js where only `replay` with its password may connect.
NatsServerOptions password_server() {
  NatsServerOptions o;
  // Unauthenticated clients become `probe`: it may only ask whether JetStream is up.
  o.config_lines = {
      "authorization {",
      "  users = [",
      "    {user: probe, password: probe, permissions: {publish: [\"$JS.API.INFO\"], subscribe: [\"_INBOX.>\"]}}",
      std::string("    {user: ") + kUser + ", password: \"" + kPassword + "\"}",
      "  ]",
      "}",
      "no_auth_user: probe"};
  return o;
}

struct Run {
  int code = -1;
  std::string output;
};

Run replay(const std::vector<std::string>& args, EnvOverrides env = {}) {
  env.emplace("NATS_URL", std::nullopt);  // only where a test sets it
  ServiceProcess p(CDC_REPLAY_BINARY, args, env);
  Run r;
  const auto code = p.wait(120s);
  r.output = p.output();
  r.code = code ? *code : -1;
  UNSCOPED_INFO("cdc-replay " << (args.empty() ? "" : args[0]) << " -> " << r.code << ":\n" << r.output);
  return r;
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("cdc-replay reaches a password-protected server with the service's options", "[integration][replay][ops]") {
  NatsServer nats(password_server());
  TempDir dir("cdc-replay-ops");
  const std::string capture = (dir.path() / "gen.jsonl").string();
  REQUIRE(replay({"gen", "--out", capture, "--count", "500", "--seed", "5"}).code == 0);
  const std::string password_file = (dir.path() / "password").string();
  std::ofstream(password_file) << kPassword << "\n";

  // Without credentials: the server refuses (the probe user may not create streams): runtime failure.
  Run r = replay({"publish", capture, "--url", nats.url(), "--create-stream", "cdc_events_stream"});
  CHECK(r.code == 1);
  // With --user and --password-file (the secret never on the command line).
  r = replay({"publish", capture, "--url", nats.url(), "--user", kUser, "--password-file", password_file,
              "--create-stream", "cdc_events_stream", "-q"});
  CHECK(r.code == 0);
  CHECK_FALSE(contains(r.output, kPassword));

  // The service's config.yaml: its nats section (url, user, password_file); NATS_URL wins over it.
  const std::string config = (dir.path() / "config.yaml").string();
  std::ofstream(config) << "nats:\n  url: nats://127.0.0.1:1\n  user: " << kUser
                        << "\n  password_file: " << password_file
                        << "\nredis:\n  password_file: /nonexistent/not-needed-by-replay\n";
  r = replay({"capture", "--config", config, "--stream", "cdc_events_stream", "-o", (dir.path() / "c.jsonl").string(),
              "--quiet"},
             {{"NATS_URL", nats.url()}});
  CHECK(r.code == 0);
  std::ifstream captured(dir.path() / "c.jsonl");
  std::size_t lines = 0;
  for (std::string line; std::getline(captured, line);) ++lines;
  CHECK(lines == 500);
  // Without NATS_URL the file's (unreachable) URL is used: a runtime failure naming the server.
  r = replay({"dlq", "stats", "--config", config});
  CHECK(r.code == 1);
  CHECK(contains(r.output, "cannot connect to nats://127.0.0.1:1"));
  // The environment's DAISI_CDC_NATS_* apply as in the service.
  r = replay({"dlq", "stats", "--url", nats.url(), "--stream", "no_such_dlq"},
             {{"DAISI_CDC_NATS_USER", kUser}, {"DAISI_CDC_NATS_PASSWORD_FILE", password_file}});
  CHECK(r.code == 2);
  CHECK(contains(r.output, "stream no_such_dlq not found"));
  // A configuration error (an unreadable password file) is a usage error, naming the key and why.
  r = replay({"dlq", "stats", "--url", nats.url(), "--user", kUser, "--password-file", "/nonexistent/pw"});
  CHECK(r.code == 2);
  CHECK(contains(r.output, "nats.password_file: cannot read /nonexistent/pw: No such file or directory"));
}

TEST_CASE("cdc-replay publish names a subject no stream captures instead of no responders",
          "[integration][replay][ops]") {
  NatsServer nats;
  TempDir dir("cdc-replay-ops");
  const std::string capture = (dir.path() / "gen.jsonl").string();
  REQUIRE(replay({"gen", "--out", capture, "--count", "50", "--seed", "6"}).code == 0);
  Run r = replay({"publish", capture}, {{"NATS_URL", nats.url()}});
  CHECK(r.code == 1);
  CHECK(contains(r.output, "no stream captures subject cdc."));
  CHECK_FALSE(contains(r.output, "published"));  // nothing was sent
  r = replay({"publish", (dir.path() / "missing.jsonl").string(), "--url", nats.url()});
  CHECK(r.code == 2);
  CHECK(contains(r.output, "cannot open " + (dir.path() / "missing.jsonl").string() + ": No such file or directory"));
  r = replay({"publish", "--no-such-flag", capture});
  CHECK(r.code == 2);
  r = replay({"--version"});
  CHECK(r.code == 0);
  CHECK(contains(r.output, "cdc-replay " CDC_VERSION_FOR_TESTS));
}

TEST_CASE("cdc-replay gen writes by default only what a default server accepts", "[integration][replay][ops]") {
  NatsServerOptions defaults;
  defaults.max_payload = 0;  // the server's own 1 MiB
  NatsServer nats(defaults);
  TempDir dir("cdc-replay-ops");
  const std::string plain = (dir.path() / "plain.jsonl").string();
  const std::string big = (dir.path() / "big.jsonl").string();
  REQUIRE(replay({"gen", "--out", plain, "--count", "2000", "--bad-pct", "5", "--seed", "7"}).code == 0);
  REQUIRE(replay({"gen", "--out", big, "--count", "2000", "--bad-pct", "5", "--seed", "7", "--oversized"}).code == 0);
  Run r = replay({"publish", plain, "--url", nats.url(), "--create-stream", "cdc_events_stream", "--json"});
  CHECK(r.code == 0);
  CHECK(contains(r.output, "\"failed\":0"));
  // The opt-in oversized body is refused by such a server: that is why it is not the default.
  r = replay({"publish", big, "--url", nats.url(), "--create-stream", "cdc_events_stream", "-q"});
  CHECK(r.code == 1);
  CHECK(contains(r.output, "Maximum Payload Exceeded"));
}
