#pragma once
/// RESP (the Redis protocol) pieces that need no connection: command encoding into a reused
/// buffer, and reply decoding (hiredis' reader with object functions of ours) into one reused
/// RedisReply, so neither direction allocates per command.

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

struct redisReader;

namespace cdc {

/// Appends `args` as one RESP command (an array of bulk strings) to `out`. No allocation once
/// `out` has grown to the size of a batch.
void resp_append_command(std::string& out, std::initializer_list<std::string_view> args);

/// One reply, valid until the next one is decoded (`str` points into the reader). kLost: the
/// connection dropped before the reply came.
struct RedisReply {
  enum class Type : std::uint8_t { kLost, kNil, kString, kStatus, kInteger, kError, kArray };
  Type type = Type::kLost;
  std::string_view str;    ///< kString, kStatus, kError
  long long integer = 0;   ///< kInteger; element count for kArray
  bool truncated = false;  ///< `str` holds only the first RespReader::kMaxText bytes

  [[nodiscard]] bool failed() const noexcept { return type == Type::kLost || type == Type::kError; }
  /// Human-readable reason for a failed reply.
  [[nodiscard]] std::string_view error_text() const noexcept {
    return type == Type::kLost ? std::string_view("connection lost") : str;
  }
};

/// Incremental reply decoder for one connection. Only top-level replies are reported (the
/// service's commands never answer with nested ones); an array reports its element count.
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
