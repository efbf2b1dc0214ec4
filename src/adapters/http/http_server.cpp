#include "cdc/adapters/http/http_server.hpp"

#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <list>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "cdc/core/log.hpp"
#include "cdc/pipeline/link.hpp"

namespace cdc {
namespace {

// Below the hard limit MHD enforces (max_connections), so a probe's connection still gets in
// while the oldest idle ones are being closed.
constexpr unsigned kEvictHeadroom = 16;
// Request bodies are read and dropped (no route takes one); a longer one closes the connection.
constexpr std::size_t kMaxBody = 64 * 1024;

/// The listening socket, bound exclusively: SO_REUSEADDR lets a restart bind over connections
/// in TIME_WAIT, and on Linux never lets two listeners share a port; SO_REUSEPORT (which would)
/// is not set.
int listen_exclusive(const std::string& bind, int port, int& bound_port) {
  const std::string where = bind + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(bind.empty() ? nullptr : bind.c_str(), service.c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) throw std::runtime_error("metrics: cannot bind " + where + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, &freeaddrinfo);
  const int fd = ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, found->ai_protocol);
  if (fd < 0) throw std::runtime_error("metrics: cannot bind " + where + ": socket: " + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd, 512) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::runtime_error("metrics: cannot bind " + where + ": " + std::strerror(err) +
                             (err == EADDRINUSE ? " (another process serves this port)" : ""));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  bound_port = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                          : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return fd;
}

void mhd_log(void*, const char* fmt, va_list ap) {
  char buf[256];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  std::string_view text(buf);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  log::debug("http server", {{"detail", text}});
}

}  // namespace

struct HttpServer::Impl {
  /// One open connection, owned by `conns` (its address is MHD's socket context).
  struct Conn {
    int fd = -1;
    std::int64_t deadline_ns = 0;  ///< headers due by then (when not in a request)
    bool in_request = false;       ///< headers received, response not yet sent
    bool closing = false;          ///< shut down by us; MHD closes it on its next look
    std::size_t body_bytes = 0;    ///< of the current request (MHD's thread only)
  };

  std::vector<HttpRoute> routes;
  HttpServerOptions options;
  MHD_Daemon* daemon = nullptr;

  std::mutex mutex;
  std::condition_variable cv;
  std::list<Conn> conns;  // guarded by mutex; oldest first
  bool stop = false;      // guarded by mutex
  std::thread reaper;

  /// Ends a connection from outside MHD's thread: MHD sees the shutdown as the peer leaving and
  /// closes the descriptor itself (after its CLOSED notification, which needs this mutex), so
  /// the descriptor cannot be reused under us. Called with mutex held.
  static void close_locked(Conn& c) {
    if (c.closing) return;
    c.closing = true;
    ::shutdown(c.fd, SHUT_RDWR);
  }

  void reap() {
    pthread_setname_np(pthread_self(), "cdc-http-reap");
    std::unique_lock<std::mutex> lock(mutex);
    while (!stop) {
      const std::int64_t now = now_ns();
      std::int64_t next = 0;
      for (Conn& c : conns) {
        if (c.in_request || c.closing) continue;
        if (now >= c.deadline_ns) {
          close_locked(c);
        } else if (next == 0 || c.deadline_ns < next) {
          next = c.deadline_ns;
        }
      }
      // No connection waiting for headers: sleep until one arrives (idle costs nothing).
      if (next == 0) cv.wait(lock);
      else cv.wait_for(lock, std::chrono::nanoseconds(next - now));
    }
  }

