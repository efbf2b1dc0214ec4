// cdc_micro_bench: Google Benchmark entry point. The benchmarks register themselves
// (transform_bench.cpp, dedup_bench.cpp, ring_bench.cpp).
#include <benchmark/benchmark.h>

#include <cstdio>

#include "micro/sample_bodies.hpp"

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  const auto& bodies = cdc::bench::sample_bodies();
  benchmark::AddCustomContext("bodies", bodies.source);
  benchmark::AddCustomContext("body_bytes", std::to_string(bodies.small.body.size()) + " / " +
                                                std::to_string(bodies.medium.body.size()) + " / " +
                                                std::to_string(bodies.large.body.size()) + " (small / medium / large)");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
