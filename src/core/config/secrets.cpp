// Secrets: nats.password_file, nats.token_file and redis.password_file read into the secrets
// they hold, the other credential files checked readable, and the rules validate() leaves to
// start-up (validate() accepts a Config with every key set at once; the service may not).

#include "secrets.hpp"

#include "text.hpp"

namespace cdc::config_detail {
namespace {

void check_readable(const std::string& key, const std::string& path) {
  if (!path.empty()) (void)read_file(key, path);
}

/// The secret in `path`: the whole file less one trailing "\n" or "\r\n"; must not be empty.
void read_secret(const std::string& key, const std::string& path, std::string& out) {
  if (path.empty()) return;
  std::string text = read_file(key, path);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (text.empty()) throw ConfigError(key, path + " is empty");
  out = std::move(text);
}

}  // namespace

/// resolve_secrets(), each check on its own when collecting `errors`.
void resolve_secrets(Config& config, Errors* errors) {
  NatsConfig& n = config.nats;
  // Exclusive choices are start-up rules (validate() accepts every key set at once).
  collect(errors, [&] {
    if (!n.password.empty() && !n.password_file.empty()) {
      throw ConfigError("nats.password_file", "set nats.password or nats.password_file, not both");
    }
  });
  collect(errors, [&] {
    if (!n.token.empty() && !n.token_file.empty()) {
      throw ConfigError("nats.token_file", "set nats.token or nats.token_file, not both");
    }
  });
  collect(errors, [&] {
    if (!config.redis.password.empty() && !config.redis.password_file.empty()) {
      throw ConfigError("redis.password_file", "set redis.password or redis.password_file, not both");
    }
  });
  const int methods = (n.creds_file.empty() ? 0 : 1) + (n.nkey_seed_file.empty() ? 0 : 1) + (n.user.empty() ? 0 : 1) +
                      (n.token.empty() && n.token_file.empty() ? 0 : 1);
  collect(errors, [&] {
    if (methods > 1) {
      throw ConfigError("nats.creds_file",
                        "choose one authentication method: nats.creds_file, nats.nkey_seed_file, "
                        "nats.user with a password, or nats.token");
    }
  });
  collect(errors, [&] { check_readable("nats.tls_ca", n.tls_ca); });
  collect(errors, [&] { check_readable("nats.tls_cert", n.tls_cert); });
  collect(errors, [&] { check_readable("nats.tls_key", n.tls_key); });
  collect(errors, [&] { check_readable("nats.creds_file", n.creds_file); });
  collect(errors, [&] { check_readable("nats.nkey_seed_file", n.nkey_seed_file); });
  collect(errors, [&] { read_secret("nats.password_file", n.password_file, n.password); });
  collect(errors, [&] { read_secret("nats.token_file", n.token_file, n.token); });
  collect(errors, [&] { read_secret("redis.password_file", config.redis.password_file, config.redis.password); });
}

}  // namespace cdc::config_detail

namespace cdc {

void resolve_secrets(Config& config) { config_detail::resolve_secrets(config, nullptr); }

}  // namespace cdc
