#include "cdc/adapters/redis/resp.hpp"

#include <hiredis/read.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

namespace cdc {
namespace {

void append_length(std::string& out, char tag, std::size_t n) {
  char buf[24];
  buf[0] = tag;
  const auto r = std::to_chars(buf + 1, buf + sizeof buf - 2, n);
  char* end = r.ptr;
  *end++ = '\r';
  *end++ = '\n';
  out.append(buf, static_cast<std::size_t>(end - buf));
}

}  // namespace

// The reply being decoded. Strings are copied (up to kMaxText): hiredis compacts its buffer
// after a reply is complete, which would move the bytes a view into it points at.
struct RespReader::Slot {
  RedisReply reply;
  std::string text;  // sized once at construction (max_text), never grown
};

namespace {

RedisReply* top(const redisReadTask* task) {
  return task->parent == nullptr ? &static_cast<RespReader::Slot*>(task->privdata)->reply : nullptr;
}
void* on_string(const redisReadTask* task, char* str, std::size_t len) {
  if (RedisReply* r = top(task)) {
    auto* slot = static_cast<RespReader::Slot*>(task->privdata);
    const std::size_t n = std::min(len, slot->text.size());
    std::memcpy(slot->text.data(), str, n);
    r->type = task->type == REDIS_REPLY_ERROR    ? RedisReply::Type::kError
              : task->type == REDIS_REPLY_STATUS ? RedisReply::Type::kStatus
                                                 : RedisReply::Type::kString;
    r->str = std::string_view(slot->text.data(), n);
    r->truncated = n < len;
  }
  return task->privdata;  // non-null: hiredis takes null for out of memory
}
void* on_array(const redisReadTask* task, int elements) {
  if (RedisReply* r = top(task)) *r = RedisReply{RedisReply::Type::kArray, {}, elements, false};
  return task->privdata;
}
void* on_integer(const redisReadTask* task, long long value) {
  if (RedisReply* r = top(task)) *r = RedisReply{RedisReply::Type::kInteger, {}, value, false};
  return task->privdata;
}
void* on_nil(const redisReadTask* task) {
  if (RedisReply* r = top(task)) *r = RedisReply{RedisReply::Type::kNil, {}, 0, false};
  return task->privdata;
}
void on_free(void*) {}

redisReplyObjectFunctions g_functions = {on_string, on_array, on_integer, on_nil, on_free};

}  // namespace

RespReader::RespReader(std::size_t max_text) : reader_(redisReaderCreateWithFunctions(&g_functions)), slot_(new Slot) {
  slot_->text.resize(max_text);
  reader_->maxbuf = 0;  // keep the buffer between replies instead of freeing it when empty
  reader_->privdata = slot_;
}

RespReader::~RespReader() {
  redisReaderFree(reader_);
  delete slot_;
}

bool RespReader::feed(const char* data, std::size_t n) noexcept {
  return redisReaderFeed(reader_, data, n) == REDIS_OK;
}

int RespReader::next(const RedisReply*& out) noexcept {
  void* reply = nullptr;
  if (redisReaderGetReply(reader_, &reply) != REDIS_OK) return -1;
  if (reply == nullptr) return 0;
  out = &slot_->reply;
  return 1;
}

std::string_view RespReader::error() const noexcept { return reader_->errstr; }

void resp_append_command(std::string& out, std::initializer_list<std::string_view> args) {
  resp_append_command(out, std::span<const std::string_view>(args.begin(), args.size()));
}

void resp_append_command(std::string& out, std::span<const std::string_view> args) {
  append_length(out, '*', args.size());
  for (const std::string_view a : args) {
    append_length(out, '$', a.size());
    out.append(a);
    out.append("\r\n", 2);
  }
}

}  // namespace cdc
