#include "cdc/adapters/nats/nats_event_loop.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

namespace cdc {

thread_local NatsEventLoop* NatsEventLoop::Deferral::current = nullptr;

NatsEventLoop::NatsEventLoop(std::string thread_name) : thread_name_(std::move(thread_name)) {
  if (thread_name_.size() > 15) thread_name_.resize(15);  // a pthread name's limit
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd for the NATS I/O thread");
  thread_ = std::thread([this] { run(); });
}

NatsEventLoop::~NatsEventLoop() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

natsStatus NatsEventLoop::install(natsOptions* opts) noexcept {
  const natsStatus s = natsOptions_SetEventLoop(opts, this, &NatsEventLoop::on_attach, &NatsEventLoop::on_read,
                                                &NatsEventLoop::on_write, &NatsEventLoop::on_detach);
  // With SendAsap each call asks for a write (the write callback) instead of signalling nats.c's
  // flusher thread, which would ask ~1 ms later; nats.c then starts no flusher thread.
  return s == NATS_OK ? natsOptions_SetSendAsap(opts, true) : s;
}

natsStatus NatsEventLoop::on_attach(void** user_data, void* loop, natsConnection* nc, natsSock socket) {
  auto* self = static_cast<NatsEventLoop*>(loop);
  *user_data = self;
  self->nc_.store(nc, std::memory_order_release);
  self->reading_.store(true, std::memory_order_release);  // an attached socket is read from at once
  self->fd_.store(socket, std::memory_order_release);
  self->wake();
  return NATS_OK;
}

natsStatus NatsEventLoop::on_read(void* user_data, bool add) {
  auto* self = static_cast<NatsEventLoop*>(user_data);
  self->reading_.store(add, std::memory_order_release);
  self->wake();
  return NATS_OK;
}

natsStatus NatsEventLoop::on_write(void* user_data, bool add) {
  auto* self = static_cast<NatsEventLoop*>(user_data);
  if (!add) {
    // nats.c wrote everything (or stops polling for a reconnect): nobody needs to write.
    self->io_write_.store(false, std::memory_order_release);
    return NATS_OK;
  }
  if (Deferral::current == self) {
    // A stage's call inside its batch: its end_of_batch() writes.
    self->deferred_.store(true, std::memory_order_release);
    return NATS_OK;
  }
  self->io_write_.store(true, std::memory_order_release);
  self->wake();
  return NATS_OK;
}

natsStatus NatsEventLoop::on_detach(void* user_data) {
  auto* self = static_cast<NatsEventLoop*>(user_data);
  self->fd_.store(-1, std::memory_order_release);
  self->reading_.store(false, std::memory_order_release);
  self->io_write_.store(false, std::memory_order_release);
  self->wake();
  return NATS_OK;
}

void NatsEventLoop::wake() noexcept {
  const std::uint64_t one = 1;
  // EAGAIN: the counter is saturated, a wake-up is pending anyway.
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

bool NatsEventLoop::write_buffered(natsConnection* nc) noexcept {
  const std::lock_guard<std::mutex> lock(write_mutex_);
  // Buffered() is -1 once closed. Only this function drains the buffer while the socket is
  // attached, so a positive count cannot drop to 0 before the write below.
  if (natsConnection_Buffered(nc) <= 0) return true;
  natsConnection_ProcessWriteEvent(nc);
  return natsConnection_Buffered(nc) <= 0;
}

void NatsEventLoop::end_of_batch() noexcept {
  // acquire: pairs with the callback's release (same thread in the usual case).
  if (!deferred_.exchange(false, std::memory_order_acq_rel)) return;
  natsConnection* nc = nc_.load(std::memory_order_acquire);
  if (nc == nullptr || fd_.load(std::memory_order_acquire) < 0) {
    // Detached (reconnecting): nats.c keeps what callers send meanwhile and resends it after the
    // reconnect through a write request of its own.
    return;
  }
  batch_writes_.fetch_add(1, std::memory_order_relaxed);
  if (!write_buffered(nc)) {
    // The socket's buffer is full: the I/O thread writes the rest when it drains.
    io_write_.store(true, std::memory_order_release);
    wake();
  }
}

void NatsEventLoop::stop() noexcept {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_release);
  wake();
  thread_.join();
}

void NatsEventLoop::run() noexcept {
  pthread_setname_np(pthread_self(), thread_name_.c_str());
  while (!stop_.load(std::memory_order_acquire)) {
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {-1, 0, 0}};
    nfds_t count = 1;
    const int fd = fd_.load(std::memory_order_acquire);
    const bool reading = reading_.load(std::memory_order_acquire);
    const bool writing = io_write_.load(std::memory_order_acquire);
    if (fd >= 0 && (reading || writing)) {
      fds[1].fd = fd;
      fds[1].events = static_cast<short>((reading ? POLLIN : 0) | (writing ? POLLOUT : 0));
      count = 2;
    }
    // No timeout: every change of state (attach, read/write requests, stop) writes the eventfd.
    if (::poll(fds, count, -1) < 0) continue;  // EINTR
    if ((fds[0].revents & POLLIN) != 0) {
      std::uint64_t drained = 0;
      [[maybe_unused]] const ssize_t n = ::read(wake_fd_, &drained, sizeof drained);
    }
    if (count < 2 || fds[1].revents == 0) continue;
    natsConnection* nc = nc_.load(std::memory_order_acquire);
    if (nc == nullptr) continue;
    // An error or hang-up is read too: nats.c then sees the failure and starts reconnecting.
    if ((fds[1].revents & (POLLIN | POLLERR | POLLHUP)) != 0 && reading) natsConnection_ProcessReadEvent(nc);
    if ((fds[1].revents & POLLOUT) != 0 && io_write_.load(std::memory_order_acquire)) {
      io_writes_.fetch_add(1, std::memory_order_relaxed);
      if (write_buffered(nc)) io_write_.store(false, std::memory_order_release);
    }
  }
}

}  // namespace cdc
