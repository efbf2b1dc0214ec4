#include "cdc/adapters/nats/nats_connection.hpp"

#include <algorithm>
#include <limits>
#include <chrono>
#include <thread>
#include <vector>

#include "cdc/adapters/nats/fleet.hpp"
#include "cdc/core/log.hpp"
#include "cdc/core/partition_fit.hpp"
#include "cdc/core/partitions.hpp"
#include "cdc/core/transform.hpp"

namespace cdc {
namespace {

constexpr std::int64_t kNsPerMs = 1'000'000;

void check(natsStatus s, const std::string& what) {
  if (s != NATS_OK) throw NatsError(what + ": " + nats_error_text(s));
}

/// The server this connection is on now ("" when none), for logs.
std::string connected_url(natsConnection* nc) {
  char buf[256] = {};
  if (nc == nullptr || natsConnection_GetConnectedUrl(nc, buf, sizeof buf) != NATS_OK) return {};
  return redact_url(buf);
}

/// A stream as the service creates it (ensure_jetstream_objects, check_output_stream).
struct StreamSpec {
  std::string name;
  std::vector<std::string> subjects;
  std::int64_t duplicates_ns = 0;
  int replicas = 1;
};

StreamSpec output_stream_spec(const Config& config, OutputStream which) {
  const auto window_ns = static_cast<std::int64_t>(config.publish.duplicate_window.count()) * kNsPerMs;
  if (which == OutputStream::kOutput) {
    return {config.publish.stream, {config.publish.subject_prefix + ".>"}, window_ns, config.nats.stream_replicas};
  }
  return {
      config.publish.dlq_stream, {config.publish.dlq_subject_prefix + ".>"}, window_ns, config.nats.stream_replicas};
}

/// Adds the stream; true when it was created or another process created it meanwhile.
bool add_stream(jsCtx* js, const StreamSpec& spec, const jsOptions* opts, natsStatus& status) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = spec.name.c_str();
  std::vector<const char*> subj;
  for (const auto& x : spec.subjects) subj.push_back(x.c_str());
  cfg.Subjects = subj.data();
  cfg.SubjectsLen = static_cast<int>(subj.size());
  cfg.Storage = js_FileStorage;
  if (spec.duplicates_ns > 0) cfg.Duplicates = spec.duplicates_ns;
  cfg.Replicas = spec.replicas;
  jsStreamInfo* raw = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  status = js_AddStream(&raw, js, &cfg, const_cast<jsOptions*>(opts), &err);
  NatsStreamInfoPtr info(raw);
  // Another replica may have created it between our look-up and our add.
  return status == NATS_OK || err == JSStreamNameExistErr;
}

/// `replicas` applies only when the stream is created; an existing stream is used as it is.
void ensure_stream(jsCtx* js, const StreamSpec& spec, bool create) {
  const std::string& name = spec.name;
  const std::int64_t duplicates_ns = spec.duplicates_ns;
  const int replicas = spec.replicas;
  jsStreamInfo* raw = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&raw, js, name.c_str(), nullptr, &err);
  NatsStreamInfoPtr info(raw);
  if (s == NATS_OK) {
    if (duplicates_ns > 0 && info->Config->Duplicates < duplicates_ns) {
      log::warn("existing stream has a duplicate window shorter than required",
                {{"stream", name},
                 {"duplicate_window_ms", static_cast<long long>(info->Config->Duplicates / kNsPerMs)},
                 {"required_ms", static_cast<long long>(duplicates_ns / kNsPerMs)}});
    }
    const auto existing = static_cast<long long>(info->Config->Replicas > 0 ? info->Config->Replicas : 1);
    if (existing != replicas) {
      log::warn("existing stream has another replica count than nats.stream_replicas; using it as it is",
                {{"stream", name}, {"replicas", existing}, {"stream_replicas", static_cast<long long>(replicas)}});
    }
    return;
  }
  if (s != NATS_NOT_FOUND) check(s, "stream info " + name);
  if (!create) throw NatsError("stream " + name + " does not exist and ingest.create_streams is false");
  if (!add_stream(js, spec, nullptr, s)) check(s, "create stream " + name);
  log::info("stream ready", {{"stream", name}, {"replicas", static_cast<long long>(replicas)}});
}

}  // namespace

