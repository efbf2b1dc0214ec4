// cdc-replay publish: replays a capture file into JetStream with its headers, a bounded window
// of asynchronous publishes, and waits for every PubAck before it reports.

#include <cerrno>
#include <cstring>
#include <set>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "cdc/core/capture.hpp"
#include "commands.hpp"
#include "nats_helper.hpp"
#include "progress.hpp"

namespace cdc::replay {
namespace {

using Clock = std::chrono::steady_clock;

struct PublishOptions {
  std::string file;
  ConnectionOptions connection;
  double rate = 0;   ///< messages per second; 0 = as fast as the window allows
  double speed = 0;  ///< multiple of the capture's own pace ("time"); 0 = off
  std::vector<std::string> subject_maps;
  bool strip_partition = false;  ///< --strip-partition, before --subject-map
  bool drop_msg_id = false;
  std::size_t count = 0;  ///< 0 = every record
  std::size_t repeat = 1;
  std::size_t window = 1000;
  double ack_timeout_s = 10;
  bool skip_bad = false;
  std::string create_stream;
  std::vector<std::string> stream_subjects{"cdc.>"};
  bool quiet = false;
  bool json = false;
};

std::vector<std::string> split_tokens(std::string_view subject) {
  std::vector<std::string> tokens;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = subject.find('.', start);
    tokens.emplace_back(subject.substr(start, dot - start));
    if (dot == std::string_view::npos) return tokens;
    start = dot + 1;
  }
}

/// --subject-map 'cdc.co1.*=cdc.staging.*': in the pattern '*' matches one token and a final
/// '>' one or more; in the replacement '*' keeps the subject's token at that position and a
/// final '>' the tokens the pattern's '>' matched ('cdc.>=stg.>'). The first matching rule applies.
class SubjectMap {
 public:
  /// Throws CLI::ValidationError for a malformed rule.
  explicit SubjectMap(const std::vector<std::string>& specs) {
    for (const auto& spec : specs) {
      const auto eq = spec.find('=');
      if (eq == std::string::npos || spec.find('=', eq + 1) != std::string::npos) {
        throw CLI::ValidationError("--subject-map", "expected FROM=TO, got '" + spec + "'");
      }
      Rule rule{split_tokens(spec.substr(0, eq)), split_tokens(spec.substr(eq + 1))};
      validate(spec, rule);
      rules_.push_back(std::move(rule));
    }
  }

  [[nodiscard]] std::string apply(const std::string& subject) const {
    if (rules_.empty()) return subject;
    const auto tokens = split_tokens(subject);
    for (const auto& rule : rules_) {
      if (!matches(rule.from, tokens)) continue;
      std::string out;
      for (std::size_t i = 0; i < rule.to.size(); ++i) {
        if (i > 0) out += '.';
        const std::string& t = rule.to[i];
        if (t == "*") {
          out += tokens[i];
        } else if (t == ">") {
          for (std::size_t j = rule.from.size() - 1; j < tokens.size(); ++j) {
            if (j > rule.from.size() - 1) out += '.';
            out += tokens[j];
          }
        } else {
          out += t;
        }
      }
      return out;
    }
    return subject;
  }

 private:
  struct Rule {
    std::vector<std::string> from;
    std::vector<std::string> to;
  };

  static void validate(const std::string& spec, const Rule& rule) {
    const auto bad = [&](const std::string& why) {
      throw CLI::ValidationError("--subject-map", "'" + spec + "': " + why);
    };
    const bool tail = rule.from.back() == ">";
    for (std::size_t i = 0; i < rule.from.size(); ++i) {
      if (rule.from[i].empty()) bad("empty token in the pattern");
      if (rule.from[i] == ">" && i + 1 != rule.from.size()) bad("'>' must be the pattern's last token");
    }
    for (std::size_t i = 0; i < rule.to.size(); ++i) {
      const std::string& t = rule.to[i];
      if (t.empty()) bad("empty token in the replacement");
      if (t == "*" && i >= rule.from.size() - (tail ? 1 : 0)) {
        bad("'*' at token " + std::to_string(i + 1) + " has no token of the pattern to keep");
      }
      if (t == ">" && (i + 1 != rule.to.size() || !tail)) {
        bad("'>' in the replacement must be its last token, and the pattern must end with '>'");
      }
    }
  }

