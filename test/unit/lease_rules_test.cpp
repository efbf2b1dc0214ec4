// Partition leases: expiry by the observer's own clock, fencing, take-over and hand-over
// readiness, epochs, the lease value, the resume point of a recreated consumer; and the
// start-up check that the source stream fits ingest.partitions.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "cdc/core/config.hpp"
#include "cdc/core/lease_rules.hpp"
#include "cdc/core/partition_fit.hpp"

namespace lease = cdc::lease;

namespace {
constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kTtl = 10'000 * kMs;
constexpr std::int64_t kAckWait = 30'000 * kMs;
constexpr std::int64_t kFetchExpires = 500 * kMs;

cdc::IngestConfig partitioned(int p) {
  cdc::IngestConfig in;
  in.partitions = p;
  in.subject_layout = "cdc.{company}.{table}.{partition}";
  return in;
}
}  // namespace

TEST_CASE("a key expires after the ttl on the observer's clock, counted from when it saw the revision", "[lease]") {
  lease::Observed key;
  CHECK_FALSE(lease::expired(key, 100 * kTtl, kTtl));  // absent keys never expire
  // First seen at t = 5 s, whatever the writer's clock said when it wrote it.
  lease::observe(key, 7, 5'000 * kMs);
  CHECK_FALSE(lease::expired(key, 5'000 * kMs + kTtl - 1, kTtl));
  CHECK(lease::expired(key, 5'000 * kMs + kTtl, kTtl));
  // Seeing the same revision again does not restart the clock...
  lease::observe(key, 7, 9'000 * kMs);
  CHECK(key.seen_ns == 5'000 * kMs);
  // ...a new revision (a renewal) does.
  lease::observe(key, 8, 14'000 * kMs);
  CHECK_FALSE(lease::expired(key, 15'000 * kMs + kTtl / 2, kTtl));
  CHECK(lease::expired(key, 14'000 * kMs + kTtl, kTtl));
  lease::observe(key, 0, 30'000 * kMs);  // deleted
  CHECK_FALSE(lease::expired(key, 90'000 * kMs, kTtl));
}

TEST_CASE("the owner fences at 0.8 x ttl after the send time of its last good renewal", "[lease]") {
  CHECK(lease::renew_interval(kTtl) == 2'000 * kMs);
  CHECK(lease::fence_deadline(1'000 * kMs, kTtl) == 9'000 * kMs);
  // An observer that saw the renewal's revision at once (the earliest possible) counts it
  // expired at sent + ttl: the owner has stopped by then, with a margin of one blocked call.
  lease::Observed key;
  lease::observe(key, 3, 1'000 * kMs);
  const std::int64_t fence = lease::fence_deadline(1'000 * kMs, kTtl);
  CHECK_FALSE(lease::expired(key, fence + lease::call_timeout(kTtl), kTtl));
  CHECK(lease::call_timeout(kTtl) == 1'000 * kMs);
  CHECK(lease::call_timeout(1'000 * kMs) == 100 * kMs);  // floor for short ttls
}

TEST_CASE("a take-over fetches after AckWait, or at once when nothing can still be acked by the old owner", "[lease]") {
  const std::int64_t seen = 50'000 * kMs;
  // Messages still awaiting an ack: wait the full AckWait.
  CHECK_FALSE(lease::take_over_ready(seen, seen, kAckWait, kFetchExpires, 3, 0));
  CHECK_FALSE(lease::take_over_ready(seen, seen + kAckWait - 1, kAckWait, kFetchExpires, 3, 0));
  CHECK(lease::take_over_ready(seen, seen + kAckWait, kAckWait, kFetchExpires, 3, 0));
  // Nothing pending and no pull request open: at once.
  CHECK(lease::take_over_ready(seen, seen, kAckWait, kFetchExpires, 0, 0));
  // Nothing pending but an old pull request still open: until it can have expired.
  CHECK_FALSE(lease::take_over_ready(seen, seen + kFetchExpires - 1, kAckWait, kFetchExpires, 0, 1));
  CHECK(lease::take_over_ready(seen, seen + kFetchExpires, kAckWait, kFetchExpires, 0, 1));
  // Not read yet: only the AckWait rule.
  CHECK_FALSE(lease::take_over_ready(seen, seen + 1, kAckWait, kFetchExpires, -1, -1));
  CHECK(lease::take_over_ready(seen, seen + kAckWait, kAckWait, kFetchExpires, -1, -1));
}

TEST_CASE("a hand-over releases once fetching is idle and nothing awaits an ack, or after AckWait", "[lease]") {
  const std::int64_t stopped = 7'000 * kMs;
  CHECK_FALSE(lease::hand_over_ready(false, 0, stopped, stopped + kAckWait * 2, kAckWait));  // request open
  CHECK(lease::hand_over_ready(true, 0, stopped, stopped, kAckWait));
  CHECK_FALSE(lease::hand_over_ready(true, 4, stopped, stopped + kAckWait - 1, kAckWait));
  CHECK(lease::hand_over_ready(true, 4, stopped, stopped + kAckWait, kAckWait));
  CHECK_FALSE(lease::hand_over_ready(true, -1, stopped, stopped + 1, kAckWait));  // not read yet
}

TEST_CASE("epochs increase and are never 0", "[lease]") {
  CHECK(lease::next_epoch(0) == 1);
  CHECK(lease::next_epoch(41) == 42);
  CHECK(lease::next_epoch(0xffffffffU) == 1);
}

TEST_CASE("the lease value round-trips and anything else is refused", "[lease]") {
  lease::LeaseValue v;
  REQUIRE(lease::parse_lease(lease::lease_json("replica-1", 7), v));
  CHECK(v.owner == "replica-1");
  CHECK(v.epoch == 7);
  REQUIRE(lease::parse_lease(lease::lease_json("", 9), v));
  CHECK(v.owner.empty());
  CHECK(v.epoch == 9);
  CHECK(lease::lease_json("a\"b", 1) == "{\"owner\":\"a\\\"b\",\"epoch\":1}");
  CHECK_FALSE(lease::parse_lease("", v));
  CHECK_FALSE(lease::parse_lease("{\"owner\":1,\"epoch\":1}", v));
  CHECK_FALSE(lease::parse_lease("{\"owner\":\"x\"}", v));
  CHECK_FALSE(lease::parse_lease("{\"owner\":\"x\",\"epoch\":-1}", v));
  CHECK_FALSE(lease::parse_lease("{\"owner\":\"x\",\"epoch\":4294967296}", v));
  CHECK_FALSE(lease::parse_lease("not json", v));
}

TEST_CASE("a recreated consumer resumes after the checkpoint, from the start only without one", "[lease]") {
  CHECK(lease::resume_sequence(0, 500) == 0);      // first deployment: deliver all
  CHECK(lease::resume_sequence(120, 500) == 121);  // after what was acknowledged
  CHECK(lease::resume_sequence(500, 500) == 501);  // caught up: only what comes next
  CHECK(lease::resume_sequence(900, 40) == 0);     // the stream was recreated below the checkpoint
  // Recreated and already holding more than the old checkpoint: the checkpoint predates it.
  CHECK(lease::resume_sequence(120, 5000, 1'000, 2'000) == 0);
  CHECK(lease::resume_sequence(120, 5000, 3'000, 2'000) == 121);  // written by this stream's consumers
  CHECK(lease::resume_sequence(120, 5000, 0, 2'000) == 121);      // times unknown: the sequence rule alone
}

TEST_CASE("subject coverage follows NATS wildcards", "[partition_fit]") {
  CHECK(cdc::subject_covers("cdc.>", "cdc.*.*.3"));
  CHECK(cdc::subject_covers("cdc.*.*.*", "cdc.*.*.3"));
  CHECK(cdc::subject_covers("cdc.*.*.3", "cdc.*.*.3"));
  CHECK_FALSE(cdc::subject_covers("cdc.*.*", "cdc.*.*.3"));
  CHECK_FALSE(cdc::subject_covers("cdc.*.*.4", "cdc.*.*.3"));
  CHECK_FALSE(cdc::subject_covers("cdc.acme.*.*", "cdc.*.*.3"));
  CHECK_FALSE(cdc::subject_covers("cdc.*.*.*", "cdc.>"));
  CHECK_FALSE(cdc::subject_covers("cdc.>", "cdc"));
}

TEST_CASE("the mapping to add partitions the layout's subjects into P", "[partition_fit]") {
  CHECK(cdc::partition_mapping(partitioned(8)) ==
        "mappings = { \"cdc.*.*\": \"cdc.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(8,1,2)}}\" }");
}

TEST_CASE("a partitioned stream fits P, and every misfit names the fix", "[partition_fit]") {
  const auto in = partitioned(4);
  const std::vector<std::string> subjects{"cdc.>"};
  CHECK(cdc::partition_fit_error(in, subjects, {}).empty());  // empty stream
  CHECK(cdc::partition_fit_error(in, subjects, {"cdc.acme.messages.3", "cdc.acme.chats.0"}).empty());
  // Subjects off the layout altogether are the dead-letter path's, not a misfit.
  CHECK(cdc::partition_fit_error(in, subjects, {"other.thing"}).empty());

  // No mapping on the server: the producer's subjects are stored as they are.
  const std::string unmapped = cdc::partition_fit_error(in, subjects, {"cdc.acme.messages"});
  CHECK_THAT(unmapped, Catch::Contains("stores unpartitioned subjects (cdc.acme.messages)"));
  CHECK_THAT(unmapped, Catch::Contains(
                           "mappings = { \"cdc.*.*\": \"cdc.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(4,1,2)}}\" }"));
  CHECK_THAT(unmapped, Catch::Contains("cdc.{company}.{table}.{partition}"));
  // A mapping into more partitions than configured.
  CHECK_THAT(cdc::partition_fit_error(in, subjects, {"cdc.acme.messages.5"}),
             Catch::Contains("a partition outside 0..3"));
  // A stream that cannot store 4-token subjects.
  const std::string narrow = cdc::partition_fit_error(in, {"cdc.*.*"}, {});
  CHECK_THAT(narrow, Catch::Contains("listens on [cdc.*.*]"));
  CHECK_THAT(narrow, Catch::Contains("cdc.*.*.*"));
  CHECK_THAT(narrow, Catch::Contains("partition(4,1,2)"));
}

TEST_CASE("an unpartitioned service refuses a partitioned stream", "[partition_fit]") {
  cdc::IngestConfig in;  // P = 1, cdc.{company}.{table}
  CHECK(cdc::partition_fit_error(in, {"cdc.>"}, {"cdc.acme.messages"}).empty());
  CHECK(cdc::partition_fit_error(in, {"cdc.>"}, {}).empty());
  CHECK_THAT(cdc::partition_fit_error(in, {"cdc.>"}, {"cdc.acme.messages.2"}),
             Catch::Contains("ingest.partitions is 1 but stream cdc_events_stream stores partitioned subjects"));
}
