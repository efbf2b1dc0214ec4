#pragma once
/// Source messages for the micro-benchmarks, built like tools/samples/sequin-mixed-2k.jsonl:
/// small (~300 B, an agents update), medium (the sample's messages line closest to 1 KiB) and
/// large (~8 KiB: the medium one with a long multilingual message_text), plus the whole sample.

#include <string>
#include <vector>

namespace cdc::bench {

struct SampleMessage {
  std::string subject;
  std::string body;
  std::string msg_id;
};

struct SampleBodies {
  SampleMessage small, medium, large;
  std::vector<SampleMessage> mix;  ///< every line of the sample, in file order (all tables)
  std::string source;              ///< where medium and mix came from
};

/// Loaded once (the sample file when present, otherwise synthesized).
const SampleBodies& sample_bodies();

}  // namespace cdc::bench
