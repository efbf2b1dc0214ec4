#include "cdc/pipeline/parse_stage.hpp"

#include <chrono>
#include <iterator>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "cdc/core/dead_letter.hpp"
#include "cdc/core/log.hpp"

namespace cdc {

void prepare_dead_letter(const Config& config, Event& ev, ErrorKind kind, std::string_view error,
                         std::size_t max_bytes) noexcept {
  try {
    std::vector<std::pair<std::string, std::string>> headers;
    ev.source.headers(headers);
    if (ev.out.error_kind != kind || ev.out.error.data() != error.data()) {
      ev.out.error_kind = kind;
      ev.out.error.assign(error);
    }
    DeadLetter letter;
    letter.source_subject = ev.source.subject;
    letter.source_stream = config.ingest.stream;
    letter.source_seq = ev.stream_seq;
    letter.delivery_attempts = ev.deliveries;
    letter.error_kind = kind;
    letter.error = ev.out.error;
    letter.has_event_id = ev.out.has_event_id;
    letter.event_id = ev.out.event_id;
    letter.failed_at_unix_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    letter.headers = &headers;
    letter.data = ev.source.body;
    letter.max_bytes = max_bytes;
    build_dead_letter_payload(letter, ev.dlq_payload);
    std::string_view company = ev.out.company;
    std::string_view table = ev.out.table;
    build_dead_letter_subject(config.publish.dlq_subject_prefix, company.empty() ? "_" : company,
                              table.empty() ? "_" : table, ev.dlq_subject);
    ev.target = Target::kDeadLetter;
  } catch (const std::exception& e) {
    // Out of memory building a record: leave the target as it is; the publish stage NAKs.
    log::error("cannot build dead letter", {{"error", e.what()}});
  }
}

void log_dead_letter(log::Level level, std::string_view msg, const Event& ev, ErrorKind kind, std::string_view error,
                     std::uint64_t suppressed) noexcept {
  if (!log::enabled(level)) return;
  const std::string_view trace = trace_id(ev);
  const std::string_view kind_name = to_string(kind);
  const auto seq = static_cast<unsigned long long>(ev.stream_seq);
  const auto attempt = static_cast<unsigned>(ev.deliveries);
  const auto dropped = static_cast<unsigned long long>(suppressed);
  // Known means: the subject fit the layout (company, table) and the transform got as far as
  // the position (event_id). A field that is not known is left out rather than written empty.
  const bool event_known = ev.out.has_event_id;
  const bool route_known = event_known || !ev.out.company.empty() || !ev.out.table.empty();
  log::Field fields[] = {{"trace_id", trace},
                         {"company", ev.out.company},
                         {"table", ev.out.table},
                         {"event_id", ev.out.event_id},
                         {"error_kind", kind_name},
                         {"error", error},
                         {"subject", ev.source.subject},
                         {"stream_seq", seq},
                         {"delivery_attempt", attempt},
                         {"suppressed", dropped}};
  const bool keep[] = {true, route_known, route_known, event_known, true, true, true, true, true, true};
  static_assert(std::size(keep) == std::size(fields));
  std::size_t n = 0;
  for (std::size_t k = 0; k < std::size(fields); ++k) {
    if (keep[k]) fields[n++] = fields[k];
  }
  log::write(level, msg, std::span<const log::Field>(fields, n));
}

ParseStage::ParseStage(StageContext& ctx)
    : ctx_(ctx),
      transformer_(std::make_unique<Transformer>(transform_rules(ctx.config))),
      timer_(ctx.metrics.parse.stage, static_cast<std::size_t>(ctx.config.pipeline.batch_size)) {}

ParseStage::~ParseStage() { delete offered_.exchange(nullptr, std::memory_order_acquire); }

void ParseStage::offer(std::unique_ptr<Transformer> next) noexcept {
  // acq_rel: release the new Transformer's construction to the stage; acquire an untaken
  // earlier offer, which is ours to delete.
  delete offered_.exchange(next.release(), std::memory_order_acq_rel);
}

void ParseStage::take_offer() noexcept {
  // relaxed: a new offer may be seen a batch late; the exchange below acquires it.
  if (offered_.load(std::memory_order_relaxed) == nullptr) return;
  Transformer* next = offered_.exchange(nullptr, std::memory_order_acquire);
  if (next == nullptr) return;
  // Events parsed with the old rules only hold views into their own subject, never into the
  // Transformer, so it can go now.
  transformer_.reset(next);
  log::info("parse stage took the reloaded rules",
            {{"tables", static_cast<unsigned long long>(next->rules().tables.size())}});
}

void ParseStage::process(Event& ev) noexcept {
  ev.msg_id_header = ev.source.header("Nats-Msg-Id");
  switch (transformer_->transform(ev.source.subject, ev.source.body, ev.msg_id_header, ev.out)) {
    case Disposition::kSkip:
      ev.target = Target::kNone;
      // By name, so a table the filter misses shows up (bounded label set, no allocation).
      ctx_.metrics.parse.skipped_tables.inc(ev.out.table);
      break;
    case Disposition::kPublish:
      ev.target = Target::kOutput;
      ctx_.metrics.parse.parsed.inc();
      break;
    case Disposition::kDeadLetter: {
      ctx_.metrics.parse.invalid.inc();
      static thread_local log::RateLimiter limiter;
      std::uint64_t suppressed = 0;
      if (limiter.allow(suppressed)) {
        log_dead_letter(log::Level::kWarn, "invalid message dead-lettered", ev, ev.out.error_kind, ev.out.error,
                        suppressed);
      }
      prepare_dead_letter(ctx_.config, ev, ev.out.error_kind, ev.out.error);
      break;
    }
  }
}

void ParseStage::on_batch_start(std::size_t) noexcept { take_offer(); }

void ParseStage::on_event(Event& ev, bool end_of_batch) noexcept {
  process(ev);
  timer_.note(ev.received_ns);
  ctx_.emit(ev);
  if (end_of_batch) timer_.flush(now_ns());
}

}  // namespace cdc
