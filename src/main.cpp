// daisi-cdc-consumer: Sequin CDC (JetStream) -> enriched, de-duplicated events (JetStream).
//
// Exit codes: 0 clean shutdown (SIGTERM/SIGINT, drained), 1 start-up failure (NATS, Redis
// address, metrics port), 2 invalid configuration or usage, 3 panic guard (processing failed
// continuously for guard.max_failure_duration; drained like a SIGTERM, then exit so the
// orchestrator restarts the pod).

#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cdc/core/config.hpp"
#include "cdc/adapters/http/http_server.hpp"
#include "cdc/adapters/http/pipeline_routes.hpp"
#include "cdc/adapters/service_ports.hpp"
#include "cdc/core/log.hpp"
#include "cdc/adapters/nats/nats_connection.hpp"
#include "cdc/pipeline/pipeline.hpp"

namespace {

void usage() {
  std::fprintf(
      stderr,
      "usage: daisi-cdc-consumer [--config config.yaml] [--check-config] [--print-config] [--metrics-url] [--version]\n"
      "  --config PATH    configuration file (default: none, built-in defaults)\n"
      "  --check-config   validate the configuration, report every error on stderr, exit (0 valid, 2 not)\n"
      "  --print-config   print the effective configuration (file + environment) as YAML, secrets\n"
      "                   redacted, exit\n"
      "  --metrics-url    print the local URL of /metrics, /healthz, /readyz (metrics.bind and\n"
      "                   metrics.port from the file and the environment), exit; for health checks\n"
      "Environment: DAISI_CDC_<SECTION>_<KEY>, NATS_URL, REDIS_ADDRESS, DEDUP_TTL, JS_ACK_WAIT,\n"
      "JS_MAX_DELIVER, LOG_LEVEL override the file.\n");
}

constexpr int kExitPanicGuard = 3;
constexpr int kExitConfig = 2;

/// --check-config / --print-config: every error at once on stderr, naming what was validated.
int check_or_print_config(const std::string& path, bool print) {
  const std::string what =
      path.empty() ? "no configuration file given (--config): built-in defaults" : "configuration file " + path;
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

/// The file's own values, without the environment; nothing when the file is only valid together
/// with its environment. A reload compares them with the previous ones to see what was edited.
std::optional<cdc::Config> file_values(const std::string& path) {
  try {
    return cdc::load_config(path, {});
  } catch (const cdc::ConfigError&) {
    return std::nullopt;
  }
}

/// Keys edited in the file since `before` whose new value is not in effect (`next`) because a
/// variable of `env` overrides it: "log.level by LOG_LEVEL,...". Without `before`, every key
/// whose file value is overridden.
std::string pinned_by_env(const std::vector<std::string>& env, const std::optional<cdc::Config>& before,
                          const std::optional<cdc::Config>& now, const cdc::Config& next) {
  std::string out;
  if (!now) return out;
  const auto sources = cdc::env_sources(env);  // valid: `next` was loaded with it
  const auto edited = before ? cdc::changed_keys(*before, *now) : cdc::changed_keys(*now, next);
  const auto overridden = cdc::changed_keys(*now, next);
  for (const auto& key : edited) {
    const auto it = sources.find(key);
    if (it == sources.end() || std::find(overridden.begin(), overridden.end(), key) == overridden.end()) continue;
    if (!out.empty()) out += ',';
    out += key + " by " + it->second;
  }
  return out;
}

/// The URL a process in the same network namespace reaches the metrics listener at: the bind
/// address, or loopback when it binds every address.
std::string metrics_url(const cdc::MetricsConfig& m) {
  std::string host = m.bind;
  if (host.empty() || host == "0.0.0.0" || host == "*") host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(m.port);
}

/// SIGHUP: reloads the file and applies, all together, the keys that can change while running
/// (cdc::reloadable); other changed keys are logged as needing a restart and keep their running
/// value. An invalid file changes nothing. Keys the environment pins are named in the log line:
/// editing them in the file has no effect.
void reload(const std::string& path, cdc::Config& running, std::optional<cdc::Config>& file, cdc::Pipeline& pipeline) {
  cdc::Config next;
  const std::vector<std::string> env = cdc::process_environment();
  try {
    next = cdc::load_config(path, env);
    cdc::resolve_secrets(next);
  } catch (const cdc::ConfigError& e) {
    pipeline.metrics().control.reloads_failed.inc();
    cdc::log::error("configuration reload failed; keeping the running configuration",
                    {{"error", e.what()}, {"key", e.key()}, {"path", path}});
    return;
  }
  cdc::ReloadPlan plan = cdc::plan_reload(running, next);
  std::optional<cdc::Config> file_now = file_values(path);
  const std::string pinned = pinned_by_env(env, file, file_now, next);
  const auto changed = [&plan](std::string_view key) {
    return std::find(plan.apply.begin(), plan.apply.end(), key) != plan.apply.end();
  };
  // First what can fail, so that a failure leaves everything as it was.
  if (changed("ingest.tables") || changed("ingest.key_columns") || changed("ingest.max_message_bytes")) {
    try {
      pipeline.set_transform_rules(plan.result);
    } catch (const std::exception& e) {
      pipeline.metrics().control.reloads_failed.inc();
      cdc::log::error("configuration reload failed; keeping the running configuration",
                      {{"error", e.what()}, {"path", path}});
      return;
    }
  }
  cdc::log::Level level = cdc::log::level();
  cdc::log::parse_level(plan.result.log.level, level);
  cdc::log::set_level(level);
  pipeline.set_stall_timeout(plan.result.health.stall_timeout);
  pipeline.set_max_failure_duration(plan.result.guard.max_failure_duration);
  running = std::move(plan.result);
  file = std::move(file_now);
  pipeline.metrics().control.reloads_ok.inc();
  if (pinned.empty()) {
    cdc::log::info("configuration reloaded",
                   {{"path", path}, {"applied", join(plan.apply)}, {"log_level", running.log.level}});
  } else {
    // A warning: the operator edited keys that did not change (same message, for searches).
    cdc::log::warn(
        "configuration reloaded",
        {{"path", path}, {"applied", join(plan.apply)}, {"log_level", running.log.level}, {"pinned_by_env", pinned}});
  }
  if (!plan.restart.empty()) {
    cdc::log::warn("changed but needs a restart; ignored", {{"keys", join(plan.restart)}});
  }
}

/// The service's routes while the pipeline is being built (connecting to NATS can take a while):
/// the server is bound first, and answers 503 "starting" on these paths until install() hands
/// it the pipeline's handlers.
class LateRoutes : public std::enable_shared_from_this<LateRoutes> {
 public:
  std::vector<cdc::HttpRoute> placeholders() {
    std::vector<cdc::HttpRoute> out;
    for (std::size_t i = 0; i < kPaths.size(); ++i) {
      out.push_back({kPaths[i], [self = shared_from_this(), i] {
                       // acquire: pairs with install()'s release, so routes_ is complete.
                       if (!self->ready_.load(std::memory_order_acquire)) {
                         return cdc::HttpResponse{503, "text/plain; charset=utf-8", "starting\n"};
                       }
                       return self->routes_[i].handler();
                     }});
    }
    return out;
  }
  /// Once, from main, before the first request can see them.
  void install(std::vector<cdc::HttpRoute> routes) {
    std::vector<cdc::HttpRoute> ordered;
    for (const char* path : kPaths) {
      const auto it =
          std::find_if(routes.begin(), routes.end(), [path](const cdc::HttpRoute& r) { return r.path == path; });
      if (it == routes.end()) throw std::logic_error(std::string("pipeline_routes() has no route ") + path);
      ordered.push_back(std::move(*it));
    }
    routes_ = std::move(ordered);
    ready_.store(true, std::memory_order_release);
  }

 private:
  static constexpr std::array<const char*, 3> kPaths{"/metrics", "/healthz", "/readyz"};
  std::vector<cdc::HttpRoute> routes_;
  std::atomic<bool> ready_{false};
};

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check_only = false;
  bool print_metrics_url = false;
  bool print_config = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = arg.substr(9);
    } else if (arg == "--check-config") {
      check_only = true;
    } else if (arg == "--metrics-url") {
      print_metrics_url = true;
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
  if (print_metrics_url) {  // the container HEALTHCHECK: follows the port of a mounted file too
    if (!config.metrics.enabled) {
      std::fprintf(stderr, "metrics.enabled is false: no /metrics, /healthz or /readyz\n");
      return 1;
    }
    std::printf("%s\n", metrics_url(config.metrics).c_str());
    return 0;
  }
  try {
    cdc::resolve_secrets(config);  // secret files read, TLS/creds files checked: exit 2 otherwise
  } catch (const cdc::ConfigError& e) {
    cdc::log::error("invalid configuration", {{"error", e.what()}, {"key", e.key()}});
    return 2;
  }
  std::optional<cdc::Config> file_config = file_values(config_path);  // what SIGHUP compares with
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
    const auto routes = std::make_shared<LateRoutes>();
    try {
      // The metrics port first: a port already taken (another instance) fails start-up before
      // anything connects to NATS.
      if (config.metrics.enabled) {
        http = std::make_unique<cdc::HttpServer>(config.metrics.bind, config.metrics.port, routes->placeholders());
      }
      pipeline = std::make_unique<cdc::Pipeline>(config, cdc::make_service_ports(config));
      routes->install(cdc::pipeline_routes(*pipeline));
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
    cdc::log::info("service started", {{"nats_url", cdc::redact_url(config.nats.url)},
                                       {"redis_address", config.redis.address},
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
        reload(config_path, config, file_config, *pipeline);
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
