// cdc-replay transform: a dry run of the service's parse stage over a capture file. No server:
// each message goes through cdc::Transformer built from the service's own configuration
// (transform_rules(load_config(...))), and the outcome is printed as JSON Lines or a table.

#include <cerrno>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "cdc/core/capture.hpp"
#include "cdc/core/config.hpp"
#include "cdc/core/dead_letter.hpp"
#include "cdc/core/json_writer.hpp"
#include "cdc/core/transform.hpp"
#include "commands.hpp"

namespace cdc::replay {
namespace {

struct TransformCommandOptions {
  std::string file;
  std::string config;  ///< config.yaml; empty = built-in defaults (environment still applies)
  std::string format = "jsonl";
  bool skip_bad = false;
  bool show_payload = false;
  bool quiet = false;
};

struct Counts {
  std::size_t publish = 0;
  std::size_t duplicate = 0;
  std::size_t skip = 0;
  std::size_t dead_letter = 0;
  std::map<std::string, std::size_t> kinds;
};

/// One line of the table: fixed-width columns, the last one free.
void table_row(std::ostream& out, std::string_view line, std::string_view outcome, std::string_view subject,
               std::string_view detail) {
  char head[64];
  std::snprintf(head, sizeof head, "%-7.*s %-12.*s ", static_cast<int>(line.size()), line.data(),
                static_cast<int>(outcome.size()), outcome.data());
  out << head << subject;
  for (std::size_t n = subject.size(); n < 48; ++n) out << ' ';
  out << ' ' << detail << '\n';
}

int run_transform(const TransformCommandOptions& options) {
  Config config;
  try {
    config = load_config(options.config, process_environment());
  } catch (const std::exception& e) {
    std::cerr << "cdc-replay transform: " << (options.config.empty() ? "configuration" : options.config) << ": "
              << e.what() << "\n";
    return kExitUsage;
  }
  std::unique_ptr<Transformer> transformer;
  try {
    transformer = std::make_unique<Transformer>(transform_rules(config));
  } catch (const std::exception& e) {
    std::cerr << "cdc-replay transform: " << e.what() << "\n";
    return kExitUsage;
  }

  std::ifstream in(options.file, std::ios::binary);
  if (!in) {
    std::cerr << "cdc-replay transform: cannot open " << options.file << ": " << std::strerror(errno) << "\n";
    return kExitUsage;
  }
  // Read everything first so that an unreadable line stops the run before any output.
  std::vector<std::pair<std::size_t, CaptureRecord>> records;
  std::size_t bad = 0;
  {
    constexpr std::size_t kMaxReported = 20;
    std::string line;
    std::string error;
    for (std::size_t number = 1; std::getline(in, line); ++number) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      CaptureRecord record;
      if (!parse_capture_line(line, record, error)) {
        if (++bad <= kMaxReported) std::cerr << options.file << ":" << number << ": " << error << "\n";
        continue;
      }
      records.emplace_back(number, std::move(record));
    }
    if (in.bad()) {
      std::cerr << "cdc-replay transform: error reading " << options.file << "\n";
      return kExitUsage;
    }
    if (bad > kMaxReported) std::cerr << "... " << bad - kMaxReported << " more unreadable lines\n";
    if (bad > 0 && !options.skip_bad) {
      std::cerr << "cdc-replay transform: " << bad << " unreadable line(s); nothing transformed (use --skip-bad)\n";
      return kExitUsage;
    }
  }

