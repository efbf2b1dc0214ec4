// NATS write mode batch (NatsEventLoop) on a real nats-server: what a stage publishes inside a
// Deferral stays in the connection's buffer until the stage's end_of_batch() writes it, in
// one write and in order; every other call is written at once by the connection's I/O thread;
// requests (read by that thread) work; the connection survives a server restart and writes
// again afterwards.

#include <catch2/catch.hpp>

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cdc/adapters/nats/nats_connection.hpp"
#include "cdc/core/config.hpp"
#include "eventually.hpp"
#include "servers.hpp"

namespace {

using namespace std::chrono_literals;

using cdc_test::eventually;

/// A plain nats.c connection (nats.c's own read thread) that records what arrives on a subject.
class Listener {
 public:
  Listener(const std::string& url, const std::string& subject) {
    REQUIRE(natsConnection_ConnectTo(&nc_, url.c_str()) == NATS_OK);
    REQUIRE(natsConnection_Subscribe(&sub_, nc_, subject.c_str(), &Listener::on_msg, this) == NATS_OK);
    REQUIRE(natsConnection_Flush(nc_) == NATS_OK);
  }
  ~Listener() {
    natsSubscription_Destroy(sub_);
    natsConnection_Destroy(nc_);
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  std::vector<std::string> received() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }
  std::size_t count() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return received_.size();
  }

 private:
  static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
    auto* l = static_cast<Listener*>(self);
    {
      const std::lock_guard<std::mutex> lock(l->mutex_);
      l->received_.emplace_back(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    }
    natsMsg_Destroy(msg);
  }

  natsConnection* nc_ = nullptr;
  natsSubscription* sub_ = nullptr;
  std::mutex mutex_;
  std::vector<std::string> received_;
};

cdc::NatsConfig batch_config(const cdc::test::NatsServer& server) {
  cdc::NatsConfig c;
  c.url = server.url();
  c.reconnect_wait = cdc::Millis{100};
  c.write_mode = cdc::WriteMode::kBatch;
  return c;
}

void publish(cdc::NatsConnection& nats, const std::string& subject, const std::string& body) {
  REQUIRE(natsConnection_Publish(nats.get(), subject.c_str(), body.data(), static_cast<int>(body.size())) == NATS_OK);
}

}  // namespace

TEST_CASE("write mode batch: a stage's deferred publishes wait for its end_of_batch, then go in one write",
          "[nats][event_loop]") {
  cdc::test::NatsServer server;
  Listener listener(server.url(), "batch.>");
  cdc::NatsConnection nats(batch_config(server), "publish");
  REQUIRE(nats.loop() != nullptr);
  const std::uint64_t batch_writes_before = nats.loop()->batch_writes();

  constexpr int kCount = 200;
  {
    const cdc::NatsEventLoop::Deferral deferral(*nats.loop());
    for (int i = 0; i < kCount; ++i) publish(nats, "batch.a", std::to_string(i));
  }
  // Nothing was written: every byte is still in the connection's buffer.
  CHECK(natsConnection_Buffered(nats.get()) > kCount * 10);
  CHECK(listener.count() == 0);

  nats.loop()->end_of_batch();
  CHECK(natsConnection_Buffered(nats.get()) == 0);
  CHECK(nats.loop()->batch_writes() == batch_writes_before + 1);
  REQUIRE(eventually([&] { return listener.count() == kCount; }, 5s));
  const auto got = listener.received();
  for (int i = 0; i < kCount; ++i) CHECK(got[static_cast<std::size_t>(i)] == std::to_string(i));

  // A second end_of_batch with nothing deferred writes nothing.
  nats.loop()->end_of_batch();
  CHECK(nats.loop()->batch_writes() == batch_writes_before + 1);
}

TEST_CASE("write mode batch: calls outside a deferral are written at once by the I/O thread, requests work",
          "[nats][event_loop]") {
  cdc::test::NatsServer server;
  Listener listener(server.url(), "eager.>");
  cdc::NatsConnection nats(batch_config(server), "consume");
  REQUIRE(nats.loop() != nullptr);

  publish(nats, "eager.one", "x");
  REQUIRE(eventually([&] { return listener.count() == 1; }, 5s));
  CHECK(nats.loop()->io_writes() >= 1);
  CHECK(natsConnection_Buffered(nats.get()) == 0);

  // A request: written by the I/O thread, its reply read by it (JetStream's API works this way).
  jsAccountInfo* info = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  REQUIRE(js_GetAccountInfo(&info, nats.js(), nullptr, &err) == NATS_OK);
  jsAccountInfo_Destroy(info);

  // A flush (PING/PONG) works behind deferred calls once they are written.
  {
    const cdc::NatsEventLoop::Deferral deferral(*nats.loop());
    publish(nats, "eager.two", "y");
  }
  nats.loop()->end_of_batch();
  CHECK(natsConnection_FlushTimeout(nats.get(), 5000) == NATS_OK);
  // The PONG says the server read the publish; the listener's delivery is another connection's.
  CHECK(eventually([&] { return listener.count() == 2; }, 5s));
}

TEST_CASE("write mode batch: the connection reconnects after a server restart and writes again", "[nats][event_loop]") {
  cdc::test::NatsServer server;
  cdc::NatsConnection nats(batch_config(server), "publish");
  REQUIRE(nats.loop() != nullptr);
  server.restart();
  REQUIRE(eventually([&] { return nats.reconnects() >= 1 && nats.connected(); }, 15s));

  Listener listener(server.url(), "after.>");
  {
    const cdc::NatsEventLoop::Deferral deferral(*nats.loop());
    publish(nats, "after.restart", "deferred");
  }
  nats.loop()->end_of_batch();
  publish(nats, "after.restart", "direct");
  REQUIRE(eventually([&] { return listener.count() == 2; }, 5s));
  CHECK(listener.received() == std::vector<std::string>{"deferred", "direct"});
}

TEST_CASE("write modes asap and flusher have no event loop", "[nats][event_loop]") {
  cdc::test::NatsServer server;
  cdc::NatsConfig c = batch_config(server);
  c.write_mode = cdc::WriteMode::kAsap;
  cdc::NatsConnection asap(c, "asap");
  CHECK(asap.loop() == nullptr);
  c.write_mode = cdc::WriteMode::kFlusher;
  cdc::NatsConnection flusher(c, "flusher");
  CHECK(flusher.loop() == nullptr);
  Listener listener(server.url(), "modes.>");
  publish(asap, "modes.a", "1");
  publish(flusher, "modes.f", "2");
  REQUIRE(eventually([&] { return listener.count() == 2; }, 5s));
}
