#pragma once
/// RAII for nats.c handles (std::unique_ptr with the handle's own destroy function) and the
/// header reading every tool needs. Header-only: whoever includes it links libnats.

#include <nats/nats.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace cdc {

template <typename T, void (*Destroy)(T*)>
struct NatsDestroy {
  void operator()(T* p) const noexcept { Destroy(p); }
};
template <typename T, void (*Destroy)(T*)>
using NatsHandle = std::unique_ptr<T, NatsDestroy<T, Destroy>>;

using NatsConnectionPtr = NatsHandle<natsConnection, natsConnection_Destroy>;
using NatsOptionsPtr = NatsHandle<natsOptions, natsOptions_Destroy>;
using NatsJsPtr = NatsHandle<jsCtx, jsCtx_Destroy>;
using NatsMsgPtr = NatsHandle<natsMsg, natsMsg_Destroy>;
using NatsSubPtr = NatsHandle<natsSubscription, natsSubscription_Destroy>;
using NatsStreamInfoPtr = NatsHandle<jsStreamInfo, jsStreamInfo_Destroy>;
using NatsConsumerInfoPtr = NatsHandle<jsConsumerInfo, jsConsumerInfo_Destroy>;
using NatsAccountInfoPtr = NatsHandle<jsAccountInfo, jsAccountInfo_Destroy>;
using NatsPubAckPtr = NatsHandle<jsPubAck, jsPubAck_Destroy>;
using NatsMetaDataPtr = NatsHandle<jsMsgMetaData, jsMsgMetaData_Destroy>;

/// A message's headers, sorted by name (nats.c does not keep the wire order), each name's
/// values in order. Empty when it has none.
inline std::vector<std::pair<std::string, std::string>> read_nats_headers(natsMsg* msg) {
  std::vector<std::pair<std::string, std::string>> headers;
  const char** keys = nullptr;
  int count = 0;
  if (natsMsgHeader_Keys(msg, &keys, &count) != NATS_OK) return headers;  // NATS_NOT_FOUND: none
  std::vector<std::string> names(keys, keys + count);
  std::free(static_cast<void*>(keys));
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    const char** values = nullptr;
    int n = 0;
    if (natsMsgHeader_Values(msg, name.c_str(), &values, &n) != NATS_OK) continue;
    for (int i = 0; i < n; ++i) headers.emplace_back(name, values[i]);
    std::free(static_cast<void*>(values));
  }
  return headers;
}

}  // namespace cdc
