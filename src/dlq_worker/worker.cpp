// daisi-dlq-worker's loop (docs/dlq-worker.md).
//
// One thread does everything: pull a batch of dead-letter records, decide each, publish due
// retries (synchronously: a retry is acked only once its PubAck stored it), NAK retries that are
// not due yet with their remaining delay (the server holds them, so a record due later never
// blocks one due earlier), buffer the others and write them to PostgreSQL in one transaction
// per batch, acking them only after COMMIT. Nothing here is a hot path: dead letters are rare.

#include "cdc/dlq_worker/worker.hpp"

#include <algorithm>
#include <thread>

#include "cdc/core/dead_letter.hpp"
#include "cdc/core/log.hpp"

namespace cdc {
namespace {

constexpr std::int64_t kNsPerMs = 1'000'000;

std::int64_t unix_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t unix_now_ms() { return unix_now_ns() / kNsPerMs; }

std::string rfc3339(std::int64_t unix_ns) {
  std::string out;
  append_rfc3339(unix_ns, out);
  return out;
}

/// The dead-letter subject's tokens: <prefix>.<company>.<table>.
void split_subject(std::string_view subject, std::string& company, std::string& table) {
  const auto first = subject.find('.');
  if (first == std::string_view::npos) return;
  const auto second = subject.find('.', first + 1);
  company = std::string(
      subject.substr(first + 1, second == std::string_view::npos ? std::string_view::npos : second - first - 1));
  if (second != std::string_view::npos) table = std::string(subject.substr(second + 1));
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, std::string_view name, std::string_view labels, long long v) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += std::to_string(v);
  out += '\n';
}

void by_kind(std::string& out, std::string_view name, std::string_view help,
             const std::array<Counter, DlqWorkerMetrics::kKinds.size()>& counters) {
  family(out, name, "counter", help);
  for (std::size_t i = 0; i < counters.size(); ++i) {
    std::string label = "kind=\"";
    label += DlqWorkerMetrics::kKinds[i];
    label += '"';
    sample(out, name, label, static_cast<long long>(counters[i].value()));
  }
}

}  // namespace

std::size_t DlqWorkerMetrics::kind_index(std::string_view kind) noexcept {
  for (std::size_t i = 0; i + 1 < kKinds.size(); ++i) {
    if (kKinds[i] == kind) return i;
  }
  return kKinds.size() - 1;
}

std::string DlqWorkerMetrics::render(std::string_view version) const {
  std::string out;
  out.reserve(8192);
  by_kind(out, "cdc_dlq_worker_retries_total", "Retries republished to their source subject and stored (PubAck)",
          retries);
  by_kind(out, "cdc_dlq_worker_deferred_total", "Dead letters NAKed to wait for their retry backoff", deferred);
  by_kind(out, "cdc_dlq_worker_exhausted_total",
          "Dead letters kept in PostgreSQL (permanent kinds and spent retries), counted after COMMIT", exhausted);
  family(out, "cdc_dlq_worker_retry_errors_total", "counter",
         "Retries that could not be published now (NAKed, tried again)");
  sample(out, "cdc_dlq_worker_retry_errors_total", "", static_cast<long long>(retry_errors.value()));
  family(out, "cdc_dlq_worker_rows_written_total", "counter", "Rows inserted into exhausted_events");
  sample(out, "cdc_dlq_worker_rows_written_total", "", static_cast<long long>(rows_written.value()));
  family(out, "cdc_dlq_worker_rows_existing_total", "counter",
         "Records whose row was already in exhausted_events (redelivered after a crash)");
  sample(out, "cdc_dlq_worker_rows_existing_total", "", static_cast<long long>(rows_existing.value()));
  family(out, "cdc_dlq_worker_batches_total", "counter", "Transactions committed");
  sample(out, "cdc_dlq_worker_batches_total", "", static_cast<long long>(batches.value()));
  family(out, "cdc_dlq_worker_batch_failures_total", "counter", "Transactions that failed (rows kept, retried)");
  sample(out, "cdc_dlq_worker_batch_failures_total", "", static_cast<long long>(batch_failures.value()));
  family(out, "cdc_dlq_worker_batch_seconds", "histogram", "Time to write one batch (BEGIN to COMMIT)");
  batch_latency.render(out, "cdc_dlq_worker_batch_seconds", "");
  family(out, "cdc_dlq_worker_postgres_up", "gauge", "1 when the last PostgreSQL operation succeeded");
  sample(out, "cdc_dlq_worker_postgres_up", "", postgres_up.value());
  family(out, "cdc_dlq_worker_nats_up", "gauge", "1 when the NATS connection is up");
  sample(out, "cdc_dlq_worker_nats_up", "", nats_up.value());
  family(out, "cdc_dlq_worker_buffered", "gauge", "Dead letters waiting for their PostgreSQL transaction");
  sample(out, "cdc_dlq_worker_buffered", "", buffered.value());
  family(out, "cdc_dlq_worker_backlog", "gauge", "Dead letters not yet delivered to the worker (-1 = not known yet)");
  sample(out, "cdc_dlq_worker_backlog", "", backlog.value());
  family(out, "cdc_dlq_worker_ack_pending", "gauge",
         "Dead letters delivered and not yet acknowledged, retries waiting for their backoff included");
  sample(out, "cdc_dlq_worker_ack_pending", "", ack_pending.value());
  family(out, "cdc_dlq_worker_last_loop_timestamp_ms", "gauge", "Unix time of the loop's last turn, ms");
  sample(out, "cdc_dlq_worker_last_loop_timestamp_ms", "", last_loop_unix_ms.value());
  family(out, "cdc_dlq_worker_log_dropped_total", "counter", "Log lines dropped because the log queue was full");
  sample(out, "cdc_dlq_worker_log_dropped_total", "", static_cast<long long>(log::dropped()));
  family(out, "cdc_dlq_worker_build_info", "gauge", "Version of daisi-dlq-worker");
  std::string label = "version=\"";
  append_label_value(version, label);
  label += '"';
  sample(out, "cdc_dlq_worker_build_info", label, 1);
  return out;
}

