// cdc-replay gen: a synthetic Sequin capture shaped like ../shared/samples/sequin-mixed-2k.jsonl,
// deterministic for a seed, with a summary of what the service must make of it. The expectations
// are exact by construction: every line is generated knowing its outcome (CONTRACT.md 2-6).
//
//   original change, allowed table   -> published once      (event_id "<lsn>.<idx>:<company>:<table>:<pk>")
//   original change, other table     -> skipped
//   exact repeat without Nats-Msg-Id -> duplicate (allowed table) or skipped (other table)
//   malformed, allowed table         -> one dead letter of a known error_kind

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <array>
#include <deque>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cdc/core/capture.hpp"
#include "cdc/core/error_kind.hpp"
#include "cdc/core/json_writer.hpp"
#include "commands.hpp"
#include "nats_helper.hpp"

namespace cdc::replay {
namespace {

struct GenOptions {
  std::string out;
  std::size_t count = 0;
  std::uint64_t seed = 1;
  std::size_t companies = 4;
  double duplicates_pct = 3.5;
  double bad_pct = 0;
  double skip_pct = 15;
  double txn_pct = 5;
  bool no_oversized = true;          ///< the > 1 MiB body only with --oversized: a default server refuses it
  bool oversized = false;            ///< --oversized
  bool legacy_no_oversized = false;  ///< --no-oversized, now the default
  std::uint64_t start_lsn = 9'000'000'000;
  std::string start_time = "2026-11-22T10:00:00Z";
  std::string summary;
  std::string expected_ids;
};

/// splitmix64: tiny, fast, and the same sequence on every platform (std distributions are not).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n) (modulo bias is irrelevant at these sizes).
  std::uint64_t below(std::uint64_t n) { return next() % n; }
  /// Uniform in [0, 100).
  double percent() { return static_cast<double>(next() >> 11) * 0x1.0p-53 * 100.0; }
  bool chance(double pct) { return percent() < pct; }
  template <typename T, std::size_t N>
  const T& pick(const std::array<T, N>& items) {
    return items[below(N)];
  }

