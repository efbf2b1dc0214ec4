#include "cdc/adapters/nats/nats_message.hpp"

#include <nats/nats.h>

#include <cstdlib>

namespace cdc {
namespace {

class NatsMessageAccess final : public MessageAccess {
 public:
  [[nodiscard]] std::string_view header(const void* handle, const char* name) const noexcept override {
    const char* value = nullptr;
    auto* msg = static_cast<natsMsg*>(const_cast<void*>(handle));
    if (natsMsgHeader_Get(msg, name, &value) != NATS_OK || value == nullptr) return {};
    return value;
  }

  void headers(const void* handle, std::vector<std::pair<std::string, std::string>>& out) const override {
    auto* msg = static_cast<natsMsg*>(const_cast<void*>(handle));
    const char** keys = nullptr;
    int count = 0;
    if (natsMsgHeader_Keys(msg, &keys, &count) != NATS_OK) return;
    for (int i = 0; i < count; ++i) {
      const char* value = nullptr;
      if (natsMsgHeader_Get(msg, keys[i], &value) == NATS_OK && value != nullptr) out.emplace_back(keys[i], value);
    }
    free(static_cast<void*>(keys));
  }

  void release(void* handle) const noexcept override { natsMsg_Destroy(static_cast<natsMsg*>(handle)); }
};

const NatsMessageAccess kAccess;

}  // namespace

const MessageAccess& nats_message_access() noexcept { return kAccess; }

SourceMessage to_source_message(natsMsg* msg) noexcept {
  SourceMessage m;
  m.handle = msg;
  m.access = &kAccess;
  m.subject = natsMsg_GetSubject(msg);
  m.body = std::string_view(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
  const char* reply = natsMsg_GetReply(msg);
  if (reply != nullptr) m.reply = reply;
  return m;
}

}  // namespace cdc