DlqWorker::DlqWorker(const Config& config, const DlqWorkerSettings& settings, const std::atomic<bool>& stop)
    : config_(config), settings_(settings), stop_(stop) {
  metrics_.backlog.set(-1);
  metrics_.last_loop_unix_ms.set(unix_now_ms());
  nats_ = std::make_unique<NatsConnection>(config.nats, "dlq-worker");
  metrics_.nats_up.set(1);
  filter_ = config.publish.dlq_subject_prefix + ".>";
  subscribe();
  connect_postgres();
}

DlqWorker::~DlqWorker() {
  sub_.reset();
  pending_.clear();
}

void DlqWorker::subscribe() {
  const DlqWorkerConfig& w = settings_.dlq_worker;
  const std::string& stream = config_.publish.dlq_stream;
  jsCtx* js = nats_->js();
  // The service creates the dead-letter stream; a worker started first waits for it.
  for (int waited = 0;; ++waited) {
    jsStreamInfo* raw = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    const natsStatus s = js_GetStreamInfo(&raw, js, stream.c_str(), nullptr, &err);
    const NatsStreamInfoPtr info(raw);
    if (s == NATS_OK) break;
    if (s != NATS_NOT_FOUND) throw NatsError("stream info " + stream + ": " + nats_error_text(s));
    if (waited % 15 == 0)
      log::warn("dead-letter stream does not exist yet; waiting for the service to create it", {{"stream", stream}});
    for (int i = 0; i < 20 && !stop_.load(std::memory_order_relaxed); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (stop_.load(std::memory_order_relaxed)) throw NatsError("stopped while waiting for stream " + stream);
  }
  jsConsumerInfo* raw = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&raw, js, stream.c_str(), w.consumer.c_str(), nullptr, &err);
  NatsConsumerInfoPtr info(raw);
  if (s == NATS_NOT_FOUND) {
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = w.consumer.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.AckWait = static_cast<std::int64_t>(w.ack_wait.count()) * kNsPerMs;
    cc.MaxAckPending = w.max_ack_pending;
    // Unlimited: the worker decides when a record is done; JetStream must never drop one.
    cc.MaxDeliver = -1;
    cc.FilterSubject = filter_.c_str();
    cc.MaxWaiting = 16;
    raw = nullptr;
    s = js_AddConsumer(&raw, js, stream.c_str(), &cc, nullptr, &err);
    info.reset(raw);
    if (s != NATS_OK && err != JSConsumerNameExistErr) {
      throw NatsError("create consumer " + w.consumer + " on " + stream + ": " + nats_error_text(s));
    }
    log::info("consumer created", {{"stream", stream}, {"consumer", w.consumer}, {"filter", filter_}});
  } else if (s != NATS_OK) {
    throw NatsError("consumer info " + w.consumer + ": " + nats_error_text(s));
  } else if (info->Config->AckWait != static_cast<std::int64_t>(w.ack_wait.count()) * kNsPerMs ||
             info->Config->MaxAckPending != w.max_ack_pending) {
    log::warn("existing consumer differs from the configuration; using it as it is",
              {{"consumer", w.consumer},
               {"ack_wait_ms", static_cast<long long>(info->Config->AckWait / kNsPerMs)},
               {"max_ack_pending", static_cast<long long>(info->Config->MaxAckPending)}});
  }
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Consumer = w.consumer.c_str();
  natsSubscription* sub = nullptr;
  s = js_PullSubscribe(&sub, js, filter_.c_str(), w.consumer.c_str(), nullptr, &so, &err);
  if (s != NATS_OK) throw NatsError("pull subscribe " + w.consumer + ": " + nats_error_text(s));
  sub_.reset(sub);
}

