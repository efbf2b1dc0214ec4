#include "cdc/adapters/nats/fleet.hpp"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <vector>

#include "cdc/core/json_writer.hpp"
#include "cdc/core/lease_rules.hpp"
#include "cdc/core/log.hpp"
#include "cdc/core/metrics.hpp"
#include "cdc/core/partitions.hpp"

namespace cdc {
namespace {

using KvStorePtr = NatsHandle<kvStore, kvStore_Destroy>;
using KvEntryPtr = NatsHandle<kvEntry, kvEntry_Destroy>;

constexpr std::int64_t kNsPerMs = 1'000'000;
/// How often a partition in transition (taking over, handing over) reads its consumer.
constexpr std::int64_t kTransitionPollNs = 100 * kNsPerMs;
/// A watcher that has not shown our own member write after this long is recreated.
constexpr std::int64_t kWatcherStaleFactor = 2;  // x renew interval

/// How often the owner of partition 0 looks for unconsumed subjects.
constexpr std::int64_t kStrayIntervalNs = 30'000 * kNsPerMs;
std::atomic<std::int64_t> stray_interval_override_ms{0};  // tests only; 0 = kStrayIntervalNs

std::int64_t stray_interval_ns() noexcept {
  const std::int64_t ms = stray_interval_override_ms.load(std::memory_order_relaxed);
  return ms > 0 ? ms * kNsPerMs : kStrayIntervalNs;
}

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::int64_t unix_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool parse_u64(std::string_view s, std::uint64_t& out) noexcept {
  const auto* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, out);
  return r.ec == std::errc() && r.ptr == end && !s.empty();
}

std::string lease_key(std::uint32_t p) { return std::string("lease.").append(std::to_string(p)); }
std::string ckpt_key(std::uint32_t p) { return std::string("ckpt.").append(std::to_string(p)); }

}  // namespace

std::string fleet_replica_id(const IngestConfig& ingest) {
  if (!ingest.replica_id.empty()) return ingest.replica_id;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "replica");
  std::string id(host);
  for (char& c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) c = '-';
  }
  return id.append("-").append(std::to_string(getpid()));
}

std::uint64_t create_partition_consumer(jsCtx* js, kvStore* kv, const Config& config, std::uint32_t partition,
                                        std::uint64_t& checkpoint) {
  const std::string name = partition_consumer(config.ingest, partition);
  // The checkpoint, read again: another replica may have written it since the caller saw it.
  kvEntry* raw = nullptr;
  const natsStatus gs = kvStore_Get(&raw, kv, ckpt_key(partition).c_str());
  KvEntryPtr e(raw);
  std::int64_t written_ns = 0;
  if (gs == NATS_OK) {
    written_ns = kvEntry_Created(e.get());
    std::uint64_t v = 0;
    const int len = kvEntry_ValueLen(e.get());
    if (len > 0 && parse_u64({static_cast<const char*>(kvEntry_Value(e.get())), static_cast<std::size_t>(len)}, v))
      checkpoint = std::max(checkpoint, v);
  } else if (gs != NATS_NOT_FOUND) {
    throw NatsError("checkpoint of partition " + std::to_string(partition) + ": " + nats_error_text(gs));
  }
  jsStreamInfo* sraw = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&sraw, js, config.ingest.stream.c_str(), nullptr, &err);
  NatsStreamInfoPtr si(sraw);
  if (s != NATS_OK) throw NatsError("stream info " + config.ingest.stream + ": " + nats_error_text(s));
  const std::uint64_t start = lease::resume_sequence(checkpoint, si->State.LastSeq, written_ns, si->Created);
  if (checkpoint > 0 && start == 0) {
    log::warn("the source stream is younger than the partition's checkpoint (recreated); consuming it from its start",
              {{"partition", static_cast<unsigned>(partition)},
               {"checkpoint", static_cast<unsigned long long>(checkpoint)},
               {"stream_last_seq", static_cast<unsigned long long>(si->State.LastSeq)}});
  }
  const std::string filter = partition_filter(config.ingest, partition);
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = name.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = config.ingest.ack_wait.count() * kNsPerMs;
  cc.MaxAckPending = config.ingest.max_ack_pending;
  cc.MaxDeliver = config.ingest.max_deliver;
  cc.MaxWaiting = 512;
  if (!filter.empty()) cc.FilterSubject = filter.c_str();
  if (start > 0) {
    cc.DeliverPolicy = js_DeliverByStartSequence;
    cc.OptStartSeq = start;
  } else {
    cc.DeliverPolicy = js_DeliverAll;
  }
  jsConsumerInfo* craw = nullptr;
  s = js_AddConsumer(&craw, js, config.ingest.stream.c_str(), &cc, nullptr, &err);
  NatsConsumerInfoPtr created(craw);
  // Another replica may have created it meanwhile (its configuration may differ in the start).
  if (s != NATS_OK && err != JSConsumerNameExistErr && err != JSConsumerExistingActiveErr) {
    throw NatsError("create consumer " + name + ": " + nats_error_text(s) + " (JetStream error " +
                    std::to_string(static_cast<int>(err)) + ")");
  }
  log::info("partition consumer ready", {{"consumer", name},
                                         {"filter", filter},
                                         {"checkpoint", static_cast<unsigned long long>(checkpoint)},
                                         {"start_seq", static_cast<unsigned long long>(start)}});
  return start;
}

/// The fleet thread's view of the bucket and what it holds. Guarded by Fleet::mutex_.
struct Fleet::State {
  struct Part {
    lease::Observed lease;    // lease.<p> as last seen
    lease::LeaseValue value;  // its value (owner "" when absent or released)
    bool held = false;        // this replica holds the lease (revision `revision`, epoch `epoch`)
    std::uint32_t epoch = 0;
    std::uint64_t revision = 0;
    std::int64_t renew_sent_ns = 0;  // send time of the last successful write of the lease
    std::int64_t next_renew_ns = 0;
    std::int64_t takeover_since = 0;  // expiry observed (taken over an expired lease); 0 = none to wait for
    bool handing_over = false;
    std::int64_t stopped_ns = 0;  // hand-over: when fetching stopped
    bool releasing = false;       // fenced for a release whose write has not succeeded yet
    // The consumer, as last read.
    bool consumer_ok = false;
    bool consumer_seen = false;  // present at least once while held (a later absence is a loss)
    bool missing_logged = false;
    bool missing = false;  // confirmed missing (consumer info said so), not yet recreated
    std::int64_t next_read_ns = 0;
    std::int64_t num_ack_pending = -1;
    std::int64_t num_waiting = -1;
    // ckpt.<p>
    std::uint64_t ckpt = 0;
    std::uint64_t ckpt_revision = 0;
  };

