// exhausted_events in PostgreSQL through libpq (docs/dlq-worker.md).

#include "cdc/dlq_worker/postgres.hpp"

#include <algorithm>
#include <cstdlib>

namespace cdc {
namespace {

constexpr int kColumns = 17;
/// Rows per INSERT statement: the protocol allows 65535 parameters per statement.
constexpr std::size_t kRowsPerStatement = 1000;

std::string message_of(PGconn* conn) {
  std::string text = conn != nullptr ? PQerrorMessage(conn) : "out of memory";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

void check_result(PGconn* conn, const PGresult* r, const std::string& what) {
  const ExecStatusType st = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return;
  std::string text = r != nullptr ? PQresultErrorMessage(r) : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  throw PgError(what + ": " + (text.empty() ? message_of(conn) : text));
}

}  // namespace

PgConnection::PgConnection(const std::string& conninfo, std::chrono::milliseconds timeout) {
  const std::string seconds = std::to_string(std::max<long long>(1, (timeout.count() + 999) / 1000));
  // dbname with expand_dbname=1 takes the whole connection string (keywords or URI); the
  // keywords after it override what it says.
  const char* keywords[] = {"dbname", "connect_timeout", "application_name", nullptr};
  const char* values[] = {conninfo.c_str(), seconds.c_str(), "daisi-dlq-worker", nullptr};
  conn_ = PQconnectdbParams(keywords, values, 1);
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    const std::string text = message_of(conn_);
    PQfinish(conn_);
    conn_ = nullptr;
    throw PgError("cannot connect to PostgreSQL: " + text);
  }
  // Timestamps leave as UTC whatever the server's TimeZone is.
  exec("SET TIME ZONE 'UTC'");
}

PgConnection::~PgConnection() {
  if (conn_ != nullptr) PQfinish(conn_);
}

void PgConnection::exec(const std::string& sql) {
  const PgResultPtr r(PQexec(conn_, sql.c_str()));
  check_result(conn_, r.get(), "PostgreSQL");
}

PgResultPtr PgConnection::query(const std::string& sql, const std::vector<std::optional<std::string>>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  PgResultPtr r(
      PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0));
  check_result(conn_, r.get(), "PostgreSQL");
  return r;
}

bool PgConnection::ping() noexcept {
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) return false;
  const PgResultPtr r(PQexec(conn_, "SELECT 1"));
  return r != nullptr && PQresultStatus(r.get()) == PGRES_TUPLES_OK;
}

void ensure_exhausted_schema(PgConnection& pg) {
  // (dlq_stream, dlq_seq, last_failed_at) identifies one dead-letter record: a redelivered
  // record conflicts and changes nothing, while a dead-letter stream that was deleted and
  // created again (sequences start over) cannot make a new record look like an old one.
  pg.exec(R"sql(
CREATE TABLE IF NOT EXISTS exhausted_events (
  id                bigserial PRIMARY KEY,
  dlq_stream        text        NOT NULL,
  dlq_seq           bigint      NOT NULL,
  source_stream     text        NOT NULL,
  source_subject    text        NOT NULL,
  source_seq        bigint      NOT NULL,
  company           text        NOT NULL,
  table_name        text        NOT NULL,
  event_id          text,
  error_kind        text        NOT NULL,
  error             text        NOT NULL,
  attempts          integer     NOT NULL,
  delivery_attempts integer     NOT NULL,
  first_failed_at   timestamptz NOT NULL,
  last_failed_at    timestamptz NOT NULL,
  headers           jsonb       NOT NULL,
  body              bytea       NOT NULL,
  body_truncated    boolean     NOT NULL DEFAULT false,
  stored_at         timestamptz NOT NULL DEFAULT now(),
  requeued_at       timestamptz,
  requeue_count     integer     NOT NULL DEFAULT 0,
  UNIQUE (dlq_stream, dlq_seq, last_failed_at)
);
CREATE INDEX IF NOT EXISTS exhausted_events_company_table ON exhausted_events (company, table_name, last_failed_at);
CREATE INDEX IF NOT EXISTS exhausted_events_kind ON exhausted_events (error_kind, last_failed_at);
)sql");
}