 private:
  std::uint64_t state_;
};

constexpr std::array<std::string_view, 3> kAllowedTables{"messages", "chats", "agents"};
constexpr std::array<std::string_view, 3> kSkippedTables{"contacts", "onboarding_log", "users"};
constexpr std::array<std::string_view, 4> kSampleCompanies{"co1", "acme", "tenant_42", "Zeta-9"};
constexpr std::size_t kAgentsPerCompany = 12;
constexpr std::size_t kChatsPerCompany = 40;
constexpr std::size_t kRepeatWindow = 500;  ///< repeats copy one of the last N original changes
constexpr std::size_t kMessageRowsKept = 256;
constexpr std::size_t kOversizedBytes = (1u << 20) + 1024;  ///< over the default max_message_bytes

// The sample's message texts: ASCII, emoji, CJK, accents, JSON escapes, a literal "\u0000", long.
const std::array<std::string, 7> kMessageTexts{
    "hi",
    "ok \xf0\x9f\x91\x8d",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88",
    "Ol\xc3\xa1, tudo bem?",
    "line1\nline2\t\"quoted\"",
    "\\u0000 literal",
    std::string(420, 'a'),
};
constexpr std::array<std::string_view, 3> kPushNames{"Ana", "Zo\xc3\xab", "Budi"};
constexpr std::array<std::string_view, 3> kMessageStatus{"read", "delivered", "sent"};
constexpr std::string_view kConsumer =
    R"({"id":"0b6f6c2e-7d1a-4c55-9b1e-2f0c9a1d5e77","name":"daisi-cdc","annotations":{}})";

/// The malformed messages, one of each dead-letter rule (CONTRACT.md section 6).
enum class BadCase : std::uint8_t {
  kNotJson,           ///< a truncated body
  kNonUtf8,           ///< valid JSON shape with a Latin-1 byte in a string
  kRecordNotObject,   ///< "record" is a string or an array
  kMissingCommitLsn,  ///< metadata.commit_lsn absent or null on insert/update/delete
  kAgentIdWithDot,    ///< "agent.7"
  kMissingChatId,     ///< a messages row without chat_id
  kTableMismatch,     ///< metadata.table_name is not the subject's table
  kAgentIdFloat,      ///< agent_id 7.5
  kDuplicateKey,      ///< agent_id given twice in record (another agent first)
  kNegativeZeroId,    ///< agent_id -0 (not a canonical integer)
  kInvalidSubject,    ///< a subject with one token too many (cdc.<company>.<table>.v2)
  kOversized,         ///< body over 1 MiB; last: drawn apart from the others
};
constexpr std::size_t kBadCases = 12;
constexpr std::array<std::string_view, kBadCases> kBadCaseNames{
    "not_json",        "non_utf8",       "record_not_object", "missing_commit_lsn", "agent_id_with_dot",
    "missing_chat_id", "table_mismatch", "agent_id_float",    "duplicate_key",      "agent_id_negative_zero",
    "invalid_subject", "oversized"};
constexpr std::array<ErrorKind, kBadCases> kBadCaseKinds{
    ErrorKind::kInvalidJson,  ErrorKind::kInvalidJson,  ErrorKind::kInvalidShape,   ErrorKind::kMissingField,
    ErrorKind::kInvalidToken, ErrorKind::kMissingField, ErrorKind::kTableMismatch,  ErrorKind::kInvalidToken,
    ErrorKind::kInvalidShape, ErrorKind::kInvalidToken, ErrorKind::kInvalidSubject, ErrorKind::kOversized};
constexpr std::array<ErrorKind, 7> kDeadLetterKinds{
    ErrorKind::kInvalidJson,   ErrorKind::kInvalidShape,   ErrorKind::kMissingField, ErrorKind::kInvalidToken,
    ErrorKind::kTableMismatch, ErrorKind::kInvalidSubject, ErrorKind::kOversized};

std::string quote(std::string_view s) {
  std::string out;
  append_json_string(s, out);
  return out;
}

std::string base64(std::string_view s) {
  std::string out;
  append_base64(s, out);
  return out;
}

/// One row change before it is framed as a Sequin message.
struct Change {
  std::size_t company = 0;
  std::string_view table;
  std::string_view action;
  std::string record;            ///< JSON object (or, for kRecordNotObject, not an object)
  std::string changes = "null";  ///< old values on update
  std::string pk;
};

enum class LsnField : std::uint8_t { kValue, kAbsent, kNull };

/// How a change is framed: position, time, and the variations Sequin bodies show.
struct Frame {
  std::uint64_t lsn = 0;
  std::uint32_t idx = 0;
  std::string commit_timestamp;
  bool with_pks = true;
  std::uint64_t key_order = 0;
  std::string_view table_name;  ///< metadata.table_name (differs only for kTableMismatch)
  LsnField lsn_field = LsnField::kValue;
};

std::string build_body(const Change& c, const Frame& f) {
  std::string metadata = R"({"table_schema":"public","table_name":)" + quote(f.table_name) + R"(,"commit_timestamp":)" +
                         quote(f.commit_timestamp);
  if (f.lsn_field == LsnField::kValue) metadata += ",\"commit_lsn\":" + std::to_string(f.lsn);
  if (f.lsn_field == LsnField::kNull) metadata += ",\"commit_lsn\":null";
  metadata += ",\"commit_idx\":" + std::to_string(f.idx) +
              R"(,"database_name":"daisi","transaction_annotations":null,"idempotency_key":)" +
              quote(base64(std::to_string(f.lsn) + ":" + std::to_string(f.idx))) + R"(,"enrichment":null,"consumer":)" +
              std::string(kConsumer);
  if (f.with_pks) metadata += ",\"record_pks\":[" + quote(c.pk) + "]";
  metadata += "}";

  const std::string record = "\"record\":" + c.record;
  const std::string changes = "\"changes\":" + c.changes;
  const std::string action = "\"action\":" + quote(c.action);
  metadata = "\"metadata\":" + metadata;
  // The three key orders of the sample, in about its proportions (60 / 19 / 21).
  if (f.key_order < 60) return "{" + record + "," + changes + "," + action + "," + metadata + "}";
  if (f.key_order < 79) return "{" + metadata + "," + action + "," + record + "," + changes + "}";
  return "{" + action + "," + changes + "," + metadata + "," + record + "}";
}

/// A messages row, kept so that later updates (and same-transaction pairs) change the same row.
struct MessageRow {
  std::string message_id;
  std::string chat_id;
  std::string agent_id;
  std::string jid;
  std::string flow;
  std::string text;
  std::string status;
  std::string key_id;
  bool from_me = false;
  std::string remote_jid;
  std::uint64_t message_timestamp = 0;
  std::string created_at;
  std::string updated_at;
};

struct Counts {
  std::map<std::string, std::uint64_t, std::less<>> lines_per_table;
  std::map<std::string, std::uint64_t, std::less<>> published;
  std::map<std::string, std::uint64_t, std::less<>> duplicates;
  std::map<std::string, std::uint64_t, std::less<>> skipped;
  std::map<std::string, std::uint64_t, std::less<>> dead_per_table;
  std::array<std::uint64_t, kBadCases> bad_cases{};
  std::uint64_t lines = 0;
  std::uint64_t with_msg_id = 0;
  std::uint64_t original_changes = 0;
  std::uint64_t repeats = 0;
  std::uint64_t bad = 0;
  std::uint64_t transactions = 0;
  std::uint64_t multi_change_transactions = 0;
  std::uint64_t same_row_pairs = 0;
  std::uint64_t body_bytes = 0;
  std::uint64_t first_lsn = 0;
  std::uint64_t last_lsn = 0;
};

class Generator {
 public:
  Generator(const GenOptions& options, std::int64_t start_ns, std::ostream& out, std::ostream* ids)
      : options_(options),
        rng_(options.seed),
        out_(out),
        ids_(ids),
        now_us_(start_ns / 1000),
        lsn_(options.start_lsn),
        message_rows_(options.companies) {
    for (std::size_t i = 0; i < options.companies; ++i) {
      companies_.push_back(i < kSampleCompanies.size() ? std::string(kSampleCompanies[i])
                                                       : "co" + std::to_string(i + 1));
    }
    // The first malformed messages cover every case once (oversized last, it is big), in an
    // order that depends on the seed; later ones are drawn at random.
    for (std::size_t i = 0; i + 1 < kBadCases; ++i) first_bad_.push_back(static_cast<BadCase>(i));
    for (std::size_t i = first_bad_.size(); i > 1; --i) std::swap(first_bad_[i - 1], first_bad_[rng_.below(i)]);
    if (!options.no_oversized) first_bad_.push_back(BadCase::kOversized);
  }