  std::int64_t ttl_ns = 0;
  std::int64_t renew_ns = 0;
  std::int64_t ack_wait_ns = 0;
  std::int64_t fetch_expires_ns = 0;
  std::int64_t checkpoint_ns = 0;
  std::int64_t call_timeout_ms = 0;

  jsCtx* js = nullptr;
  KvStorePtr kv;
  std::mutex watcher_mutex;  // the pointer: replaced by the fleet thread, stopped by stop()
  kvWatcher* watcher = nullptr;
  bool init_done = false;
  std::uint64_t max_revision_seen = 0;

  std::map<std::string, lease::Observed> members;
  std::vector<Part> parts;
  std::vector<std::uint32_t> desired;
  bool desired_known = false;
  bool dirty = true;
  bool released = false;
  std::int64_t next_member_ns = 0;
  std::uint64_t member_revision = 0;
  std::int64_t member_put_ns = 0;
  std::int64_t next_due_ns = 0;
  std::string started;  // RFC 3339, for the member value
  // The stray check (owner of partition 0): when next, and the set last logged.
  bool stray_owner = false;
  std::int64_t next_stray_ns = 0;
  std::string strays_logged;  // "subject=count,..." of the last error; empty = none
  bool stray_limit_logged = false;

  ~State() {
    {
      std::lock_guard<std::mutex> lock(watcher_mutex);
      if (watcher != nullptr) kvWatcher_Destroy(watcher);
      watcher = nullptr;
    }
    kv.reset();
    if (js != nullptr) jsCtx_Destroy(js);
  }
};

