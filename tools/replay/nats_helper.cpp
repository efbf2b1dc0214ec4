#include "nats_helper.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "cdc/adapters/nats/nats_connection.hpp"

namespace cdc::replay {
namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int signal) {
  if (g_stop.exchange(true)) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
  }
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool read_digits(std::string_view text, std::size_t& pos, std::size_t count, int& out) {
  if (pos + count > text.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  pos += count;
  return true;
}

bool expect(std::string_view text, std::size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c) return false;
  ++pos;
  return true;
}

}  // namespace

std::string nats_error_text(natsStatus status, jsErrCode code) {
  std::string text = natsStatus_GetText(status);
  if (code != 0) text += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
  natsStatus last = NATS_OK;
  if (const char* detail = nats_GetLastError(&last); detail != nullptr && *detail != '\0') {
    text += ": ";
    text += detail;
  }
  return text;
}

void check(natsStatus status, const std::string& what, jsErrCode code) {
  if (status != NATS_OK) throw NatsError(what + ": " + nats_error_text(status, code));
}

void add_connection_options(CLI::App* cmd, ConnectionOptions& o) {
  const char* group = "Connection (as the service: its nats section, DAISI_CDC_NATS_* and NATS_URL, then these)";
  cmd->add_option(
         "--url", o.url,
         "NATS server URL(s), comma-separated (default: $NATS_URL, else the config's, else nats://127.0.0.1:4222)")
      ->group(group);
  cmd->add_option("--config", o.config_path, "The service's config.yaml: take its nats section")->group(group);
  cmd->add_option("--creds", o.creds_file, "Credentials file (JWT + NKey seed)")->group(group);
  cmd->add_option("--nkey", o.nkey, "Public user NKey (with --nkey-seed-file)")->group(group);
  cmd->add_option("--nkey-seed-file", o.nkey_seed_file, "File holding the NKey seed")->group(group);
  cmd->add_option("--user", o.user, "User name (with --password-file or DAISI_CDC_NATS_PASSWORD)")->group(group);
  cmd->add_option("--password-file", o.password_file, "File holding the password")->group(group);
  cmd->add_option("--token-file", o.token_file, "File holding the authentication token")->group(group);
  cmd->add_option("--tls-ca", o.tls_ca, "CA certificate(s) to verify the server (PEM)")->group(group);
  cmd->add_option("--tls-cert", o.tls_cert, "Client certificate (PEM, with --tls-key)")->group(group);
  cmd->add_option("--tls-key", o.tls_key, "Client private key (PEM)")->group(group);
}

cdc::NatsConfig resolve_connection(const ConnectionOptions& o) {
  cdc::Config config = cdc::load_config(o.config_path, cdc::process_environment());
  cdc::NatsConfig& n = config.nats;
  if (!o.url.empty()) n.url = o.url;
  // A flag picks the authentication method: the others from the file or environment go.
  if (!o.creds_file.empty() || !o.nkey_seed_file.empty() || !o.user.empty() || !o.token_file.empty()) {
    n.creds_file.clear();
    n.nkey.clear();
    n.nkey_seed_file.clear();
    n.user.clear();
    n.password.clear();
    n.password_file.clear();
    n.token.clear();
    n.token_file.clear();
  }
  const auto set = [](std::string& to, const std::string& from) {
    if (!from.empty()) to = from;
  };
  set(n.creds_file, o.creds_file);
  set(n.nkey, o.nkey);
  set(n.nkey_seed_file, o.nkey_seed_file);
  set(n.user, o.user);
  set(n.password_file, o.password_file);
  set(n.token_file, o.token_file);
  set(n.tls_ca, o.tls_ca);
  set(n.tls_cert, o.tls_cert);
  set(n.tls_key, o.tls_key);
  if (!o.user.empty() && o.password_file.empty()) {
    // --user with the password from the environment (never from argv).
    if (const char* p = std::getenv("DAISI_CDC_NATS_PASSWORD")) n.password = p;
  }
  // Only the nats section: a redis.password_file of the service's file need not exist here.
  cdc::Config only_nats;
  only_nats.nats = n;
  cdc::resolve_secrets(only_nats);
  return only_nats.nats;
}

