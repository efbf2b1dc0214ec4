#pragma once
/// Pure helpers for JetStream protocol details the pipeline reads without nats.c's allocating
/// helpers: the ack reply subject of a delivered message and the PubAck body.

#include <cstdint>
#include <string_view>

namespace cdc {

struct AckSubjectInfo {
  std::string_view stream;
  std::string_view consumer;
  std::uint32_t deliveries = 0;
  std::uint64_t stream_seq = 0;
};

/// Parses "$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>" and the
/// v2 form with domain and account hash ("$JS.ACK.<domain>.<hash>.<stream>...", 11 or 12 tokens).
bool parse_ack_subject(std::string_view reply, AckSubjectInfo& out) noexcept;

/// What a PubAck body says.
struct PubAckInfo {
  bool ok = false;  ///< stored (or duplicate)
  bool duplicate = false;
  int error_code = 0;            ///< JetStream API error "code" (e.g. 503), 0 if none
  int error_err_code = 0;        ///< "err_code" (e.g. 10077), 0 if none
  std::string_view description;  ///< view into the body
};
/// Parses {"stream":"s","seq":1,"duplicate":true} or {"error":{"code":503,"err_code":..,
/// "description":".."}}. Returns false when the body is neither.
bool parse_pub_ack(std::string_view body, PubAckInfo& out) noexcept;

}  // namespace cdc
