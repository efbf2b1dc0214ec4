// cdc-replay exhausted: the dead letters daisi-dlq-worker kept in PostgreSQL (exhausted_events,
// docs/dlq-worker.md). `list` prints them; `requeue` publishes chosen ones back into their
// source subject and marks them requeued. A row is marked only after the JetStream PubAck
// stored its message; its Nats-Msg-Id ("requeue:<dlq stream>:<dlq seq>:<n>", n = the row's
// requeue count + 1) makes a run interrupted between the two harmless to repeat.

#include <simdjson.h>

#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cdc/core/dead_letter.hpp"
#include "cdc/dlq_worker/postgres.hpp"
#include "cdc/core/dlq_record.hpp"
#include "cdc/core/transform.hpp"
#include "commands.hpp"
#include "nats_helper.hpp"

namespace cdc::replay {
namespace {

struct ExhaustedOptions {
  std::string postgres;  ///< libpq conninfo; empty = libpq's defaults (PGHOST, PGDATABASE, ...)
  std::string url = "nats://127.0.0.1:4222";
  std::vector<std::string> companies, tables, kinds;
  std::vector<long long> ids;
  std::string since, until;     ///< last_failed_at bounds (timestamptz text)
  std::string requeued = "no";  ///< list: no|yes|any; requeue: rows not requeued yet unless --again
  bool again = false;
  bool all = false;
  bool dry_run = false;
  long long limit = 0;
  std::string format = "jsonl";
  double ack_timeout_s = 10;
  bool quiet = false;
};

struct Row {
  long long id = 0;
  std::string dlq_stream;
  std::string dlq_seq;
  std::string source_stream, source_subject, source_seq, company, table, error_kind, error;
  std::optional<std::string> event_id;
  std::string attempts, delivery_attempts, first_failed_at, last_failed_at, stored_at;
  std::optional<std::string> requeued_at;
  long long requeue_count = 0;
  std::string headers_json;
  std::string body;
  bool truncated = false;
};

/// WHERE clause and parameters for the filters.
std::string where(const ExhaustedOptions& o, std::vector<std::optional<std::string>>& params, bool requeue) {
  std::string sql = " WHERE true";
  const auto any_of = [&](const char* column, const auto& values) {
    if (values.empty()) return;
    sql += " AND ";
    sql += column;
    sql += " IN (";
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (i > 0) sql += ',';
      if constexpr (std::is_same_v<std::decay_t<decltype(values[i])>, long long>) {
        params.emplace_back(std::to_string(values[i]));
        sql += "$" + std::to_string(params.size()) + "::bigint";
      } else {
        params.emplace_back(values[i]);
        sql += "$" + std::to_string(params.size());
      }
    }
    sql += ')';
  };
  any_of("id", o.ids);
  any_of("company", o.companies);
  any_of("table_name", o.tables);
  any_of("error_kind", o.kinds);
  if (!o.since.empty()) {
    params.emplace_back(o.since);
    sql += " AND last_failed_at >= $" + std::to_string(params.size()) + "::timestamptz";
  }
  if (!o.until.empty()) {
    params.emplace_back(o.until);
    sql += " AND last_failed_at < $" + std::to_string(params.size()) + "::timestamptz";
  }
  const std::string& state = requeue ? (o.again ? std::string("any") : std::string("no")) : o.requeued;
  if (state == "no") sql += " AND requeued_at IS NULL";
  if (state == "yes") sql += " AND requeued_at IS NOT NULL";
  return sql;
}

std::vector<Row> select_rows(PgConnection& pg, const ExhaustedOptions& o, bool requeue) {
  std::vector<std::optional<std::string>> params;
  const char* ts = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";
  std::string sql =
      std::string(
          "SELECT id, dlq_stream, dlq_seq, source_stream, source_subject, source_seq, company, table_name, "
          "error_kind, error, event_id, attempts, delivery_attempts, to_char(first_failed_at, ") +
      ts + "), to_char(last_failed_at, " + ts + "), to_char(stored_at, " + ts + "), to_char(requeued_at, " + ts +
      "), requeue_count, headers::text, encode(body, 'base64'), body_truncated FROM exhausted_events" +
      where(o, params, requeue) + " ORDER BY last_failed_at, id";
  if (o.limit > 0) sql += " LIMIT " + std::to_string(o.limit);
  const PgResultPtr r = pg.query(sql, params);
  std::vector<Row> rows;
  const auto text = [&](int row, int col) {
    return std::string(PQgetvalue(r.get(), row, col), PQgetlength(r.get(), row, col));
  };
  const auto optional = [&](int row, int col) -> std::optional<std::string> {
    if (PQgetisnull(r.get(), row, col) != 0) return std::nullopt;
    return text(row, col);
  };
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    Row row;
    row.id = std::stoll(text(i, 0));
    row.dlq_stream = text(i, 1);
    row.dlq_seq = text(i, 2);
    row.source_stream = text(i, 3);
    row.source_subject = text(i, 4);
    row.source_seq = text(i, 5);
    row.company = text(i, 6);
    row.table = text(i, 7);
    row.error_kind = text(i, 8);
    row.error = text(i, 9);
    row.event_id = optional(i, 10);
    row.attempts = text(i, 11);
    row.delivery_attempts = text(i, 12);
    row.first_failed_at = text(i, 13);
    row.last_failed_at = text(i, 14);
    row.stored_at = text(i, 15);
    row.requeued_at = optional(i, 16);
    row.requeue_count = std::stoll(text(i, 17));
    row.headers_json = text(i, 18);
    std::string b64 = text(i, 19);
    // encode(..., 'base64') wraps lines at 76 characters.
    std::erase(b64, '\n');
    if (!decode_base64(b64, row.body))
      throw std::runtime_error("row " + std::to_string(row.id) + ": body does not decode");
    row.truncated = text(i, 20) == "t";
    rows.push_back(std::move(row));
  }
  return rows;
}