JetStreamConnection connect_jetstream(const std::string& url, jsOptions* js_options) {
  cdc::NatsConfig config;
  config.url = url;
  return connect_jetstream(config, js_options);
}

JetStreamConnection connect_jetstream(const cdc::NatsConfig& config, jsOptions* js_options) {
  cdc::NatsOptionsPtr options;
  try {
    options = cdc::make_nats_options(config, "cdc-replay");
  } catch (const cdc::NatsError& e) {
    throw NatsError(e.what());
  }
  // A tool: give up after a few attempts instead of the service's reconnecting forever.
  check(natsOptions_SetMaxReconnect(options.get(), 5), "natsOptions_SetMaxReconnect");
  JetStreamConnection out;
  natsConnection* connection = nullptr;
  check(natsConnection_Connect(&connection, options.get()), "cannot connect to " + cdc::redact_url(config.url));
  out.connection.reset(connection);
  jsCtx* js = nullptr;
  check(natsConnection_JetStream(&js, connection, js_options), "natsConnection_JetStream");
  out.js.reset(js);
  return out;
}

int connect_or_report(const std::string& who, const ConnectionOptions& options, jsOptions* js_options,
                      JetStreamConnection& out) {
  try {
    out = connect_jetstream(resolve_connection(options), js_options);
    return 0;
  } catch (const cdc::ConfigError& e) {
    std::cerr << who << ": " << e.what() << "\n";
    return 2;
  } catch (const NatsError& e) {
    std::cerr << who << ": " << e.what() << "\n";
    return 1;
  }
}

void add_headers(natsMsg* msg, const Headers& headers) {
  for (const auto& [name, value] : headers) {
    check(natsMsgHeader_Add(msg, name.c_str(), value.c_str()), "header " + name);
  }
}

Headers read_headers(natsMsg* msg) { return cdc::read_nats_headers(msg); }

std::string strip_partition(std::string_view subject) {
  const auto dot = subject.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return std::string(subject);
  const std::string_view last = subject.substr(dot + 1);
  const bool number = !last.empty() && last.size() <= 4 &&
                      last.find_first_not_of("0123456789") == std::string_view::npos &&
                      (last.size() == 1 || last[0] != '0');
  return std::string(number ? subject.substr(0, dot) : subject);
}

std::optional<std::int64_t> parse_rfc3339(std::string_view text) {
  std::size_t pos = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!read_digits(text, pos, 4, year) || !expect(text, pos, '-') || !read_digits(text, pos, 2, month) ||
      !expect(text, pos, '-') || !read_digits(text, pos, 2, day)) {
    return std::nullopt;
  }
  if (pos >= text.size() || (text[pos] != 'T' && text[pos] != 't' && text[pos] != ' ')) return std::nullopt;
  ++pos;
  if (!read_digits(text, pos, 2, hour) || !expect(text, pos, ':') || !read_digits(text, pos, 2, minute) ||
      !expect(text, pos, ':') || !read_digits(text, pos, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  std::int64_t nanos = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 9) {
        nanos = nanos * 10 + (text[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int i = digits; i < 9; ++i) nanos *= 10;
  }
  std::int64_t offset_seconds = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    int oh = 0, om = 0;
    if (!read_digits(text, pos, 2, oh) || !expect(text, pos, ':') || !read_digits(text, pos, 2, om)) {
      return std::nullopt;
    }
    offset_seconds = sign * (oh * 3600 + om * 60);
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;
  const std::int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const std::int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
  return seconds * 1'000'000'000 + nanos;
}

void install_stop_handler() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

bool stop_requested() noexcept { return g_stop.load(std::memory_order_relaxed); }

}  // namespace cdc::replay
