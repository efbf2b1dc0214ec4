// daisi-dlq-worker: retries the dead letters that can succeed later and keeps the others in
// PostgreSQL (docs/dlq-worker.md).
//
// Exit codes: 0 clean shutdown (SIGTERM/SIGINT), 1 start-up failure (NATS, metrics port),
// 2 invalid configuration or usage.

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cdc/core/config.hpp"
#include "cdc/dlq_worker/worker.hpp"
#include "cdc/core/dlq_worker_config.hpp"
#include "cdc/adapters/http/http_server.hpp"
#include "cdc/core/log.hpp"

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

extern "C" void on_signal(int sig) {
  if (sig == SIGHUP) {
    g_reload.store(true, std::memory_order_relaxed);
  } else {
    g_stop.store(true, std::memory_order_relaxed);
  }
}

void usage() {
  std::fprintf(stderr,
               "usage: daisi-dlq-worker [--config config.yaml] [--check-config] [--version]\n"
               "  --config PATH    configuration file (the service's; sections dlq_worker and postgres)\n"
               "  --check-config   load and validate the configuration, print it is valid, exit\n"
               "Environment: DAISI_CDC_<SECTION>_<KEY> (e.g. DAISI_CDC_POSTGRES_CONNINFO), NATS_URL, LOG_LEVEL\n"
               "override the file; PGPASSWORD and the other libpq variables apply to postgres.conninfo.\n");
}

const char* json_bool(bool b) { return b ? "true" : "false"; }

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
      std::printf("daisi-dlq-worker %s\n", CDC_VERSION);
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
  cdc::DlqWorkerSettings settings;
  try {
    const auto env = cdc::process_environment();
    config = cdc::load_config(config_path, env);
    cdc::resolve_secrets(config);
    settings = cdc::load_dlq_worker_config(config_path, env);
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

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  cdc::log::start();
  int code = 0;
  {
    std::unique_ptr<cdc::DlqWorker> worker;
    std::unique_ptr<cdc::HttpServer> http;
    try {
      worker = std::make_unique<cdc::DlqWorker>(config, settings, g_stop);
      if (settings.dlq_worker.metrics_port != 0) {
        cdc::DlqWorker& w = *worker;
        std::vector<cdc::HttpRoute> routes;
        routes.push_back(
            {"/metrics", [&w] {
               return cdc::HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", w.render_metrics()};
             }});
        routes.push_back({"/healthz", [&w] {
                            const bool ok = w.healthy();
                            return cdc::HttpResponse{ok ? 200 : 503, "application/json",
                                                     std::string("{\"status\":\"") + (ok ? "ok" : "stalled") + "\"}\n"};
                          }});
        routes.push_back({"/readyz", [&w] {
                            const bool ready = w.ready();
                            std::string body = "{\"ready\":";
                            body += json_bool(ready);
                            body += ",\"nats_connected\":";
                            body += json_bool(w.metrics().nats_up.value() == 1);
                            body += ",\"postgres_up\":";
                            body += json_bool(w.metrics().postgres_up.value() == 1);
                            body += "}\n";
                            return cdc::HttpResponse{ready ? 200 : 503, "application/json", std::move(body)};
                          }});
        http = std::make_unique<cdc::HttpServer>(settings.dlq_worker.metrics_bind, settings.dlq_worker.metrics_port,
                                                 std::move(routes));
      }
    } catch (const std::exception& e) {
      if (g_stop.load()) {
        cdc::log::info("stopped during start-up", {{"error", e.what()}});
      } else {
        cdc::log::error("start-up failed", {{"error", e.what()}});
        code = 1;
      }
      worker.reset();
      cdc::log::stop();
      return code;
    }
    cdc::log::info("dlq worker started", {{"nats_url", cdc::redact_url(config.nats.url)},
                                          {"postgres", cdc::redact_conninfo(settings.postgres.conninfo)},
                                          {"metrics_port", http ? http->port() : 0}});
    // SIGHUP: the log level from the file (the rest needs a restart).
    std::thread reloader([&] {
      while (!g_stop.load(std::memory_order_relaxed)) {
        if (g_reload.exchange(false)) {
          try {
            const cdc::Config next = cdc::load_config(config_path, cdc::process_environment());
            cdc::log::Level l = cdc::log::level();
            cdc::log::parse_level(next.log.level, l);
            cdc::log::set_level(l);
            cdc::log::info("configuration reloaded", {{"log_level", next.log.level}});
          } catch (const cdc::ConfigError& e) {
            cdc::log::error("configuration reload failed; keeping the running configuration", {{"error", e.what()}});
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
    worker->run();
    reloader.join();
    http.reset();
    worker.reset();
  }
  cdc::log::info("dlq worker stopped");
  cdc::log::stop();
  nats_Close();
  return code;
}
