// Output: the enriched event's subject and payload (CONTRACT.md section 4), written once the
// rules have passed. The common payload (nothing to escape) is written by one ExactWriter with
// every size known; the rest goes through append_json_string.

#include <string>
#include <string_view>

#include "cdc/core/json_writer.hpp"
#include "exact_writer.hpp"
#include "steps.hpp"

namespace cdc::transform_detail {
namespace {

constexpr std::string_view kEventIdKey = "{\"event_id\":";
constexpr std::string_view kCompanyKey = ",\"company_id\":";
constexpr std::string_view kAgentKey = ",\"agent_id\":";
constexpr std::string_view kMessageKey = ",\"message_id\":";
constexpr std::string_view kChatKey = ",\"chat_id\":";
constexpr std::string_view kTableKey = ",\"table\":";
constexpr std::string_view kActionKey = ",\"action\":\"";
constexpr std::string_view kCommittedKey = "\",\"committed_at\":";
constexpr std::string_view kRowDataKey = ",\"row_data\":";

/// The payload's string values, in order (message_id and chat_id only for the tables that have them).
struct PayloadValues {
  std::string_view event_id;
  std::string_view company;
  std::string_view agent;
  std::string_view message_id;
  std::string_view chat;
  std::string_view table;
  std::string_view action;     ///< static storage, never needs escaping
  std::string_view committed;  ///< a JSON scalar as given, or "null"
  std::string_view row_data;   ///< the record object, byte for byte
};

/// Writes the payload's pieces, in the contract's order, to `sink`: sink.raw(text) copies JSON
/// as it is, sink.string(value) writes a string literal. One order for both writers below.
template <class Sink>
void emit_payload(const PayloadValues& v, const Table& table, Sink& sink) {
  sink.raw(kEventIdKey);
  sink.string(v.event_id);
  sink.raw(kCompanyKey);
  sink.string(v.company);
  sink.raw(kAgentKey);
  sink.string(v.agent);
  if (table.has_message_id) {
    sink.raw(kMessageKey);
    sink.string(v.message_id);
  }
  if (table.has_chat_id) {
    sink.raw(kChatKey);
    sink.string(v.chat);
  }
  sink.raw(kTableKey);
  sink.string(v.table);
  sink.raw(kActionKey);
  sink.raw(v.action);
  sink.raw(kCommittedKey);
  sink.raw(v.committed);
  sink.raw(kRowDataKey);
  sink.raw(v.row_data);
  sink.raw("}");
}

/// Nothing to escape: every size is known, one ExactWriter.
struct PlainSink {
  ExactWriter& w;
  [[gnu::always_inline]] void raw(std::string_view s) noexcept { w.put(s); }
  [[gnu::always_inline]] void string(std::string_view s) noexcept { w.quoted(s); }
};

/// Something to escape (rare): appended piece by piece.
struct EscapingSink {
  std::string& p;
  void raw(std::string_view s) { p.append(s); }
  void string(std::string_view s) { append_json_string(s, p); }
};

void write_plain_payload(const PayloadValues& v, const Table& table, std::string& p) {
  ExactWriter w(p, kEventIdKey.size() + v.event_id.size() + kCompanyKey.size() + v.company.size() + kAgentKey.size() +
                       v.agent.size() + (table.has_message_id ? kMessageKey.size() + v.message_id.size() + 2 : 0) +
                       (table.has_chat_id ? kChatKey.size() + v.chat.size() + 2 : 0) + kTableKey.size() +
                       v.table.size() + kActionKey.size() + v.action.size() + kCommittedKey.size() +
                       v.committed.size() + kRowDataKey.size() + v.row_data.size() + 9);
  PlainSink sink{w};
  emit_payload(v, table, sink);
}

void write_escaped_payload(const PayloadValues& v, const Table& table, std::string& p) {
  p.reserve(v.row_data.size() +
            6 * (v.event_id.size() + v.company.size() + v.agent.size() + v.message_id.size() + v.chat.size() +
                 v.table.size()) +
            160);
  EscapingSink sink{p};
  emit_payload(v, table, sink);
}

}  // namespace

void write_subject(std::string_view prefix, const Facts& facts, const Table& table, TransformOutput& out) {
  const std::string_view agent = facts.ids[kAgentId].text;
  const std::string_view chat = facts.ids[kChatId].text;
  ExactWriter w(out.subject, prefix.size() + out.company.size() + agent.size() + table.name.size() + 3 +
                                 (table.has_message_id ? chat.size() + 1 : 0));
  w.put(prefix);
  w.put('.');
  w.put(out.company);
  w.put('.');
  w.put(agent);
  w.put('.');
  w.put(table.name);
  if (table.has_message_id) {
    w.put('.');
    w.put(chat);
  }
}

void write_payload(const Facts& facts, const Table& table, const Identity& id, TransformOutput& out) {
  const PayloadValues v{
      .event_id = out.event_id,
      .company = out.company,
      .agent = facts.ids[kAgentId].text,
      .message_id = id.message_id,
      .chat = facts.ids[kChatId].text,
      .table = table.name,
      .action = facts.action_value,
      .committed = facts.commit_timestamp == Seen::kOk ? facts.commit_timestamp_raw : "null",
      .row_data = facts.record_raw,
  };
  const bool plain = !needs_json_escape(v.event_id) && !needs_json_escape(v.company) && !needs_json_escape(v.agent) &&
                     !needs_json_escape(v.message_id) && !(table.has_chat_id && needs_json_escape(v.chat)) &&
                     !needs_json_escape(v.table);
  if (plain) {  // the common case: nothing to escape, so every size is known
    write_plain_payload(v, table, out.payload);
  } else {
    write_escaped_payload(v, table, out.payload);
  }
}

}  // namespace cdc::transform_detail