  const bool table = options.format == "table";
  if (table) table_row(std::cout, "line", "outcome", "subject", "detail");
  Counts counts;
  // event_id -> line of its first publish: the dedup stage would drop a later copy.
  std::unordered_map<std::string, std::size_t> first_line;
  TransformOutput out;
  std::string text;
  std::string dlq_subject;
  for (const auto& [number, r] : records) {
    const Disposition d = transformer->transform(r.subject, r.data, r.header("Nats-Msg-Id"), out);
    std::size_t first = 0;
    if (d == Disposition::kPublish) {
      const auto [it, inserted] = first_line.emplace(out.event_id, number);
      if (!inserted) first = it->second;
    }
    text.clear();
    const std::string line_number = std::to_string(number);
    if (d == Disposition::kSkip) {
      ++counts.skip;
      const std::string reason = "table " + std::string(out.table) + " is not in ingest.tables";
      if (table) {
        table_row(std::cout, line_number, "skip", r.subject, reason);
        continue;
      }
      text.append("{\"line\":").append(line_number).append(",\"outcome\":\"skip\",\"source_subject\":");
      append_json_string(r.subject, text);
      text.append(",\"reason\":");
      append_json_string(reason, text);
    } else if (d == Disposition::kDeadLetter) {
      ++counts.dead_letter;
      ++counts.kinds[std::string(to_string(out.error_kind))];
      build_dead_letter_subject(config.publish.dlq_subject_prefix, out.company.empty() ? "_" : out.company,
                                out.table.empty() ? "_" : out.table, dlq_subject);
      if (table) {
        table_row(std::cout, line_number, "dead_letter", dlq_subject,
                  std::string(to_string(out.error_kind)) + ": " + out.error);
        continue;
      }
      text.append("{\"line\":").append(line_number).append(",\"outcome\":\"dead_letter\",\"source_subject\":");
      append_json_string(r.subject, text);
      text.append(",\"error_kind\":");
      append_json_string(to_string(out.error_kind), text);
      text.append(",\"error\":");
      append_json_string(out.error, text);
      text.append(",\"event_id\":");
      if (out.has_event_id) {
        append_json_string(out.event_id, text);
      } else {
        text.append("null");
      }
      text.append(",\"dlq_stream\":");
      append_json_string(config.publish.dlq_stream, text);
      text.append(",\"dlq_subject\":");
      append_json_string(dlq_subject, text);
    } else {
      const bool duplicate = first != 0;
      ++(duplicate ? counts.duplicate : counts.publish);
      if (table) {
        table_row(std::cout, line_number, duplicate ? "duplicate" : "publish", out.subject,
                  duplicate ? out.event_id + " (first at line " + std::to_string(first) + ")" : out.event_id);
        if (options.show_payload && !duplicate) std::cout << "        " << out.payload << '\n';
        continue;
      }
      // subject, headers and data as in a capture line, so the publish lines can be replayed.
      text.append("{\"line\":")
          .append(line_number)
          .append(",\"outcome\":\"")
          .append(duplicate ? "duplicate" : "publish");
      text.append("\",\"source_subject\":");
      append_json_string(r.subject, text);
      text.append(",\"event_id\":");
      append_json_string(out.event_id, text);
      if (duplicate) text.append(",\"first_line\":").append(std::to_string(first));
      text.append(",\"subject\":");
      append_json_string(out.subject, text);
      text.append(",\"headers\":{\"Nats-Msg-Id\":");
      append_json_string(out.event_id, text);
      text.append("},\"data\":");
      append_json_string(out.payload, text);
    }
    text.append("}\n");
    std::cout << text;
  }

  std::string summary = std::to_string(records.size()) + " message(s): " + std::to_string(counts.publish) +
                        " publish, " + std::to_string(counts.duplicate) + " duplicate, " + std::to_string(counts.skip) +
                        " skip, " + std::to_string(counts.dead_letter) + " dead_letter";
  if (!counts.kinds.empty()) {
    summary += " (";
    bool first_kind = true;
    for (const auto& [kind, n] : counts.kinds) {
      summary += (first_kind ? "" : ", ") + kind + " " + std::to_string(n);
      first_kind = false;
    }
    summary += ")";
  }
  if (bad > 0) summary += "; " + std::to_string(bad) + " unreadable line(s) skipped";
  if (table) {
    std::cout << "\n" << summary << "\n";
  } else if (!options.quiet) {
    std::cerr << summary << "\n";
  }
  std::cout.flush();
  if (!std::cout) {
    std::cerr << "cdc-replay transform: error writing stdout\n";
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace

void add_transform_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<TransformCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "transform", "Dry run: what the service would publish, skip or dead-letter for each captured message");
  cmd->add_option("capture", options->file, "Capture file (JSON Lines, CONTRACT.md section 9)")->required();
  cmd->add_option("--config,-c", options->config,
                  "The service's config.yaml (default: built-in defaults); DAISI_CDC_* variables apply as in the "
                  "service");
  cmd->add_option("--format", options->format, "Output: jsonl (one object per message) or table")
      ->check(CLI::IsMember({"jsonl", "table"}))
      ->capture_default_str();
  cmd->add_flag("--show-payload", options->show_payload, "table: print each payload under its line");
  cmd->add_flag("--skip-bad", options->skip_bad, "Skip unreadable lines instead of aborting");
  cmd->add_flag("--quiet,-q", options->quiet, "jsonl: no summary on stderr");
  cmd->callback([options, &exit_code] { exit_code = run_transform(*options); });
}

}  // namespace cdc::replay