bool DlqWorker::connect_postgres() {
  const auto now = Clock::now();
  if (pg_ != nullptr) return true;
  if (now < next_pg_attempt_) return false;
  try {
    pg_ = std::make_unique<PgConnection>(settings_.postgres.conninfo, settings_.postgres.connect_timeout);
    ensure_exhausted_schema(*pg_);
    metrics_.postgres_up.set(1);
    pg_backoff_ = std::chrono::milliseconds(100);
    last_pg_check_ = now;
    log::info("postgres connected", {{"conninfo", redact_conninfo(settings_.postgres.conninfo)}});
    return true;
  } catch (const PgError& e) {
    pg_.reset();
    metrics_.postgres_up.set(0);
    static log::RateLimiter limiter(10'000'000'000, 1);
    std::uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      log::error("postgres unreachable; retrying", {{"error", e.what()},
                                                    {"retry_in_ms", static_cast<long long>(pg_backoff_.count())},
                                                    {"suppressed", static_cast<unsigned long long>(suppressed)}});
    }
    next_pg_attempt_ = Clock::now() + pg_backoff_;
    pg_backoff_ = std::min(pg_backoff_ * 2, settings_.postgres.reconnect_backoff_max);
    return false;
  }
}

void DlqWorker::run() {
  const DlqWorkerConfig& w = settings_.dlq_worker;
  const PostgresConfig& p = settings_.postgres;
  const auto batch_size = static_cast<std::size_t>(p.batch_size);
  log::info("dlq worker running", {{"stream", config_.publish.dlq_stream},
                                   {"consumer", w.consumer},
                                   {"max_attempts", w.max_attempts},
                                   {"backoff_base_ms", static_cast<long long>(w.backoff_base.count())},
                                   {"backoff_max_ms", static_cast<long long>(w.backoff_max.count())},
                                   {"batch_size", p.batch_size},
                                   {"flush_interval_ms", static_cast<long long>(p.flush_interval.count())}});
  while (!stop_.load(std::memory_order_relaxed)) {
    const auto now = Clock::now();
    metrics_.last_loop_unix_ms.set(unix_now_ms());
    metrics_.nats_up.set(nats_->connected() ? 1 : 0);
    const std::size_t room = pending_.size() < batch_size ? batch_size - pending_.size() : 0;
    if (room > 0) {
      // Wait no longer than until the buffered batch is due.
      auto wait = w.fetch_expires;
      if (!pending_.empty()) {
        const auto due =
            std::chrono::duration_cast<std::chrono::milliseconds>(oldest_pending_ + p.flush_interval - now);
        wait = std::clamp(due, std::chrono::milliseconds(1), wait);
      }
      natsMsgList list{};
      jsErrCode err = static_cast<jsErrCode>(0);
      const natsStatus s = natsSubscription_Fetch(
          &list, sub_.get(), static_cast<int>(std::min<std::size_t>(room, w.fetch_batch)), wait.count(), &err);
      if (s == NATS_OK) {
        for (int i = 0; i < list.Count; ++i) {
          NatsMsgPtr msg(list.Msgs[i]);
          list.Msgs[i] = nullptr;
          handle(std::move(msg));
        }
      } else if (s != NATS_TIMEOUT) {
        static log::RateLimiter limiter(10'000'000'000, 1);
        std::uint64_t suppressed = 0;
        if (limiter.allow(suppressed)) {
          log::warn("fetch failed",
                    {{"error", nats_error_text(s)}, {"suppressed", static_cast<unsigned long long>(suppressed)}});
        }
        std::this_thread::sleep_for(std::min(w.fetch_expires, std::chrono::milliseconds(200)));
      }
      natsMsgList_Destroy(&list);
    } else {
      // The batch is full and PostgreSQL is not taking it: wait for the next attempt.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const auto after = Clock::now();
    if (!pending_.empty() && (pending_.size() >= batch_size || after >= oldest_pending_ + p.flush_interval)) flush();
    touch_pending();
    if (pg_ == nullptr) {
      connect_postgres();
    } else if (pending_.empty() && after - last_pg_check_ >= std::chrono::seconds(2)) {
      // Idle: notice an outage (readiness) without waiting for the next batch to fail.
      last_pg_check_ = after;
      if (!pg_->ping()) {
        metrics_.postgres_up.set(0);
        pg_.reset();
        next_pg_attempt_ = after;
        log::warn("postgres connection lost; reconnecting");
        connect_postgres();
      }
    }
    if (w.backlog_interval.count() > 0 && after >= next_backlog_) {
      next_backlog_ = after + w.backlog_interval;
      read_backlog();
    }
  }
  // Draining: what is buffered is written if PostgreSQL answers now; otherwise JetStream
  // redelivers it after AckWait (to this worker's next run).
  if (!pending_.empty()) {
    if (pg_ == nullptr) next_pg_attempt_ = Clock::now();
    flush();
  }
  log::info("dlq worker stopped", {{"unwritten", static_cast<unsigned long long>(pending_.size())}});
}

void DlqWorker::handle(NatsMsgPtr msg) {
  jsMsgMetaData* raw_meta = nullptr;
  if (natsMsg_GetMetaData(&raw_meta, msg.get()) != NATS_OK) {
    log::error("dead-letter message without JetStream metadata; ignored", {{"subject", natsMsg_GetSubject(msg.get())}});
    return;
  }
  const NatsMetaDataPtr meta(raw_meta);
  const std::uint64_t dlq_seq = meta->Sequence.Stream;
  const char* data = natsMsg_GetData(msg.get());
  const std::string_view payload(data != nullptr ? data : "",
                                 static_cast<std::size_t>(natsMsg_GetDataLength(msg.get())));
  DlqRecord record;
  const bool parsed = parse_dlq_record(payload, record);
  std::string company = "_", table = "_";
  split_subject(natsMsg_GetSubject(msg.get()), company, table);
  const std::int64_t now_ns = unix_now_ns();
  if (!parsed) {
    // Not a record the worker can act on: kept whole (the record itself as the body), so that
    // nothing leaves the dead-letter stream without a trace.
    log::error("not a dead-letter record; keeping it in postgres",
               {{"dlq_seq", static_cast<unsigned long long>(dlq_seq)}, {"error", record.problem}});
    ExhaustedRow row;
    row.dlq_stream = config_.publish.dlq_stream;
    row.dlq_seq = dlq_seq;
    row.source_stream = record.source_stream;
    row.source_subject = record.source_subject;
    row.source_seq = record.source_seq;
    row.company = company;
    row.table = table;
    row.event_id = record.event_id;
    row.error_kind = "unreadable";
    row.error = record.problem;
    row.first_failed_at = row.last_failed_at = record.failed_at_ns != 0 ? record.failed_at : rfc3339(now_ns);
    row.headers_json = headers_to_json(read_nats_headers(msg.get()));
    row.body.assign(payload);
    keep(std::move(msg), dlq_seq, std::move(row), "unreadable");
    return;
  }
  const DlqAction action = classify_dlq_record(record, settings_.dlq_worker);
  const std::uint32_t done = dlq_attempts_done(record);
  if (action == DlqAction::kRetry) {
    const std::uint32_t attempt = done + 1;
    const std::int64_t failed_ns = record.failed_at_ns != 0 ? record.failed_at_ns : now_ns;
    const std::int64_t due_ns =
        failed_ns +
        static_cast<std::int64_t>(
            dlq_backoff(attempt, settings_.dlq_worker.backoff_base, settings_.dlq_worker.backoff_max).count()) *
            kNsPerMs;
    if (due_ns > now_ns + kNsPerMs) {
      // Not due: the server holds it and redelivers it when it is (NAK with the remaining delay).
      const std::int64_t delay_ms = (due_ns - now_ns + kNsPerMs - 1) / kNsPerMs;
      natsMsg_NakWithDelay(msg.get(), delay_ms, nullptr);
      metrics_.deferred[DlqWorkerMetrics::kind_index(record.error_kind)].inc();
      log::debug("retry deferred", {{"dlq_seq", static_cast<unsigned long long>(dlq_seq)},
                                    {"attempt", attempt},
                                    {"delay_ms", static_cast<long long>(delay_ms)}});
      return;
    }
    if (Clock::now() < retries_paused_until_) {
      // The source stream just failed a retry: do not spend publish_timeout on each of these.
      natsMsg_NakWithDelay(msg.get(), settings_.dlq_worker.retry_delay.count(), nullptr);
      metrics_.deferred[DlqWorkerMetrics::kind_index(record.error_kind)].inc();
      return;
    }
    retry(std::move(msg), record, dlq_seq, attempt);
    return;
  }
  ExhaustedRow row;
  row.dlq_stream = config_.publish.dlq_stream;
  row.dlq_seq = dlq_seq;
  row.source_stream = record.source_stream;
  row.source_subject = record.source_subject;
  row.source_seq = record.source_seq;
  row.company = company;
  row.table = table;
  row.event_id = record.event_id;
  row.error_kind = record.error_kind;
  row.error = record.error;
  row.attempts = done;
  row.delivery_attempts = record.delivery_attempts;
  row.last_failed_at = record.failed_at_ns != 0 ? record.failed_at : rfc3339(now_ns);
  const std::string* first = find_header(record.headers, kDlqFirstFailedHeader);
  row.first_failed_at = first != nullptr && parse_rfc3339_utc(*first) ? *first : row.last_failed_at;
  row.headers_json = headers_to_json(record.headers);
  row.body = std::move(record.body);
  row.body_truncated = record.truncated;
  log::debug(
      action == DlqAction::kExhausted ? "retries spent; keeping it in postgres" : "permanent; keeping it in postgres",
      {{"dlq_seq", static_cast<unsigned long long>(dlq_seq)}, {"error_kind", row.error_kind}, {"attempts", done}});
  const std::string kind = row.error_kind;
  keep(std::move(msg), dlq_seq, std::move(row), kind);
}

void DlqWorker::retry(NatsMsgPtr msg, const DlqRecord& record, std::uint64_t dlq_seq, std::uint32_t attempt) {
  const std::string msg_id = dlq_retry_msg_id(config_.publish.dlq_stream, dlq_seq, attempt);
  const HeaderList headers = dlq_retry_headers(record, attempt, msg_id);
  const std::size_t kind = DlqWorkerMetrics::kind_index(record.error_kind);
  const auto fail = [&](const std::string& why) {
    metrics_.retry_errors.inc();
    retries_paused_until_ = Clock::now() + settings_.dlq_worker.retry_delay;
    natsMsg_NakWithDelay(msg.get(), settings_.dlq_worker.retry_delay.count(), nullptr);
    static log::RateLimiter limiter;
    std::uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      log::error("retry publish failed; NAK", {{"dlq_seq", static_cast<unsigned long long>(dlq_seq)},
                                               {"subject", record.source_subject},
                                               {"attempt", attempt},
                                               {"error", why},
                                               {"suppressed", static_cast<unsigned long long>(suppressed)}});
    }
  };
  natsMsg* raw = nullptr;
  if (natsMsg_Create(&raw, record.source_subject.c_str(), nullptr, record.body.data(),
                     static_cast<int>(record.body.size())) != NATS_OK) {
    fail("cannot build the message");
    return;
  }
  const NatsMsgPtr out(raw);
  for (const auto& [k, v] : headers) natsMsgHeader_Add(out.get(), k.c_str(), v.c_str());
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = settings_.dlq_worker.publish_timeout.count();
  jsPubAck* raw_ack = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  const natsStatus s = js_PublishMsg(&raw_ack, nats_->js(), out.get(), &po, &err);
  const NatsPubAckPtr ack(raw_ack);
  if (s != NATS_OK) {
    fail(nats_error_text(s) + (err != 0 ? " (jetstream error " + std::to_string(static_cast<int>(err)) + ")" : ""));
    return;
  }
  // Stored (or, after a crash, stored before: the same Nats-Msg-Id came back as a duplicate).
  // Only now is the dead letter done; the synchronous ack keeps the window for a second
  // retry after a crash as short as it can be.
  const natsStatus as = natsMsg_AckSync(msg.get(), nullptr, &err);
  if (as != NATS_OK) {
    log::warn("ack of a retried dead letter failed; it will come back and be de-duplicated by its Nats-Msg-Id",
              {{"dlq_seq", static_cast<unsigned long long>(dlq_seq)}, {"error", nats_error_text(as)}});
  }
  metrics_.retries[kind].inc();
  log::info("dead letter retried", {{"dlq_seq", static_cast<unsigned long long>(dlq_seq)},
                                    {"subject", record.source_subject},
                                    {"error_kind", record.error_kind},
                                    {"attempt", attempt},
                                    {"event_id", record.event_id.value_or("")},
                                    {"duplicate", ack->Duplicate}});
}

void DlqWorker::keep(NatsMsgPtr msg, std::uint64_t dlq_seq, ExhaustedRow row, std::string_view kind) {
  const auto it = pending_index_.find(dlq_seq);
  if (it != pending_index_.end()) {
    // A redelivery of a record already buffered (its AckWait ran out while PostgreSQL was
    // down): one row, acked through the newest delivery.
    pending_[it->second].msg = std::move(msg);
    return;
  }
  if (pending_.empty()) {
    oldest_pending_ = Clock::now();
    last_progress_ = oldest_pending_;
  }
  pending_index_.emplace(dlq_seq, pending_.size());
  pending_.push_back(Pending{std::move(msg), std::move(row), DlqWorkerMetrics::kind_index(kind)});
  metrics_.buffered.set(static_cast<std::int64_t>(pending_.size()));
}

void DlqWorker::flush() {
  if (pending_.empty() || !connect_postgres()) return;
  std::vector<ExhaustedRow> rows;
  rows.reserve(pending_.size());
  for (auto& p : pending_) rows.push_back(std::move(p.row));
  const auto start = Clock::now();
  std::size_t inserted = 0;
  try {
    inserted = insert_exhausted(*pg_, rows);
  } catch (const PgError& e) {
    for (std::size_t i = 0; i < rows.size(); ++i) pending_[i].row = std::move(rows[i]);
    metrics_.batch_failures.inc();
    metrics_.postgres_up.set(0);
    log::error("writing exhausted events failed; keeping them, not acked",
               {{"rows", static_cast<unsigned long long>(pending_.size())},
                {"error", e.what()},
                {"retry_in_ms", static_cast<long long>(pg_backoff_.count())}});
    pg_.reset();
    next_pg_attempt_ = Clock::now() + pg_backoff_;
    pg_backoff_ = std::min(pg_backoff_ * 2, settings_.postgres.reconnect_backoff_max);
    return;
  }
  const auto elapsed = Clock::now() - start;
  metrics_.batch_latency.observe_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count());
  metrics_.batches.inc();
  metrics_.rows_written.inc(inserted);
  metrics_.rows_existing.inc(rows.size() - inserted);
  metrics_.postgres_up.set(1);
  last_pg_check_ = Clock::now();
  // Committed: now, and only now, the dead letters are done.
  for (auto& p : pending_) {
    natsMsg_Ack(p.msg.get(), nullptr);
    metrics_.exhausted[p.kind].inc();
  }
  log::debug("exhausted events written", {{"rows", static_cast<unsigned long long>(rows.size())},
                                          {"inserted", static_cast<unsigned long long>(inserted)},
                                          {"latency_ms", std::chrono::duration<double, std::milli>(elapsed).count()}});
  pending_.clear();
  pending_index_.clear();
  metrics_.buffered.set(0);
}