std::size_t insert_exhausted(PgConnection& pg, const std::vector<ExhaustedRow>& rows) {
  if (rows.empty()) return 0;
  PGconn* conn = pg.get();
  pg.exec("BEGIN");
  std::size_t inserted = 0;
  try {
    std::vector<std::string> numbers;
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
    for (std::size_t start = 0; start < rows.size(); start += kRowsPerStatement) {
      const std::size_t n = std::min(kRowsPerStatement, rows.size() - start);
      std::string sql =
          "INSERT INTO exhausted_events (dlq_stream, dlq_seq, source_stream, source_subject, source_seq, company, "
          "table_name, event_id, error_kind, error, attempts, delivery_attempts, first_failed_at, last_failed_at, "
          "headers, body, body_truncated) VALUES ";
      numbers.clear();
      numbers.reserve(n * 5);
      values.clear();
      lengths.clear();
      formats.clear();
      int p = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const ExhaustedRow& r = rows[start + i];
        numbers.push_back(std::to_string(r.dlq_seq));
        numbers.push_back(std::to_string(r.source_seq));
        numbers.push_back(std::to_string(r.attempts));
        numbers.push_back(std::to_string(r.delivery_attempts));
        numbers.push_back(r.body_truncated ? "true" : "false");
      }
      for (std::size_t i = 0; i < n; ++i) {
        const ExhaustedRow& r = rows[start + i];
        const std::string* num = &numbers[i * 5];
        const auto text = [&](const std::string* s) {
          values.push_back(s != nullptr ? s->c_str() : nullptr);
          lengths.push_back(0);
          formats.push_back(0);
        };
        text(&r.dlq_stream);
        text(&num[0]);
        text(&r.source_stream);
        text(&r.source_subject);
        text(&num[1]);
        text(&r.company);
        text(&r.table);
        text(r.event_id ? &*r.event_id : nullptr);
        text(&r.error_kind);
        text(&r.error);
        text(&num[2]);
        text(&num[3]);
        text(&r.first_failed_at);
        text(&r.last_failed_at);
        text(&r.headers_json);
        values.push_back(r.body.data());  // binary: any bytes, no escaping
        lengths.push_back(static_cast<int>(r.body.size()));
        formats.push_back(1);
        text(&num[4]);
        sql += i == 0 ? "(" : ",(";
        for (int c = 0; c < kColumns; ++c) {
          ++p;
          if (c > 0) sql += ',';
          sql += '$';
          sql += std::to_string(p);
          switch (c) {
            case 1:
            case 4: sql += "::bigint"; break;
            case 10:
            case 11: sql += "::integer"; break;
            case 12:
            case 13: sql += "::timestamptz"; break;
            case 14: sql += "::jsonb"; break;
            case 15: sql += "::bytea"; break;
            case 16: sql += "::boolean"; break;
            default: break;
          }
        }
        sql += ')';
      }
      p = 0;
      sql += " ON CONFLICT (dlq_stream, dlq_seq, last_failed_at) DO NOTHING";
      const PgResultPtr r(PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                                       lengths.data(), formats.data(), 0));
      check_result(conn, r.get(), "insert into exhausted_events");
      const char* affected = PQcmdTuples(r.get());
      inserted += static_cast<std::size_t>(std::strtoull(affected, nullptr, 10));
    }
    pg.exec("COMMIT");
  } catch (...) {
    // The connection may be gone; a failed ROLLBACK changes nothing (the server aborts an
    // unfinished transaction itself).
    const PgResultPtr r(PQexec(conn, "ROLLBACK"));
    throw;
  }
  return inserted;
}

}  // namespace cdc
