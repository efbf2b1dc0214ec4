// daisi-cdc-consumer: Sequin CDC (JetStream) -> enriched, de-duplicated events (JetStream).
//
// Exit codes: 0 clean shutdown (SIGTERM/SIGINT, drained), 1 start-up failure (NATS, Redis
// address, metrics port), 2 invalid configuration or usage, 3 panic guard (processing failed
// continuously for guard.max_failure_duration; drained like a SIGTERM, then exit so the
// orchestrator restarts the pod).

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "cdc/config.hpp"
#include "cdc/http_server.hpp"
#include "cdc/pipeline_http.hpp"
#include "cdc/log.hpp"
#include "cdc/nats_client.hpp"
#include "cdc/pipeline.hpp"

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: daisi-cdc-consumer [--config config.yaml] [--check-config] [--print-config] [--version]\n"
               "  --config PATH    configuration file (default: none, built-in defaults)\n"
               "  --check-config   validate the configuration, report every error on stderr, exit (0 valid, 2 not)\n"
               "  --print-config   print the effective configuration (file + environment) as YAML, secrets\n"
               "                   redacted, exit\n"
               "Environment: DAISI_CDC_<SECTION>_<KEY>, NATS_URL, REDIS_ADDRESS, DEDUP_TTL, JS_ACK_WAIT,\n"
               "JS_MAX_DELIVER, LOG_LEVEL override the file.\n");
}

constexpr int kExitPanicGuard = 3;
constexpr int kExitConfig = 2;

/// --check-config / --print-config: every error at once on stderr, naming what was validated.
int check_or_print_config(const std::string& path, bool print) {
  const std::string what = path.empty() ? "no configuration file given (--config): built-in defaults"
                                        : "configuration file " + path;
  cdc::Config config;
  const std::vector<cdc::ConfigError> errors = cdc::check_config(path, cdc::process_environment(), config);
  if (!errors.empty()) {
    std::fprintf(stderr, "%s with environment overrides: %zu error%s\n", what.c_str(), errors.size(),
                 errors.size() == 1 ? "" : "s");
    for (const auto& e : errors) std::fprintf(stderr, "  %s\n", e.what());
    return kExitConfig;
  }
  if (print) {
    std::fputs(cdc::config_to_yaml(config).c_str(), stdout);
    return 0;
  }
  std::fprintf(stderr, "%s with environment overrides: valid\n", what.c_str());
  std::printf("configuration is valid\n");
  return 0;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ',';
    out += item;
  }
  return out;
}