std::string nats_error_text(natsStatus status) {
  std::string text = natsStatus_GetText(status);
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  if (detail != nullptr && *detail != '\0' && text != detail) {
    text += ": ";
    text += detail;
  }
  return text;
}

NatsOptionsPtr make_nats_options(const NatsConfig& config, const std::string& name) {
  natsOptions* raw = nullptr;
  check(natsOptions_Create(&raw), "nats options");
  NatsOptionsPtr opts(raw);
  // Comma-separated URLs become a server list (natsOptions_SetURL takes one URL; only
  // natsConnection_ConnectTo splits a list). nats.c tries them in random order, fails over to
  // the others (and to the servers the cluster announces) on reconnect. Blanks around a comma
  // are allowed by validate(), so they are trimmed here.
  std::vector<std::string> urls;
  std::size_t start = 0;
  while (start <= config.url.size()) {
    const std::size_t comma = config.url.find(',', start);
    std::string one = config.url.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const auto first = one.find_first_not_of(" \t\r\n");
    one = first == std::string::npos ? std::string() : one.substr(first, one.find_last_not_of(" \t\r\n") - first + 1);
    if (!one.empty()) urls.push_back(one);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::vector<const char*> servers;
  for (const auto& u : urls) servers.push_back(u.c_str());
  check(natsOptions_SetServers(opts.get(), servers.data(), static_cast<int>(servers.size())), "nats.url");
  check(natsOptions_SetName(opts.get(), name.c_str()), "nats.name");
  check(natsOptions_SetTimeout(opts.get(), config.connect_timeout.count()), "nats.connect_timeout");
  check(natsOptions_SetMaxReconnect(opts.get(), config.max_reconnect), "nats.max_reconnect");
  if (config.io_buffer_size > 0)
    check(natsOptions_SetIOBufSize(opts.get(), config.io_buffer_size), "nats.io_buffer_size");
  check(natsOptions_SetReconnectWait(opts.get(), config.reconnect_wait.count()), "nats.reconnect_wait");
  check(natsOptions_SetRetryOnFailedConnect(opts.get(), false, nullptr, nullptr), "nats options");
  // TLS: any TLS key (or a tls:// URL, which nats.c handles itself) makes TLS required.
  if (!config.tls_ca.empty() || !config.tls_cert.empty()) {
    check(natsOptions_SetSecure(opts.get(), true), "nats TLS");
    if (!config.tls_ca.empty()) {
      check(natsOptions_LoadCATrustedCertificates(opts.get(), config.tls_ca.c_str()), "nats.tls_ca");
    }
    if (!config.tls_cert.empty()) {
      check(natsOptions_LoadCertificatesChain(opts.get(), config.tls_cert.c_str(), config.tls_key.c_str()),
            "nats.tls_cert/nats.tls_key");
    }
  }
  // Authentication (validate() allows at most one method). Secrets go to nats.c only.
  if (!config.creds_file.empty()) {
    check(natsOptions_SetUserCredentialsFromFiles(opts.get(), config.creds_file.c_str(), nullptr), "nats.creds_file");
  } else if (!config.nkey_seed_file.empty()) {
    check(natsOptions_SetNKeyFromSeed(opts.get(), config.nkey.c_str(), config.nkey_seed_file.c_str()),
          "nats.nkey_seed_file");
  } else if (!config.user.empty()) {
    check(natsOptions_SetUserInfo(opts.get(), config.user.c_str(), config.password.c_str()), "nats.user");
  } else if (!config.token.empty()) {
    check(natsOptions_SetToken(opts.get(), config.token.c_str()), "nats.token");
  }
  return opts;
}

NatsConnection::NatsConnection(const NatsConfig& config, const std::string& role) : role_(role) {
  NatsOptionsPtr opts = make_nats_options(config, config.name + "/" + role);
  switch (config.write_mode) {
    case WriteMode::kBatch:
      loop_ = std::make_unique<NatsEventLoop>(std::string("nats-io-").append(role));
      check(loop_->install(opts.get()), "nats.write_mode");
      break;
    // kAdaptive names a pair of publish connections; each of them is asap or flusher itself
    // (service_ports.cpp), so one connection configured so writes at once.
    case WriteMode::kAdaptive:
    case WriteMode::kAsap: check(natsOptions_SetSendAsap(opts.get(), true), "nats.write_mode"); break;
    case WriteMode::kFlusher: check(natsOptions_SetSendAsap(opts.get(), false), "nats.write_mode"); break;
  }
  // Room for the publishes and acks a stage issues while the connection is re-established.
  check(natsOptions_SetReconnectBufSize(opts.get(), 64 * 1024 * 1024), "nats options");
  check(natsOptions_SetDisconnectedCB(opts.get(), &NatsConnection::on_disconnected, this), "nats options");
  check(natsOptions_SetReconnectedCB(opts.get(), &NatsConnection::on_reconnected, this), "nats options");
  check(natsOptions_SetClosedCB(opts.get(), &NatsConnection::on_closed, this), "nats options");
  const natsStatus s = natsConnection_Connect(&conn_, opts.get());
  if (s != NATS_OK) throw NatsError("cannot connect to " + redact_url(config.url) + ": " + nats_error_text(s));
  log::info("nats connected", {{"connection", role_}, {"server", connected_url(conn_)}});
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 10000;
  check(natsConnection_JetStream(&js_, conn_, &jo), "jetstream context");
}

NatsConnection::~NatsConnection() {
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (conn_ != nullptr) {
    if (loop_) loop_->end_of_batch();  // anything a stage deferred and did not write yet
    natsConnection_FlushTimeout(conn_, 2000);
    natsConnection_Close(conn_);
    // nats.c runs the closed callback on its own thread after Close(); `this` must outlive it.
    for (int i = 0; i < 5000 && !closed_.load(std::memory_order_acquire); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (loop_) loop_->stop();  // its thread calls into the connection until now
    natsConnection_Destroy(conn_);
  }
}

bool NatsConnection::connected() const noexcept {
  return conn_ != nullptr && natsConnection_Status(conn_) == NATS_CONN_STATUS_CONNECTED;
}

std::int64_t NatsConnection::max_payload() const noexcept {
  return conn_ != nullptr ? natsConnection_GetMaxPayload(conn_) : 0;
}

void NatsConnection::on_disconnected(natsConnection*, void* self) noexcept {
  auto* c = static_cast<NatsConnection*>(self);
  c->disconnects_.fetch_add(1, std::memory_order_relaxed);
  log::warn("nats disconnected", {{"connection", c->role_}});
}

void NatsConnection::on_reconnected(natsConnection* nc, void* self) noexcept {
  auto* c = static_cast<NatsConnection*>(self);
  c->reconnects_.fetch_add(1, std::memory_order_relaxed);
  try {
    log::info("nats reconnected", {{"connection", c->role_}, {"server", connected_url(nc)}});
  } catch (...) {
    // A log line is not worth an exception on nats.c's thread.
  }
}

void NatsConnection::on_closed(natsConnection*, void* self) noexcept {
  auto* c = static_cast<NatsConnection*>(self);
  log::info("nats connection closed", {{"connection", c->role_}});
  c->closed_.store(true, std::memory_order_release);
}

bool read_consumer_backlog(NatsConnection& nats, const Config& config, std::chrono::milliseconds timeout,
                           ConsumerBacklog& out, std::string& error) noexcept {
  try {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = timeout.count();
    jsConsumerInfo* raw = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    const natsStatus s =
        js_GetConsumerInfo(&raw, nats.js(), config.ingest.stream.c_str(), config.ingest.consumer.c_str(), &jo, &err);
    NatsConsumerInfoPtr info(raw);
    if (s != NATS_OK || info == nullptr) {
      error = nats_error_text(s);
      return false;
    }
    out.num_pending = info->NumPending;
    out.num_ack_pending = info->NumAckPending;
    return true;
  } catch (const std::exception& e) {
    error = e.what();
    return false;
  }
}

StreamCheck check_output_stream(NatsConnection& nats, const Config& config, OutputStream which,
                                std::chrono::milliseconds timeout, std::string& error) noexcept {
  try {
    const StreamSpec spec = output_stream_spec(config, which);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = timeout.count();
    jsStreamInfo* raw = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    const natsStatus s = js_GetStreamInfo(&raw, nats.js(), spec.name.c_str(), &jo, &err);
    NatsStreamInfoPtr info(raw);
    if (s == NATS_OK) return StreamCheck::kPresent;
    if (s != NATS_NOT_FOUND) {
      error = nats_error_text(s);
      return StreamCheck::kUnknown;
    }
    if (!config.ingest.create_streams) return StreamCheck::kMissing;
    natsStatus add = NATS_OK;
    if (add_stream(nats.js(), spec, &jo, add)) return StreamCheck::kRecreated;
    error = nats_error_text(add);
    return StreamCheck::kMissing;
  } catch (const std::exception& e) {
    error = e.what();
    return StreamCheck::kUnknown;
  }
}

std::string push_deliver_subject(const Config& config) { return "_CDC_DELIVER." + config.ingest.consumer; }

namespace {

/// Checks an existing consumer `name` (kind, filter, settings; an outdated filter is updated in
/// place). False when it does not exist.
bool check_consumer(jsCtx* js, const Config& config, const std::string& name, const std::string& filter_subject,
                    bool push) {
  jsConsumerInfo* raw = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&raw, js, config.ingest.stream.c_str(), name.c_str(), nullptr, &err);
  NatsConsumerInfoPtr info(raw);
  if (s == NATS_NOT_FOUND) return false;
  check(s, "consumer info " + name);
  const bool is_push = info->Config->DeliverSubject != nullptr && *info->Config->DeliverSubject != '\0';
  if (is_push != push) {
    throw NatsError("consumer " + name + " exists as a " + (is_push ? "push" : "pull") +
                    " consumer but ingest.mode is " + (push ? "push" : "pull"));
  }
  const char* current = info->Config->FilterSubject != nullptr ? info->Config->FilterSubject : "";
  if (filter_subject != current) {
    // A consumer made by an older version filters on the layout ("cdc.*.*"): messages on other
    // subjects of the stream would sit there forever. nats-server >= 2.8.5 updates a durable
    // consumer's filter in place, keeping its acknowledged position (recreating it would not).
    const std::string old_filter = current;
    const char* const original = info->Config->FilterSubject;
    info->Config->FilterSubject = filter_subject.c_str();
    jsConsumerInfo* updated = nullptr;
    jsErrCode update_err = static_cast<jsErrCode>(0);
    const natsStatus us =
        js_UpdateConsumer(&updated, js, config.ingest.stream.c_str(), info->Config, nullptr, &update_err);
    info->Config->FilterSubject = original;  // the info frees its own string, not ours
    NatsConsumerInfoPtr updated_info(updated);
    if (us != NATS_OK) {
      throw NatsError("consumer " + name + " filters on \"" + old_filter + "\" and cannot be changed to \"" +
                      filter_subject + "\" (" + nats_error_text(us) + ", JetStream error " +
                      std::to_string(static_cast<int>(update_err)) +
                      "); delete the consumer or set ingest.filter_subject");
    }
    // The consumer keeps its position: messages the old filter passed over below it are not
    // delivered now (nats-server 2.9); the operator finds them below this sequence.
    log::warn("consumer filter changed so that every subject of the stream is consumed",
              {{"consumer", name},
               {"old_filter", old_filter},
               {"filter", filter_subject},
               {"passed_over_below_stream_seq", static_cast<unsigned long long>(info->Delivered.Stream + 1)}});
  }
  if (info->Config->AckWait != config.ingest.ack_wait.count() * kNsPerMs ||
      info->Config->MaxAckPending != config.ingest.max_ack_pending ||
      info->Config->MaxDeliver != config.ingest.max_deliver) {
    log::warn("existing consumer differs from the configuration; using it as it is",
              {{"consumer", name},
               {"ack_wait_ms", static_cast<long long>(info->Config->AckWait / kNsPerMs)},
               {"max_ack_pending", static_cast<long long>(info->Config->MaxAckPending)},
               {"max_deliver", static_cast<long long>(info->Config->MaxDeliver)}});
  }
  return true;
}

/// The lease bucket of the fleet: opened when it exists, else created (history 1, no TTL,
/// file storage, nats.stream_replicas).
void ensure_lease_bucket(jsCtx* js, const Config& config) {
  kvStore* kv = nullptr;
  natsStatus s = js_KeyValue(&kv, js, config.ingest.lease_bucket.c_str());
  if (s == NATS_OK) {
    kvStore_Destroy(kv);
    return;
  }
  if (s != NATS_NOT_FOUND) check(s, "lease bucket " + config.ingest.lease_bucket);
  if (!config.ingest.create_streams) {
    throw NatsError("lease bucket " + config.ingest.lease_bucket +
                    " does not exist and ingest.create_streams is false");
  }
  kvConfig kc;
  kvConfig_Init(&kc);
  kc.Bucket = config.ingest.lease_bucket.c_str();
  kc.History = 1;
  kc.StorageType = js_FileStorage;
  kc.Replicas = config.nats.stream_replicas;
  kv = nullptr;
  s = js_CreateKeyValue(&kv, js, &kc);
  if (s == NATS_OK) kvStore_Destroy(kv);
  // Another replica may have created it between our look-up and our create.
  if (s != NATS_OK) {
    kv = nullptr;
    check(js_KeyValue(&kv, js, config.ingest.lease_bucket.c_str()),
          "create lease bucket " + config.ingest.lease_bucket);
    kvStore_Destroy(kv);
  }
  log::info("lease bucket ready", {{"bucket", config.ingest.lease_bucket},
                                   {"replicas", static_cast<long long>(config.nats.stream_replicas)}});
}

}  // namespace

void ensure_source_stream(jsCtx* js, const Config& config) {
  ensure_stream(js, StreamSpec{config.ingest.stream, config.ingest.stream_subjects, 0, config.nats.stream_replicas},
                config.ingest.create_streams);
}

natsStatus read_stored_subjects(jsCtx* js, const std::string& stream, const std::string& filter, std::size_t max,
                                std::vector<StoredSubject>& out, std::size_t& listed) {
  listed = 0;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Stream.Info.SubjectsFilter = filter.c_str();
  jsStreamInfo* raw = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  const natsStatus s = js_GetStreamInfo(&raw, js, stream.c_str(), &jo, &err);
  if (s != NATS_OK) return s;
  NatsStreamInfoPtr info(raw);
  if (info->State.Subjects == nullptr) return NATS_OK;
  listed = static_cast<std::size_t>(std::max(0, info->State.Subjects->Count));
  for (std::size_t i = 0; i < listed && i < max; ++i) {
    const jsStreamStateSubject& one = info->State.Subjects->List[i];
    out.push_back(StoredSubject{one.Subject, one.Msgs});
  }
  return NATS_OK;
}

void check_partition_fit(jsCtx* js, const Config& config) {
  const IngestConfig& in = config.ingest;
  jsStreamInfo* raw = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  check(js_GetStreamInfo(&raw, js, in.stream.c_str(), nullptr, &err), "stream info " + in.stream);
  NatsStreamInfoPtr info(raw);
  std::vector<std::string> subjects;
  for (int i = 0; i < info->Config->SubjectsLen; ++i) subjects.emplace_back(info->Config->Subjects[i]);
  std::vector<std::string> stored;
  // What the server stores now: the subject of the latest message (earlier ones may predate a
  // mapping change and have been consumed already).
  if (info->State.LastSeq > 0) {
    natsMsg* msg = nullptr;
    if (js_GetMsg(&msg, js, in.stream.c_str(), info->State.LastSeq, nullptr, &err) == NATS_OK && msg != nullptr) {
      stored.emplace_back(natsMsg_GetSubject(msg));
      natsMsg_Destroy(msg);
    }
  }
  if (in.partitions > 1) {
    // Every partitioned subject it holds: a partition token >= P means another mapping.
    const std::string filter = SubjectLayout(in.subject_layout, in.company_prefix).filter_subject();
    std::vector<StoredSubject> listed;
    std::size_t count = 0;
    if (read_stored_subjects(js, in.stream, filter, std::numeric_limits<std::size_t>::max(), listed, count) ==
        NATS_OK) {
      for (auto& one : listed) stored.push_back(std::move(one.subject));
    }
  }
  const std::string problem = partition_fit_error(in, subjects, stored);
  if (!problem.empty()) throw ConfigError("ingest.partitions", problem);
  log::info("source stream fits the partitions", {{"stream", in.stream},
                                                  {"partitions", static_cast<long long>(in.partitions)},
                                                  {"subject_layout", in.subject_layout}});
}

void ensure_jetstream_objects(NatsConnection& nats, const Config& config, const std::string& filter_subject) {
  jsCtx* js = nats.js();
  const bool create = config.ingest.create_streams;
  ensure_stream(js, StreamSpec{config.ingest.stream, config.ingest.stream_subjects, 0, config.nats.stream_replicas},
                create);
  ensure_stream(js, output_stream_spec(config, OutputStream::kOutput), create);
  ensure_stream(js, output_stream_spec(config, OutputStream::kDeadLetter), create);

  const bool push = config.ingest.mode == IngestMode::kPush;
  if (!push) {
    // Pull: the fleet owns the partition consumers (created when a partition is acquired, from
    // the checkpoint when one was lost); here only what must hold before anything starts.
    ensure_lease_bucket(js, config);
    check_partition_fit(js, config);
    const auto partitions = static_cast<std::uint32_t>(std::max(1, config.ingest.partitions));
    kvStore* raw_kv = nullptr;
    check(js_KeyValue(&raw_kv, js, config.ingest.lease_bucket.c_str()), "lease bucket " + config.ingest.lease_bucket);
    const std::unique_ptr<kvStore, void (*)(kvStore*)> kv(raw_kv, kvStore_Destroy);
    for (std::uint32_t p = 0; p < partitions; ++p) {
      const std::string name = partition_consumer(config.ingest, p);
      if (check_consumer(js, config, name, partition_filter(config.ingest, p), false)) continue;
      if (!create) throw NatsError("consumer " + name + " does not exist and ingest.create_streams is false");
      // Missing at start-up (first deployment, or deleted while no replica ran): from the
      // checkpoint, as the fleet recreates one lost while running.
      std::uint64_t checkpoint = 0;
      create_partition_consumer(js, kv.get(), config, p, checkpoint);
    }
    return;
  }
  if (check_consumer(js, config, config.ingest.consumer, filter_subject, true)) return;
  if (!create)
    throw NatsError("consumer " + config.ingest.consumer + " does not exist and ingest.create_streams is false");
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = config.ingest.consumer.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.DeliverPolicy = js_DeliverAll;
  cc.AckWait = config.ingest.ack_wait.count() * kNsPerMs;
  cc.MaxAckPending = config.ingest.max_ack_pending;
  cc.MaxDeliver = config.ingest.max_deliver;
  cc.FilterSubject = filter_subject.c_str();
  const std::string deliver = push_deliver_subject(config);
  cc.DeliverSubject = deliver.c_str();
  cc.DeliverGroup = config.ingest.queue_group.c_str();
  jsConsumerInfo* raw = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  const natsStatus s = js_AddConsumer(&raw, js, config.ingest.stream.c_str(), &cc, nullptr, &err);
  NatsConsumerInfoPtr info(raw);
  if (s != NATS_OK && err != JSConsumerNameExistErr && err != JSConsumerExistingActiveErr) {
    check(s, "create consumer " + config.ingest.consumer);
  }
  log::info("consumer ready", {{"consumer", config.ingest.consumer}, {"mode", "push"}, {"filter", filter_subject}});
}

}  // namespace cdc
