#include "fake_redis.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "cdc/pipeline/link.hpp"

namespace cdc::mocks {
namespace {

[[noreturn]] void throw_errno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

std::uint64_t hash_key(std::string_view key) noexcept {
  // FNV-1a then a 64-bit finaliser (splitmix): cheap, and good enough to spread dedup keys.
  std::uint64_t h = 1469598103934665603ULL;
  for (const char c : key) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h | 1;  // 0 marks an empty slot
}

/// Key hash -> one-byte value ('\0' = deleted). Linear probing, grows at half load.
class KeyTable {
 public:
  explicit KeyTable(std::size_t expected) {
    std::size_t cap = 1024;
    while (cap < expected * 2) cap <<= 1;
    keys_.assign(cap, 0);
    values_.assign(cap, 0);
  }
  /// Current value (0 = absent).
  [[nodiscard]] char get(std::uint64_t h) const noexcept {
    const std::size_t mask = keys_.size() - 1;
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      if (keys_[i] == h) return values_[i];
      if (keys_[i] == 0) return 0;
    }
  }
  void put(std::uint64_t h, char v) {
    if ((used_ + 1) * 2 > keys_.size()) grow();
    const std::size_t mask = keys_.size() - 1;
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      if (keys_[i] == h) {
        values_[i] = v;
        return;
      }
      if (keys_[i] == 0) {
        keys_[i] = h;
        values_[i] = v;
        ++used_;
        return;
      }
    }
  }

 private:
  void grow() {
    std::vector<std::uint64_t> keys(keys_.size() * 2, 0);
    std::vector<char> values(keys.size(), 0);
    keys.swap(keys_);
    values.swap(values_);
    used_ = 0;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] != 0) put(keys[i], values[i]);
    }
  }
  std::vector<std::uint64_t> keys_;
  std::vector<char> values_;
  std::size_t used_ = 0;
};

enum class Reply : std::uint8_t { kOk, kNil, kPong, kInt0, kInt1, kValue, kError, kRaw };

struct PendingReply {
  std::int64_t due_ns;
  Reply reply;
  char value;       // kValue: the one-byte bulk string
  std::string raw;  // kRaw: the encoded reply (a function call's array or error)
};

struct Connection {
  int fd = -1;
  std::string in;                     // unparsed input
  std::string out;                    // bytes not yet written
  std::vector<PendingReply> pending;  // FIFO: [head, size)
  std::size_t head = 0;
};

void append_reply(const PendingReply& r, std::string& out) {
  switch (r.reply) {
    case Reply::kOk: out += "+OK\r\n"; break;
    case Reply::kNil: out += "$-1\r\n"; break;
    case Reply::kPong: out += "+PONG\r\n"; break;
    case Reply::kInt0: out += ":0\r\n"; break;
    case Reply::kInt1: out += ":1\r\n"; break;
    case Reply::kValue:
      out += "$1\r\n";
      out += r.value;
      out += "\r\n";
      break;
    case Reply::kError: out += "-ERR unsupported command\r\n"; break;
    case Reply::kRaw: out += r.raw; break;
  }
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != b[i]) return false;
  }
  return true;
}

}  // namespace

struct FakeRedis::Impl {
  std::int64_t rtt_ns;
  int listen_fd = -1;
  int wake_pipe[2] = {-1, -1};
  std::uint16_t port = 0;
  std::atomic<bool> stop{false};
  KeyTable table;
  std::vector<std::unique_ptr<Connection>> conns;
  std::atomic<std::uint64_t> commands{0}, sets{0}, set_hits{0}, dels{0}, connections{0}, errors{0}, fcalls{0};
  bool functions_loaded = false;          // FUNCTION LOAD seen (and no FUNCTION FLUSH since)
  std::vector<std::string_view> arg_buf;  // the command being parsed (views into its input)

  Impl(std::int64_t rtt, std::size_t expected) : rtt_ns(rtt), table(expected) { arg_buf.resize(kMaxArgs); }
  static constexpr std::size_t kMaxArgs = 4096;

  /// SET key v NX GET's effect and reply byte (0: nil).
  char set_nx_get(std::string_view key, char v) {
    const std::uint64_t h = hash_key(key);
    const char old = table.get(h);
    if (old != 0) bump(set_hits);
    else table.put(h, v);
    return old;
  }