/// SIGHUP: reloads the file and applies, all together, the keys that can change while running
/// (cdc::reloadable); other changed keys are logged as needing a restart and keep their running
/// value. An invalid file changes nothing.
void reload(const std::string& path, cdc::Config& running, cdc::Pipeline& pipeline) {
  cdc::Config next;
  try {
    next = cdc::load_config(path, cdc::process_environment());
    cdc::resolve_secrets(next);
  } catch (const cdc::ConfigError& e) {
    pipeline.metrics().control.reloads_failed.inc();
    cdc::log::error("configuration reload failed; keeping the running configuration",
                    {{"error", e.what()}, {"key", e.key()}, {"path", path}});
    return;
  }
  cdc::ReloadPlan plan = cdc::plan_reload(running, next);
  const auto changed = [&plan](std::string_view key) {
    return std::find(plan.apply.begin(), plan.apply.end(), key) != plan.apply.end();
  };
  // First what can fail, so that a failure leaves everything as it was.
  if (changed("ingest.tables") || changed("ingest.key_columns") || changed("ingest.max_message_bytes")) {
    try {
      pipeline.set_transform_rules(plan.result);
    } catch (const std::exception& e) {
      pipeline.metrics().control.reloads_failed.inc();
      cdc::log::error("configuration reload failed; keeping the running configuration", {{"error", e.what()}, {"path", path}});
      return;
    }
  }
  cdc::log::Level level = cdc::log::level();
  cdc::log::parse_level(plan.result.log.level, level);
  cdc::log::set_level(level);
  pipeline.set_stall_timeout(plan.result.health.stall_timeout);
  pipeline.set_max_failure_duration(plan.result.guard.max_failure_duration);
  running = std::move(plan.result);
  pipeline.metrics().control.reloads_ok.inc();
  cdc::log::info("configuration reloaded", {{"path", path}, {"applied", join(plan.apply)}, {"log_level", running.log.level}});
  if (!plan.restart.empty()) {
    cdc::log::warn("changed but needs a restart; ignored", {{"keys", join(plan.restart)}});
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check_only = false;
  bool print_config = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = arg.substr(9);
    } else if (arg == "--check-config") {
      check_only = true;
    } else if (arg == "--print-config") {
      print_config = true;
    } else if (arg == "--version") {
      std::printf("daisi-cdc-consumer %s\n", CDC_VERSION);
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "unknown argument: %s\n", arg.c_str());
      usage();
      return 2;
    }
  }

  if (check_only || print_config) return check_or_print_config(config_path, print_config);

  cdc::Config config;
  try {
    config = cdc::load_config(config_path, cdc::process_environment());
  } catch (const cdc::ConfigError& e) {
    cdc::log::error("invalid configuration", {{"error", e.what()}, {"key", e.key()}});
    return 2;
  }
  try {
    cdc::resolve_secrets(config);  // secret files read, TLS/creds files checked: exit 2 otherwise
  } catch (const cdc::ConfigError& e) {
    cdc::log::error("invalid configuration", {{"error", e.what()}, {"key", e.key()}});
    return 2;
  }
  cdc::log::Level level = cdc::log::Level::kInfo;
  cdc::log::parse_level(config.log.level, level);
  cdc::log::set_level(level);

  // Signals are taken by sigwait() on this thread; every other thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  cdc::log::start();
  int code = 0;
  {
    std::unique_ptr<cdc::Pipeline> pipeline;
    std::unique_ptr<cdc::HttpServer> http;
    try {
      pipeline = std::make_unique<cdc::Pipeline>(config);
      if (config.metrics.enabled) {
        http = std::make_unique<cdc::HttpServer>(config.metrics.bind, config.metrics.port, cdc::pipeline_routes(*pipeline));
      }
    } catch (const cdc::ConfigError& e) {
      cdc::log::error("invalid configuration", {{"error", e.what()}, {"key", e.key()}});
      cdc::log::stop();
      return 2;
    } catch (const std::exception& e) {
      cdc::log::error("start-up failed", {{"error", e.what()}});
      cdc::log::stop();
      return 1;
    }
    pipeline->start();
    cdc::log::info("service started", {{"nats_url", cdc::redact_url(config.nats.url)}, {"redis_address", config.redis.address},
                                       {"metrics_port", http ? http->port() : 0}});
    // Signals, and once a second the panic guard's verdict.
    const timespec tick{1, 0};
    while (true) {
      const int sig = sigtimedwait(&signals, nullptr, &tick);
      if (sig < 0) {
        if (errno != EAGAIN && errno != EINTR) {
          cdc::log::error("sigtimedwait failed", {{"error", std::strerror(errno)}});
        }
        if (pipeline->guard_tripped()) {
          cdc::log::error("panic guard: exiting so the orchestrator restarts the service",
                          {{"error", pipeline->guard_reason()}, {"exit_code", kExitPanicGuard}});
          code = kExitPanicGuard;
          break;
        }
        continue;
      }
      if (sig == SIGHUP) {
        reload(config_path, config, *pipeline);
        continue;
      }
      cdc::log::info("signal received; shutting down", {{"signal", strsignal(sig)}});
      break;
    }
    pipeline->stop();
    http.reset();
    pipeline.reset();
  }
  cdc::log::info("service stopped");
  cdc::log::stop();
  nats_Close();
  return code;
}