HeaderList parse_headers(const std::string& json) {
  HeaderList out;
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (parser.parse(json).get_object().get(object) != simdjson::SUCCESS) return out;
  for (const auto field : object) {
    std::string_view value;
    if (field.value.get_string().get(value) == simdjson::SUCCESS) out.emplace_back(field.key, value);
  }
  return out;
}

std::string json_line(const Row& r) {
  std::string s = "{\"id\":" + std::to_string(r.id) + ",\"dlq_stream\":";
  append_json_string(r.dlq_stream, s);
  s += ",\"dlq_seq\":" + r.dlq_seq + ",\"source_stream\":";
  append_json_string(r.source_stream, s);
  s += ",\"source_subject\":";
  append_json_string(r.source_subject, s);
  s += ",\"source_seq\":" + r.source_seq + ",\"company\":";
  append_json_string(r.company, s);
  s += ",\"table\":";
  append_json_string(r.table, s);
  s += ",\"event_id\":";
  if (r.event_id) append_json_string(*r.event_id, s);
  else s += "null";
  s += ",\"error_kind\":";
  append_json_string(r.error_kind, s);
  s += ",\"error\":";
  append_json_string(r.error, s);
  s += ",\"attempts\":" + r.attempts + ",\"delivery_attempts\":" + r.delivery_attempts;
  s += ",\"first_failed_at\":\"" + r.first_failed_at + "\",\"last_failed_at\":\"" + r.last_failed_at + "\"";
  s += ",\"stored_at\":\"" + r.stored_at + "\",\"requeued_at\":";
  s += r.requeued_at ? "\"" + *r.requeued_at + "\"" : std::string("null");
  s += ",\"requeue_count\":" + std::to_string(r.requeue_count);
  s += ",\"headers\":" + r.headers_json;
  if (simdjson::validate_utf8(r.body.data(), r.body.size())) {
    s += ",\"data\":";
    append_json_string(r.body, s);
  } else {
    s += ",\"data_base64\":\"";
    append_base64(r.body, s);
    s += '"';
  }
  if (r.truncated) s += ",\"data_truncated\":true";
  s += '}';
  return s;
}