Fleet::Fleet(NatsConnection& nats, const Config& config)
    : config_(config),
      nats_(nats),
      id_(fleet_replica_id(config.ingest)),
      table_(static_cast<std::uint32_t>(std::max(1, config.ingest.partitions))),
      state_(std::make_unique<State>()),
      pending_(std::make_unique<std::atomic<std::int64_t>[]>(table_.size())),
      ack_pending_(std::make_unique<std::atomic<std::int64_t>[]>(table_.size())) {
  State& st = *state_;
  st.ttl_ns = config.ingest.lease_ttl.count() * kNsPerMs;
  st.renew_ns = lease::renew_interval(st.ttl_ns);
  st.ack_wait_ns = config.ingest.ack_wait.count() * kNsPerMs;
  st.fetch_expires_ns = config.ingest.fetch_expires.count() * kNsPerMs;
  st.checkpoint_ns = std::max<std::int64_t>(config.ingest.checkpoint_interval.count() * kNsPerMs, kTransitionPollNs);
  st.call_timeout_ms = lease::call_timeout(st.ttl_ns) / kNsPerMs;
  st.parts.resize(table_.size());
  for (std::uint32_t p = 0; p < table_.size(); ++p) {
    pending_[p].store(-1, std::memory_order_relaxed);
    ack_pending_[p].store(-1, std::memory_order_relaxed);
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = st.call_timeout_ms;
  natsStatus s = natsConnection_JetStream(&st.js, nats.get(), &jo);
  if (s != NATS_OK) throw NatsError("fleet jetstream context: " + nats_error_text(s));
  kvStore* kv = nullptr;
  s = js_KeyValue(&kv, st.js, config.ingest.lease_bucket.c_str());
  if (s != NATS_OK) {
    throw NatsError("lease bucket " + config.ingest.lease_bucket + ": " + nats_error_text(s) +
                    (s == NATS_NOT_FOUND ? " (created at start-up with ingest.create_streams)" : ""));
  }
  st.kv.reset(kv);
  append_rfc3339(unix_now_ns(), st.started);
}

void Fleet::attach(Metrics& metrics) {
  metrics_ = &metrics;
  metrics.fleet.resize(table_.size());
}

bool Fleet::ready() const noexcept {
  return joined_.load(std::memory_order_acquire) && missing_.load(std::memory_order_acquire) == 0;
}

std::uint32_t Fleet::owned() const noexcept { return owned_.load(std::memory_order_acquire); }

bool Fleet::backlog(ConsumerBacklog& out) const noexcept {
  if (!started_.load(std::memory_order_acquire)) return false;
  out = ConsumerBacklog{};
  for (std::uint32_t p = 0; p < table_.size(); ++p) {
    const std::int64_t pending = pending_[p].load(std::memory_order_relaxed);
    const std::int64_t acks = ack_pending_[p].load(std::memory_order_relaxed);
    if (pending > 0) out.num_pending += static_cast<std::uint64_t>(pending);
    if (acks > 0) out.num_ack_pending += acks;
  }
  return true;
}

/// Everything the fleet thread does, on the state (under Fleet::mutex_).
class Fleet::Steps {
 public:
  explicit Steps(Fleet& fleet)
      : st_(*fleet.state_),
        config_(fleet.config_),
        id_(fleet.id_),
        table_(fleet.table_),
        metrics_(fleet.metrics_),
        owned_(fleet.owned_),
        missing_(fleet.missing_),
        joined_(fleet.joined_),
        pending_(fleet.pending_.get()),
        ack_pending_(fleet.ack_pending_.get()) {}

  /// Writes member.<id>; true on success.
  bool put_member(std::int64_t now) {
    std::string value("{\"id\":");
    append_json_string(id_, value);
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    value.append(",\"host\":");
    append_json_string(host, value);
    value.append(",\"pid\":").append(std::to_string(getpid())).append(",\"started\":\"");
    value.append(st_.started).append("\"}");
    std::uint64_t rev = 0;
    const natsStatus s =
        kvStore_Put(&rev, st_.kv.get(), member_key().c_str(), value.data(), static_cast<int>(value.size()));
    if (s != NATS_OK) {
      log_limited("fleet: cannot write the member key", s);
      st_.next_member_ns = now + st_.renew_ns / 4;  // retried soon, never in a tight loop
      return false;
    }
    lease::observe(st_.members[id_], rev, now);
    st_.member_revision = rev;
    st_.member_put_ns = now;
    st_.next_member_ns = now + st_.renew_ns;
    if (!joined_.exchange(true, std::memory_order_acq_rel)) {
      log::info("fleet: joined", {{"replica_id", id_},
                                  {"bucket", config_.ingest.lease_bucket},
                                  {"partitions", static_cast<unsigned>(table_.size())},
                                  {"lease_ttl_ms", static_cast<long long>(config_.ingest.lease_ttl.count())}});
    }
    st_.dirty = true;
    return true;
  }

  std::string member_key() const { return std::string("member.").append(id_); }

  /// One entry of the watcher.
  void apply(kvEntry* e, std::int64_t now) {
    const std::string_view key = kvEntry_Key(e);
    const std::uint64_t rev = kvEntry_Revision(e);
    const kvOperation op = kvEntry_Operation(e);
    const bool gone = op == kvOp_Delete || op == kvOp_Purge;
    st_.max_revision_seen = std::max(st_.max_revision_seen, rev);
    if (key.starts_with("member.")) {
      const std::string member(key.substr(7));
      auto it = st_.members.find(member);
      if (gone) {
        if (it != st_.members.end() && it->second.revision <= rev) {
          st_.members.erase(it);
          st_.dirty = true;
        }
        return;
      }
      if (it == st_.members.end()) {
        lease::observe(st_.members[member], rev, now);
        st_.dirty = true;
      } else if (rev > it->second.revision) {
        lease::observe(it->second, rev, now);
      }
      return;
    }
    const bool is_lease = key.starts_with("lease.");
    if (!is_lease && !key.starts_with("ckpt.")) return;
    std::uint64_t p = 0;
    if (!parse_u64(key.substr(is_lease ? 6 : 5), p) || p >= table_.size()) return;
    Fleet::State::Part& part = st_.parts[p];
    if (!is_lease) {
      if (rev <= part.ckpt_revision) return;
      part.ckpt_revision = rev;
      std::uint64_t v = 0;
      const int len = kvEntry_ValueLen(e);
      if (!gone && len > 0 && parse_u64({static_cast<const char*>(kvEntry_Value(e)), static_cast<std::size_t>(len)}, v))
        part.ckpt = std::max(part.ckpt, v);
      return;
    }
    if (rev < part.lease.revision) return;  // older than what we know (our own write came first)
    lease::LeaseValue value;
    if (gone) {
      value.epoch = part.value.epoch;
      lease::observe(part.lease, 0, now);
    } else {
      const int len = kvEntry_ValueLen(e);
      if (len <= 0 ||
          !lease::parse_lease({static_cast<const char*>(kvEntry_Value(e)), static_cast<std::size_t>(len)}, value)) {
        value.owner = "?";  // not ours to read: someone else's, never free
      }
      lease::observe(part.lease, rev, now);
    }
    if (value.owner != part.value.owner || value.epoch != part.value.epoch) st_.dirty = true;
    part.value = value;
    if (part.held && rev > part.revision && (gone || value.owner != id_ || value.epoch != part.epoch)) {
      lose(static_cast<std::uint32_t>(p), gone ? "the lease was deleted" : "the lease was taken by another replica");
    }
  }

  /// Everything due at `now`; sets st_.next_due_ns.
  void tick(std::int64_t now) {
    st_.dirty = false;
    std::int64_t due = now + st_.renew_ns;
    if (now >= st_.next_member_ns) put_member(now);
    due = std::min(due, st_.next_member_ns);
    renew(now);
    // Fences: a lease not renewed in time is given up before anyone could count it expired.
    for (std::uint32_t p = 0; p < table_.size(); ++p) {
      auto& part = st_.parts[p];
      if (!part.held) continue;
      const std::int64_t fence = lease::fence_deadline(part.renew_sent_ns, st_.ttl_ns);
      if (now >= fence) {
        lose(p, "not renewed in time (fenced)");
        continue;
      }
      due = std::min({due, fence, part.next_renew_ns});
    }
    if (st_.init_done) {
      rebalance(now, due);
      for (std::uint32_t p = 0; p < table_.size(); ++p) step(p, now, due);
      check_strays(now_ns(), due);
    }
    publish_gauges();
    st_.next_due_ns = std::max(due, now + kNsPerMs);
  }

  /// release_all(): every held lease released by revision, the member key deleted.
  void release_all() {
    forget_strays();
    const std::int64_t now = now_ns();
    for (std::uint32_t p = 0; p < table_.size(); ++p) {
      if (st_.parts[p].held) fence_slot(p);
    }
    int released = 0;
    int failed = 0;
    int expiring = 0;
    for (std::uint32_t p = 0; p < table_.size(); ++p) {
      if (!st_.parts[p].held) continue;
      if (!takeover_settled(st_.parts[p], now)) {
        // Taken over, and the previous owner's messages may still be acked: released, the next
        // owner would fetch at once; left to expire, it waits the take-over rule again.
        drop(p);
        ++expiring;
        continue;
      }
      if (release(p, now, "graceful stop")) {
        ++released;
      } else {
        ++failed;
        drop(p);
      }
    }
    const natsStatus s = kvStore_Delete(st_.kv.get(), member_key().c_str());
    st_.members.erase(id_);
    st_.released = true;
    joined_.store(false, std::memory_order_release);
    publish_gauges();
    log::info("fleet: left; leases released", {{"replica_id", id_},
                                               {"released", released},
                                               {"not_released", failed},
                                               {"left_to_expire", expiring},
                                               {"member_deleted", s == NATS_OK}});
  }

  /// stop() without release: nothing may be fetched or published any more.
  void fence_all() {
    for (std::uint32_t p = 0; p < table_.size(); ++p) {
      if (st_.parts[p].held) {
        fence_slot(p);
        drop(p);
      }
    }
    forget_strays();
    publish_gauges();
  }

  /// The watcher has not shown our own member write for a while: it lost its consumer.
  [[nodiscard]] bool watcher_stale(std::int64_t now) const {
    return st_.member_revision > st_.max_revision_seen && now - st_.member_put_ns > kWatcherStaleFactor * st_.renew_ns;
  }

 private:
  void log_limited(std::string_view what, natsStatus s) {
    std::uint64_t suppressed = 0;
    if (limiter_.allow(suppressed)) {
      log::warn(what, {{"error", nats_error_text(s)}, {"suppressed", static_cast<unsigned long long>(suppressed)}});
    }
  }

  void log_limited_text(std::string_view what, const std::string& error) {
    std::uint64_t suppressed = 0;
    if (limiter_.allow(suppressed)) {
      log::warn(what, {{"error", error}, {"suppressed", static_cast<unsigned long long>(suppressed)}});
    }
  }

  std::vector<std::string> live_members(std::int64_t now, std::int64_t& due) {
    std::vector<std::string> live;
    for (auto it = st_.members.begin(); it != st_.members.end();) {
      const auto& [member, seen] = *it;
      if (!lease::expired(seen, now, st_.ttl_ns)) {
        live.push_back(member);
        due = std::min(due, seen.seen_ns + st_.ttl_ns);
        ++it;
        continue;
      }
      // A crashed member's key would count as live for lease_ttl to every replica started
      // later: removed once it has been dead for another ttl (a member that comes back writes
      // it again within ttl / 5).
      if (member != id_ && now - seen.seen_ns >= 2 * st_.ttl_ns &&
          kvStore_Delete(st_.kv.get(), std::string("member.").append(member).c_str()) == NATS_OK) {
        log::info("fleet: removed the key of a member gone for twice the lease", {{"member", member}});
        it = st_.members.erase(it);
        continue;
      }
      if (seen.seen_ns + 2 * st_.ttl_ns > now) due = std::min(due, seen.seen_ns + 2 * st_.ttl_ns);
      ++it;
    }
    return live;  // std::map: sorted, unique
  }

  void rebalance(std::int64_t now, std::int64_t& due) {
    const auto live = live_members(now, due);
    auto desired = assign_partitions(live, id_, table_.size());
    if (st_.desired_known && desired == st_.desired) return;
    if (st_.desired_known) {
      if (metrics_ != nullptr) metrics_->fleet.rebalances.inc();
      log::info("fleet: rebalance", {{"replica_id", id_},
                                     {"members", static_cast<unsigned long long>(live.size())},
                                     {"desired", static_cast<unsigned long long>(desired.size())},
                                     {"partitions", list(desired)}});
    }
    st_.desired = std::move(desired);
    st_.desired_known = true;
  }

  static std::string list(const std::vector<std::uint32_t>& ps) {
    std::string out;
    for (const auto p : ps) out.append(out.empty() ? "" : ",").append(std::to_string(p));
    return out;
  }

  [[nodiscard]] bool desired(std::uint32_t p) const {
    return std::binary_search(st_.desired.begin(), st_.desired.end(), p);
  }

  /// One partition's next move.
  void step(std::uint32_t p, std::int64_t now, std::int64_t& due) {
    auto& part = st_.parts[p];
    auto& slot = table_.slot(p);
    const bool want = desired(p);
    if (!part.held) {
      if (!want || st_.released) return;
      const bool free = part.lease.revision == 0 || part.value.owner.empty();
      const bool expired = !free && lease::expired(part.lease, now, st_.ttl_ns);
      if (!free && !expired) {
        due = std::min(due, part.lease.seen_ns + st_.ttl_ns);
        return;
      }
      if (!acquire(p, now, expired)) return;
    }
    // Held from here.
    if (part.releasing) {
      if (!release(p, now, "hand-over")) due = std::min(due, now + kTransitionPollNs);
      return;
    }
    if (!want && !part.handing_over) {
      part.handing_over = true;
      part.stopped_ns = now;
      slot.stop_fetching.store(true, std::memory_order_release);
      table_.changed();
      log::info("fleet: handing over partition", {{"partition", static_cast<unsigned>(p)}, {"replica_id", id_}});
    } else if (want && part.handing_over) {
      part.handing_over = false;
      slot.stop_fetching.store(false, std::memory_order_release);
      table_.changed();
      log::info("fleet: hand-over cancelled, partition kept", {{"partition", static_cast<unsigned>(p)}});
    }
    const bool active = slot.epoch.load(std::memory_order_acquire) != 0;
    const bool transition = part.handing_over || (!active && part.consumer_ok);
    const bool flagged = slot.consumer_missing.load(std::memory_order_acquire);
    if (now >= part.next_read_ns || flagged) {
      read_consumer(p, now);
      part.next_read_ns = now + (transition ? kTransitionPollNs : st_.checkpoint_ns);
    }
    due = std::min(due, part.next_read_ns);
    if (part.handing_over) {
      // Nothing fetched yet (a take-over still waiting): nothing to wait for. Otherwise the
      // consumer is read again once the source is idle, so that "nothing awaits an ack" is a
      // reading taken after the last delivery, never one from before it.
      const bool idle = slot.fetch_idle.load(std::memory_order_acquire);
      if (active && idle) read_consumer(p, now);
      // A take-over still waiting for the previous owner's messages is handed on only once
      // those can no longer be acked: a released lease is fetched at once by the next owner.
      const bool ready = active
                             ? lease::hand_over_ready(idle, part.num_ack_pending, part.stopped_ns, now, st_.ack_wait_ns)
                             : takeover_settled(part, now);
      if (ready) {
        fence_slot(p);
        part.releasing = true;
        if (!release(p, now, "hand-over")) due = std::min(due, now + kTransitionPollNs);
      }
      return;
    }
    if (!active && part.consumer_ok) {
      const bool ready = takeover_settled(part, now);
      if (ready) {
        slot.stop_fetching.store(false, std::memory_order_release);
        slot.consumer_missing.store(false, std::memory_order_release);
        slot.epoch.store(part.epoch, std::memory_order_release);
        table_.changed();
        log::info("fleet: fetching partition",
                  {{"partition", static_cast<unsigned>(p)},
                   {"epoch", static_cast<unsigned>(part.epoch)},
                   {"waited_ms",
                    static_cast<long long>(part.takeover_since == 0 ? 0 : (now - part.takeover_since) / kNsPerMs)}});
        part.takeover_since = 0;
      } else {
        due = std::min(due, part.takeover_since + st_.ack_wait_ns);
      }
    }
  }

  /// Nothing of a previous owner's can still be acked (no take-over pending, or its wait over).
  [[nodiscard]] bool takeover_settled(const Fleet::State::Part& part, std::int64_t now) const {
    return part.takeover_since == 0 ||
           lease::take_over_ready(part.takeover_since, now, st_.ack_wait_ns, st_.fetch_expires_ns, part.num_ack_pending,
                                  part.num_waiting);
  }

  bool acquire(std::uint32_t p, std::int64_t now, bool expired) {
    auto& part = st_.parts[p];
    const std::uint32_t epoch = lease::next_epoch(part.value.epoch);
    const std::string value = lease::lease_json(id_, epoch);
    const std::string key = lease_key(p);
    std::uint64_t rev = 0;
    const std::int64_t sent = now_ns();
    const natsStatus s = part.lease.revision == 0 ? kvStore_Create(&rev, st_.kv.get(), key.c_str(), value.data(),
                                                                   static_cast<int>(value.size()))
                                                  : kvStore_Update(&rev, st_.kv.get(), key.c_str(), value.data(),
                                                                   static_cast<int>(value.size()), part.lease.revision);
    if (s != NATS_OK) {
      // Someone else was faster, or the bucket is unreachable: learn the current value.
      log::debug("fleet: lease not acquired", {{"partition", static_cast<unsigned>(p)}, {"error", nats_error_text(s)}});
      refresh(p, now);
      return false;
    }
    const std::string previous = part.value.owner;
    part.held = true;
    part.epoch = epoch;
    part.revision = rev;
    part.renew_sent_ns = sent;
    part.next_renew_ns = sent + st_.renew_ns;
    part.handing_over = false;
    part.releasing = false;
    part.takeover_since = expired ? now : 0;
    part.consumer_ok = false;
    part.consumer_seen = false;
    part.missing = false;
    part.missing_logged = false;
    part.next_read_ns = 0;
    part.num_ack_pending = -1;
    part.num_waiting = -1;
    part.value = lease::LeaseValue{id_, epoch};
    lease::observe(part.lease, rev, now);
    if (metrics_ != nullptr) metrics_->fleet.acquisitions.inc();
    log::info(expired ? "fleet: lease taken over (expired)" : "fleet: lease acquired",
              {{"partition", static_cast<unsigned>(p)},
               {"epoch", static_cast<unsigned>(epoch)},
               {"replica_id", id_},
               {"previous_owner", previous}});
    return true;
  }

  /// Reads lease.<p> directly (after a failed write).
  void refresh(std::uint32_t p, std::int64_t now) {
    auto& part = st_.parts[p];
    kvEntry* raw = nullptr;
    const natsStatus s = kvStore_Get(&raw, st_.kv.get(), lease_key(p).c_str());
    KvEntryPtr e(raw);
    if (s == NATS_NOT_FOUND) {
      lease::observe(part.lease, 0, now);
      part.value.owner.clear();
      return;
    }
    if (s != NATS_OK) return;
    const std::uint64_t rev = kvEntry_Revision(e.get());
    if (rev < part.lease.revision) return;
    lease::LeaseValue value;
    const int len = kvEntry_ValueLen(e.get());
    if (len <= 0 ||
        !lease::parse_lease({static_cast<const char*>(kvEntry_Value(e.get())), static_cast<std::size_t>(len)}, value)) {
      value.owner = "?";
    }
    lease::observe(part.lease, rev, now);
    part.value = value;
  }

  /// Renews every held lease whose renewal is due; stops at the first failure that is not a
  /// conflict (the bucket is unreachable: the others would wait their timeouts for nothing).
  void renew(std::int64_t now) {
    for (std::uint32_t p = 0; p < table_.size(); ++p) {
      auto& part = st_.parts[p];
      if (!part.held || now < part.next_renew_ns) continue;
      if (part.releasing) continue;  // a release is retried by step(); never renew it back
      const std::string value = lease::lease_json(id_, part.epoch);
      std::uint64_t rev = 0;
      const std::int64_t sent = now_ns();
      const natsStatus s = kvStore_Update(&rev, st_.kv.get(), lease_key(p).c_str(), value.data(),
                                          static_cast<int>(value.size()), part.revision);
      if (s == NATS_OK) {
        part.revision = rev;
        part.renew_sent_ns = sent;
        part.next_renew_ns = sent + st_.renew_ns;
        lease::observe(part.lease, rev, now);
        continue;
      }
      // A conflict, or a write that was applied but whose answer was lost? The key tells.
      kvEntry* raw = nullptr;
      const natsStatus gs = kvStore_Get(&raw, st_.kv.get(), lease_key(p).c_str());
      KvEntryPtr e(raw);
      if (gs == NATS_NOT_FOUND) {
        lose(p, "the lease was deleted");
        continue;
      }
      if (gs != NATS_OK) {
        log_limited("fleet: lease renewal failed; retrying", s);
        part.next_renew_ns = now + st_.renew_ns / 4;
        return;
      }
      const std::uint64_t current = kvEntry_Revision(e.get());
      lease::LeaseValue seen;
      const int len = kvEntry_ValueLen(e.get());
      const bool ours =
          len > 0 &&
          lease::parse_lease({static_cast<const char*>(kvEntry_Value(e.get())), static_cast<std::size_t>(len)}, seen) &&
          seen.owner == id_ && seen.epoch == part.epoch;
      if (ours && current >= part.revision) {
        part.revision = current;  // our write was applied; its answer was lost
        if (current != part.lease.revision) {
          part.renew_sent_ns = sent;
          lease::observe(part.lease, current, now);
        }
        part.next_renew_ns = now + st_.renew_ns / 4;
        continue;
      }
      lose(p, "the lease was taken by another replica");
    }
  }

  /// Writes owner "" with the held revision. True when released (or no longer ours).
  bool release(std::uint32_t p, std::int64_t now, std::string_view why) {
    auto& part = st_.parts[p];
    const std::string value = lease::lease_json("", part.epoch);
    std::uint64_t rev = 0;
    const natsStatus s = kvStore_Update(&rev, st_.kv.get(), lease_key(p).c_str(), value.data(),
                                        static_cast<int>(value.size()), part.revision);
    if (s != NATS_OK) {
      refresh(p, now);
      const bool applied = part.lease.revision > part.revision && part.value.owner.empty() &&
                           part.value.epoch == part.epoch;  // our release went through, its answer was lost
      if (!applied && part.lease.revision != part.revision) {
        lose(p, "the lease was taken by another replica");
        return true;
      }
      if (!applied) {
        log_limited("fleet: lease release failed; retrying", s);
        return false;
      }
      rev = part.lease.revision;
    }
    lease::observe(part.lease, rev, now);
    part.value = lease::LeaseValue{"", part.epoch};
    drop(p);
    if (metrics_ != nullptr) metrics_->fleet.releases.inc();
    log::info("fleet: lease released", {{"partition", static_cast<unsigned>(p)},
                                        {"epoch", static_cast<unsigned>(part.epoch)},
                                        {"reason", why},
                                        {"replica_id", id_}});
    return true;
  }

  /// Epoch 0: the source fetches nothing more for p, the publish stage publishes nothing more.
  void fence_slot(std::uint32_t p) {
    auto& slot = table_.slot(p);
    slot.epoch.store(0, std::memory_order_release);
    table_.changed();
  }

  /// No longer held (released, lost, stopped).
  void drop(std::uint32_t p) {
    auto& part = st_.parts[p];
    auto& slot = table_.slot(p);
    part.held = false;
    part.handing_over = false;
    part.releasing = false;
    part.takeover_since = 0;
    part.consumer_ok = false;
    slot.epoch.store(0, std::memory_order_release);
    slot.stop_fetching.store(false, std::memory_order_release);
    table_.changed();
    pending_[p].store(-1, std::memory_order_relaxed);
    ack_pending_[p].store(-1, std::memory_order_relaxed);
    if (metrics_ != nullptr) {
      metrics_->fleet.partition_backlog[p].set(-1);
      metrics_->fleet.checkpoint_lag[p].set(-1);
    }
  }

  void lose(std::uint32_t p, std::string_view why) {
    auto& part = st_.parts[p];
    const bool was_active = table_.slot(p).epoch.load(std::memory_order_acquire) != 0;
    fence_slot(p);
    drop(p);
    if (metrics_ != nullptr) metrics_->fleet.losses.inc();
    log::error("fleet: lease lost; the partition is fenced (nothing more fetched or published for it)",
               {{"partition", static_cast<unsigned>(p)},
                {"epoch", static_cast<unsigned>(part.epoch)},
                {"reason", why},
                {"was_fetching", was_active},
                {"replica_id", id_}});
  }

  /// Consumer info of partition p: readings, checkpoint, and the consumer created when missing.
  void read_consumer(std::uint32_t p, std::int64_t now) {
    auto& part = st_.parts[p];
    const std::string name = partition_consumer(config_.ingest, p);
    jsConsumerInfo* raw = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    natsStatus s = js_GetConsumerInfo(&raw, st_.js, config_.ingest.stream.c_str(), name.c_str(), nullptr, &err);
    NatsConsumerInfoPtr info(raw);
    if (s == NATS_NOT_FOUND || err == JSConsumerNotFoundErr || err == JSStreamNotFoundErr) {
      consumer_missing(p, name, err == JSStreamNotFoundErr);
      if (!part.consumer_ok) return;
      s = js_GetConsumerInfo(&raw, st_.js, config_.ingest.stream.c_str(), name.c_str(), nullptr, &err);
      info.reset(raw);
    }
    if (s != NATS_OK || info == nullptr) {
      log_limited("fleet: consumer info failed", s);
      return;
    }
    part.consumer_ok = true;
    part.consumer_seen = true;
    part.missing = false;
    if (part.missing_logged) {
      part.missing_logged = false;
      log::info("fleet: partition consumer present again",
                {{"partition", static_cast<unsigned>(p)}, {"consumer", name}});
    }
    table_.slot(p).consumer_missing.store(false, std::memory_order_release);
    part.num_ack_pending = info->NumAckPending;
    part.num_waiting = info->NumWaiting;
    pending_[p].store(static_cast<std::int64_t>(info->NumPending), std::memory_order_relaxed);
    ack_pending_[p].store(info->NumAckPending, std::memory_order_relaxed);
    const std::uint64_t floor = info->AckFloor.Stream;
    if (floor > part.ckpt) {
      const std::string text = std::to_string(floor);
      std::uint64_t rev = 0;
      if (kvStore_Put(&rev, st_.kv.get(), ckpt_key(p).c_str(), text.data(), static_cast<int>(text.size())) == NATS_OK) {
        part.ckpt = floor;
        part.ckpt_revision = std::max(part.ckpt_revision, rev);
      }
    }
    if (metrics_ != nullptr) {
      metrics_->fleet.partition_backlog[p].set(static_cast<std::int64_t>(info->NumPending) + info->NumAckPending);
      metrics_->fleet.checkpoint_lag[p].set(floor > part.ckpt ? static_cast<std::int64_t>(floor - part.ckpt) : 0);
    }
    (void)now;
  }

  /// The consumer of p is gone (or its stream): say so, and with create_streams create it from
  /// the checkpoint.
  void consumer_missing(std::uint32_t p, const std::string& name, bool stream_missing) {
    auto& part = st_.parts[p];
    const bool recreate = part.consumer_seen || table_.slot(p).consumer_missing.load(std::memory_order_acquire);
    part.consumer_ok = false;
    part.missing = true;
    if (!part.missing_logged) {
      part.missing_logged = true;
      if (recreate || stream_missing) {
        log::error("fleet: partition consumer missing", {{"partition", static_cast<unsigned>(p)},
                                                         {"consumer", name},
                                                         {"stream", config_.ingest.stream},
                                                         {"stream_missing", stream_missing},
                                                         {"create_streams", config_.ingest.create_streams}});
      }
    }
    if (!config_.ingest.create_streams) return;
    if (stream_missing) {
      try {
        ensure_source_stream(st_.js, config_);
      } catch (const std::exception& e) {
        log::error("fleet: cannot create the source stream", {{"stream", config_.ingest.stream}, {"error", e.what()}});
        return;
      }
    }
    std::uint64_t start = 0;
    std::uint64_t ckpt = part.ckpt;
    try {
      start = create_partition_consumer(st_.js, st_.kv.get(), config_, p, ckpt);
    } catch (const std::exception& e) {
      log_limited_text("fleet: cannot create the partition consumer", e.what());
      return;
    }
    if (ckpt > 0 && start == 0) part.ckpt = 0;  // the stream started again below the checkpoint
    part.consumer_ok = true;
    part.missing = false;
    part.missing_logged = false;
    if (recreate && metrics_ != nullptr) metrics_->fleet.consumers_recreated.inc();
    log::write(
        recreate ? log::Level::kWarn : log::Level::kInfo,
        recreate ? "fleet: partition consumer recreated from the checkpoint" : "fleet: partition consumer created",
        {{"partition", static_cast<unsigned>(p)},
         {"consumer", name},
         {"checkpoint", static_cast<unsigned long long>(ckpt)},
         {"start_seq", static_cast<unsigned long long>(start)},
         {"deliver", start > 0 ? "by_start_sequence" : "all"}});
  }

  /// With P > 1, the owner of partition 0 (one replica of the fleet) looks every stray interval,
  /// and once right after acquiring it, for stored subjects no partition consumer takes (the
  /// broker's mapping only maps subjects of the layout's shape, the rest is stored as published
  /// and would wait unconsumed): cdc_consumer_unconsumed_messages, and one error per change of the
  /// set. Off the hot path (the fleet thread); bounded: a stream listing more than
  /// Fleet::kStrayCheckMaxSubjects subjects is checked only by its first ones, and each request
  /// waits at most the fleet's call timeout.
  void check_strays(std::int64_t now, std::int64_t& due) {
    if (table_.size() <= 1) return;  // one unfiltered consumer takes everything
    const bool owner = st_.parts[0].held && !st_.parts[0].handing_over;
    if (!owner) {
      if (st_.stray_owner) forget_strays();
      return;
    }
    if (!st_.stray_owner) {
      st_.stray_owner = true;
      st_.next_stray_ns = now;  // just acquired: look at once
    }
    if (now < st_.next_stray_ns) {
      due = std::min(due, st_.next_stray_ns);
      return;
    }
    st_.next_stray_ns = now + stray_interval_ns();
    due = std::min(due, st_.next_stray_ns);
    std::vector<StoredSubject> stored;
    std::size_t listed = 0;
    const natsStatus s =
        read_stored_subjects(st_.js, config_.ingest.stream, ">", Fleet::kStrayCheckMaxSubjects, stored, listed);
    if (s != NATS_OK) {
      log_limited("fleet: cannot list the source stream's subjects for the unconsumed-subject check", s);
      return;  // the gauge keeps its last reading
    }
    if (listed > stored.size() && !st_.stray_limit_logged) {
      st_.stray_limit_logged = true;
      log::warn("fleet: the source stream stores more subjects than the unconsumed-subject check looks at",
                {{"stream", config_.ingest.stream},
                 {"subjects", static_cast<unsigned long long>(listed)},
                 {"checked", static_cast<unsigned long long>(stored.size())}});
    }
    std::uint64_t messages = 0;
    std::size_t count = 0;
    std::string named;  // up to 5, "subject=count"
    std::string first;
    for (const auto& one : stored) {
      if (one.messages == 0 || partition_takes(config_.ingest, one.subject)) continue;
      messages += one.messages;
      if (count < 5) {
        named.append(named.empty() ? "" : ",").append(one.subject).append("=").append(std::to_string(one.messages));
        if (first.empty()) first = one.subject;
      }
      ++count;
    }
    if (metrics_ != nullptr) metrics_->fleet.unconsumed.set(static_cast<std::int64_t>(messages));
    // The set (subjects and counts) as the log names it; logged again when it changes.
    std::string set = named;
    if (count > 5) set.append(",+").append(std::to_string(count - 5));
    if (set == st_.strays_logged) return;
    st_.strays_logged = set;
    if (count == 0) {
      log::info("fleet: no more messages on subjects no partition consumer takes", {{"stream", config_.ingest.stream}});
      return;
    }
    log::error(
        "fleet: messages on subjects no partition consumer takes (off the subject layout); they are "
        "never consumed until moved",
        {{"stream", config_.ingest.stream},
         {"subjects", named},
         {"subject_count", static_cast<unsigned long long>(count)},
         {"messages", static_cast<unsigned long long>(messages)},
         {"layout", config_.ingest.subject_layout},
         {"fix", std::string("cdc-replay capture --stream ")
                     .append(config_.ingest.stream)
                     .append(" --subject '")
                     .append(first)
                     .append("' --no-meta -o strays.jsonl; cdc-replay publish strays.jsonl --subject-map '")
                     .append(first)
                     .append("=")
                     .append(producer_layout())
                     .append("' --drop-msg-id; then nats stream purge ")
                     .append(config_.ingest.stream)
                     .append(" --subject '")
                     .append(first)
                     .append("' (docs/operations.md, Partitions and replicas)")}});
  }

  /// The subject a producer publishes (the layout without its partition token, which the
  /// server mapping adds), for the fix in the log line.
  std::string producer_layout() const {
    std::string layout = config_.ingest.subject_layout;
    const std::string token = ".{partition}";
    const auto at = layout.find(token);
    if (at != std::string::npos) layout.erase(at, token.size());
    return layout;
  }

  /// Not (or no longer) the owner of partition 0: another replica reports.
  void forget_strays() {
    st_.stray_owner = false;
    st_.strays_logged.clear();
    if (metrics_ != nullptr) metrics_->fleet.unconsumed.set(0);
  }

  void publish_gauges() {
    std::uint32_t held = 0;
    std::uint32_t missing = 0;
    for (const auto& part : st_.parts) {
      if (!part.held) continue;
      ++held;
      if (part.missing) ++missing;
    }
    owned_.store(held, std::memory_order_release);
    missing_.store(missing, std::memory_order_release);
    if (metrics_ != nullptr) {
      metrics_->fleet.owned.set(held);
      metrics_->fleet.consumer_missing.set(missing);
    }
  }

  Fleet::State& st_;
  const Config& config_;
  const std::string& id_;
  PartitionTable& table_;
  Metrics* metrics_;
  std::atomic<std::uint32_t>& owned_;
  std::atomic<std::uint32_t>& missing_;
  std::atomic<bool>& joined_;
  std::atomic<std::int64_t>* pending_;
  std::atomic<std::int64_t>* ack_pending_;
  log::RateLimiter limiter_;
};
namespace {

/// A watcher over the whole bucket (last value of every key, then every change). Installed
/// unless the fleet is stopping.
natsStatus open_watcher(Fleet::State& st, const std::atomic<bool>& stopping) {
  kvWatcher* w = nullptr;
  const natsStatus s = kvStore_WatchAll(&w, st.kv.get(), nullptr);
  if (s != NATS_OK) return s;
  std::lock_guard<std::mutex> lock(st.watcher_mutex);
  if (stopping.load(std::memory_order_acquire)) {
    kvWatcher_Destroy(w);
    return NATS_ILLEGAL_STATE;
  }
  st.watcher = w;
  return NATS_OK;
}

void close_watcher(Fleet::State& st) {
  std::lock_guard<std::mutex> lock(st.watcher_mutex);
  if (st.watcher != nullptr) kvWatcher_Destroy(st.watcher);
  st.watcher = nullptr;
}

}  // namespace

void Fleet::set_stray_check_interval_for_tests(std::chrono::milliseconds interval) noexcept {
  stray_interval_override_ms.store(interval.count() > 0 ? interval.count() : 0, std::memory_order_relaxed);
}

Fleet::~Fleet() {
  stop();
  steps_.reset();
  state_.reset();
}

void Fleet::start() {
  if (steps_) return;
  steps_ = std::make_unique<Steps>(*this);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!steps_->put_member(now_ns())) {
      steps_.reset();
      throw NatsError("fleet: cannot write member." + id_ + " to the lease bucket " + config_.ingest.lease_bucket);
    }
  }
  const natsStatus s = open_watcher(*state_, stop_);
  if (s != NATS_OK) {
    steps_.reset();
    throw NatsError("fleet: cannot watch the lease bucket " + config_.ingest.lease_bucket + ": " + nats_error_text(s));
  }
  thread_ = std::thread([this] { run(); });
  started_.store(true, std::memory_order_release);
}

