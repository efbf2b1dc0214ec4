// cdc-replay capture: copies a stream's messages into a capture file through an ephemeral ordered
// consumer (no acks, no durable state), so the service's durable consumers are left alone.

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cdc/core/capture.hpp"
#include "cdc/core/json_writer.hpp"
#include "commands.hpp"
#include "nats_helper.hpp"
#include "progress.hpp"

namespace cdc::replay {
namespace {

struct CaptureOptions {
  ConnectionOptions connection;
  std::string stream;
  std::string subject;  ///< filter; empty = the whole stream
  std::uint64_t start_seq = 0;
  std::string start_time;
  std::size_t count = 0;  ///< 0 = no limit
  bool until_caught_up = false;
  std::string output;  ///< empty or "-" = stdout
  bool no_meta = false;
  bool strip_partition = false;  ///< --strip-partition
  bool quiet = false;
};

/// The stream's subjects, or nullopt (reported) when the stream does not exist.
std::optional<std::vector<std::string>> stream_subjects(jsCtx* js, const std::string& stream) {
  jsStreamInfo* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetStreamInfo(&raw, js, stream.c_str(), nullptr, &code);
  const StreamInfoPtr info(raw);
  if (status == NATS_NOT_FOUND || code == JSStreamNotFoundErr) {
    std::cerr << "cdc-replay capture: stream " << stream << " not found\n";
    return std::nullopt;
  }
  check(status, "stream info " + stream, code);
  std::vector<std::string> subjects;
  for (int i = 0; i < info->Config->SubjectsLen; ++i) subjects.emplace_back(info->Config->Subjects[i]);
  return subjects;
}

/// True when the consumer has nothing left to deliver (checked when the stream is quiet).
bool caught_up(natsSubscription* sub) {
  jsConsumerInfo* raw = nullptr;
  if (natsSubscription_GetConsumerInfo(&raw, sub, nullptr, nullptr) != NATS_OK) return false;
  const ConsumerInfoPtr info(raw);
  return info->NumPending == 0;
}

int run_capture(const CaptureOptions& options) {
  std::optional<std::int64_t> start_time_ns;
  if (!options.start_time.empty()) {
    start_time_ns = parse_rfc3339(options.start_time);
    if (!start_time_ns) throw CLI::ValidationError("--start-time", "not an RFC 3339 time: " + options.start_time);
  }
  const bool until_caught_up = options.until_caught_up || options.count == 0;

  JetStreamConnection nats;
  if (const int code = connect_or_report("cdc-replay capture", options.connection, nullptr, nats); code != 0) {
    return code;
  }
  const auto subjects = stream_subjects(nats.js.get(), options.stream);
  if (!subjects) return kExitUsage;

  std::ofstream file;
  const bool to_stdout = options.output.empty() || options.output == "-";
  if (!to_stdout) {
    file.open(options.output, std::ios::binary | std::ios::trunc);
    if (!file) {
      std::cerr << "cdc-replay capture: cannot write " << options.output << ": " << std::strerror(errno) << "\n";
      return kExitUsage;
    }
  }
  std::ostream& out = to_stdout ? std::cout : file;

  jsSubOptions sub_options;
  check(jsSubOptions_Init(&sub_options), "jsSubOptions_Init");
  sub_options.Stream = options.stream.c_str();
  sub_options.Ordered = true;
  if (options.start_seq > 0) {
    sub_options.Config.DeliverPolicy = js_DeliverByStartSequence;
    sub_options.Config.OptStartSeq = options.start_seq;
  } else if (start_time_ns) {
    sub_options.Config.DeliverPolicy = js_DeliverByStartTime;
    sub_options.Config.OptStartTime = *start_time_ns;
  } else {
    sub_options.Config.DeliverPolicy = js_DeliverAll;
  }
  // nats.c needs a subject: without --subject, the stream's only subject, or '>' for several.
  std::string subject = options.subject;
  if (subject.empty()) subject = subjects->size() == 1 ? subjects->front() : ">";
  natsSubscription* raw_sub = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  check(js_SubscribeSync(&raw_sub, nats.js.get(), subject.c_str(), nullptr, &sub_options, &code),
        "ordered consumer on " + options.stream, code);
  const SubscriptionPtr sub(raw_sub);

  std::size_t written = 0;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
  CaptureRecord record;
  std::string time_text;
  bool interrupted = false;
  bool done = false;
  // Written to stdout: the progress line (stderr) is still fine on a terminal.
  Progress progress("captured", !options.quiet);
  while (!done) {
    if (stop_requested()) {
      interrupted = true;
      break;
    }
    natsMsg* raw = nullptr;
    const natsStatus status = natsSubscription_NextMsg(&raw, sub.get(), 500);
    if (status == NATS_TIMEOUT) {
      done = until_caught_up && caught_up(sub.get());
      continue;
    }
    check(status, "next message");
    const MsgPtr msg(raw);
    jsMsgMetaData* raw_meta = nullptr;
    check(natsMsg_GetMetaData(&raw_meta, msg.get()), "message metadata");
    const MetaDataPtr meta(raw_meta);

    record.subject = natsMsg_GetSubject(msg.get());
    if (options.strip_partition) record.subject = strip_partition(record.subject);
    record.headers = read_headers(msg.get());
    const char* data = natsMsg_GetData(msg.get());
    record.data.assign(data != nullptr ? data : "", static_cast<std::size_t>(natsMsg_GetDataLength(msg.get())));
    record.stream_seq.reset();
    record.time.reset();
    if (!options.no_meta) {
      record.stream_seq = meta->Sequence.Stream;
      time_text.clear();
      append_rfc3339(meta->Timestamp, time_text);
      record.time = time_text;
    }
    out << format_capture_line(record) << '\n';
    if (written++ == 0) first_seq = meta->Sequence.Stream;
    last_seq = meta->Sequence.Stream;
    progress.update(written, options.count != 0 ? options.count : written + meta->NumPending);
    if (options.count != 0 && written == options.count) done = true;
    if (until_caught_up && meta->NumPending == 0) done = true;
  }
  progress.finish();
  // Deletes the ephemeral consumer now rather than when the server notices the lost interest.
  natsSubscription_Unsubscribe(sub.get());
  out.flush();
  if (!out) {
    std::cerr << "cdc-replay capture: error writing " << (to_stdout ? "stdout" : options.output) << "\n";
    return kExitFailed;
  }
  if (!options.quiet) {
    std::cerr << "captured " << written << " message(s) from " << options.stream;
    if (written > 0) std::cerr << " (stream seq " << first_seq << ".." << last_seq << ")";
    std::cerr << (interrupted ? ", interrupted" : "") << "\n";
  }
  return interrupted ? kExitFailed : kExitOk;
}

}  // namespace

void add_capture_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<CaptureOptions>();
  CLI::App* cmd = app.add_subcommand("capture", "Write a stream's messages to a capture file (ordered consumer)");
  add_connection_options(cmd, options->connection);
  cmd->add_option("--stream", options->stream, "Stream to read")->required();
  cmd->add_option("--subject", options->subject, "Only messages on this subject (wildcards allowed)");
  auto* seq =
      cmd->add_option("--start-seq", options->start_seq, "Start at this stream sequence")->check(CLI::PositiveNumber);
  cmd->add_option("--start-time", options->start_time, "Start at this time (RFC 3339)")->excludes(seq);
  cmd->add_option("--count", options->count, "Stop after N messages (waits for them)")->check(CLI::PositiveNumber);
  cmd->add_flag("--until-caught-up", options->until_caught_up,
                "Stop when nothing is pending (the default without --count)");
  cmd->add_option("-o,--output", options->output, "Output file (default stdout)");
  cmd->add_flag("--no-meta", options->no_meta, "Leave out stream_seq and time (lines comparable with the source)");
  cmd->add_flag("--strip-partition", options->strip_partition,
                "Write cdc.<company>.<table> for a partitioned stream's cdc.<company>.<table>.<p> (a trailing "
                "decimal token): publish re-partitions it with the target server's mapping");
  cmd->add_flag("--quiet,-q", options->quiet, "No summary and no progress line on stderr");
  cmd->callback([options, &exit_code] { exit_code = run_capture(*options); });
}

}  // namespace cdc::replay
