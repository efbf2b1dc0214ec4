#include "order_check.hpp"

#include <set>
#include <unordered_map>

#include "cdc/core/transform.hpp"

namespace cdc::test {

std::map<std::string, std::uint64_t> source_positions(const Config& config, const std::vector<CaptureRecord>& source) {
  Transformer transformer(transform_rules(config));
  TransformOutput out;
  std::map<std::string, std::uint64_t> positions;
  for (const auto& r : source) {
    if (transformer.transform(r.subject, r.data, r.header("Nats-Msg-Id"), out) != Disposition::kPublish) continue;
    // emplace keeps the first: a later repeat of the same change is a duplicate, not a new event.
    positions.emplace(out.event_id, r.stream_seq.value_or(0));
  }
  return positions;
}

std::string OrderCheck::summary() const {
  std::string text = std::string("subjects=")
                         .append(std::to_string(subjects))
                         .append(" events=")
                         .append(std::to_string(events))
                         .append(" out_of_order=")
                         .append(std::to_string(out_of_order))
                         .append(" unknown=")
                         .append(std::to_string(unknown))
                         .append(" repeated=")
                         .append(std::to_string(repeated));
  for (const auto& e : examples) text.append("\n  ").append(e);
  return text;
}

OrderCheck check_order(const std::map<std::string, std::uint64_t>& positions, const std::vector<StoredOutput>& stored,
                       std::size_t max_examples) {
  struct Last {
    std::uint64_t position = 0;
    std::string event_id;
    std::uint64_t seq = 0;
  };
  OrderCheck check;
  std::unordered_map<std::string, Last> last;  // output subject -> highest source position stored so far
  std::set<std::string> seen;
  for (const auto& m : stored) {
    if (!seen.insert(m.event_id).second) {
      ++check.repeated;
      continue;
    }
    const auto pos = positions.find(m.event_id);
    if (pos == positions.end()) {
      ++check.unknown;
      if (check.examples.size() < max_examples) {
        check.examples.push_back(std::string("wa seq ")
                                     .append(std::to_string(m.seq))
                                     .append(" on ")
                                     .append(m.subject)
                                     .append(": event ")
                                     .append(m.event_id)
                                     .append(" has no source message"));
      }
      continue;
    }
    ++check.events;
    auto [it, first] = last.try_emplace(m.subject);
    if (first) ++check.subjects;
    Last& l = it->second;
    if (!first && pos->second < l.position) {
      ++check.out_of_order;
      if (check.examples.size() < max_examples) {
        check.examples.push_back(std::string("on ")
                                     .append(m.subject)
                                     .append(": wa seq ")
                                     .append(std::to_string(m.seq))
                                     .append(" (source seq ")
                                     .append(std::to_string(pos->second))
                                     .append(", ")
                                     .append(m.event_id)
                                     .append(") stored after wa seq ")
                                     .append(std::to_string(l.seq))
                                     .append(" (source seq ")
                                     .append(std::to_string(l.position))
                                     .append(", ")
                                     .append(l.event_id)
                                     .append(")"));
      }
      continue;  // keep the highest position: one late event counts once, not every later one
    }
    l.position = pos->second;
    l.event_id = m.event_id;
    l.seq = m.seq;
  }
  return check;
}

}  // namespace cdc::test
