#pragma once
/// PostgreSQL side of the dead-letter worker (libpq): the `exhausted_events` table, its schema,
/// batched inserts, and the queries of `cdc-replay exhausted`. RAII for every libpq handle;
/// failures are PgError exceptions (the worker's loop catches them and retries).

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cdc {

/// A libpq failure; what() carries the server's or libpq's message.
class PgError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PgResultDeleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

/// The table the worker writes; created by ensure_exhausted_schema() when missing.
inline constexpr std::string_view kExhaustedTable = "exhausted_events";

/// One connection. Not thread-safe (one thread at a time, as libpq).
class PgConnection {
 public:
  /// Connects with `conninfo` (keyword string or URI), waiting at most `timeout` (rounded up to
  /// whole seconds: libpq's connect_timeout). Throws PgError.
  PgConnection(const std::string& conninfo, std::chrono::milliseconds timeout);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  [[nodiscard]] PGconn* get() const noexcept { return conn_; }
  /// Runs `sql` (no parameters; several statements allowed). Throws PgError.
  void exec(const std::string& sql);
  /// Runs `sql` with text parameters ($1...; nullopt = NULL); returns the result (tuples or
  /// command). Throws PgError.
  PgResultPtr query(const std::string& sql, const std::vector<std::optional<std::string>>& params = {});
  /// True when the connection is usable right now (a round trip).
  [[nodiscard]] bool ping() noexcept;

 private:
  PGconn* conn_ = nullptr;
};

/// CREATE TABLE / INDEX IF NOT EXISTS for exhausted_events (docs/dlq-worker.md shows it).
void ensure_exhausted_schema(PgConnection& pg);

/// One row of exhausted_events.
struct ExhaustedRow {
  std::string dlq_stream;
  std::uint64_t dlq_seq = 0;
  std::string source_stream;
  std::string source_subject;
  std::uint64_t source_seq = 0;
  std::string company;  ///< the dead-letter subject's token
  std::string table;
  std::optional<std::string> event_id;
  std::string error_kind;
  std::string error;
  std::uint32_t attempts = 0;           ///< retries the worker published
  std::uint64_t delivery_attempts = 0;  ///< the service's deliveries of the last failure
  std::string first_failed_at;          ///< RFC 3339
  std::string last_failed_at;           ///< RFC 3339
  std::string headers_json;             ///< JSON object
  std::string body;                     ///< any bytes
  bool body_truncated = false;
};

/// Inserts `rows` in one transaction (multi-row INSERT ... ON CONFLICT DO NOTHING, in chunks
/// that fit the protocol's parameter limit). Returns how many rows were new (the rest were
/// there already: a redelivered record). Throws PgError; then nothing was committed.
std::size_t insert_exhausted(PgConnection& pg, const std::vector<ExhaustedRow>& rows);

}  // namespace cdc
