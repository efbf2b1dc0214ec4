// The order checker of the scale-out tests (test/support/order_check.hpp): source positions by
// the service's transform, and per output subject the stored order against the source order.

#include "order_check.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using cdc::CaptureRecord;
using cdc::test::check_order;
using cdc::test::source_positions;
using cdc::test::StoredOutput;

namespace {

CaptureRecord chat_change(const std::string& company, const std::string& chat, std::uint64_t lsn, std::uint64_t seq,
                          const std::string& table = "chats") {
  CaptureRecord r;
  r.subject = "cdc." + company + "." + table;
  r.data = R"({"record":{"chat_id":")" + chat + R"(","agent_id":"agent-1"},"changes":null,"action":"update",)" +
           R"("metadata":{"table_schema":"public","table_name":")" + table +
           R"(","commit_timestamp":"2026-11-22T10:00:00Z","commit_lsn":)" + std::to_string(lsn) +
           R"(,"commit_idx":0}})";
  r.stream_seq = seq;
  return r;
}

}  // namespace

TEST_CASE("order check: positions are the first source copy of each event, skips and bad input have none",
          "[order_check]") {
  const cdc::Config config = cdc::load_config_text("", {});
  CaptureRecord skipped = chat_change("co1", "chat-9", 7, 2, "contacts");
  CaptureRecord bad = chat_change("co1", "chat-9", 8, 3);
  bad.data = "{not json";
  const std::vector<CaptureRecord> source{chat_change("co1", "chat-1", 100, 1), skipped, bad,
                                          chat_change("co1", "chat-2", 101, 4),
                                          chat_change("co1", "chat-1", 100, 5)};  // a producer repeat of seq 1
  const auto positions = source_positions(config, source);
  REQUIRE(positions.size() == 2);
  CHECK(positions.at("100.0:co1:chats:chat-1") == 1);
  CHECK(positions.at("101.0:co1:chats:chat-2") == 4);
}

TEST_CASE("order check: in order per subject passes, interleaved subjects are independent", "[order_check]") {
  const std::map<std::string, std::uint64_t> positions{{"a1", 1}, {"a2", 5}, {"b1", 2}, {"b2", 3}};
  // Subject b's events are stored before a's first: order only counts within a subject.
  const std::vector<StoredOutput> stored{{"wa.b", "b1", 1}, {"wa.b", "b2", 2}, {"wa.a", "a1", 3}, {"wa.a", "a2", 4}};
  const auto check = check_order(positions, stored);
  CHECK(check.ok());
  CHECK(check.subjects == 2);
  CHECK(check.events == 4);
  CHECK(check.out_of_order == 0);
  CHECK(check.examples.empty());
}

TEST_CASE("order check: a later source change stored first on its subject is reported", "[order_check]") {
  const std::map<std::string, std::uint64_t> positions{{"a1", 1}, {"a2", 5}, {"a3", 9}, {"b1", 2}};
  const std::vector<StoredOutput> stored{{"wa.a", "a2", 1}, {"wa.b", "b1", 2}, {"wa.a", "a1", 3}, {"wa.a", "a3", 4}};
  const auto check = check_order(positions, stored);
  CHECK_FALSE(check.ok());
  CHECK(check.out_of_order == 1);  // a1 after a2; a3 after a2 is in order again
  REQUIRE(check.examples.size() == 1);
  CHECK(check.examples[0] == "on wa.a: wa seq 3 (source seq 1, a1) stored after wa seq 1 (source seq 5, a2)");
  CHECK(check.summary().find("out_of_order=1") != std::string::npos);
}

TEST_CASE("order check: repeats are counted apart, unknown events fail the check", "[order_check]") {
  const std::map<std::string, std::uint64_t> positions{{"a1", 1}, {"a2", 5}};
  const std::vector<StoredOutput> stored{{"wa.a", "a1", 1}, {"wa.a", "a2", 2}, {"wa.a", "a1", 3}, {"wa.a", "zz", 4}};
  const auto check = check_order(positions, stored);
  CHECK(check.repeated == 1);  // a1 again: a duplicate (counted by the caller), not an order fault
  CHECK(check.out_of_order == 0);
  CHECK(check.unknown == 1);
  CHECK_FALSE(check.ok());
  CHECK(check.examples.at(0).find("zz has no source message") != std::string::npos);
}
