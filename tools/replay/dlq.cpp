// cdc-replay dlq: inspect the dead-letter stream (CONTRACT.md section 6) and redrive dead letters
// to their source subjects. A dead letter is deleted from the DLQ only after the JetStream PubAck
// of its redrive publish has stored it.

#include <simdjson.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cdc/core/dlq_record.hpp"
#include "cdc/core/json_writer.hpp"
#include "commands.hpp"
#include "nats_helper.hpp"

namespace cdc::replay {
namespace {

struct DlqOptions {
  ConnectionOptions connection;
  std::string stream = "cdc_dlq_stream";
  std::vector<std::string> kinds;
  std::vector<std::string> companies;
  std::vector<std::string> tables;
  std::vector<std::uint64_t> seqs;
  bool all = false;
  std::string format;  ///< list: jsonl|table; stats: text|json
  bool show_body = false;
  bool drop_msg_id = false;
  bool strip_partition = false;  ///< redrive --strip-partition
  bool dry_run = false;
  double ack_timeout_s = 10;
  bool quiet = false;
};

/// One message of the DLQ stream with its decoded record (the core's reading, as the worker's).
struct DeadLetterMessage : DlqRecord {
  std::uint64_t seq = 0;
  std::string subject;  ///< cdc_dlq.<company>.<table>
  std::string company;  ///< the DLQ subject's tokens (sanitised as the service wrote them)
  std::string table;
};

void split_subject(DeadLetterMessage& m) {
  const auto first = m.subject.find('.');
  if (first == std::string::npos) return;
  const auto second = m.subject.find('.', first + 1);
  m.company = m.subject.substr(first + 1, second == std::string::npos ? std::string::npos : second - first - 1);
  if (second != std::string::npos) m.table = m.subject.substr(second + 1);
}

/// Every message of the stream, in sequence order, through an ephemeral ordered consumer.
/// Returns nullopt (reported) when the stream does not exist.
std::optional<std::vector<DeadLetterMessage>> read_dlq(jsCtx* js, const std::string& stream) {
  jsStreamInfo* raw_info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetStreamInfo(&raw_info, js, stream.c_str(), nullptr, &code);
  const StreamInfoPtr info(raw_info);
  if (status == NATS_NOT_FOUND || code == JSStreamNotFoundErr) {
    std::cerr << "cdc-replay dlq: stream " << stream << " not found\n";
    return std::nullopt;
  }
  check(status, "stream info " + stream, code);
  std::vector<DeadLetterMessage> out;
  if (info->State.Msgs == 0) return out;
  std::string subject = info->Config->SubjectsLen == 1 ? info->Config->Subjects[0] : ">";

  jsSubOptions sub_options;
  check(jsSubOptions_Init(&sub_options), "jsSubOptions_Init");
  sub_options.Stream = stream.c_str();
  sub_options.Ordered = true;
  sub_options.Config.DeliverPolicy = js_DeliverAll;
  natsSubscription* raw_sub = nullptr;
  check(js_SubscribeSync(&raw_sub, js, subject.c_str(), nullptr, &sub_options, &code), "ordered consumer on " + stream,
        code);
  const SubscriptionPtr sub(raw_sub);
  int idle = 0;
  while (!stop_requested()) {
    natsMsg* raw = nullptr;
    const natsStatus s = natsSubscription_NextMsg(&raw, sub.get(), 500);
    if (s == NATS_TIMEOUT) {
      // Nothing arrived: done when the consumer has nothing pending (the stream may have
      // shrunk since the info above).
      jsConsumerInfo* raw_ci = nullptr;
      if (natsSubscription_GetConsumerInfo(&raw_ci, sub.get(), nullptr, nullptr) == NATS_OK) {
        const ConsumerInfoPtr ci(raw_ci);
        if (ci->NumPending == 0) break;
      }
      if (++idle >= 20) throw NatsError("reading " + stream + ": no message for 10 s");
      continue;
    }
    check(s, "next message");
    idle = 0;
    const MsgPtr msg(raw);
    jsMsgMetaData* raw_meta = nullptr;
    check(natsMsg_GetMetaData(&raw_meta, msg.get()), "message metadata");
    const MetaDataPtr meta(raw_meta);
    DeadLetterMessage m;
    m.seq = meta->Sequence.Stream;
    m.subject = natsMsg_GetSubject(msg.get());
    split_subject(m);
    const char* data = natsMsg_GetData(msg.get());
    // False leaves m.parsed false with m.problem saying why; such a record is listed, not redriven.
    read_dlq_record(
        std::string_view(data != nullptr ? data : "", static_cast<std::size_t>(natsMsg_GetDataLength(msg.get()))), m);
    out.push_back(std::move(m));
    if (meta->NumPending == 0) break;
  }
  natsSubscription_Unsubscribe(sub.get());
  return out;
}

bool selected(const DlqOptions& o, const DeadLetterMessage& m) {
  const auto in = [](const std::vector<std::string>& set, const std::string& v) {
    return set.empty() || std::find(set.begin(), set.end(), v) != set.end();
  };
  if (!o.seqs.empty() && std::find(o.seqs.begin(), o.seqs.end(), m.seq) == o.seqs.end()) return false;
  return in(o.kinds, m.error_kind) && in(o.companies, m.company) && in(o.tables, m.table);
}

/// The body as a JSON string when it is valid UTF-8 ("data"), else base64 ("data_base64").
void append_body(const std::string& body, std::string& out) {
  if (simdjson::validate_utf8(body.data(), body.size())) {
    out.append("\"data\":");
    append_json_string(body, out);
  } else {
    out.append("\"data_base64\":\"");
    append_base64(body, out);
    out.push_back('"');
  }
}

std::string json_line(const DeadLetterMessage& m) {
  std::string s = "{\"seq\":" + std::to_string(m.seq) + ",\"subject\":";
  append_json_string(m.subject, s);
  if (!m.parsed) {
    s.append(",\"problem\":");
    append_json_string(m.problem, s);
    s.append("}");
    return s;
  }
  s.append(",\"source_subject\":");
  append_json_string(m.source_subject, s);
  s.append(",\"source_stream\":");
  append_json_string(m.source_stream, s);
  s.append(",\"source_seq\":").append(std::to_string(m.source_seq));
  s.append(",\"delivery_attempts\":").append(std::to_string(m.delivery_attempts));
  s.append(",\"error_kind\":");
  append_json_string(m.error_kind, s);
  s.append(",\"error\":");
  append_json_string(m.error, s);
  s.append(",\"event_id\":");
  if (m.event_id) {
    append_json_string(*m.event_id, s);
  } else {
    s.append("null");
  }
  s.append(",\"failed_at\":");
  append_json_string(m.failed_at, s);
  s.append(",\"headers\":{");
  for (std::size_t i = 0; i < m.headers.size(); ++i) {
    if (i > 0) s.push_back(',');
    append_json_string(m.headers[i].first, s);
    s.push_back(':');
    append_json_string(m.headers[i].second, s);
  }
  s.append("},");
  append_body(m.body, s);
  s.append("}");
  return s;
}

/// A printable preview of a body: control bytes as '.', cut at `width` bytes (on a UTF-8
/// character boundary); a body that is not UTF-8 is shown as base64.
std::string preview(const std::string& body, std::size_t width) {
  if (!simdjson::validate_utf8(body.data(), body.size())) {
    std::string encoded = "base64:";
    append_base64(body, encoded);
    return encoded.size() > width + 7 ? encoded.substr(0, width + 7) + "…" : encoded;
  }
  std::size_t cut = std::min(width, body.size());
  while (cut > 0 && cut < body.size() && (static_cast<unsigned char>(body[cut]) & 0xC0) == 0x80) --cut;
  std::string out;
  for (std::size_t i = 0; i < cut; ++i) out.push_back(static_cast<unsigned char>(body[i]) < 0x20 ? '.' : body[i]);
  if (body.size() > cut) out += "…";
  return out;
}

int run_list(const DlqOptions& o, const std::vector<DeadLetterMessage>& all) {
  const bool table = o.format == "table";
  char row[512];
  if (table) {
    std::snprintf(row, sizeof row, "%-8s %-27s %-15s %-28s %s\n", "seq", "failed_at", "error_kind", "source_subject",
                  "error");
    std::cout << row;
  }
  std::size_t n = 0;
  for (const auto& m : all) {
    if (!selected(o, m)) continue;
    ++n;
    if (!table) {
      std::cout << json_line(m) << '\n';
      continue;
    }
    if (!m.parsed) {
      std::snprintf(row, sizeof row, "%-8llu %s: %s\n", static_cast<unsigned long long>(m.seq), m.subject.c_str(),
                    m.problem.c_str());
      std::cout << row;
      continue;
    }
    std::snprintf(row, sizeof row, "%-8llu %-27s %-15s %-28s %s\n", static_cast<unsigned long long>(m.seq),
                  m.failed_at.c_str(), m.error_kind.c_str(), m.source_subject.c_str(), m.error.c_str());
    std::cout << row;
    std::cout << "         " << (o.show_body ? preview(m.body, m.body.size()) : preview(m.body, 100)) << '\n';
  }
  if (!o.quiet) std::cerr << n << " of " << all.size() << " dead letter(s) in " << o.stream << "\n";
  return kExitOk;
}

int run_stats(const DlqOptions& o, const std::vector<DeadLetterMessage>& all) {
  std::map<std::string, std::size_t> kinds, companies, tables;
  std::size_t total = 0;
  std::string oldest, newest;
  for (const auto& m : all) {
    if (!selected(o, m)) continue;
    ++total;
    ++kinds[m.parsed ? m.error_kind : "unreadable"];
    ++companies[m.company];
    ++tables[m.table];
    if (m.parsed && !m.failed_at.empty()) {
      // RFC 3339 UTC with the same precision rules sorts as text only roughly; parse to compare.
      const auto t = parse_rfc3339(m.failed_at);
      if (t && (oldest.empty() || *t < *parse_rfc3339(oldest))) oldest = m.failed_at;
      if (t && (newest.empty() || *t > *parse_rfc3339(newest))) newest = m.failed_at;
    }
  }
  if (o.format == "json") {
    const auto object = [](const std::map<std::string, std::size_t>& counts) {
      std::string s = "{";
      for (const auto& [k, v] : counts) {
        if (s.size() > 1) s.push_back(',');
        append_json_string(k, s);
        s.append(":").append(std::to_string(v));
      }
      return s + "}";
    };
    std::string s = "{\"stream\":";
    append_json_string(o.stream, s);
    s.append(",\"total\":").append(std::to_string(total));
    s.append(",\"by_kind\":").append(object(kinds));
    s.append(",\"by_company\":").append(object(companies));
    s.append(",\"by_table\":").append(object(tables));
    s.append(",\"oldest\":");
    oldest.empty() ? s.append("null") : (append_json_string(oldest, s), s);
    s.append(",\"newest\":");
    newest.empty() ? s.append("null") : (append_json_string(newest, s), s);
    std::cout << s << "}\n";
    return kExitOk;
  }
  std::cout << "stream:   " << o.stream << "\n"
            << "total:    " << total << "\n";
  if (total > 0) std::cout << "failed:   " << oldest << " .. " << newest << "\n";
  const auto print = [](const char* title, const std::map<std::string, std::size_t>& counts) {
    std::cout << title << "\n";
    std::vector<std::pair<std::string, std::size_t>> rows(counts.begin(), counts.end());
    std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    char line[256];
    for (const auto& [k, v] : rows) {
      std::snprintf(line, sizeof line, "  %-28s %zu\n", k.c_str(), v);
      std::cout << line;
    }
  };
  print("by error_kind:", kinds);
  print("by company:", companies);
  print("by table:", tables);
  return kExitOk;
}

int run_redrive(const DlqOptions& o, JetStreamConnection& nats, const std::vector<DeadLetterMessage>& all) {
  std::size_t redriven = 0, failed = 0, selected_count = 0;
  jsPubOptions pub_options;
  check(jsPubOptions_Init(&pub_options), "jsPubOptions_Init");
  pub_options.MaxWait = static_cast<std::int64_t>(o.ack_timeout_s * 1000);
  const auto fail = [&](const DeadLetterMessage& m, const std::string& why) {
    ++failed;
    std::cerr << "failed: dlq seq " << m.seq << " (" << (m.source_subject.empty() ? m.subject : m.source_subject)
              << "): " << why << "\n";
  };
  for (const auto& m : all) {
    if (!selected(o, m)) continue;
    if (stop_requested()) break;
    ++selected_count;
    if (!m.parsed) {
      fail(m, m.problem);
      continue;
    }
    const std::string target = o.strip_partition ? strip_partition(m.source_subject) : m.source_subject;
    if (o.dry_run) {
      std::cout << "would redrive dlq seq " << m.seq << " -> " << target << " (" << m.error_kind << ", "
                << m.body.size() << " bytes)\n";
      continue;
    }
    natsMsg* raw = nullptr;
    check(natsMsg_Create(&raw, target.c_str(), nullptr, m.body.data(), static_cast<int>(m.body.size())),
          "natsMsg_Create");
    const MsgPtr msg(raw);
    Headers headers;
    for (const auto& h : m.headers) {
      if (o.drop_msg_id && h.first == "Nats-Msg-Id") continue;
      headers.push_back(h);
    }
    add_headers(msg.get(), headers);
    jsPubAck* raw_ack = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s = js_PublishMsg(&raw_ack, nats.js.get(), msg.get(), &pub_options, &code);
    const cdc::NatsPubAckPtr ack(raw_ack);
    if (s != NATS_OK) {
      fail(m, "publish: " + nats_error_text(s, code));
      continue;
    }
    if (ack->Duplicate) {
      // Not stored: the source stream saw this Nats-Msg-Id within its duplicate window.
      std::string msg_id;
      for (const auto& h : headers) {
        if (h.first == "Nats-Msg-Id") msg_id = h.second;
      }
      fail(m, "the source stream dropped it as a duplicate of Nats-Msg-Id " + msg_id +
                  " (retry after its duplicate window, or use --drop-msg-id); kept in the DLQ");
      continue;
    }
    bool deleted = false;
    code = static_cast<jsErrCode>(0);
    const natsStatus ds = js_DeleteMsg(nats.js.get(), o.stream.c_str(), m.seq, nullptr, &code);
    if (ds == NATS_OK) deleted = true;
    if (!deleted) {
      fail(m, "redriven (stream " + std::string(ack->Stream) + " seq " + std::to_string(ack->Sequence) +
                  ") but not removed from the DLQ: " + nats_error_text(ds, code));
      continue;
    }
    ++redriven;
    if (!o.quiet) {
      std::cout << "redriven dlq seq " << m.seq << " -> " << target << " (" << ack->Stream << " seq " << ack->Sequence
                << ")\n";
    }
  }
  if (!o.quiet || failed > 0) {
    std::cout << "selected: " << selected_count << ", " << (o.dry_run ? "would redrive: " : "redriven: ")
              << (o.dry_run ? selected_count - failed : redriven) << ", failed: " << failed
              << (stop_requested() ? " (interrupted)" : "") << "\n";
  }
  return failed == 0 && !stop_requested() ? kExitOk : kExitFailed;
}

enum class Action { kList, kStats, kRedrive };

int run_dlq(DlqOptions& o, Action action) {
  if (action == Action::kRedrive && !o.all && o.seqs.empty() && o.kinds.empty() && o.companies.empty() &&
      o.tables.empty()) {
    std::cerr << "cdc-replay dlq redrive: choose dead letters with --seq, --kind, --company, --table, or --all\n";
    return kExitUsage;
  }
  JetStreamConnection nats;
  if (const int code = connect_or_report("cdc-replay dlq", o.connection, nullptr, nats); code != 0) return code;
  const auto all = read_dlq(nats.js.get(), o.stream);
  if (!all) return kExitUsage;
  switch (action) {
    case Action::kList: return run_list(o, *all);
    case Action::kStats: return run_stats(o, *all);
    case Action::kRedrive: return run_redrive(o, nats, *all);
  }
  return kExitFailed;
}

std::vector<std::uint64_t> parse_seqs(const std::vector<std::string>& specs) {
  std::vector<std::uint64_t> out;
  for (const auto& spec : specs) {
    std::stringstream in(spec);
    std::string item;
    while (std::getline(in, item, ',')) {
      if (item.empty()) continue;
      const auto dash = item.find('-');
      try {
        std::size_t used = 0;
        if (dash == std::string::npos) {
          out.push_back(std::stoull(item, &used));
          if (used != item.size()) throw std::invalid_argument(item);
        } else {
          const std::uint64_t from = std::stoull(item.substr(0, dash));
          const std::uint64_t to = std::stoull(item.substr(dash + 1));
          if (to < from || to - from > 10'000'000) throw std::invalid_argument(item);
          for (std::uint64_t s = from; s <= to; ++s) out.push_back(s);
        }
      } catch (const std::exception&) {
        throw CLI::ValidationError("--seq", "expected N, N-M or a comma-separated list, got '" + item + "'");
      }
    }
  }
  return out;
}

}  // namespace

void add_dlq_command(CLI::App& app, int& exit_code) {
  CLI::App* dlq = app.add_subcommand("dlq", "Inspect the dead-letter stream and redrive dead letters");
  dlq->require_subcommand(1);
  const auto common = [](CLI::App* cmd, DlqOptions& o, std::vector<std::string>& seqs) {
    add_connection_options(cmd, o.connection);
    cmd->add_option("--stream", o.stream, "Dead-letter stream")->capture_default_str();
    cmd->add_option("--kind", o.kinds, "Only this error_kind; repeatable");
    cmd->add_option("--company", o.companies, "Only this company (the DLQ subject's token); repeatable");
    cmd->add_option("--table", o.tables, "Only this table; repeatable");
    cmd->add_option("--seq", seqs, "Only these DLQ stream sequences: N, N-M, comma-separated; repeatable");
    cmd->add_flag("--quiet,-q", o.quiet, "Less output");
  };
  struct State {
    DlqOptions options;
    std::vector<std::string> seqs;
  };
  const auto add = [&](const char* name, const char* help, Action action) {
    auto state = std::make_shared<State>();
    CLI::App* cmd = dlq->add_subcommand(name, help);
    common(cmd, state->options, state->seqs);
    if (action == Action::kList) {
      state->options.format = "jsonl";
      cmd->add_option("--format", state->options.format, "jsonl (decoded records) or table")
          ->check(CLI::IsMember({"jsonl", "table"}))
          ->capture_default_str();
      cmd->add_flag("--show-body", state->options.show_body, "table: the whole body instead of a preview");
    } else if (action == Action::kStats) {
      state->options.format = "text";
      cmd->add_option("--format", state->options.format, "text or json")
          ->check(CLI::IsMember({"text", "json"}))
          ->capture_default_str();
    } else {
      cmd->add_flag("--all", state->options.all, "Redrive every dead letter (or those the filters select)");
      cmd->add_flag("--strip-partition", state->options.strip_partition,
                    "Redrive cdc.<company>.<table>.<p> to cdc.<company>.<table>: the server's mapping picks the "
                    "partition again (needed after a change of P)");
      cmd->add_flag("--drop-msg-id", state->options.drop_msg_id,
                    "Publish without the original Nats-Msg-Id (needed within the source stream's duplicate window)");
      cmd->add_flag("--dry-run", state->options.dry_run, "Show what would be redriven; change nothing");
      cmd->add_option("--ack-timeout", state->options.ack_timeout_s, "Seconds to wait for each PubAck")
          ->check(CLI::PositiveNumber)
          ->capture_default_str();
    }
    cmd->callback([state, action, &exit_code] {
      state->options.seqs = parse_seqs(state->seqs);
      exit_code = run_dlq(state->options, action);
    });
  };
  add("list", "Print dead letters with decoded bodies (JSON Lines or a table)", Action::kList);
  add("stats", "Count dead letters by error_kind, company and table", Action::kStats);
  add("redrive", "Publish dead letters back to their source subjects; delete each once its PubAck is in",
      Action::kRedrive);
}

}  // namespace cdc::replay