int run_list(PgConnection& pg, const ExhaustedOptions& o) {
  const auto rows = select_rows(pg, o, false);
  if (o.format == "table") {
    char line[512];
    std::snprintf(line, sizeof line, "%-8s %-27s %-16s %-8s %-28s %s\n", "id", "last_failed_at", "error_kind",
                  "attempts", "source_subject", "error");
    std::cout << line;
    for (const auto& r : rows) {
      std::snprintf(line, sizeof line, "%-8lld %-27s %-16s %-8s %-28s %s\n", r.id, r.last_failed_at.c_str(),
                    r.error_kind.c_str(), r.attempts.c_str(), r.source_subject.c_str(), r.error.c_str());
      std::cout << line;
    }
  } else {
    for (const auto& r : rows) std::cout << json_line(r) << '\n';
  }
  if (!o.quiet) std::cerr << rows.size() << " exhausted event(s)\n";
  return kExitOk;
}

int run_requeue(PgConnection& pg, const ExhaustedOptions& o) {
  if (!o.all && o.ids.empty() && o.companies.empty() && o.tables.empty() && o.kinds.empty() && o.since.empty() &&
      o.until.empty()) {
    std::cerr << "cdc-replay exhausted requeue: choose rows with --id, --company, --table, --kind, --since, --until, "
                 "or --all\n";
    return kExitUsage;
  }
  const auto rows = select_rows(pg, o, true);
  std::optional<JetStreamConnection> nats;
  if (!o.dry_run && !rows.empty()) nats = connect_jetstream(o.url);
  jsPubOptions po;
  check(jsPubOptions_Init(&po), "jsPubOptions_Init");
  po.MaxWait = static_cast<std::int64_t>(o.ack_timeout_s * 1000);
  std::size_t done = 0, failed = 0;
  for (const auto& r : rows) {
    if (stop_requested()) break;
    const auto fail = [&](const std::string& why) {
      ++failed;
      std::cerr << "failed: id " << r.id << " (" << r.source_subject << "): " << why << "\n";
    };
    if (r.truncated) {
      fail("the body was truncated in the dead letter (larger than the broker allows); it cannot be published again");
      continue;
    }
    if (r.source_subject.empty()) {
      fail("no source subject (the dead letter was unreadable)");
      continue;
    }
    if (o.dry_run) {
      std::cout << "would requeue id " << r.id << " -> " << r.source_subject << " (" << r.error_kind << ", "
                << r.body.size() << " bytes)\n";
      ++done;
      continue;
    }
    const std::string msg_id = "requeue:" + r.dlq_stream + ":" + r.dlq_seq + ":" + std::to_string(r.requeue_count + 1);
    natsMsg* raw = nullptr;
    check(natsMsg_Create(&raw, r.source_subject.c_str(), nullptr, r.body.data(), static_cast<int>(r.body.size())),
          "natsMsg_Create");
    const MsgPtr msg(raw);
    add_headers(msg.get(), dlq_requeue_headers(parse_headers(r.headers_json), msg_id));
    jsPubAck* raw_ack = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s = js_PublishMsg(&raw_ack, nats->js.get(), msg.get(), &po, &code);
    const cdc::NatsPubAckPtr ack(raw_ack);
    if (s != NATS_OK) {
      fail("publish: " + nats_error_text(s, code));
      continue;
    }
    // A duplicate PubAck: an interrupted earlier run stored this very requeue; mark it now.
    try {
      pg.query(
          "UPDATE exhausted_events SET requeued_at = now(), requeue_count = requeue_count + 1 "
          "WHERE id = $1::bigint AND requeue_count = $2::integer",
          {std::to_string(r.id), std::to_string(r.requeue_count)});
    } catch (const PgError& e) {
      fail(std::string("published (") + ack->Stream + " seq " + std::to_string(ack->Sequence) +
           ") but not marked requeued: " + e.what());
      continue;
    }
    ++done;
    if (!o.quiet) {
      std::cout << "requeued id " << r.id << " -> " << r.source_subject << " (" << ack->Stream << " seq "
                << ack->Sequence << (ack->Duplicate ? ", stored by an earlier run" : "") << ")\n";
    }
  }
  std::cout << "selected: " << rows.size() << ", " << (o.dry_run ? "would requeue: " : "requeued: ") << done
            << ", failed: " << failed << (stop_requested() ? " (interrupted)" : "") << "\n";
  return failed == 0 && !stop_requested() ? kExitOk : kExitFailed;
}

}  // namespace

