#pragma once
/// The order check of CONTRACT.md section 5 ("Order"): for two changes on one source subject,
/// their outputs are stored in wa_stream in source-stream order. Every output subject derives
/// from exactly one source subject (`wa.<company>.<agent>.messages.<chat>` only from
/// `cdc.<company>.messages`, and so on), so checking per output subject checks per source
/// subject: on every output subject, the source sequence of the events, in the order wa_stream
/// stores them, must increase.
///
/// The source order is read from the source stream itself (JetStreamProbe::read_stream of
/// cdc_events_stream, as partitioned and stored by the broker), not from the feeder's list: the
/// stream sequence is what "source order" means for JetStream and for the service's redelivery,
/// and it needs no assumption about how the feeder's retries landed. An event's position is the
/// stream sequence of the FIRST source message that produces it: a producer repeat further on is
/// a duplicate whose output is the first copy's.
///
/// Pure (no I/O): the callers read the streams; test/unit/order_check_test.cpp covers it.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "cdc/core/capture.hpp"
#include "cdc/core/config.hpp"

namespace cdc::test {

/// Event id -> stream sequence of the first source message that publishes it (by the service's
/// own transform of `config`). `source` in stream order, each with stream_seq set; records that
/// are skipped or dead-lettered have no position.
[[nodiscard]] std::map<std::string, std::uint64_t> source_positions(const Config& config,
                                                                    const std::vector<CaptureRecord>& source);

/// One message of wa_stream: its subject, Nats-Msg-Id (the event id) and stream sequence.
struct StoredOutput {
  std::string subject;
  std::string event_id;
  std::uint64_t seq = 0;
};

struct OrderCheck {
  std::size_t subjects = 0;           ///< distinct output subjects seen
  std::size_t events = 0;             ///< outputs checked (first copy of each event id)
  std::size_t repeated = 0;           ///< later copies of an event id already seen (duplicates; not ordered)
  std::size_t unknown = 0;            ///< event ids without a source position
  std::size_t out_of_order = 0;       ///< outputs whose source position is below an earlier one on their subject
  std::vector<std::string> examples;  ///< the first few violations, readable

  [[nodiscard]] bool ok() const noexcept { return out_of_order == 0 && unknown == 0; }
  /// "subjects=.. events=.. out_of_order=.. unknown=.. repeated=.." plus the examples.
  [[nodiscard]] std::string summary() const;
};

/// Checks `stored` (wa_stream in stream order) against `positions` (source_positions).
[[nodiscard]] OrderCheck check_order(const std::map<std::string, std::uint64_t>& positions,
                                     const std::vector<StoredOutput>& stored, std::size_t max_examples = 5);

}  // namespace cdc::test
