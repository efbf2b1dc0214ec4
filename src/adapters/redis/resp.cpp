#include "cdc/adapters/redis/resp.hpp"

#include <hiredis/read.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <utility>
#include <vector>

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
// after a reply is complete, which would move the bytes a view into it points at. An array's
// elements (one level deep: the function library's batch replies) are kept the same way; their
// text goes back to back into one buffer whose views are made once the array is complete
// (appending may move it). Every buffer keeps its capacity, so once grown to the largest batch
// no reply allocates.
struct RespReader::Slot {
  RedisReply reply;
  std::string text;  // sized once at construction (max_text), never grown
  std::size_t max_text = 0;
  std::vector<RedisReply> elements;
  std::vector<std::pair<std::size_t, std::size_t>> element_text;  // offset, length in `texts`
  std::string texts;
};

namespace {

RespReader::Slot& slot_of(const redisReadTask* task) { return *static_cast<RespReader::Slot*>(task->privdata); }

RedisReply* top(const redisReadTask* task) {
  if (task->parent != nullptr) return nullptr;
  RespReader::Slot& slot = slot_of(task);
  slot.elements.clear();
  slot.element_text.clear();
  slot.texts.clear();
  return &slot.reply;
}
/// An element of the top-level array (deeper ones are not kept), its text slot reset.
RedisReply* element(const redisReadTask* task) {
  if (task->parent == nullptr || task->parent->parent != nullptr || task->idx < 0) return nullptr;
  RespReader::Slot& slot = slot_of(task);
  const auto i = static_cast<std::size_t>(task->idx);
  if (slot.elements.size() <= i) {
    slot.elements.resize(i + 1);
    slot.element_text.resize(i + 1);
  }
  slot.element_text[i] = {0, 0};
  return &slot.elements[i];
}
RedisReply::Type string_type(int type) {
  return type == REDIS_REPLY_ERROR    ? RedisReply::Type::kError
         : type == REDIS_REPLY_STATUS ? RedisReply::Type::kStatus
                                      : RedisReply::Type::kString;
}
void* on_string(const redisReadTask* task, char* str, std::size_t len) {
  RespReader::Slot& slot = slot_of(task);
  const std::size_t n = std::min(len, slot.max_text);
  if (RedisReply* r = top(task)) {
    std::memcpy(slot.text.data(), str, n);
    *r = RedisReply{string_type(task->type), std::string_view(slot.text.data(), n), 0, n < len, {}};
  } else if (RedisReply* e = element(task)) {
    *e = RedisReply{string_type(task->type), {}, 0, n < len, {}};
    slot.element_text[static_cast<std::size_t>(task->idx)] = {slot.texts.size(), n};
    slot.texts.append(str, n);
  }
  return task->privdata;  // non-null: hiredis takes null for out of memory
}
void* on_array(const redisReadTask* task, int elements) {
  if (RedisReply* r = top(task)) *r = RedisReply{RedisReply::Type::kArray, {}, elements, false, {}};
  else if (RedisReply* e = element(task)) *e = RedisReply{RedisReply::Type::kArray, {}, elements, false, {}};
  return task->privdata;
}
void* on_integer(const redisReadTask* task, long long value) {
  if (RedisReply* r = top(task)) *r = RedisReply{RedisReply::Type::kInteger, {}, value, false, {}};
  else if (RedisReply* e = element(task)) *e = RedisReply{RedisReply::Type::kInteger, {}, value, false, {}};
  return task->privdata;
}
void* on_nil(const redisReadTask* task) {
  if (RedisReply* r = top(task)) *r = RedisReply{RedisReply::Type::kNil, {}, 0, false, {}};
  else if (RedisReply* e = element(task)) *e = RedisReply{RedisReply::Type::kNil, {}, 0, false, {}};
  return task->privdata;
}
void on_free(void*) {}

redisReplyObjectFunctions g_functions = {on_string, on_array, on_integer, on_nil, on_free};

}  // namespace

RespReader::RespReader(std::size_t max_text) : reader_(redisReaderCreateWithFunctions(&g_functions)), slot_(new Slot) {
  slot_->text.resize(max_text);
  slot_->max_text = max_text;
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
  if (slot_->reply.type == RedisReply::Type::kArray) {
    // The text of every element is in now: point the elements at it.
    for (std::size_t i = 0; i < slot_->elements.size(); ++i) {
      const auto [offset, length] = slot_->element_text[i];
      slot_->elements[i].str = std::string_view(slot_->texts.data() + offset, length);
    }
    slot_->reply.elements = std::span<const RedisReply>(slot_->elements.data(), slot_->elements.size());
  }
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
