#pragma once
/// The source message as the pipeline sees it: subject, body and reply views plus an opaque
/// handle of the adapter that delivered it. Stages read headers and release the message through
/// the adapter's MessageAccess, never through a client library; nothing here allocates.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cdc {

/// What the delivering adapter does with its handles. One instance per adapter, living as long
/// as the pipeline; every method may be called by whichever stage thread holds the message.
class MessageAccess {
 public:
  virtual ~MessageAccess() = default;
  /// The value of header `name` (NUL-terminated), or an empty view when absent. Valid while
  /// the message is.
  [[nodiscard]] virtual std::string_view header(const void* handle, const char* name) const noexcept = 0;
  /// Appends every header (name, value) to `out`; allocates (dead letters only).
  virtual void headers(const void* handle, std::vector<std::pair<std::string, std::string>>& out) const = 0;
  /// Frees the handle: the message is completed and the views die with it.
  virtual void release(void* handle) const noexcept = 0;
};

/// One delivered message; a value type that the Event carries from intake to completion.
struct SourceMessage {
  void* handle = nullptr;                 ///< the adapter's own (nats.c: the natsMsg*)
  const MessageAccess* access = nullptr;  ///< reads the handle's headers, releases it
  std::string_view subject;
  std::string_view body;
  std::string_view reply;       ///< where completions go (JetStream: the ack subject)
  std::uint32_t partition = 0;  ///< source partition it was fetched from (0 when unpartitioned)
  /// Lease epoch of that partition when it was fetched; 0 = an unleased source (always current).
  std::uint32_t epoch = 0;

  [[nodiscard]] bool empty() const noexcept { return handle == nullptr; }
  /// The value of header `name`, or "" (also for an empty message).
  [[nodiscard]] std::string_view header(const char* name) const noexcept {
    return handle != nullptr ? access->header(handle, name) : std::string_view{};
  }
  /// Every header of the message (allocates).
  void headers(std::vector<std::pair<std::string, std::string>>& out) const {
    if (handle != nullptr) access->headers(handle, out);
  }
  /// Releases the handle (once) and empties the message.
  void release() noexcept {
    if (handle != nullptr) access->release(handle);
    *this = SourceMessage{};
  }
};

}  // namespace cdc