  static bool matches(const std::vector<std::string>& pattern, const std::vector<std::string>& tokens) {
    for (std::size_t i = 0; i < pattern.size(); ++i) {
      if (pattern[i] == ">") return tokens.size() > i;
      if (i >= tokens.size()) return false;
      if (pattern[i] != "*" && pattern[i] != tokens[i]) return false;
    }
    return tokens.size() == pattern.size();
  }

  std::vector<Rule> rules_;
};

struct Record {
  std::size_t line = 0;
  std::string subject;  ///< after --subject-map
  Headers headers;      ///< without Nats-Msg-Id under --drop-msg-id
  std::string data;
  std::optional<std::int64_t> time_ns;
};

/// Reads the capture. Returns false (after reporting) when it cannot be used.
bool load(const PublishOptions& options, const SubjectMap& map, std::vector<Record>& out, std::size_t& skipped) {
  std::ifstream in(options.file, std::ios::binary);
  if (!in) {
    std::cerr << "cdc-replay publish: cannot open " << options.file << ": " << std::strerror(errno) << "\n";
    return false;
  }
  constexpr std::size_t kMaxReported = 20;
  std::size_t bad = 0;
  std::string line;
  std::string error;
  CaptureRecord record;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    if (options.count != 0 && out.size() == options.count) break;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (!parse_capture_line(line, record, error)) {
      if (++bad <= kMaxReported) std::cerr << options.file << ":" << number << ": " << error << "\n";
      continue;
    }
    Record r;
    r.line = number;
    r.subject = map.apply(options.strip_partition ? strip_partition(record.subject) : record.subject);
    for (auto& header : record.headers) {
      if (options.drop_msg_id && header.first == "Nats-Msg-Id") continue;
      r.headers.push_back(std::move(header));
    }
    r.data = std::move(record.data);
    if (record.time) r.time_ns = parse_rfc3339(*record.time);
    out.push_back(std::move(r));
  }
  if (in.bad()) {
    std::cerr << "cdc-replay publish: error reading " << options.file << "\n";
    return false;
  }
  if (bad > kMaxReported) std::cerr << "... " << bad - kMaxReported << " more unreadable lines\n";
  if (bad > 0 && !options.skip_bad) {
    std::cerr << "cdc-replay publish: " << bad << " unreadable line(s); nothing published (use --skip-bad)\n";
    return false;
  }
  skipped = bad;
  return true;
}

/// When each message is due, relative to the start: --rate spaces them evenly, --speed follows
/// the capture's "time" (a record without one goes right after the previous), else no pacing.
class Pacer {
 public:
  Pacer(const PublishOptions& options, const std::vector<Record>& records)
      : rate_(options.rate), speed_(options.speed) {
    if (speed_ <= 0) return;
    offsets_.reserve(records.size());
    std::optional<std::int64_t> first;
    std::int64_t offset = 0;
    for (const auto& r : records) {
      if (r.time_ns) {
        if (!first) first = r.time_ns;
        offset = std::max<std::int64_t>(offset, *r.time_ns - *first);
      }
      offsets_.push_back(offset);
    }
    // A repeated pass starts one average gap after the previous one ended.
    const std::int64_t span = offsets_.empty() ? 0 : offsets_.back();
    pass_ns_ = span + (offsets_.size() > 1 ? span / static_cast<std::int64_t>(offsets_.size() - 1) : 0);
  }

  [[nodiscard]] bool has_times() const {
    return std::any_of(offsets_.begin(), offsets_.end(), [](std::int64_t o) { return o > 0; });
  }

  /// Sleeps until message `index` of pass `pass` (sequence number `n` overall) is due.
  void wait(std::size_t pass, std::size_t index, std::size_t n) const {
    double due_s = 0;
    if (rate_ > 0) {
      due_s = static_cast<double>(n) / rate_;
    } else if (speed_ > 0) {
      due_s = static_cast<double>(static_cast<std::int64_t>(pass) * pass_ns_ + offsets_[index]) / 1e9 / speed_;
    } else {
      return;
    }
    const auto due = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(due_s));
    if (due > Clock::now()) std::this_thread::sleep_until(due);
  }

 private:
  double rate_;
  double speed_;
  std::vector<std::int64_t> offsets_;
  std::int64_t pass_ns_ = 0;
  Clock::time_point start_ = Clock::now();
};

struct Failure {
  std::size_t line;
  std::string subject;
  std::string error;
};