void add_exhausted_command(CLI::App& app, int& exit_code) {
  CLI::App* cmd =
      app.add_subcommand("exhausted", "List and requeue the dead letters daisi-dlq-worker kept in PostgreSQL");
  cmd->require_subcommand(1);
  const auto common = [](CLI::App* c, ExhaustedOptions& o) {
    c->add_option("--postgres", o.postgres, "libpq connection string or URI (default: libpq's PG* variables)");
    c->add_option("--company", o.companies, "Only this company; repeatable");
    c->add_option("--table", o.tables, "Only this table; repeatable");
    c->add_option("--kind", o.kinds, "Only this error_kind; repeatable");
    c->add_option("--id", o.ids, "Only this row id; repeatable");
    c->add_option("--since", o.since, "Only rows whose last failure is at or after this time (RFC 3339)");
    c->add_option("--until", o.until, "Only rows whose last failure is before this time (RFC 3339)");
    c->add_flag("--quiet,-q", o.quiet, "Less output");
  };
  auto list = std::make_shared<ExhaustedOptions>();
  CLI::App* l = cmd->add_subcommand("list", "Print exhausted events (JSON Lines with the body, or a table)");
  common(l, *list);
  l->add_option("--requeued", list->requeued, "no (default), yes or any")
      ->check(CLI::IsMember({"no", "yes", "any"}))
      ->capture_default_str();
  l->add_option("--limit", list->limit, "At most this many rows (0 = all)")->capture_default_str();
  l->add_option("--format", list->format, "jsonl or table")
      ->check(CLI::IsMember({"jsonl", "table"}))
      ->capture_default_str();
  l->callback([list, &exit_code] {
    try {
      PgConnection pg(list->postgres, std::chrono::seconds(10));
      exit_code = run_list(pg, *list);
    } catch (const PgError& e) {
      std::cerr << "cdc-replay exhausted list: " << e.what() << "\n";
      exit_code = kExitFailed;
    }
  });
  auto requeue = std::make_shared<ExhaustedOptions>();
  CLI::App* q =
      cmd->add_subcommand("requeue", "Publish exhausted events back to their source subject; mark them requeued");
  common(q, *requeue);
  q->add_option("--url", requeue->url, "NATS server URL")->capture_default_str();
  q->add_flag("--all", requeue->all, "Every row not requeued yet (or those the filters select)");
  q->add_flag("--again", requeue->again, "Also rows requeued before");
  q->add_flag("--dry-run", requeue->dry_run, "Show what would be requeued; change nothing");
  q->add_option("--ack-timeout", requeue->ack_timeout_s, "Seconds to wait for each PubAck")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  q->callback([requeue, &exit_code] {
    try {
      PgConnection pg(requeue->postgres, std::chrono::seconds(10));
      exit_code = run_requeue(pg, *requeue);
    } catch (const PgError& e) {
      std::cerr << "cdc-replay exhausted requeue: " << e.what() << "\n";
      exit_code = kExitFailed;
    } catch (const NatsError& e) {
      std::cerr << "cdc-replay exhausted requeue: " << e.what() << "\n";
      exit_code = kExitFailed;
    }
  });
}

}  // namespace cdc::replay