  void run() {
    const double dup = options_.duplicates_pct;
    const double bad = dup + options_.bad_pct;
    const double skip = bad + options_.skip_pct;
    while (counts_.lines < options_.count) {
      const double roll = rng_.percent();
      if (roll < dup && !recent_.empty()) {
        emit_repeat();
      } else if (roll >= dup && roll < bad) {
        emit_bad();
      } else if (roll >= bad && roll < skip) {
        emit_transaction({skipped_change(rng_.below(companies_.size()), rng_.pick(kSkippedTables))});
      } else if (rng_.chance(options_.txn_pct) && options_.count - counts_.lines >= 2) {
        emit_transaction(multi_change_transaction());
      } else {
        emit_transaction({allowed_change(rng_.below(companies_.size()), allowed_table())});
      }
    }
  }

  [[nodiscard]] const Counts& counts() const { return counts_; }
  [[nodiscard]] const std::vector<std::string>& companies() const { return companies_; }

 private:
  struct Original {
    std::string subject;
    std::string body;
    std::string_view table;
  };

  static bool allowed(std::string_view table) {
    return std::find(kAllowedTables.begin(), kAllowedTables.end(), table) != kAllowedTables.end();
  }

  std::string subject(std::size_t company, std::string_view table) const {
    return "cdc." + companies_[company] + "." + std::string(table);
  }

  // ---- time, ids ------------------------------------------------------------------------------