/// Asynchronous publishes in flight, completed by nats.c's PubAck handler thread.
class InFlight {
 public:
  explicit InFlight(std::size_t window) : window_(window) {}

  /// Blocks until fewer than `window` publishes are in flight.
  void wait_for_room() {
    std::unique_lock lock(mutex_);
    room_.wait(lock, [&] { return messages_.size() < window_; });
  }

  void add(natsMsg* msg, std::size_t line) {
    const std::lock_guard lock(mutex_);
    messages_.emplace(msg, line);
  }

  /// The PubAck (or its failure) of `msg`.
  void complete(natsMsg* msg, const jsPubAck* ack, const jsPubAckErr* error) {
    const std::lock_guard lock(mutex_);
    const auto it = messages_.find(msg);
    const std::size_t line = it != messages_.end() ? it->second : 0;
    if (it != messages_.end()) messages_.erase(it);
    if (ack != nullptr) {
      ++(ack->Duplicate ? duplicates_ : published_);
    } else {
      std::string text = error != nullptr && error->ErrText != nullptr && *error->ErrText != '\0'
                             ? std::string(error->ErrText)
                             : natsStatus_GetText(error != nullptr ? error->Err : NATS_ERR);
      if (error != nullptr && error->ErrCode != 0) text += " (JetStream error " + std::to_string(error->ErrCode) + ")";
      if (error != nullptr && error->Err == NATS_NO_RESPONDERS) {
        text = std::string("no stream captures subject ") + natsMsg_GetSubject(msg) + " (no responders)";
      }
      failures_.push_back({line, natsMsg_GetSubject(msg), std::move(text)});
    }
    room_.notify_one();
  }

  /// A publish that never left (js_PublishMsgAsync failed) or never got its PubAck.
  void fail(natsMsg* msg, std::string error) {
    const std::lock_guard lock(mutex_);
    const auto it = messages_.find(msg);
    const std::size_t line = it != messages_.end() ? it->second : 0;
    if (it != messages_.end()) messages_.erase(it);
    failures_.push_back({line, natsMsg_GetSubject(msg), std::move(error)});
    room_.notify_one();
  }

  static void on_pub_ack(jsCtx* /*js*/, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* closure) {
    static_cast<InFlight*>(closure)->complete(msg, ack, error);
    natsMsg_Destroy(msg);
  }

  std::size_t published() { return locked(published_); }
  std::size_t duplicates() { return locked(duplicates_); }
  std::vector<Failure> failures() {
    const std::lock_guard lock(mutex_);
    return failures_;
  }

 private:
  std::size_t locked(const std::size_t& value) {
    const std::lock_guard lock(mutex_);
    return value;
  }

  std::size_t window_;
  std::mutex mutex_;
  std::condition_variable room_;
  std::unordered_map<natsMsg*, std::size_t> messages_;  ///< in flight -> capture line
  std::size_t published_ = 0;
  std::size_t duplicates_ = 0;
  std::vector<Failure> failures_;
};

void report(const PublishOptions& options, std::size_t records, std::size_t skipped, std::size_t attempted,
            InFlight& flight, double elapsed_s, bool interrupted) {
  const auto failures = flight.failures();
  constexpr std::size_t kMaxListed = 50;
  for (std::size_t i = 0; i < failures.size() && i < kMaxListed; ++i) {
    std::cerr << "failed: line " << failures[i].line << " (" << failures[i].subject << "): " << failures[i].error
              << "\n";
  }
  if (failures.size() > kMaxListed) std::cerr << "... " << failures.size() - kMaxListed << " more failures\n";

  const std::size_t published = flight.published();
  const std::size_t duplicates = flight.duplicates();
  const double rate = elapsed_s > 0 ? static_cast<double>(published + duplicates) / elapsed_s : 0;
  char numbers[64];
  if (options.json) {
    std::snprintf(numbers, sizeof numbers, "%.3f,\"rate\":%.1f", elapsed_s, rate);
    std::cout << "{\"records\":" << records << ",\"skipped_lines\":" << skipped << ",\"passes\":" << options.repeat
              << ",\"attempted\":" << attempted << ",\"published\":" << published << ",\"duplicates\":" << duplicates
              << ",\"failed\":" << failures.size() << ",\"interrupted\":" << (interrupted ? "true" : "false")
              << ",\"elapsed_s\":" << numbers << "}\n";
  } else if (!options.quiet) {
    std::snprintf(numbers, sizeof numbers, "%.3f s, %.0f msg/s", elapsed_s, rate);
    std::cout << "file:        " << options.file << " (" << records << " records, " << skipped
              << " unreadable lines skipped, " << options.repeat << " pass(es))\n"
              << "attempted:   " << attempted << (interrupted ? " (interrupted)" : "") << "\n"
              << "published:   " << published << "\n"
              << "duplicates:  " << duplicates << "\n"
              << "failed:      " << failures.size() << "\n"
              << "elapsed:     " << numbers << "\n";
  }
}

