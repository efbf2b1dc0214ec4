// daisi-cdc-consumer: Sequin CDC (JetStream) -> enriched, de-duplicated events (JetStream).
//
// Exit codes: 0 clean shutdown (SIGTERM/SIGINT, drained), 1 start-up failure (NATS, Redis
// address, metrics port), 2 invalid configuration or usage.

#include <signal.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "cdc/config.hpp"
#include "cdc/http_server.hpp"
#include "cdc/log.hpp"
#include "cdc/nats_client.hpp"
#include "cdc/pipeline.hpp"

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: daisi-cdc-consumer [--config config.yaml] [--check-config] [--version]\n"
               "  --config PATH    configuration file (default: none, built-in defaults)\n"
               "  --check-config   load and validate the configuration, print it is valid, exit\n"
               "Environment: DAISI_CDC_<SECTION>_<KEY>, NATS_URL, REDIS_ADDRESS, DEDUP_TTL, JS_ACK_WAIT,\n"
               "JS_MAX_DELIVER, LOG_LEVEL override the file.\n");
}

/// SIGHUP: reload what can change safely. Today: log.level. Everything else is reported as
/// needing a restart and left as it is.
void reload(const std::string& path, cdc::Config& current) {
  try {
    cdc::Config next = cdc::load_config(path, cdc::process_environment());
    cdc::log::Level level;
    if (cdc::log::parse_level(next.log.level, level)) cdc::log::set_level(level);
    current.log = next.log;
    cdc::log::info("configuration reloaded", {{"log_level", next.log.level}});
  } catch (const cdc::ConfigError& e) {
    cdc::log::error("configuration reload failed; keeping the running configuration", {{"error", e.what()}});
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = arg.substr(9);
    } else if (arg == "--check-config") {
      check_only = true;
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

  cdc::Config config;
  try {
    config = cdc::load_config(config_path, cdc::process_environment());
  } catch (const cdc::ConfigError& e) {
    cdc::log::error("invalid configuration", {{"error", e.what()}, {"key", e.key()}});
    return 2;
  }
  if (check_only) {
    std::printf("configuration is valid\n");
    return 0;
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
        http = std::make_unique<cdc::HttpServer>(*pipeline, config.metrics.bind, config.metrics.port,
                                                 std::chrono::minutes(2));
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
    cdc::log::info("service started", {{"nats_url", config.nats.url}, {"redis_address", config.redis.address},
                                       {"metrics_port", http ? http->port() : 0}});
    while (true) {
      int sig = 0;
      sigwait(&signals, &sig);
      if (sig == SIGHUP) {
        reload(config_path, config);
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
