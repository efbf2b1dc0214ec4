#pragma once
/// nats.c messages as the pipeline's SourceMessage: the natsMsg* is the opaque handle, headers
/// are read with natsMsgHeader_*, release() is natsMsg_Destroy. Used by the NATS message
/// source and by the in-process mocks (test/support), which deliver natsMsg handles too.

#include "cdc/pipeline/source_message.hpp"

typedef struct __natsMsg natsMsg;  // NOLINT: nats.c's own typedef, repeated to keep nats.h out

namespace cdc {

/// The one MessageAccess for natsMsg handles (stateless; lives as long as the program).
const MessageAccess& nats_message_access() noexcept;

/// Wraps `msg` (ownership passes to the SourceMessage: released by its release()).
SourceMessage to_source_message(natsMsg* msg) noexcept;

}  // namespace cdc
