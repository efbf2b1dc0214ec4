#pragma once
/// A corpus of source messages read from a capture file (CONTRACT.md section 9), replayed any
/// number of times with fresh identities.
///
/// Pass k of the corpus (messages k*size() .. (k+1)*size()-1) shifts every body's
/// metadata.commit_lsn by k * lsn_span() and suffixes Nats-Msg-Id with "~k", so each pass has
/// its own event ids and message ids (no Redis or JetStream duplicate window sees pass k+1 as a
/// repeat of pass k), while repeats inside a pass stay repeats. Optionally a send timestamp is
/// inserted as the first field of `record` ("bench_sent_ns":<steady ns>), which the service
/// copies into row_data byte for byte, so a subscriber can read it back from the output.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cdc::bench {

/// Field inserted into `record` by Corpus::materialize when a stamp is asked for.
inline constexpr std::string_view kStampKey = "\"bench_sent_ns\":";

/// Reads the stamp back from an output payload or source body; -1 when absent.
std::int64_t find_stamp(std::string_view text) noexcept;

/// One materialised message; the buffers are reused from call to call.
struct Message {
  std::string_view subject;
  std::string_view table;
  bool allowed = false;  ///< table in the service's default set (messages, chats, agents)
  std::string body;
  std::string msg_id;  ///< empty: publish without Nats-Msg-Id
};

class Corpus {
 public:
  /// Loads a capture file; bodies over `max_body` bytes are left out (counted in dropped()).
  /// Throws std::runtime_error naming the file and line on a bad line.
  static Corpus load(const std::string& path, std::size_t max_body = 1u << 20);

  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
  [[nodiscard]] std::size_t dropped() const noexcept { return dropped_; }
  [[nodiscard]] double mean_body_bytes() const noexcept;
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// Fraction of entries on allowed tables.
  [[nodiscard]] double allowed_fraction() const noexcept;
  [[nodiscard]] std::uint64_t lsn_span() const noexcept { return lsn_span_; }

  /// Message `i` of the endless replay starting at pass `first_pass`; stamp_ns >= 0 inserts the
  /// send timestamp into `record`.
  void materialize(std::uint64_t i, std::uint64_t first_pass, std::int64_t stamp_ns, Message& out) const;

  /// Passes that `count` messages take (use as the next first_pass to keep ids fresh).
  [[nodiscard]] std::uint64_t passes(std::uint64_t count) const noexcept {
    return entries_.empty() ? 0 : (count + entries_.size() - 1) / entries_.size();
  }

 private:
  struct Entry {
    std::string subject;
    std::string body;
    std::string msg_id;
    std::size_t table_pos = 0, table_len = 0;  // in subject
    bool allowed = false;
    std::size_t lsn_pos = std::string::npos, lsn_len = 0;  // digits of metadata.commit_lsn
    std::uint64_t lsn = 0;
    std::size_t record_pos = std::string::npos;  // just after `"record":{`
    bool record_empty = false;
  };
  std::vector<Entry> entries_;
  std::size_t dropped_ = 0;
  std::uint64_t lsn_span_ = 1;
  std::string path_;
};

}  // namespace cdc::bench