  /// FUNCTION LOAD / FLUSH and FCALL of the service's library (cdc_dedup_v1: claim, mark).
  PendingReply function(const std::string_view* a, std::size_t argc) {
    PendingReply r{0, Reply::kOk, 0, {}};
    if (iequals(a[0], "FUNCTION")) {
      if (argc >= 2 && iequals(a[1], "LOAD")) functions_loaded = true;
      else if (argc >= 2 && iequals(a[1], "FLUSH")) functions_loaded = false;
      else r.reply = Reply::kError;
      return r;
    }
    bump(fcalls);
    r.reply = Reply::kRaw;
    std::size_t n = 0;
    const auto parsed = std::from_chars(a[2].data(), a[2].data() + a[2].size(), n);
    if (parsed.ec != std::errc() || n + 3 > argc) {
      r.raw = "-ERR Number of keys can't be greater than number of args\r\n";
      return r;
    }
    const std::string_view name = a[1];
    const bool claim = name == "cdc_dedup_v1_claim";
    if (!functions_loaded || (!claim && name != "cdc_dedup_v1_mark")) {
      r.raw = "-ERR Function not found\r\n";
      return r;
    }
    if (!claim) {
      for (std::size_t i = 0; i < n; ++i) {
        bump(sets);
        table.put(hash_key(a[3 + i]), 'd');
      }
      r.raw = std::string(":").append(std::to_string(n)).append("\r\n");
      return r;
    }
    r.raw = std::string("*").append(std::to_string(n)).append("\r\n");
    for (std::size_t i = 0; i < n; ++i) {
      bump(sets);
      const char old = set_nx_get(a[3 + i], 'p');
      if (old == 0) {
        r.raw += "$-1\r\n";
      } else {
        r.raw += "$1\r\n";
        r.raw += old;
        r.raw += "\r\n";
      }
    }
    return r;
  }

  void bump(std::atomic<std::uint64_t>& c) noexcept {
    // relaxed: single writer (the server thread); readers want a rough value.
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  /// Executes one command (args are views into the connection's input).
  PendingReply execute(const std::string_view* args, std::size_t argc) {
    bump(commands);
    PendingReply r{0, Reply::kError, 0, {}};
    if (argc == 0) return r;
    const std::string_view cmd = args[0];
    if ((iequals(cmd, "FUNCTION") && argc >= 2) || (iequals(cmd, "FCALL") && argc >= 3)) return function(args, argc);
    if (iequals(cmd, "SET") && argc >= 3) {
      bump(sets);
      bool nx = false, xx = false, get = false;
      for (std::size_t i = 3; i < argc; ++i) {
        if (iequals(args[i], "NX")) nx = true;
        else if (iequals(args[i], "XX")) xx = true;
        else if (iequals(args[i], "GET")) get = true;
        else if (iequals(args[i], "EX") || iequals(args[i], "PX")) ++i;  // expiry not modelled
      }
      const std::uint64_t h = hash_key(args[1]);
      const char old = table.get(h);
      const bool exists = old != 0;
      if (exists) bump(set_hits);
      const bool write = !(nx && exists) && !(xx && !exists);
      if (write) table.put(h, args[2].empty() ? '?' : args[2][0]);
      if (get) {
        r.reply = exists ? Reply::kValue : Reply::kNil;
        r.value = old;
      } else {
        r.reply = write ? Reply::kOk : Reply::kNil;
      }
      return r;
    }
    if (iequals(cmd, "DEL") && argc >= 2) {
      bump(dels);
      int removed = 0;
      for (std::size_t i = 1; i < argc; ++i) {
        const std::uint64_t h = hash_key(args[i]);
        if (table.get(h) != 0) {
          table.put(h, 0);
          ++removed;
        }
      }
      r.reply = removed > 0 ? Reply::kInt1 : Reply::kInt0;  // the service sends one key per DEL
      return r;
    }
    if (iequals(cmd, "SELECT")) {
      r.reply = Reply::kOk;
      return r;
    }
    if (iequals(cmd, "PING")) {
      r.reply = Reply::kPong;
      return r;
    }
    bump(errors);
    return r;
  }

  /// Parses every complete RESP command in c.in; false on a protocol error (drop the client).
  bool parse(Connection& c, std::int64_t now) {
    std::size_t pos = 0;
    const std::string_view in(c.in);
    while (pos < in.size()) {
      if (in[pos] != '*') return false;
      std::size_t p = pos + 1;
      const auto read_len = [&](std::size_t& at, long& value) -> int {  // 1 ok, 0 incomplete, -1 bad
        const std::size_t eol = in.find("\r\n", at);
        if (eol == std::string_view::npos) return 0;
        const auto res = std::from_chars(in.data() + at, in.data() + eol, value);
        if (res.ec != std::errc() || res.ptr != in.data() + eol) return -1;
        at = eol + 2;
        return 1;
      };
      long argc = 0;
      int st = read_len(p, argc);
      if (st <= 0) {
        if (st < 0) return false;
        break;
      }
      if (argc < 0 || static_cast<std::size_t>(argc) > kMaxArgs) return false;
      bool complete = true;
      for (long a = 0; a < argc; ++a) {
        if (p >= in.size()) {
          complete = false;
          break;
        }
        if (in[p] != '$') return false;
        ++p;
        long len = 0;
        st = read_len(p, len);
        if (st < 0 || len < 0) return false;
        if (st == 0 || p + static_cast<std::size_t>(len) + 2 > in.size()) {
          complete = false;
          break;
        }
        arg_buf[static_cast<std::size_t>(a)] = in.substr(p, static_cast<std::size_t>(len));
        p += static_cast<std::size_t>(len) + 2;
      }
      if (!complete) break;
      PendingReply r = execute(arg_buf.data(), static_cast<std::size_t>(argc));
      r.due_ns = now + rtt_ns;
      c.pending.push_back(std::move(r));
      pos = p;
    }
    c.in.erase(0, pos);
    return true;
  }

  /// Moves due replies to the output buffer and writes what the socket takes.
  bool flush(Connection& c, std::int64_t now) {
    while (c.head < c.pending.size() && c.pending[c.head].due_ns <= now) append_reply(c.pending[c.head++], c.out);
    if (c.head == c.pending.size()) {
      c.pending.clear();
      c.head = 0;
    }
    while (!c.out.empty()) {
      const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        return false;
      }
      c.out.erase(0, static_cast<std::size_t>(n));
    }
    return true;
  }
};

