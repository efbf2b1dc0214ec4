#pragma once
/// What the cdc-replay subcommands share: RAII for nats.c handles, connecting with a JetStream
/// context, headers to and from natsMsg, RFC 3339 times, and a stop flag for SIGINT/SIGTERM.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nats/nats.h>

#include "cdc/core/config.hpp"
#include "cdc/adapters/nats/nats_handles.hpp"

namespace CLI {  // NOLINT(readability-identifier-naming): CLI11's own namespace
class App;
}

namespace cdc::replay {

using ConnectionPtr = cdc::NatsConnectionPtr;
using JsPtr = cdc::NatsJsPtr;
using OptionsPtr = cdc::NatsOptionsPtr;
using MsgPtr = cdc::NatsMsgPtr;
using SubscriptionPtr = cdc::NatsSubPtr;
using StreamInfoPtr = cdc::NatsStreamInfoPtr;
using ConsumerInfoPtr = cdc::NatsConsumerInfoPtr;
using MetaDataPtr = cdc::NatsMetaDataPtr;

using Headers = std::vector<std::pair<std::string, std::string>>;

/// A nats.c failure; what() is "<what>: <status text>[ (JetStream error N)][: <last error>]".
class NatsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// "<status text>[ (JetStream error N)][: <nats_GetLastError>]" for the calling thread.
[[nodiscard]] std::string nats_error_text(natsStatus status, jsErrCode code = static_cast<jsErrCode>(0));
/// Throws NatsError unless `status` is NATS_OK.
void check(natsStatus status, const std::string& what, jsErrCode code = static_cast<jsErrCode>(0));

/// A connection (reconnecting as nats.c does by default) with its JetStream context. Members are
/// declared so that the context is destroyed before the connection.
struct JetStreamConnection {
  ConnectionPtr connection;
  JsPtr js;
};
/// How a subcommand reaches NATS: the service's own connection settings (its `nats` section,
/// the same DAISI_CDC_NATS_* variables and NATS_URL), then these flags on top.
struct ConnectionOptions {
  std::string url;          ///< --url; "" = NATS_URL, else --config's nats.url, else nats://127.0.0.1:4222
  std::string config_path;  ///< --config: the service's config.yaml (only its nats section is used)
  std::string creds_file, nkey, nkey_seed_file, user, password_file, token_file, tls_ca, tls_cert, tls_key;
};
/// Registers --url, --config, --creds, --nkey, --nkey-seed-file, --user, --password-file,
/// --token-file, --tls-ca, --tls-cert, --tls-key on `cmd`.
void add_connection_options(CLI::App* cmd, ConnectionOptions& options);
/// The effective NatsConfig: --config's nats section (or the defaults) with the environment's
/// overrides, then the flags; secret files read. Throws cdc::ConfigError naming the key.
[[nodiscard]] cdc::NatsConfig resolve_connection(const ConnectionOptions& options);

/// Connects with the service's option building (make_nats_options) as "cdc-replay"; `js_options`
/// may be null. Throws NatsError "cannot connect to <url without credentials>: <reason>".
[[nodiscard]] JetStreamConnection connect_jetstream(const cdc::NatsConfig& config, jsOptions* js_options = nullptr);
/// The same for a bare URL (tests, defaults).
[[nodiscard]] JetStreamConnection connect_jetstream(const std::string& url, jsOptions* js_options = nullptr);

/// Runs `connect` and turns a configuration or connection failure into a message on stderr
/// prefixed by `who` and the exit code (2 for configuration, 1 for connection); 0 when connected.
int connect_or_report(const std::string& who, const ConnectionOptions& options, jsOptions* js_options,
                      JetStreamConnection& out);

/// Adds `headers` to `msg` in order (repeated names become multiple values).
void add_headers(natsMsg* msg, const Headers& headers);
/// All headers of `msg`, names sorted (nats.c does not keep the wire order), values in order.
[[nodiscard]] Headers read_headers(natsMsg* msg);

/// Unix time in ns of an RFC 3339 timestamp ("2026-11-22T10:00:01.5Z", "...+07:00", fraction up
/// to 9 digits, 't'/'z' accepted); nullopt when it is not one.
[[nodiscard]] std::optional<std::int64_t> parse_rfc3339(std::string_view text);

/// The source subject without the broker's partition token (CONTRACT.md section 11): a stream
/// partitioned by the subject mapping stores `cdc.<company>.<table>` as
/// `cdc.<company>.<table>.<p>`; this gives back `cdc.<company>.<table>`, which a server with the
/// mapping partitions again (for its own P). A subject whose last token is not a decimal
/// partition number (no leading zero, at most 4 digits: P <= 1024), or that has a single token,
/// is returned unchanged.
[[nodiscard]] std::string strip_partition(std::string_view subject);

/// SIGINT and SIGTERM set a flag instead of killing the process, so a subcommand can finish
/// what is in flight and print its summary. A second signal terminates at once.
void install_stop_handler();
[[nodiscard]] bool stop_requested() noexcept;

}  // namespace cdc::replay
