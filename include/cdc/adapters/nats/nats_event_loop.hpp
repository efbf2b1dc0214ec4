#pragma once
/// Write mode `batch` (WriteMode::kBatch): nats.c in its event-loop mode, with a loop of our own.
///
/// nats.c 3.4 writes a connection's buffer either at once on every call (SendAsap: one write()
/// per publish, ~20 % less throughput at the broker's limit) or ~1 ms after the first buffered
/// call (its flusher thread: a millisecond on every idle publish). In event-loop mode it writes
/// nothing itself: it asks the loop to watch the socket (the write callback) and writes when the
/// loop calls natsConnection_ProcessWriteEvent(). This loop answers the two kinds of callers
/// differently:
/// - a stage thread inside a Deferral (the publish stage's publishes, the ack stage's acks) only
///   marks the connection; the stage calls end_of_batch() after its batch and the whole batch
///   goes out in one write on its own thread, the Disruptor's "flush at the end of the batch".
///   Under load a batch holds hundreds of messages; idle, it holds one and is written at once.
/// - every other caller (fetch requests, in-progress signals, JetStream API requests, PONGs,
///   what nats.c resends after a reconnect) wakes the loop's I/O thread, which writes at once.
/// The I/O thread also reads (natsConnection_ProcessReadEvent) in place of nats.c's read thread,
/// and takes over a write the socket did not take whole (a full socket buffer).
///
/// Thread contract: install() before natsConnection_Connect; stop() after natsConnection_Close
/// and before natsConnection_Destroy. Callbacks come from any nats.c thread, some under the
/// connection's lock: they only touch atomics and the wake-up eventfd.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include <nats/nats.h>

namespace cdc {

class NatsEventLoop {
 public:
  /// Creates the wake-up eventfd (throws std::system_error) and starts the I/O thread, named
  /// `thread_name` (at most 15 characters are kept).
  explicit NatsEventLoop(std::string thread_name);
  ~NatsEventLoop();
  NatsEventLoop(const NatsEventLoop&) = delete;
  NatsEventLoop& operator=(const NatsEventLoop&) = delete;

  /// Plugs the loop into `opts` (natsOptions_SetEventLoop) and sets SendAsap, so that each call
  /// asks for a write instead of kicking nats.c's flusher thread.
  [[nodiscard]] natsStatus install(natsOptions* opts) noexcept;

  /// Calls on this thread inside its lifetime are written by end_of_batch() (on this thread).
  class Deferral {
   public:
    explicit Deferral(NatsEventLoop& loop) noexcept : previous_(current) { current = &loop; }
    ~Deferral() { current = previous_; }
    Deferral(const Deferral&) = delete;
    Deferral& operator=(const Deferral&) = delete;

   private:
    friend class NatsEventLoop;
    NatsEventLoop* previous_;
    static thread_local NatsEventLoop* current;
  };

  /// The calling stage's batch ended: writes what its deferred calls buffered, in one write on
  /// this thread (never blocks: the socket is non-blocking); what the socket does not take goes
  /// to the I/O thread. Cheap when nothing was deferred.
  void end_of_batch() noexcept;

  /// Stops and joins the I/O thread (after natsConnection_Close). Idempotent.
  void stop() noexcept;

  /// Writes done by end_of_batch() on a stage thread, and by the I/O thread (statistics, tests).
  [[nodiscard]] std::uint64_t batch_writes() const noexcept { return batch_writes_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t io_writes() const noexcept { return io_writes_.load(std::memory_order_relaxed); }

 private:
  static natsStatus on_attach(void** user_data, void* loop, natsConnection* nc, natsSock socket);
  static natsStatus on_read(void* user_data, bool add);
  static natsStatus on_write(void* user_data, bool add);
  static natsStatus on_detach(void* user_data);

  void wake() noexcept;
  void run() noexcept;
  /// Writes what the connection buffered, if anything, under write_mutex_. False when the
  /// socket did not take all of it.
  bool write_buffered(natsConnection* nc) noexcept;

  std::string thread_name_;
  int wake_fd_ = -1;
  std::atomic<natsConnection*> nc_{nullptr};
  std::atomic<int> fd_{-1};            // the attached socket; -1 while detached
  std::atomic<bool> reading_{false};   // nats.c wants read events
  std::atomic<bool> io_write_{false};  // the I/O thread writes (POLLOUT) until nats.c says done
  std::atomic<bool> deferred_{false};  // a deferred call asked for a write: end_of_batch's
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> batch_writes_{0};
  std::atomic<std::uint64_t> io_writes_{0};
  // Serialises natsConnection_ProcessWriteEvent between a stage's end_of_batch() and the I/O
  // thread: with an empty buffer nats.c's write of 0 bytes reads as a closed connection. Held
  // only around the write; the callbacks (under nats.c's lock) never take it.
  std::mutex write_mutex_;
  std::thread thread_;
};

}  // namespace cdc
