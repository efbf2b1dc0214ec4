#include "jetstream_probe.hpp"

#include "cdc/adapters/nats/nats_handles.hpp"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace cdc::test {
namespace {

using ConnectionHandle = NatsConnectionPtr;
using JsHandle = NatsJsPtr;
using OptionsHandle = NatsOptionsPtr;
using MsgHandle = NatsMsgPtr;
using StreamInfoHandle = NatsStreamInfoPtr;
using ConsumerInfoHandle = NatsConsumerInfoPtr;
using AccountInfoHandle = NatsAccountInfoPtr;
using PubAckHandle = NatsPubAckPtr;

[[noreturn]] void fail(const std::string& what, natsStatus status, jsErrCode code = static_cast<jsErrCode>(0)) {
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  std::string message = what + ": " + natsStatus_GetText(status);
  if (code != 0) message += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
  if (text != nullptr && *text != '\0') message += ": " + std::string(text);
  throw std::runtime_error(message);
}

void check(natsStatus status, const std::string& what, jsErrCode code = static_cast<jsErrCode>(0)) {
  if (status != NATS_OK) fail(what, status, code);
}

StreamMessage to_stream_message(natsMsg* msg) {
  StreamMessage out;
  out.subject = natsMsg_GetSubject(msg);
  out.headers = read_nats_headers(msg);
  if (const char* data = natsMsg_GetData(msg); data != nullptr) {
    out.data.assign(data, static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
  }
  out.seq = natsMsg_GetSequence(msg);
  out.time_ns = natsMsg_GetTime(msg);
  return out;
}

}  // namespace

std::string StreamMessage::header(const std::string& name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return {};
}

natsStatus set_servers(natsOptions* options, const std::string& urls) {
  std::vector<std::string> list;
  std::size_t start = 0;
  while (start <= urls.size()) {
    const std::size_t comma = urls.find(',', start);
    std::string one = urls.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const auto first = one.find_first_not_of(' ');
    one = first == std::string::npos ? std::string() : one.substr(first, one.find_last_not_of(' ') - first + 1);
    if (!one.empty()) list.push_back(std::move(one));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (list.size() <= 1) return natsOptions_SetURL(options, list.empty() ? urls.c_str() : list.front().c_str());
  std::vector<const char*> servers;
  for (const auto& u : list) servers.push_back(u.c_str());
  return natsOptions_SetServers(options, servers.data(), static_cast<int>(servers.size()));
}

struct JetStreamProbe::Handles {
  ConnectionHandle connection;
  JsHandle js;
};

JetStreamProbe::JetStreamProbe(const std::string& url, std::chrono::milliseconds timeout)
    : handles_(std::make_unique<Handles>()), timeout_(timeout) {
  natsOptions* raw_options = nullptr;
  check(natsOptions_Create(&raw_options), "natsOptions_Create");
  OptionsHandle options(raw_options);
  check(set_servers(options.get(), url), "natsOptions_SetServers " + url);
  check(natsOptions_SetTimeout(options.get(), timeout.count()), "natsOptions_SetTimeout");
  check(natsOptions_SetAllowReconnect(options.get(), false), "natsOptions_SetAllowReconnect");
  natsConnection* connection = nullptr;
  check(natsConnection_Connect(&connection, options.get()), "connect to " + url);
  handles_->connection.reset(connection);

  jsOptions js_options;
  check(jsOptions_Init(&js_options), "jsOptions_Init");
  js_options.Wait = timeout.count();
  jsCtx* js = nullptr;
  check(natsConnection_JetStream(&js, connection, &js_options), "natsConnection_JetStream");
  handles_->js.reset(js);
}

JetStreamProbe::~JetStreamProbe() = default;

natsConnection* JetStreamProbe::connection() const noexcept { return handles_->connection.get(); }
jsCtx* JetStreamProbe::jetstream() const noexcept { return handles_->js.get(); }

bool JetStreamProbe::jetstream_ready() const {
  jsAccountInfo* info = nullptr;
  const natsStatus status = js_GetAccountInfo(&info, jetstream(), nullptr, nullptr);
  AccountInfoHandle guard(info);
  return status == NATS_OK;
}

void JetStreamProbe::create_stream(const StreamConfig& config) {
  jsStreamConfig cfg;
  check(jsStreamConfig_Init(&cfg), "jsStreamConfig_Init");
  std::vector<const char*> subjects;
  for (const auto& subject : config.subjects) subjects.push_back(subject.c_str());
  cfg.Name = config.name.c_str();
  cfg.Subjects = subjects.data();
  cfg.SubjectsLen = static_cast<int>(subjects.size());
  cfg.Storage = config.memory_storage ? js_MemoryStorage : js_FileStorage;
  cfg.Duplicates = std::chrono::duration_cast<std::chrono::nanoseconds>(config.duplicate_window).count();
  cfg.MaxMsgSize = static_cast<std::int32_t>(config.max_msg_size);
  cfg.Replicas = config.replicas;

  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = js_AddStream(&info, jetstream(), &cfg, nullptr, &code);
  StreamInfoHandle guard(info);
  if (status != NATS_OK && code == JSStreamNameExistErr) {
    jsStreamInfo* updated = nullptr;
    status = js_UpdateStream(&updated, jetstream(), &cfg, nullptr, &code);
    guard.reset(updated);
  }
  check(status, "create stream " + config.name, code);
}

void JetStreamProbe::create_stream(const std::string& name, const std::vector<std::string>& subjects,
                                   std::chrono::milliseconds duplicate_window) {
  StreamConfig config;
  config.name = name;
  config.subjects = subjects;
  config.duplicate_window = duplicate_window;
  create_stream(config);
}

void JetStreamProbe::delete_stream(const std::string& name) {
  jsErrCode code = static_cast<jsErrCode>(0);
  check(js_DeleteStream(jetstream(), name.c_str(), nullptr, &code), "delete stream " + name, code);
}

bool JetStreamProbe::stream_exists(const std::string& name) const {
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetStreamInfo(&info, jetstream(), name.c_str(), nullptr, &code);
  StreamInfoHandle guard(info);
  if (status == NATS_NOT_FOUND || code == JSStreamNotFoundErr) return false;
  check(status, "stream info " + name, code);
  return true;
}

StreamState JetStreamProbe::stream_state(const std::string& name) const {
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  check(js_GetStreamInfo(&info, jetstream(), name.c_str(), nullptr, &code), "stream info " + name, code);
  StreamInfoHandle guard(info);
  const jsStreamState& state = info->State;
  StreamState out;
  out.messages = state.Msgs;
  out.bytes = state.Bytes;
  out.first_seq = state.FirstSeq;
  out.last_seq = state.LastSeq;
  out.consumers = state.Consumers;
  out.replicas = info->Config != nullptr && info->Config->Replicas > 0 ? info->Config->Replicas : 1;
  if (info->Cluster != nullptr && info->Cluster->Leader != nullptr) out.leader = info->Cluster->Leader;
  return out;
}

std::uint64_t JetStreamProbe::count(const std::string& name) const { return stream_state(name).messages; }

std::uint64_t JetStreamProbe::wait_for_count(const std::string& name, std::uint64_t expected,
                                             std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const std::uint64_t n = count(name);
    if (n >= expected || std::chrono::steady_clock::now() >= deadline) return n;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

PublishResult JetStreamProbe::publish(const std::string& subject, std::string_view body, const Headers& headers) {
  natsMsg* raw = nullptr;
  check(natsMsg_Create(&raw, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size())),
        "natsMsg_Create " + subject);
  MsgHandle msg(raw);
  for (const auto& [name, value] : headers) {
    check(natsMsgHeader_Add(msg.get(), name.c_str(), value.c_str()), "natsMsgHeader_Add " + name);
  }
  jsPubOptions options;
  check(jsPubOptions_Init(&options), "jsPubOptions_Init");
  options.MaxWait = timeout_.count();
  jsPubAck* ack = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  check(js_PublishMsg(&ack, jetstream(), msg.get(), &options, &code), "publish to " + subject, code);
  PubAckHandle guard(ack);
  return PublishResult{ack->Stream != nullptr ? ack->Stream : "", ack->Sequence, ack->Duplicate};
}

PublishResult JetStreamProbe::publish(const CaptureRecord& record) {
  return publish(record.subject, record.data, record.headers);
}

StreamMessage JetStreamProbe::get_message(const std::string& name, std::uint64_t seq) const {
  natsMsg* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  check(js_GetMsg(&raw, jetstream(), name.c_str(), seq, nullptr, &code),
        "get message " + std::to_string(seq) + " of " + name, code);
  MsgHandle msg(raw);
  return to_stream_message(msg.get());
}

std::vector<StreamMessage> JetStreamProbe::read_stream(const std::string& name) const {
  const StreamState state = stream_state(name);
  std::vector<StreamMessage> out;
  if (state.messages == 0) return out;
  out.reserve(state.messages);
  for (std::uint64_t seq = state.first_seq; seq <= state.last_seq; ++seq) {
    natsMsg* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status = js_GetMsg(&raw, jetstream(), name.c_str(), seq, nullptr, &code);
    MsgHandle msg(raw);
    if (status == NATS_NOT_FOUND || code == JSNoMessageFoundErr) continue;  // deleted
    check(status, "get message " + std::to_string(seq) + " of " + name, code);
    out.push_back(to_stream_message(msg.get()));
  }
  return out;
}

ConsumerState JetStreamProbe::consumer_info(const std::string& stream, const std::string& durable) const {
  jsConsumerInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  check(js_GetConsumerInfo(&info, jetstream(), stream.c_str(), durable.c_str(), nullptr, &code),
        "consumer info " + stream + "/" + durable, code);
  ConsumerInfoHandle guard(info);
  ConsumerState state;
  state.num_pending = info->NumPending;
  state.num_ack_pending = info->NumAckPending;
  state.num_redelivered = info->NumRedelivered;
  state.num_waiting = info->NumWaiting;
  state.delivered_stream_seq = info->Delivered.Stream;
  state.ack_floor_stream_seq = info->AckFloor.Stream;
  if (info->Cluster != nullptr && info->Cluster->Leader != nullptr) state.leader = info->Cluster->Leader;
  return state;
}

bool JetStreamProbe::consumer_exists(const std::string& stream, const std::string& durable) const {
  jsConsumerInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetConsumerInfo(&info, jetstream(), stream.c_str(), durable.c_str(), nullptr, &code);
  ConsumerInfoHandle guard(info);
  if (status == NATS_NOT_FOUND || code == JSConsumerNotFoundErr || code == JSStreamNotFoundErr) return false;
  check(status, "consumer info " + stream + "/" + durable, code);
  return true;
}

void JetStreamProbe::delete_consumer(const std::string& stream, const std::string& durable) {
  jsErrCode code = static_cast<jsErrCode>(0);
  check(js_DeleteConsumer(jetstream(), stream.c_str(), durable.c_str(), nullptr, &code),
        "delete consumer " + stream + "/" + durable, code);
}

}  // namespace cdc::test
