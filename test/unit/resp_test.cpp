#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "cdc/adapters/redis/resp.hpp"

using cdc::RedisReply;
using cdc::resp_append_command;

TEST_CASE("RESP: a command is an array of bulk strings, appended after what is queued", "[resp]") {
  std::string out = "queued";
  resp_append_command(out, {"SET", "dedup:9000003938.0:messages:m-1", "p", "NX", "GET", "EX", "30"});
  CHECK(out ==
        "queued*7\r\n$3\r\nSET\r\n$31\r\ndedup:9000003938.0:messages:m-1\r\n$1\r\np\r\n$2\r\nNX\r\n$3\r\nGET\r\n"
        "$2\r\nEX\r\n$2\r\n30\r\n");
}

TEST_CASE("RESP: arguments are binary-safe, empty ones included", "[resp]") {
  std::string out;
  const std::string odd("a\r\n\0b", 5);
  resp_append_command(out, {"DEL", odd, ""});
  CHECK(out == std::string("*3\r\n$3\r\nDEL\r\n$5\r\na\r\n\0b\r\n$0\r\n\r\n", 30));
}

TEST_CASE("RESP: long arguments carry their full length", "[resp]") {
  std::string out;
  const std::string big(123456, 'x');
  resp_append_command(out, {big});
  CHECK(out.compare(0, 13, "*1\r\n$123456\r\n") == 0);
  CHECK(out.size() == 13 + big.size() + 2);
}

TEST_CASE("RESP: a failed reply says why", "[resp]") {
  RedisReply lost;
  CHECK(lost.failed());
  CHECK(lost.error_text() == "connection lost");
  RedisReply err;
  err.type = RedisReply::Type::kError;
  err.str = "NOAUTH Authentication required.";
  CHECK(err.failed());
  CHECK(err.error_text() == "NOAUTH Authentication required.");
  RedisReply nil;
  nil.type = RedisReply::Type::kNil;
  CHECK_FALSE(nil.failed());
}

namespace {
// Feeds `bytes` and returns the replies decoded, rendered as "<type>:<text or number>".
std::vector<std::string> decode(cdc::RespReader& reader, std::string_view bytes) {
  REQUIRE(reader.feed(bytes.data(), bytes.size()));
  std::vector<std::string> got;
  const RedisReply* r = nullptr;
  int rc = 0;
  while ((rc = reader.next(r)) == 1) {
    using T = RedisReply::Type;
    switch (r->type) {
      case T::kNil: got.emplace_back("nil"); break;
      case T::kString: got.push_back(std::string("str:").append(std::string(r->str))); break;
      case T::kStatus: got.push_back(std::string("status:").append(std::string(r->str))); break;
      case T::kError: got.push_back(std::string("err:").append(std::string(r->str))); break;
      case T::kInteger: got.push_back(std::string("int:").append(std::to_string(r->integer))); break;
      case T::kArray: got.push_back(std::string("array:").append(std::to_string(r->integer))); break;
      case T::kLost: got.emplace_back("lost"); break;
    }
  }
  REQUIRE(rc == 0);
  return got;
}
}  // namespace

TEST_CASE("RESP reader: every reply kind the service meets, in order", "[resp]") {
  cdc::RespReader reader;
  CHECK(decode(reader,
               "$-1\r\n$1\r\nd\r\n$1\r\np\r\n+OK\r\n:1\r\n-WRONGPASS invalid username-password "
               "pair\r\n*2\r\n$1\r\na\r\n:5\r\n") ==
        std::vector<std::string>{"nil", "str:d", "str:p", "status:OK", "int:1",
                                 "err:WRONGPASS invalid username-password pair", "array:2"});
}

TEST_CASE("RESP reader: a reply split across reads comes out whole, once", "[resp]") {
  cdc::RespReader reader;
  const std::string_view all = "$5\r\nhello\r\n$-1\r\n";
  std::vector<std::string> got;
  for (const char c : all) {
    const auto part = decode(reader, std::string_view(&c, 1));
    got.insert(got.end(), part.begin(), part.end());
  }
  CHECK(got == std::vector<std::string>{"str:hello", "nil"});
}

