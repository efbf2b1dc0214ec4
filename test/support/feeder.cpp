#include "feeder.hpp"

#include <nats/nats.h>

#include <memory>

#include "cdc/adapters/nats/nats_handles.hpp"
#include "jetstream_probe.hpp"

namespace cdc::test {
namespace {

constexpr std::int64_t kPublishWaitMs = 2000;

std::string status_text(natsStatus s) {
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  std::string text = natsStatus_GetText(s);
  if (detail != nullptr && *detail != '\0') text += std::string(": ") + detail;
  return text;
}

}  // namespace

void ensure_msg_ids(std::vector<CaptureRecord>& records, const std::string& prefix) {
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (records[i].header("Nats-Msg-Id").empty())
      records[i].headers.emplace_back("Nats-Msg-Id", prefix + std::to_string(i));
  }
}

Feeder::Feeder(std::string url, std::vector<CaptureRecord> records, double rate)
    : url_(std::move(url)), records_(std::move(records)), rate_(rate) {}

Feeder::~Feeder() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void Feeder::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

bool Feeder::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done_.load()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (thread_.joinable()) thread_.join();
  return stored() == records_.size();
}

std::string Feeder::last_error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_error_;
}

void Feeder::run() {
  const auto note = [this](const std::string& error) {
    retries_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mutex_);
    last_error_ = error;
  };
  natsOptions* raw_options = nullptr;
  natsOptions_Create(&raw_options);
  NatsOptionsPtr options(raw_options);
  set_servers(options.get(), url_);  // one URL or a cluster's comma-separated list
  natsOptions_SetTimeout(options.get(), kPublishWaitMs);
  natsOptions_SetMaxReconnect(options.get(), -1);
  natsOptions_SetReconnectWait(options.get(), 100);
  // Keep trying the first connect too: a test may start the feeder while the server restarts.
  natsOptions_SetRetryOnFailedConnect(options.get(), true, nullptr, nullptr);
  natsConnection* raw_connection = nullptr;
  natsStatus s = natsConnection_Connect(&raw_connection, options.get());
  NatsConnectionPtr connection(raw_connection);
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = kPublishWaitMs;
  jsCtx* raw_js = nullptr;
  if (s == NATS_OK || s == NATS_NOT_YET_CONNECTED) s = natsConnection_JetStream(&raw_js, connection.get(), &js_options);
  NatsJsPtr js(raw_js);
  if (s != NATS_OK) {
    note("connect: " + status_text(s));
    done_.store(true);
    return;
  }

  const auto started = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < records_.size() && !stop_.load(); ++i) {
    if (rate_ > 0) {
      const auto due = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                     std::chrono::duration<double>(static_cast<double>(i) / rate_));
      std::this_thread::sleep_until(due);
    }
    const CaptureRecord& r = records_[i];
    while (!stop_.load()) {
      natsMsg* raw_msg = nullptr;
      s = natsMsg_Create(&raw_msg, r.subject.c_str(), nullptr, r.data.data(), static_cast<int>(r.data.size()));
      NatsMsgPtr msg(raw_msg);
      for (const auto& [name, value] : r.headers) {
        if (s == NATS_OK) s = natsMsgHeader_Add(msg.get(), name.c_str(), value.c_str());
      }
      jsPubAck* raw_ack = nullptr;
      jsErrCode code = static_cast<jsErrCode>(0);
      if (s == NATS_OK) s = js_PublishMsg(&raw_ack, js.get(), msg.get(), nullptr, &code);
      NatsPubAckPtr ack(raw_ack);
      if (s == NATS_OK) break;
      note("record " + std::to_string(i) + ": " + status_text(s));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!stop_.load()) stored_.fetch_add(1, std::memory_order_relaxed);
  }
  done_.store(true);
}

}  // namespace cdc::test