FakeRedis::FakeRedis(std::chrono::microseconds rtt, std::size_t expected_keys)
    : impl_(new Impl(std::chrono::duration_cast<std::chrono::nanoseconds>(rtt).count(), expected_keys)) {
  std::unique_ptr<Impl> guard(impl_);
  impl_->listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (impl_->listen_fd < 0) throw_errno("fake redis: socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(impl_->listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw_errno("fake redis: bind");
  if (::listen(impl_->listen_fd, 16) != 0) throw_errno("fake redis: listen");
  socklen_t len = sizeof addr;
  ::getsockname(impl_->listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  impl_->port = ntohs(addr.sin_port);
  if (::pipe2(impl_->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) throw_errno("fake redis: pipe");
  thread_ = std::thread([this] { run(); });
  guard.release();
}

FakeRedis::~FakeRedis() {
  impl_->stop.store(true, std::memory_order_relaxed);
  const char b = 1;
  [[maybe_unused]] const auto n = ::write(impl_->wake_pipe[1], &b, 1);
  if (thread_.joinable()) thread_.join();
  for (auto& c : impl_->conns) ::close(c->fd);
  ::close(impl_->listen_fd);
  ::close(impl_->wake_pipe[0]);
  ::close(impl_->wake_pipe[1]);
  delete impl_;
}

std::string FakeRedis::address() const { return "127.0.0.1:" + std::to_string(impl_->port); }

FakeRedis::Stats FakeRedis::stats() const noexcept {
  Stats s;
  s.commands = impl_->commands.load(std::memory_order_relaxed);
  s.sets = impl_->sets.load(std::memory_order_relaxed);
  s.set_hits = impl_->set_hits.load(std::memory_order_relaxed);
  s.dels = impl_->dels.load(std::memory_order_relaxed);
  s.connections = impl_->connections.load(std::memory_order_relaxed);
  s.errors = impl_->errors.load(std::memory_order_relaxed);
  s.fcalls = impl_->fcalls.load(std::memory_order_relaxed);
  return s;
}

void FakeRedis::run() noexcept {
  pthread_setname_np(pthread_self(), "fake-redis");
  Impl& s = *impl_;
  std::vector<pollfd> fds;
  char buf[65536];
  while (!s.stop.load(std::memory_order_relaxed)) {
    fds.clear();
    fds.push_back({s.listen_fd, POLLIN, 0});
    fds.push_back({s.wake_pipe[0], POLLIN, 0});
    std::int64_t next_due = -1;
    for (const auto& c : s.conns) {
      fds.push_back({c->fd, static_cast<short>(POLLIN | (c->out.empty() ? 0 : POLLOUT)), 0});
      if (c->head < c->pending.size()) {
        const std::int64_t due = c->pending[c->head].due_ns;
        next_due = next_due < 0 ? due : std::min(next_due, due);
      }
    }
    timespec ts{1, 0};
    if (next_due >= 0) {
      const std::int64_t wait = std::max<std::int64_t>(0, next_due - now_ns());
      ts.tv_sec = wait / 1'000'000'000;
      ts.tv_nsec = wait % 1'000'000'000;
    }
    const int ready = ::ppoll(fds.data(), fds.size(), &ts, nullptr);
    if (ready < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      while (true) {
        const int fd = ::accept4(s.listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto c = std::make_unique<Connection>();
        c->fd = fd;
        c->in.reserve(sizeof buf * 2);
        c->out.reserve(sizeof buf);
        c->pending.reserve(16384);
        s.conns.push_back(std::move(c));
        s.bump(s.connections);
      }
    }
    const std::int64_t now = now_ns();
    // fds[2 + i] belongs to conns[i] (accepted connections were appended after the poll set).
    for (std::size_t i = 0; i < s.conns.size(); ++i) {
      Connection& c = *s.conns[i];
      bool alive = true;
      if (i + 2 < fds.size() && (fds[i + 2].revents & (POLLIN | POLLHUP | POLLERR))) {
        while (true) {
          const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
          if (n > 0) {
            c.in.append(buf, static_cast<std::size_t>(n));
            if (static_cast<std::size_t>(n) < sizeof buf) break;
            continue;
          }
          if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) alive = false;
          break;
        }
        if (alive) alive = s.parse(c, now);
      }
      if (alive) alive = s.flush(c, now);
      if (!alive) {
        ::close(c.fd);
        s.conns.erase(s.conns.begin() + static_cast<std::ptrdiff_t>(i));
        fds.erase(fds.begin() + static_cast<std::ptrdiff_t>(i + 2));
        --i;
      }
    }
  }
}

}  // namespace cdc::mocks