TEST_CASE("RESP reader: a reply's text stays right after the reader compacts its buffer", "[resp]") {
  // hiredis moves its unread bytes to the front once 1 KiB has been consumed, right after the
  // reply that crossed the mark: the reply must not point into the moved bytes.
  cdc::RespReader reader;
  std::string bytes;
  for (int i = 0; i < 300; ++i) bytes += (i % 2 == 0) ? "$1\r\nd\r\n" : "$1\r\np\r\n";
  const auto got = decode(reader, bytes);
  REQUIRE(got.size() == 300);
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("reply " << i);
    CHECK(got[i] == (i % 2 == 0 ? "str:d" : "str:p"));
  }
}

TEST_CASE("RESP reader: long text is cut to kMaxText and says so", "[resp]") {
  cdc::RespReader reader;
  const std::string text(1000, 'e');
  const std::string bytes = "-" + text + "\r\n";
  REQUIRE(reader.feed(bytes.data(), bytes.size()));
  const RedisReply* r = nullptr;
  REQUIRE(reader.next(r) == 1);
  CHECK(r->type == RedisReply::Type::kError);
  CHECK(r->truncated);
  CHECK(r->str == std::string(cdc::RespReader::kMaxText, 'e'));
}

TEST_CASE("RESP reader: garbage is a protocol error, not a reply", "[resp]") {
  cdc::RespReader reader;
  const std::string_view bytes = "?what\r\n";
  REQUIRE(reader.feed(bytes.data(), bytes.size()));
  const RedisReply* r = nullptr;
  CHECK(reader.next(r) == -1);
  CHECK_FALSE(reader.error().empty());
}

TEST_CASE("RESP reader: an array's elements, one level deep, nil p d other and errors", "[resp]") {
  // The function library's claim reply: one element per key.
  cdc::RespReader reader;
  const std::string_view bytes =
      "*5\r\n$-1\r\n$1\r\np\r\n$1\r\nd\r\n$5\r\nother\r\n-WRONGTYPE Operation against a key\r\n:7\r\n";
  REQUIRE(reader.feed(bytes.data(), bytes.size()));
  const RedisReply* r = nullptr;
  REQUIRE(reader.next(r) == 1);
  using T = RedisReply::Type;
  REQUIRE(r->type == T::kArray);
  CHECK(r->integer == 5);
  REQUIRE(r->elements.size() == 5);
  CHECK(r->elements[0].type == T::kNil);
  CHECK((r->elements[1].type == T::kString && r->elements[1].str == "p"));
  CHECK((r->elements[2].type == T::kString && r->elements[2].str == "d"));
  CHECK((r->elements[3].type == T::kString && r->elements[3].str == "other"));
  CHECK((r->elements[4].type == T::kError && r->elements[4].str == "WRONGTYPE Operation against a key"));
  // The next reply is not an array: no elements left over from the last one.
  REQUIRE(reader.next(r) == 1);
  CHECK(r->type == T::kInteger);
  CHECK(r->elements.empty());
}

TEST_CASE("RESP reader: a large array split across reads keeps every element's text", "[resp]") {
  // Element text is kept in one buffer that grows while the array is read: the views must be
  // made once it is complete, and hold across hiredis' compaction and split reads.
  cdc::RespReader reader;
  std::string bytes = "*600\r\n";
  for (int i = 0; i < 600; ++i)
    bytes += i % 3 == 0 ? "$-1\r\n" : std::string("$4\r\n").append(std::to_string(1000 + i)) + "\r\n";
  const RedisReply* r = nullptr;
  int rc = 0;
  for (std::size_t at = 0; at < bytes.size(); at += 7) {
    const std::size_t n = std::min<std::size_t>(7, bytes.size() - at);
    REQUIRE(reader.feed(bytes.data() + at, n));
    rc = reader.next(r);
    if (at + n < bytes.size()) REQUIRE(rc == 0);
  }
  REQUIRE(rc == 1);
  REQUIRE(r->elements.size() == 600);
  for (std::size_t i = 0; i < 600; ++i) {
    INFO("element " << i);
    if (i % 3 == 0) CHECK(r->elements[i].type == RedisReply::Type::kNil);
    else CHECK(r->elements[i].str == std::to_string(1000 + i));
  }
}

TEST_CASE("RESP reader: nested arrays are counted, not kept", "[resp]") {
  cdc::RespReader reader;
  const std::string_view bytes = "*2\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n";
  REQUIRE(reader.feed(bytes.data(), bytes.size()));
  const RedisReply* r = nullptr;
  REQUIRE(reader.next(r) == 1);
  REQUIRE(r->elements.size() == 2);
  CHECK(r->elements[0].type == RedisReply::Type::kArray);
  CHECK(r->elements[0].integer == 2);
  CHECK(r->elements[1].str == "c");
}
