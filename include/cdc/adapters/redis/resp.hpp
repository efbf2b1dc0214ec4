#pragma once
/// RESP (the Redis protocol) pieces that need no connection: command encoding into a reused
/// buffer, and reply decoding (hiredis' reader with object functions of ours) into one reused
/// RedisReply, so neither direction allocates per command.

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <span>
#include <string_view>

#include "cdc/core/dedup_protocol.hpp"  // RedisReply

struct redisReader;

namespace cdc {

/// Appends `args` as one RESP command (an array of bulk strings) to `out`. No allocation once
/// `out` has grown to the size of a batch.
void resp_append_command(std::string& out, std::initializer_list<std::string_view> args);
void resp_append_command(std::string& out, std::span<const std::string_view> args);

/// Incremental reply decoder for one connection. Top-level replies are reported; an array
/// reports its element count and its elements one level deep (deeper ones only as counts: the
/// service's commands never answer with them).
class RespReader {
 public:
  static constexpr std::size_t kMaxText = 256;

  /// `max_text`: how many bytes of a string reply are kept (the rest is cut, `truncated` set).
  explicit RespReader(std::size_t max_text = kMaxText);
  ~RespReader();
  RespReader(const RespReader&) = delete;
  RespReader& operator=(const RespReader&) = delete;

  /// Adds received bytes; false on a protocol error (see error()).
  bool feed(const char* data, std::size_t n) noexcept;
  /// The next complete reply: 1 and `out` set, 0 when more bytes are needed, -1 on a protocol
  /// error. `out` stays valid until the next call.
  int next(const RedisReply*& out) noexcept;
  [[nodiscard]] std::string_view error() const noexcept;

  struct Slot;  // what the object functions fill (resp.cpp)

 private:
  ::redisReader* reader_;
  Slot* slot_;
};

}  // namespace cdc