void Fleet::run() noexcept {
  pthread_setname_np(pthread_self(), "cdc-fleet");
  State& st = *state_;
  while (!stop_.load(std::memory_order_acquire)) {
    kvWatcher* w = nullptr;
    {
      std::lock_guard<std::mutex> lock(st.watcher_mutex);
      w = st.watcher;
    }
    const std::int64_t wait_ns = std::clamp<std::int64_t>(st.next_due_ns - now_ns(), kNsPerMs, st.renew_ns);
    kvEntry* raw = nullptr;
    natsStatus s = NATS_TIMEOUT;
    if (w != nullptr) {
      // The one blocking wait of the thread: a change in the bucket or the next due step.
      s = kvWatcher_Next(&raw, w, wait_ns / kNsPerMs);
    }
    KvEntryPtr entry(raw);
    std::unique_lock<std::mutex> lock(mutex_);
    if (w == nullptr) {
      cv_.wait_for(lock, std::chrono::nanoseconds(wait_ns), [this] { return stop_.load(std::memory_order_acquire); });
    }
    if (stop_.load(std::memory_order_acquire)) break;
    if (st.released) {
      // Left the fleet (release_all): nothing more to do until stop().
      close_watcher(st);
      cv_.wait(lock, [this] { return stop_.load(std::memory_order_acquire); });
      break;
    }
    std::int64_t now = now_ns();
    try {
      if (w != nullptr && s == NATS_OK) {
        if (entry) {
          steps_->apply(entry.get(), now);
        } else if (!st.init_done) {
          st.init_done = true;  // the bucket's current values are all in: decisions may start
          st.dirty = true;
        }
      } else if (w != nullptr && s != NATS_TIMEOUT) {
        log::warn("fleet: bucket watcher failed; watching again", {{"error", nats_error_text(s)}});
        close_watcher(st);
        w = nullptr;
      }
      if (w != nullptr && steps_->watcher_stale(now)) {
        log::warn("fleet: bucket watcher shows nothing of our own writes; watching again",
                  {{"bucket", config_.ingest.lease_bucket}});
        close_watcher(st);
        w = nullptr;
      }
      if (w == nullptr) {
        const natsStatus ws = open_watcher(st, stop_);
        if (ws != NATS_OK && ws != NATS_ILLEGAL_STATE) {
          log::warn("fleet: cannot watch the lease bucket", {{"error", nats_error_text(ws)}});
        }
        now = now_ns();
      }
      if (st.dirty || now >= st.next_due_ns) steps_->tick(now);
    } catch (const std::exception& e) {
      // Allocation failure or the like: the fences still hold (checked next round).
      log::error("fleet: step failed", {{"error", e.what()}});
      st.next_due_ns = now + st.renew_ns / 4;
    }
  }
}

void Fleet::release_all() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!steps_ || state_->released) return;
  try {
    steps_->release_all();
  } catch (const std::exception& e) {
    log::error("fleet: release failed; the leases expire instead", {{"error", e.what()}});
    state_->released = true;
  }
  cv_.notify_all();
}

void Fleet::stop() noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
  if (state_) {
    std::lock_guard<std::mutex> lock(state_->watcher_mutex);
    if (state_->watcher != nullptr) kvWatcher_Stop(state_->watcher);
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  if (steps_) {
    try {
      steps_->fence_all();
    } catch (...) {
      // fence_all allocates nothing; nothing to report.
    }
  }
  joined_.store(false, std::memory_order_release);
}

}  // namespace cdc