/// Creates stream `name` (file storage, server defaults otherwise) unless it exists.
void ensure_stream(jsCtx* js, const std::string& name, const std::vector<std::string>& subjects) {
  jsStreamInfo* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = js_GetStreamInfo(&raw, js, name.c_str(), nullptr, &code);
  StreamInfoPtr info(raw);
  if (status == NATS_OK) return;
  if (status != NATS_NOT_FOUND && code != JSStreamNotFoundErr) check(status, "stream info " + name, code);
  jsStreamConfig config;
  check(jsStreamConfig_Init(&config), "jsStreamConfig_Init");
  std::vector<const char*> subject_ptrs;
  for (const auto& s : subjects) subject_ptrs.push_back(s.c_str());
  config.Name = name.c_str();
  config.Subjects = subject_ptrs.data();
  config.SubjectsLen = static_cast<int>(subject_ptrs.size());
  config.Storage = js_FileStorage;
  raw = nullptr;
  status = js_AddStream(&raw, js, &config, nullptr, &code);
  info.reset(raw);
  check(status, "create stream " + name, code);
}

/// The first subject of `records` no stream captures ("" when every one is captured): a publish
/// to it would only get "no responders". One JetStream request per distinct subject (at most 1000).
std::string uncaptured_subject(jsCtx* js, const std::vector<Record>& records) {
  std::set<std::string> seen;
  for (const Record& r : records) {
    if (!seen.insert(r.subject).second) continue;
    if (seen.size() > 1000) break;
    jsOptions o;
    check(jsOptions_Init(&o), "jsOptions_Init");
    o.Stream.Info.SubjectsFilter = r.subject.c_str();
    jsStreamNamesList* list = nullptr;
    jsErrCode code{};
    const natsStatus status = js_StreamNames(&list, js, &o, &code);
    const bool found = status == NATS_OK && list != nullptr && list->Count > 0;
    if (list != nullptr) jsStreamNamesList_Destroy(list);
    if (status != NATS_OK && status != NATS_NOT_FOUND) check(status, "stream names for " + r.subject, code);
    if (!found) return r.subject;
  }
  return "";
}

