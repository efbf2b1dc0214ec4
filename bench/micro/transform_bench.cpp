// Parse + transform per event (Transformer::transform: subject split, filter, simdjson stage 1,
// the validating walk, event id, output subject and payload), and its parts that can be timed
// alone: SubjectLayout::split, the token checks, event-id/subject composition.

#include <benchmark/benchmark.h>

#include <charconv>
#include <string>

#include "cdc/core/transform.hpp"
#include "micro/alloc_hook.hpp"
#include "micro/sample_bodies.hpp"

namespace cdc::bench {
namespace {

void transform_one(benchmark::State& state, const SampleMessage& m) {
  Transformer t{TransformRules{}};
  TransformOutput out;
  // Grow the output buffers once: the steady state is what the pipeline sees (pre-grown slots).
  if (t.transform(m.subject, m.body, m.msg_id, out) != Disposition::kPublish) {
    state.SkipWithError(("not publishable: " + out.error).c_str());
    return;
  }
  AllocScope allocs;
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.transform(m.subject, m.body, m.msg_id, out));
    benchmark::ClobberMemory();
  }
  allocs.report(state);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(m.body.size()));
  state.counters["body_bytes"] = static_cast<double>(m.body.size());
  state.SetLabel(m.subject);
}

void BM_Transform_Small(benchmark::State& state) { transform_one(state, sample_bodies().small); }
void BM_Transform_Medium(benchmark::State& state) { transform_one(state, sample_bodies().medium); }
void BM_Transform_Large(benchmark::State& state) { transform_one(state, sample_bodies().large); }

/// Every line of the sample in turn: the realistic mix, skipped tables included.
void BM_Transform_SampleMix(benchmark::State& state) {
  const auto& mix = sample_bodies().mix;
  Transformer t{TransformRules{}};
  TransformOutput out;
  std::int64_t bytes = 0;
  for (const auto& m : mix) t.transform(m.subject, m.body, m.msg_id, out);  // warm-up: grow buffers
  std::size_t i = 0;
  AllocScope allocs;
  for (auto _ : state) {
    const SampleMessage& m = mix[i];
    benchmark::DoNotOptimize(t.transform(m.subject, m.body, m.msg_id, out));
    bytes += static_cast<std::int64_t>(m.body.size());
    if (++i == mix.size()) i = 0;
  }
  allocs.report(state);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
  state.SetLabel(std::to_string(mix.size()) + " messages");
}

/// A table outside the allowed set: split + filter, the body is never parsed.
void BM_Transform_SkippedTable(benchmark::State& state) {
  Transformer t{TransformRules{}};
  TransformOutput out;
  const std::string subject = "cdc.tenant_42.onboarding_log";
  const std::string& body = sample_bodies().medium.body;
  AllocScope allocs;
  for (auto _ : state) benchmark::DoNotOptimize(t.transform(subject, body, {}, out));
  allocs.report(state);
  state.SetItemsProcessed(state.iterations());
}

void BM_SubjectLayout_Split(benchmark::State& state) {
  const SubjectLayout layout("cdc.{company}.{table}");
  const std::string subject = "cdc.tenant_42.messages";
  std::string_view company, table;
  AllocScope allocs;
  for (auto _ : state) {
    benchmark::DoNotOptimize(layout.split(subject, company, table));
    benchmark::DoNotOptimize(company);
    benchmark::DoNotOptimize(table);
  }
  allocs.report(state);
  state.SetItemsProcessed(state.iterations());
}

/// Sequin's own default layout, company from the schema with a prefix stripped.
void BM_SubjectLayout_SplitSchemaLayout(benchmark::State& state) {
  const SubjectLayout layout("sequin.{database}.{schema}.{table}.{action}", "daisi_");
  const std::string subject = "sequin.daisi.daisi_tenant_42.messages.insert";
  std::string_view company, table;
  AllocScope allocs;
  for (auto _ : state) {
    benchmark::DoNotOptimize(layout.split(subject, company, table));
    benchmark::DoNotOptimize(company);
  }
  allocs.report(state);
  state.SetItemsProcessed(state.iterations());
}

/// The identity and routing strings of one messages event, from already-parsed values, with the
/// contract's token checks: "<lsn>.<idx>:<company>:messages:<pk>" and "wa.<company>.<agent>.messages.<chat>".
/// (transform() does this after its walk; this is the floor for that part.)
void BM_EventIdAndSubject_Compose(benchmark::State& state) {
  const std::string_view company = "tenant_42", agent = "agent-11", chat = "chat-33", pk = "msg-100000";
  const std::uint64_t lsn = 9000003938;
  const std::uint32_t idx = 0;
  std::string event_id, subject;
  event_id.reserve(128);
  subject.reserve(128);
  AllocScope allocs;
  for (auto _ : state) {
    event_id.clear();
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, lsn);
    event_id.append(buf, static_cast<std::size_t>(r.ptr - buf));
    event_id += '.';
    r = std::to_chars(buf, buf + sizeof buf, idx);
    event_id.append(buf, static_cast<std::size_t>(r.ptr - buf));
    event_id += ':';
    event_id += company;
    event_id += ":messages:";
    event_id += pk;
    subject.assign("wa.");
    const bool ok = is_valid_token(company) && is_valid_token(agent) && is_valid_token(chat);
    subject += company;
    subject += '.';
    subject += agent;
    subject += ".messages.";
    subject += chat;
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(event_id.data());
    benchmark::DoNotOptimize(subject.data());
  }
  allocs.report(state);
  state.SetItemsProcessed(state.iterations());
}

void BM_Token_IsValid(benchmark::State& state) {
  const std::string token = "628121721960@s.whatsapp.net-agent";  // invalid ('.' inside): full scan
  const std::string good = "agent-11-with-a-longer-name";
  for (auto _ : state) {
    benchmark::DoNotOptimize(is_valid_token(good));
    benchmark::DoNotOptimize(is_valid_token(token));
  }
  state.SetItemsProcessed(2 * state.iterations());
}

BENCHMARK(BM_Transform_Small)->Name("Transform/small");
BENCHMARK(BM_Transform_Medium)->Name("Transform/medium");
BENCHMARK(BM_Transform_Large)->Name("Transform/large");
BENCHMARK(BM_Transform_SampleMix)->Name("Transform/sample_mix");
BENCHMARK(BM_Transform_SkippedTable)->Name("Transform/skipped_table");
BENCHMARK(BM_SubjectLayout_Split)->Name("SubjectLayout/split");
BENCHMARK(BM_SubjectLayout_SplitSchemaLayout)->Name("SubjectLayout/split_schema_layout");
BENCHMARK(BM_EventIdAndSubject_Compose)->Name("EventIdAndSubject/compose");
BENCHMARK(BM_Token_IsValid)->Name("Token/is_valid");

}  // namespace
}  // namespace cdc::bench