  std::string timestamp(std::int64_t unix_us) const {
    std::string out;
    append_rfc3339(unix_us * 1000, out);
    return out;
  }
  /// Some moment in the last hour, for created_at / updated_at columns.
  std::string recent_time() { return timestamp(now_us_ - static_cast<std::int64_t>(rng_.below(3'600'000'000))); }
  std::string digits(std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += static_cast<char>('0' + rng_.below(10));
    return out;
  }
  std::string phone() { return "62812" + digits(7); }
  std::string agent_id() { return "agent-" + std::to_string(1 + rng_.below(kAgentsPerCompany)); }
  std::string chat_id() { return "chat-" + std::to_string(1 + rng_.below(kChatsPerCompany)); }
  std::string_view allowed_table() {
    const auto r = rng_.below(100);  // the sample's mix: 74 % messages, 18 % chats, 8 % agents
    return r < 74 ? kAllowedTables[0] : r < 92 ? kAllowedTables[1] : kAllowedTables[2];
  }
  std::string_view action(std::uint64_t insert_pct, std::uint64_t update_pct) {
    const auto r = rng_.below(100);
    return r < insert_pct ? "insert" : r < insert_pct + update_pct ? "update" : "delete";
  }

  // ---- rows -----------------------------------------------------------------------------------

  static std::string message_record(const MessageRow& m, const std::string& company) {
    return "{\"message_id\":" + quote(m.message_id) + ",\"chat_id\":" + quote(m.chat_id) +
           ",\"agent_id\":" + quote(m.agent_id) + ",\"company_id\":" + quote(company) + ",\"jid\":" + quote(m.jid) +
           ",\"flow\":" + quote(m.flow) + ",\"message_type\":\"text\",\"message_text\":" + quote(m.text) +
           ",\"status\":" + quote(m.status) + ",\"key\":{\"id\":" + quote(m.key_id) +
           ",\"from_me\":" + (m.from_me ? "true" : "false") + ",\"remote_jid\":" + quote(m.remote_jid) +
           "},\"message_timestamp\":" + std::to_string(m.message_timestamp) + ",\"created_at\":" + quote(m.created_at) +
           ",\"updated_at\":" + quote(m.updated_at) + "}";
  }

  MessageRow new_message_row() {
    static constexpr char kHex[] = "0123456789ABCDEF";
    MessageRow m;
    m.message_id = "msg-" + std::to_string(100000 + next_message_++);
    m.chat_id = chat_id();
    m.agent_id = agent_id();
    m.jid = phone() + "@s.whatsapp.net";
    m.flow = rng_.below(2) == 0 ? "IN" : "OUT";
    m.text = rng_.pick(kMessageTexts);
    m.status = std::string(rng_.pick(kMessageStatus));
    m.key_id = "3EB0";
    for (int i = 0; i < 8; ++i) m.key_id += kHex[rng_.below(16)];
    m.from_me = rng_.below(2) == 0;
    m.remote_jid = phone() + "@s.whatsapp.net";
    m.message_timestamp = 1'750'000'000 + rng_.below(50'000'000);
    m.created_at = recent_time();
    m.updated_at = m.created_at;
    return m;
  }

  Change message_insert(std::size_t company) {
    MessageRow row = new_message_row();
    Change c{company, "messages", "insert", message_record(row, companies_[company]), "null", row.message_id};
    auto& rows = message_rows_[company];
    rows.push_back(std::move(row));
    if (rows.size() > kMessageRowsKept) rows.pop_front();
    return c;
  }

  /// An update of `row` (a status change), or of a recent row of the company.
  Change message_update(std::size_t company, MessageRow* row = nullptr) {
    auto& rows = message_rows_[company];
    if (row == nullptr) {
      if (rows.empty()) return message_insert(company);
      row = &rows[rng_.below(rows.size())];
    }
    const std::string old_updated_at = row->updated_at;
    row->status = std::string(rng_.pick(kMessageStatus));
    row->updated_at = timestamp(now_us_ - static_cast<std::int64_t>(rng_.below(1000)));
    return Change{company,
                  "messages",
                  "update",
                  message_record(*row, companies_[company]),
                  "{\"updated_at\":" + quote(old_updated_at) + "}",
                  row->message_id};
  }

  Change chat_change(std::size_t company, std::string_view act) {
    const std::string id = chat_id();
    const std::string record =
        "{\"chat_id\":" + quote(id) + ",\"agent_id\":" + quote(agent_id()) +
        ",\"company_id\":" + quote(companies_[company]) + ",\"jid\":" + quote(phone() + "@s.whatsapp.net") +
        ",\"push_name\":" + quote(rng_.pick(kPushNames)) + ",\"unread_count\":" + std::to_string(rng_.below(31)) +
        ",\"is_group\":" + (rng_.below(10) == 0 ? "true" : "false") +
        ",\"last_message_ts\":" + std::to_string(1'750'000'000 + rng_.below(50'000'000)) +
        ",\"updated_at\":" + quote(recent_time()) + "}";
    return with_changes(Change{company, "chats", act, record, "null", id});
  }

  Change agent_change(std::size_t company, std::string_view act) {
    const std::string id = agent_id();
    const std::string number = id.substr(6);
    const std::string record = "{\"agent_id\":" + quote(id) + ",\"company_id\":" + quote(companies_[company]) +
                               ",\"status\":" + (rng_.below(2) == 0 ? "\"connected\"" : "\"disconnected\"") +
                               ",\"agent_name\":" + quote("Agent " + number) +
                               ",\"host_name\":" + quote("wa-" + std::to_string(1 + rng_.below(9))) +
                               ",\"version\":" + quote("2." + std::to_string(rng_.below(10))) +
                               ",\"updated_at\":" + quote(recent_time()) + "}";
    return with_changes(Change{company, "agents", act, record, "null", id});
  }

  Change skipped_change(std::size_t company, std::string_view table) {
    const std::uint64_t id = ++next_other_id_;
    const std::string record = "{\"id\":" + std::to_string(id) + ",\"company_id\":" + quote(companies_[company]) +
                               ",\"phone\":" + quote(phone()) + "}";
    return with_changes(Change{company, table, action(50, 22), record, "null", std::to_string(id)});
  }

  Change with_changes(Change c) {
    if (c.action == "update") c.changes = "{\"updated_at\":" + quote(recent_time()) + "}";
    return c;
  }

  Change allowed_change(std::size_t company, std::string_view table) {
    if (table == "messages") return rng_.below(2) == 0 ? message_insert(company) : message_update(company);
    if (table == "chats") return chat_change(company, action(50, 24));
    return agent_change(company, action(50, 20));
  }

  /// Several changes in one commit: the first such transaction (and about half of the others)
  /// changes one messages row twice, which only commit_idx keeps apart.
  std::vector<Change> multi_change_transaction() {
    const std::size_t company = rng_.below(companies_.size());
    std::vector<Change> changes;
    const auto shape = counts_.multi_change_transactions == 0 ? 0 : rng_.below(4);
    if (shape <= 1) {
      changes.push_back(message_insert(company));
      changes.push_back(message_update(company, &message_rows_[company].back()));
      if (shape == 1) changes.push_back(chat_change(company, "update"));
    } else if (shape == 2) {
      changes.push_back(message_insert(company));
      changes.push_back(chat_change(company, "update"));
    } else {
      changes.push_back(agent_change(company, "update"));
      changes.push_back(chat_change(company, "insert"));
      changes.push_back(message_insert(company));
    }
    return changes;
  }

  // ---- output ---------------------------------------------------------------------------------

  void next_transaction() {
    lsn_ += 1 + rng_.below(4000);
    now_us_ += 1000 + static_cast<std::int64_t>(rng_.below(20000));
    if (counts_.first_lsn == 0) counts_.first_lsn = lsn_;
    counts_.last_lsn = lsn_;
    ++counts_.transactions;
  }

  Frame frame(std::uint32_t idx, std::string_view table) {
    Frame f;
    f.lsn = lsn_;
    f.idx = idx;
    f.commit_timestamp = timestamp(now_us_);
    f.with_pks = rng_.below(100) < 68;
    f.key_order = rng_.below(100);
    f.table_name = table;
    return f;
  }

  void write(const std::string& subject, std::string_view table, std::string body, bool with_msg_id, const Frame* f) {
    CaptureRecord record;
    record.subject = subject;
    if (with_msg_id) {
      record.headers.emplace_back("Nats-Msg-Id", base64(std::to_string(f->lsn) + ":" + std::to_string(f->idx)));
      ++counts_.with_msg_id;
    }
    counts_.body_bytes += body.size();
    record.data = std::move(body);
    out_ << format_capture_line(record) << '\n';
    ++counts_.lines;
    ++counts_.lines_per_table[std::string(table)];
  }

  void emit_transaction(const std::vector<Change>& changes) {
    next_transaction();
    const std::size_t n = std::min<std::size_t>(changes.size(), options_.count - counts_.lines);
    if (n > 1) {
      ++counts_.multi_change_transactions;
      if (changes[0].table == "messages" && changes[1].table == "messages") ++counts_.same_row_pairs;
    }
    for (std::size_t i = 0; i < n; ++i) {
      const Change& c = changes[i];
      const Frame f = frame(static_cast<std::uint32_t>(i), c.table);
      const std::string subj = subject(c.company, c.table);
      std::string body = build_body(c, f);
      ++counts_.original_changes;
      if (allowed(c.table)) {
        ++counts_.published[std::string(c.table)];
        if (ids_ != nullptr) {
          *ids_ << f.lsn << '.' << f.idx << ':' << companies_[c.company] << ':' << c.table << ':' << c.pk << '\n';
        }
      } else {
        ++counts_.skipped[std::string(c.table)];
      }
      recent_.push_back(Original{subj, body, c.table});
      if (recent_.size() > kRepeatWindow) recent_.pop_front();
      write(subj, c.table, std::move(body), true, &f);
    }
  }

  /// An exact copy of a recent change without its Nats-Msg-Id, as after a producer restart past
  /// the stream's duplicate window: JetStream stores it again, the service must not publish it.
  void emit_repeat() {
    const Original& o = recent_[rng_.below(recent_.size())];
    ++counts_.repeats;
    ++(allowed(o.table) ? counts_.duplicates : counts_.skipped)[std::string(o.table)];
    write(o.subject, o.table, o.body, false, nullptr);
  }

  BadCase next_bad_case() {
    if (counts_.bad < first_bad_.size()) return first_bad_[counts_.bad];
    if (!options_.no_oversized && rng_.below(200) == 0) return BadCase::kOversized;
    return static_cast<BadCase>(rng_.below(kBadCases - 1));
  }

  void emit_bad() {
    const BadCase bad = next_bad_case();
    const std::size_t company = rng_.below(companies_.size());
    std::string_view table = allowed_table();
    if (bad == BadCase::kMissingChatId || bad == BadCase::kOversized) table = "messages";
    next_transaction();
    Change c = allowed_change(company, table);
    Frame f = frame(0, table);
    std::string body;
    switch (bad) {
      case BadCase::kNotJson: {
        const std::string whole = build_body(c, f);
        body = whole.substr(0, whole.size() / 4 + rng_.below(whole.size() / 2));  // a proper prefix
        break;
      }
      case BadCase::kNonUtf8: {
        const std::string latin1 = "caf\xe9";  // Latin-1, as a misconfigured client would send
        const auto at = c.record.find("\"company_id\":");
        c.record.insert(at, "\"note\":\"" + latin1 + "\",");
        body = build_body(c, f);
        break;
      }
      case BadCase::kRecordNotObject:
        c.record = rng_.below(2) == 0 ? quote(c.pk) : "[" + quote(c.pk) + "]";
        body = build_body(c, f);
        break;
      case BadCase::kMissingCommitLsn:
        f.lsn_field = rng_.below(2) == 0 ? LsnField::kAbsent : LsnField::kNull;
        body = build_body(c, f);
        break;
      case BadCase::kAgentIdWithDot:
      case BadCase::kAgentIdFloat: {
        const std::string bad_id = bad == BadCase::kAgentIdWithDot ? "agent." + std::to_string(1 + rng_.below(12))
                                                                   : std::to_string(1 + rng_.below(12)) + ".5";
        const auto at = c.record.find("\"agent_id\":\"");
        const auto end = c.record.find('"', at + 12);
        const std::string value = bad == BadCase::kAgentIdWithDot ? quote(bad_id) : bad_id;
        c.record.replace(at + 11, end + 1 - (at + 11), value);
        if (table == "agents") c.pk = bad_id;
        body = build_body(c, f);
        break;
      }
      case BadCase::kMissingChatId: {
        const auto at = c.record.find(",\"chat_id\":\"");
        const auto end = c.record.find('"', at + 12);
        c.record.erase(at, end + 1 - at);
        body = build_body(c, f);
        break;
      }
      case BadCase::kTableMismatch: {
        static constexpr std::array<std::string_view, 5> kOthers{"contacts", "users", "messages", "chats", "agents"};
        do {
          f.table_name = rng_.pick(kOthers);
        } while (f.table_name == table);
        body = build_body(c, f);
        break;
      }
      case BadCase::kDuplicateKey: {
        // Another agent's id first: a reader keeping the first copy routes elsewhere than one
        // keeping the last (CONTRACT.md section 6).
        c.record.insert(1, "\"agent_id\":" + quote("agent-" + std::to_string(100 + rng_.below(12))) + ",");
        body = build_body(c, f);
        break;
      }
      case BadCase::kNegativeZeroId: {
        const auto at = c.record.find("\"agent_id\":\"");
        const auto end = c.record.find('"', at + 12);
        c.record.replace(at + 11, end + 1 - (at + 11), "-0");
        body = build_body(c, f);
        break;
      }
      case BadCase::kInvalidSubject: body = build_body(c, f); break;
      case BadCase::kOversized: {
        MessageRow row = new_message_row();
        row.text = std::string(kOversizedBytes + rng_.below(4096), 'x');
        c = Change{company, "messages", "insert", message_record(row, companies_[company]), "null", row.message_id};
        body = build_body(c, f);
        break;
      }
    }
    ++counts_.bad;
    ++counts_.bad_cases[static_cast<std::size_t>(bad)];
    if (bad == BadCase::kInvalidSubject) {
      // Neither company nor table is known for such a subject: its dead letter goes to <dlq>._._.
      ++counts_.dead_per_table["_"];
      write(subject(company, table) + ".v2", "_", std::move(body), true, &f);
      return;
    }
    ++counts_.dead_per_table[std::string(table)];
    write(subject(company, table), table, std::move(body), true, &f);
  }

  const GenOptions& options_;
  Rng rng_;
  std::ostream& out_;
  std::ostream* ids_;
  std::int64_t now_us_;
  std::uint64_t lsn_;
  std::vector<std::string> companies_;
  std::vector<std::deque<MessageRow>> message_rows_;
  std::uint64_t next_message_ = 0;
  std::uint64_t next_other_id_ = 0;
  std::deque<Original> recent_;
  std::vector<BadCase> first_bad_;
  Counts counts_;
};

std::uint64_t sum(const std::map<std::string, std::uint64_t, std::less<>>& m) {
  std::uint64_t total = 0;
  for (const auto& [key, value] : m) total += value;
  return total;
}

void write_map(std::ostream& out, const std::map<std::string, std::uint64_t, std::less<>>& m,
               const std::vector<std::string_view>& keys) {
  out << '{';
  bool first = true;
  for (const auto key : keys) {
    const auto it = m.find(key);
    out << (first ? "" : ",") << quote(key) << ':' << (it != m.end() ? it->second : 0);
    first = false;
  }
  out << '}';
}

void write_summary(std::ostream& out, const GenOptions& options, const Generator& generator) {
  const Counts& c = generator.counts();
  const std::vector<std::string_view> allowed(kAllowedTables.begin(), kAllowedTables.end());
  std::vector<std::string_view> all = allowed;
  all.insert(all.end(), kSkippedTables.begin(), kSkippedTables.end());
  std::map<std::string, std::uint64_t, std::less<>> dead_per_kind;
  for (const ErrorKind kind : kDeadLetterKinds) dead_per_kind[std::string(to_string(kind))] = 0;
  for (std::size_t i = 0; i < kBadCases; ++i) dead_per_kind[std::string(to_string(kBadCaseKinds[i]))] += c.bad_cases[i];
  std::vector<std::string_view> kinds;
  for (const ErrorKind kind : kDeadLetterKinds) kinds.push_back(to_string(kind));
  std::map<std::string, std::uint64_t, std::less<>> cases;
  for (std::size_t i = 0; i < kBadCases; ++i) cases[std::string(kBadCaseNames[i])] = c.bad_cases[i];
  const std::vector<std::string_view> case_names(kBadCaseNames.begin(), kBadCaseNames.end());

  out << "{\n  \"generator\":{\"seed\":" << options.seed << ",\"count\":" << options.count
      << ",\"duplicates_pct\":" << options.duplicates_pct << ",\"bad_pct\":" << options.bad_pct
      << ",\"skip_pct\":" << options.skip_pct << ",\"txn_pct\":" << options.txn_pct
      << ",\"start_lsn\":" << options.start_lsn << ",\"companies\":[";
  for (std::size_t i = 0; i < generator.companies().size(); ++i) {
    out << (i > 0 ? "," : "") << quote(generator.companies()[i]);
  }
  out << "]},\n  \"total\":" << c.lines << ",\n  \"per_table\":";
  write_map(out, c.lines_per_table, all);
  out << ",\n  \"expected_published\":" << sum(c.published) << ",\n  \"expected_published_per_table\":";
  write_map(out, c.published, allowed);
  out << ",\n  \"expected_duplicates\":" << sum(c.duplicates) << ",\n  \"expected_duplicates_per_table\":";
  write_map(out, c.duplicates, allowed);
  out << ",\n  \"expected_dead_letters\":" << c.bad << ",\n  \"expected_dead_letters_per_kind\":";
  write_map(out, dead_per_kind, kinds);
  out << ",\n  \"expected_dead_letters_per_table\":";
  write_map(out, c.dead_per_table, allowed);
  out << ",\n  \"skipped\":" << sum(c.skipped) << ",\n  \"skipped_per_table\":";
  write_map(out, c.skipped, std::vector<std::string_view>(kSkippedTables.begin(), kSkippedTables.end()));
  out << ",\n  \"bad_cases\":";
  write_map(out, cases, case_names);
  out << ",\n  \"lines\":{\"original_changes\":" << c.original_changes << ",\"repeats_without_msg_id\":" << c.repeats
      << ",\"malformed\":" << c.bad << ",\"with_msg_id\":" << c.with_msg_id << "}"
      << ",\n  \"transactions\":{\"total\":" << c.transactions << ",\"multi_change\":" << c.multi_change_transactions
      << ",\"same_row_twice\":" << c.same_row_pairs << ",\"first_lsn\":" << c.first_lsn
      << ",\"last_lsn\":" << c.last_lsn << "}"
      << ",\n  \"mean_body_bytes\":" << (c.lines > 0 ? c.body_bytes / c.lines : 0) << "\n}\n";
}

int run_gen(const GenOptions& options) {
  if (options.duplicates_pct + options.bad_pct + options.skip_pct > 100) {
    throw CLI::ValidationError("--duplicates-pct + --bad-pct + --skip-pct", "must not exceed 100");
  }
  // Each transaction advances the LSN by at most 4000.
  if (options.start_lsn >
      std::numeric_limits<std::uint64_t>::max() - 4000 * static_cast<std::uint64_t>(options.count)) {
    throw CLI::ValidationError("--start-lsn", "too close to 2^64 for --count lines");
  }
  const auto start_ns = parse_rfc3339(options.start_time);
  if (!start_ns) throw CLI::ValidationError("--start-time", "not an RFC 3339 time: " + options.start_time);

  std::ofstream out(options.out, std::ios::binary | std::ios::trunc);
  if (!out) {
    std::cerr << "cdc-replay gen: cannot write " << options.out << ": " << std::strerror(errno) << "\n";
    return kExitUsage;
  }
  std::ofstream ids;
  if (!options.expected_ids.empty()) {
    ids.open(options.expected_ids, std::ios::binary | std::ios::trunc);
    if (!ids) {
      std::cerr << "cdc-replay gen: cannot write " << options.expected_ids << ": " << std::strerror(errno) << "\n";
      return kExitUsage;
    }
  }
  Generator generator(options, *start_ns, out, ids.is_open() ? &ids : nullptr);
  generator.run();
  out.close();
  if (!out) {
    std::cerr << "cdc-replay gen: error writing " << options.out << "\n";
    return kExitUsage;
  }
  if (!options.summary.empty()) {
    std::ofstream summary(options.summary, std::ios::binary | std::ios::trunc);
    write_summary(summary, options, generator);
    if (!summary) {
      std::cerr << "cdc-replay gen: cannot write " << options.summary << ": " << std::strerror(errno) << "\n";
      return kExitUsage;
    }
  }
  const Counts& c = generator.counts();
  std::cerr << "wrote " << c.lines << " lines to " << options.out << ": " << sum(c.published) << " to publish, "
            << sum(c.duplicates) << " duplicates, " << c.bad << " dead letters, " << sum(c.skipped) << " skipped\n";
  return kExitOk;
}

}  // namespace

void add_gen_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<GenOptions>();
  CLI::App* cmd = app.add_subcommand("gen", "Generate a deterministic Sequin capture and its expected outcome");
  cmd->add_option("--out,-o", options->out, "Capture file to write")->required();
  cmd->add_option("--count,-n", options->count, "Lines to write")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", options->seed, "Random seed (same seed, same file)")->capture_default_str();
  cmd->add_option("--companies", options->companies, "Number of companies (tenants)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--duplicates-pct", options->duplicates_pct,
                  "Percent of lines that repeat a recent change without Nats-Msg-Id")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  cmd->add_option("--bad-pct", options->bad_pct, "Percent of malformed lines (one dead letter each)")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  cmd->add_option("--skip-pct", options->skip_pct, "Percent of changes to tables the service skips")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  cmd->add_option("--txn-pct", options->txn_pct, "Percent of transactions with several changes")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  cmd->add_flag("--oversized", options->oversized,
                "Also generate the > 1 MiB malformed body (dead-lettered as oversized). Off by default: a\n"
                "nats-server with the default max_payload (1 MiB) refuses it, so `publish` would fail on it");
  cmd->add_flag("--no-oversized", options->legacy_no_oversized, "The default (kept for scripts)")
      ->group("")
      ->excludes("--oversized");
  cmd->add_option("--start-lsn", options->start_lsn, "commit_lsn of the first transaction (approximately)")
      ->capture_default_str();
  cmd->add_option("--start-time", options->start_time, "commit_timestamp of the first transaction (RFC 3339)")
      ->capture_default_str();
  cmd->add_option("--summary", options->summary, "Write the expected counts as JSON to this file");
  cmd->add_option("--expected-ids", options->expected_ids,
                  "Write the event_id of every event the service must publish, one per line");
  cmd->callback([options, &exit_code] {
    options->no_oversized = !options->oversized;
    exit_code = run_gen(*options);
  });
}

}  // namespace cdc::replay
