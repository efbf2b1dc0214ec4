// The Redis side of dedup, per event: building the key, encoding
// `SET dedup:<id> p NX GET EX 30` and decoding the reply, the service's way (resp.hpp: a reused
// buffer, hiredis' parser with object functions that do not allocate) beside hiredis' own
// (redisFormatCommandArgv, the default reply objects) for comparison.

#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <cstdlib>
#include <string>

#include "cdc/adapters/redis/resp.hpp"
#include "micro/alloc_hook.hpp"

namespace cdc::bench {
namespace {

constexpr std::string_view kPrefix = "dedup:";
constexpr std::string_view kEventId = "9000003938.0:co1:messages:msg-100000";
// The two dedup replies, alternated by the reply benchmarks: nil (first seen) and "d" (done).
constexpr std::string_view kNil = "$-1\r\n";
constexpr std::string_view kDone = "$1\r\nd\r\n";

/// What DedupStage::send does before calling hiredis: prefix + event id into a reused string.
void BM_DedupKey_Build(benchmark::State& state) {
  std::string key;
  key.reserve(256);
  AllocScope allocs;
  for (auto _ : state) {
    key.assign(kPrefix);
    key += kEventId;
    benchmark::DoNotOptimize(key.data());
  }
  allocs.report(state);
  state.SetItemsProcessed(state.iterations());
}

/// hiredis' encoding of the dedup command: one malloc'd buffer per command (freed here; in the
/// async client it is appended to the output buffer, an sds, and freed).
void BM_DedupCommand_HiredisFormat(benchmark::State& state) {
  std::string key(kPrefix);
  key += kEventId;
  const char* argv[] = {"SET", key.c_str(), "p", "NX", "GET", "EX", "30"};
  const std::size_t len[] = {3, key.size(), 1, 2, 3, 2, 2};
  std::int64_t bytes = 0;
  AllocScope allocs;
  for (auto _ : state) {
    char* cmd = nullptr;
    const int n = redisFormatCommandArgv(&cmd, 7, argv, len);
    benchmark::DoNotOptimize(cmd);
    bytes += n;
    redisFreeCommand(cmd);
  }
  allocs.report(state);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}

/// The service's encoding (resp.hpp): the same RESP bytes appended to a reused buffer.
void BM_DedupCommand_ReusedBuffer(benchmark::State& state) {
  std::string key(kPrefix);
  key += kEventId;
  std::string out;
  out.reserve(256);
  std::int64_t bytes = 0;
  AllocScope allocs;
  for (auto _ : state) {
    out.clear();
    resp_append_command(out, {"SET", key, "p", "NX", "GET", "EX", "30"});
    benchmark::DoNotOptimize(out.data());
    bytes += static_cast<std::int64_t>(out.size());
  }
  allocs.report(state);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}

/// hiredis' reply parsing for the dedup answers: nil (first seen) and "d" (duplicate).
void BM_DedupReply_HiredisReader(benchmark::State& state) {
  redisReader* reader = redisReaderCreate();
  bool flip = false;
  AllocScope allocs;
  for (auto _ : state) {
    const std::string_view in = flip ? kDone : kNil;
    flip = !flip;
    redisReaderFeed(reader, in.data(), in.size());
    void* reply = nullptr;
    redisReaderGetReply(reader, &reply);
    benchmark::DoNotOptimize(reply);
    freeReplyObject(reply);
  }
  allocs.report(state);
  redisReaderFree(reader);
  state.SetItemsProcessed(state.iterations());
}

/// The service's reply decoding (RespReader: hiredis' parser, our object functions).
void BM_DedupReply_RespReader(benchmark::State& state) {
  RespReader reader;
  bool flip = false;
  AllocScope allocs;
  for (auto _ : state) {
    const std::string_view in = flip ? kDone : kNil;
    flip = !flip;
    reader.feed(in.data(), in.size());
    const RedisReply* reply = nullptr;
    benchmark::DoNotOptimize(reader.next(reply));
    benchmark::DoNotOptimize(reply);
  }
  allocs.report(state);
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_DedupKey_Build)->Name("DedupKey/build");
BENCHMARK(BM_DedupCommand_HiredisFormat)->Name("DedupCommand/hiredis_format");
BENCHMARK(BM_DedupCommand_ReusedBuffer)->Name("DedupCommand/reused_buffer");
BENCHMARK(BM_DedupReply_HiredisReader)->Name("DedupReply/hiredis_reader");
BENCHMARK(BM_DedupReply_RespReader)->Name("DedupReply/resp_reader");

}  // namespace
}  // namespace cdc::bench