int run_publish(const PublishOptions& options) {
  const SubjectMap map(options.subject_maps);
  std::vector<Record> records;
  std::size_t skipped = 0;
  if (!load(options, map, records, skipped)) return kExitUsage;
  const Pacer pacer(options, records);
  if (options.speed > 0 && !pacer.has_times()) {
    std::cerr << "cdc-replay publish: --speed needs \"time\" on the capture's lines\n";
    return kExitUsage;
  }

  InFlight flight(options.window);
  jsOptions js_options;
  check(jsOptions_Init(&js_options), "jsOptions_Init");
  // Our own window bounds what is in flight; nats.c's limit only guards against a slow handler.
  js_options.PublishAsync.MaxPending = static_cast<std::int64_t>(options.window) + 64;
  js_options.PublishAsync.StallWait = 60000;
  js_options.PublishAsync.AckHandler = &InFlight::on_pub_ack;
  js_options.PublishAsync.AckHandlerClosure = &flight;
  JetStreamConnection nats;
  if (const int code = connect_or_report("cdc-replay publish", options.connection, &js_options, nats); code != 0) {
    return code;
  }

  if (!options.create_stream.empty()) ensure_stream(nats.js.get(), options.create_stream, options.stream_subjects);
  if (const std::string missing = uncaptured_subject(nats.js.get(), records); !missing.empty()) {
    std::cerr << "cdc-replay publish: no stream captures subject " << missing
              << " (a publish would get \"no responders\"); create one (--create-stream NAME --stream-subject ...)"
                 " or check --url\n";
    return kExitFailed;
  }

  jsPubOptions pub_options;
  check(jsPubOptions_Init(&pub_options), "jsPubOptions_Init");
  const auto ack_timeout_ms = static_cast<std::int64_t>(options.ack_timeout_s * 1000);
  pub_options.MaxWait = ack_timeout_ms;  // a PubAck not back by then is reported as failed

  const auto start = Clock::now();
  std::size_t attempted = 0;
  bool interrupted = false;
  Progress progress("published", !options.quiet && !options.json);
  const std::size_t total = records.size() * options.repeat;
  for (std::size_t pass = 0; pass < options.repeat && !interrupted; ++pass) {
    for (std::size_t i = 0; i < records.size(); ++i) {
      if (stop_requested()) {
        interrupted = true;
        break;
      }
      const Record& r = records[i];
      pacer.wait(pass, i, attempted);
      flight.wait_for_room();
      natsMsg* raw = nullptr;
      check(natsMsg_Create(&raw, r.subject.c_str(), nullptr, r.data.data(), static_cast<int>(r.data.size())),
            "natsMsg_Create");
      MsgPtr msg(raw);
      add_headers(msg.get(), r.headers);
      ++attempted;
      flight.add(raw, r.line);
      progress.update(attempted, total);
      natsMsg* handed = raw;
      // On success nats.c owns the message and clears `handed`; on failure it stays ours.
      if (const natsStatus s = js_PublishMsgAsync(nats.js.get(), &handed, &pub_options); s != NATS_OK) {
        flight.fail(raw, nats_error_text(s));
      } else {
        (void)msg.release();
      }
    }
  }

  jsPubOptions complete_options;
  check(jsPubOptions_Init(&complete_options), "jsPubOptions_Init");
  complete_options.MaxWait = ack_timeout_ms + 5000;
  if (js_PublishAsyncComplete(nats.js.get(), &complete_options) != NATS_OK) {
    natsMsgList pending{};
    if (js_PublishAsyncGetPendingList(&pending, nats.js.get()) == NATS_OK) {
      for (int i = 0; i < pending.Count; ++i) flight.fail(pending.Msgs[i], "no PubAck (gave up waiting)");
      natsMsgList_Destroy(&pending);
    }
  }
  progress.finish();
  const double elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  report(options, records.size(), skipped, attempted, flight, elapsed_s, interrupted);
  return flight.failures().empty() && !interrupted ? kExitOk : kExitFailed;
}

}  // namespace

void add_publish_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<PublishOptions>();
  CLI::App* cmd = app.add_subcommand("publish", "Publish a capture file into JetStream, waiting for every PubAck");
  cmd->add_option("capture", options->file, "Capture file (JSON Lines, CONTRACT.md section 9)")->required();
  add_connection_options(cmd, options->connection);
  auto* rate = cmd->add_option("--rate", options->rate, "Publish at N messages per second")->check(CLI::PositiveNumber);
  cmd->add_option("--speed", options->speed, "Follow the capture's \"time\" pace, X times faster")
      ->check(CLI::PositiveNumber)
      ->excludes(rate);
  cmd->add_option("--subject-map", options->subject_maps,
                  "Rewrite subjects, FROM=TO, e.g. 'cdc.co1.*=cdc.staging.*' ('*' keeps that token); repeatable");
  cmd->add_flag("--strip-partition", options->strip_partition,
                "Publish cdc.<company>.<table>.<p> (a capture of a partitioned stream) as cdc.<company>.<table>, "
                "so the server's subject mapping partitions it (before --subject-map)");
  cmd->add_flag("--drop-msg-id", options->drop_msg_id, "Publish without the Nats-Msg-Id header");
  cmd->add_option("--count", options->count, "Publish only the first N records of the file")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--repeat", options->repeat, "Publish the file K times")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--window", options->window, "Asynchronous publishes in flight")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--ack-timeout", options->ack_timeout_s, "Seconds to wait for each PubAck")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--skip-bad", options->skip_bad, "Skip unreadable lines instead of aborting");
  auto* create = cmd->add_option("--create-stream", options->create_stream,
                                 "Create this stream first unless it exists (file storage)");
  cmd->add_option("--stream-subject", options->stream_subjects, "Subjects of the created stream; repeatable")
      ->needs(create)
      ->capture_default_str();
  cmd->add_flag("--quiet,-q", options->quiet, "No summary and no progress line (failures are still listed on stderr)");
  cmd->add_flag("--json", options->json, "Print the summary as one JSON object");
  cmd->callback([options, &exit_code] { exit_code = run_publish(*options); });
}

}  // namespace cdc::replay