void DlqWorker::touch_pending() {
  // Buffered records wait for PostgreSQL: tell JetStream they are still being worked on, so
  // that AckWait does not redeliver them meanwhile.
  if (pending_.empty()) return;
  const auto now = Clock::now();
  if (now - last_progress_ < settings_.dlq_worker.ack_wait / 3) return;
  last_progress_ = now;
  for (auto& p : pending_) natsMsg_InProgress(p.msg.get(), nullptr);
}

void DlqWorker::read_backlog() {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 2000;
  jsConsumerInfo* raw = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  const natsStatus s = js_GetConsumerInfo(&raw, nats_->js(), config_.publish.dlq_stream.c_str(),
                                          settings_.dlq_worker.consumer.c_str(), &jo, &err);
  const NatsConsumerInfoPtr info(raw);
  if (s != NATS_OK || info == nullptr) return;
  metrics_.backlog.set(static_cast<std::int64_t>(info->NumPending));
  metrics_.ack_pending.set(info->NumAckPending);
}

std::string DlqWorker::render_metrics() const { return metrics_.render(CDC_VERSION); }

bool DlqWorker::healthy() const noexcept { return unix_now_ms() - metrics_.last_loop_unix_ms.value() < 60'000; }

bool DlqWorker::ready() const noexcept { return metrics_.postgres_up.value() == 1 && metrics_.nats_up.value() == 1; }

}  // namespace cdc
