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

void write_plain_payload(const PayloadValues& v, const Table& table, std::string& p) {
  ExactWriter w(p, kEventIdKey.size() + v.event_id.size() + kCompanyKey.size() + v.company.size() + kAgentKey.size() +
                       v.agent.size() + (table.has_message_id ? kMessageKey.size() + v.message_id.size() + 2 : 0) +
                       (table.has_chat_id ? kChatKey.size() + v.chat.size() + 2 : 0) + kTableKey.size() +
                       v.table.size() + kActionKey.size() + v.action.size() + kCommittedKey.size() +
                       v.committed.size() + kRowDataKey.size() + v.row_data.size() + 9);
  w.put(kEventIdKey);
  w.quoted(v.event_id);
  w.put(kCompanyKey);
  w.quoted(v.company);
  w.put(kAgentKey);
  w.quoted(v.agent);
  if (table.has_message_id) {
    w.put(kMessageKey);
    w.quoted(v.message_id);
  }
  if (table.has_chat_id) {
    w.put(kChatKey);
    w.quoted(v.chat);
  }
  w.put(kTableKey);
  w.quoted(v.table);
  w.put(kActionKey);
  w.put(v.action);
  w.put(kCommittedKey);
  w.put(v.committed);
  w.put(kRowDataKey);
  w.put(v.row_data);
  w.put('}');
}

void write_escaped_payload(const PayloadValues& v, const Table& table, std::string& p) {
  p.reserve(v.row_data.size() +
            6 * (v.event_id.size() + v.company.size() + v.agent.size() + v.message_id.size() + v.chat.size() +
                 v.table.size()) +
            160);
  p.append(kEventIdKey);
  append_json_string(v.event_id, p);
  p.append(kCompanyKey);
  append_json_string(v.company, p);
  p.append(kAgentKey);
  append_json_string(v.agent, p);
  if (table.has_message_id) {
    p.append(kMessageKey);
    append_json_string(v.message_id, p);
  }
  if (table.has_chat_id) {
    p.append(kChatKey);
    append_json_string(v.chat, p);
  }
  p.append(kTableKey);
  append_json_string(v.table, p);
  p.append(kActionKey).append(v.action).append(kCommittedKey).append(v.committed);
  p.append(kRowDataKey).append(v.row_data).push_back('}');
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