  static void on_connection(void* cls, MHD_Connection* connection, void** socket_context,
                            MHD_ConnectionNotificationCode code) {
    auto* self = static_cast<Impl*>(cls);
    std::lock_guard<std::mutex> lock(self->mutex);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
      Conn c;
      c.fd = info != nullptr ? info->connect_fd : -1;
      c.deadline_ns = now_ns() + self->options.header_timeout.count() * 1'000'000;
      self->conns.push_back(c);
      *socket_context = &self->conns.back();
      // Past the soft limit: make room by closing the oldest connections not in a request.
      const std::size_t soft = self->options.max_connections > 2 * kEvictHeadroom
                                   ? self->options.max_connections - kEvictHeadroom
                                   : self->options.max_connections;
      std::size_t open = 0;
      for (const Conn& x : self->conns) open += x.closing ? 0 : 1;
      for (auto it = self->conns.begin(); open > soft && it != self->conns.end(); ++it) {
        if (it->in_request || it->closing || &*it == &self->conns.back()) continue;
        close_locked(*it);
        --open;
      }
      self->cv.notify_one();
      return;
    }
    // MHD_CONNECTION_NOTIFY_CLOSED
    auto* conn = static_cast<Conn*>(*socket_context);
    if (conn == nullptr) return;
    for (auto it = self->conns.begin(); it != self->conns.end(); ++it) {
      if (&*it == conn) {
        self->conns.erase(it);
        break;
      }
    }
    *socket_context = nullptr;
  }

  static void on_completed(void* cls, MHD_Connection* connection, void**, MHD_RequestTerminationCode) {
    auto* self = static_cast<Impl*>(cls);
    const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (info == nullptr || info->socket_context == nullptr) return;
    std::lock_guard<std::mutex> lock(self->mutex);
    auto* conn = static_cast<Conn*>(info->socket_context);
    conn->in_request = false;
    conn->body_bytes = 0;
    // The next request on this connection gets a fresh header_timeout.
    conn->deadline_ns = now_ns() + self->options.header_timeout.count() * 1'000'000;
    self->cv.notify_one();
  }

  static MHD_Result answer(MHD_Connection* connection, int status, const std::string& content_type,
                           const std::string& body, bool allow) {
    MHD_Response* response =
        MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
    if (response == nullptr) return MHD_NO;
    if (!content_type.empty()) MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type.c_str());
    if (allow) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    const MHD_Result rc = MHD_queue_response(connection, static_cast<unsigned>(status), response);
    MHD_destroy_response(response);
    return rc;
  }

  static MHD_Result on_request(void* cls, MHD_Connection* connection, const char* url, const char* method, const char*,
                               const char*, std::size_t* upload_size, void** request_context) {
    auto* self = static_cast<Impl*>(cls);
    if (*request_context == nullptr) {
      // First call for this request: its headers are in, the header deadline no longer applies.
      *request_context = self;
      const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
      if (info != nullptr && info->socket_context != nullptr) {
        std::lock_guard<std::mutex> lock(self->mutex);
        static_cast<Conn*>(info->socket_context)->in_request = true;
      }
      // Answered on the last call, once MHD has seen the whole request: answered earlier, MHD
      // would close the connection and drop pipelined requests.
      return MHD_YES;
    }
    if (*upload_size > 0) {
      // A body nobody wants (no route takes one): read and dropped, up to a bound, so that an
      // endless upload cannot hold a connection in a request for ever.
      const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
      if (info == nullptr || info->socket_context == nullptr) return MHD_NO;
      auto* conn = static_cast<Conn*>(info->socket_context);
      conn->body_bytes += *upload_size;  // MHD's thread only
      *upload_size = 0;
      return conn->body_bytes > kMaxBody ? MHD_NO : MHD_YES;
    }
    const HttpRoute* route = nullptr;
    for (const HttpRoute& r : self->routes) {
      if (r.path == url) route = &r;
    }
    if (route == nullptr) return answer(connection, 404, "text/plain; charset=utf-8", "not found\n", false);
    const std::string_view m(method);
    if (m != MHD_HTTP_METHOD_GET && m != MHD_HTTP_METHOD_HEAD) {
      return answer(connection, 405, "text/plain; charset=utf-8", "method not allowed\n", true);
    }
    HttpResponse r;
    try {
      r = route->handler();
    } catch (const std::exception& e) {
      r = HttpResponse{500, "text/plain; charset=utf-8", std::string("internal error: ") + e.what() + "\n"};
    }
    // HEAD: MHD sends the headers (Content-Length included) and leaves the body out.
    return answer(connection, r.status, r.content_type, r.body, false);
  }
};

HttpServer::HttpServer(const std::string& bind, int port, std::vector<HttpRoute> routes, HttpServerOptions options)
    : impl_(std::make_unique<Impl>()), port_(port) {
  if (options.max_connections < 4) throw std::invalid_argument("http: max_connections must be at least 4");
  if (options.idle_timeout.count() < 1) options.idle_timeout = std::chrono::seconds(1);
  impl_->routes = std::move(routes);
  impl_->options = options;
  const int fd = listen_exclusive(bind, port, port_);
  impl_->daemon = MHD_start_daemon(
      MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, nullptr, nullptr, &Impl::on_request,
      impl_.get(), MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, options.max_connections,
      MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(options.idle_timeout.count()), MHD_OPTION_NOTIFY_CONNECTION,
      &Impl::on_connection, impl_.get(), MHD_OPTION_NOTIFY_COMPLETED, &Impl::on_completed, impl_.get(),
      MHD_OPTION_EXTERNAL_LOGGER, &mhd_log, nullptr,
      // Headers of our requests are small; 32 KiB per connection bounds what a client can make
      // us hold (a longer request gets 431/400 and is closed).
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<std::size_t>(32 * 1024), MHD_OPTION_END);
  if (impl_->daemon == nullptr) {
    ::close(fd);
    throw std::runtime_error("metrics: cannot start the HTTP server on " + bind + ":" + std::to_string(port_));
  }
  impl_->reaper = std::thread([impl = impl_.get()] { impl->reap(); });
}

HttpServer::~HttpServer() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->reaper.joinable()) impl_->reaper.join();
  // Closes every connection (their CLOSED notifications run here) and the listening socket.
  MHD_stop_daemon(impl_->daemon);
}

}  // namespace cdc
