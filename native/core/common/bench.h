// The machine's rates that benchmarks measure themselves against: float32 matmul (the addon's matmulBench, `doctor
// --measure`, bench_train_step) and memory read bandwidth (readBandwidthBench, bench/topk.ts). Benchmark code, kept
// apart from the runtime facts (common/runtime.h) and the top-k search (select/topk.h).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>

namespace instill {

struct MatmulBenchResult {
  int64_t n = 0;
  int64_t iterations = 0;
  double seconds = 0;
  double gflops = 0;
};

// Runs n x n float32 matmuls for at least min_seconds (and at least one).
// progress(fraction) is called now and then; cancel stops early.
MatmulBenchResult matmul_bench(int64_t n, double min_seconds,
                               const std::function<void(double)>& progress = nullptr,
                               const std::atomic<bool>* cancel = nullptr);

struct BandwidthBenchResult {
  int64_t bytes = 0;
  int64_t iterations = 0;
  double seconds = 0;
  double gbps = 0;  // bytes read per second / 1e9
};

// Sums a float32 tensor of `bytes` bytes repeatedly for at least min_seconds: the read bandwidth that a
// single-query search (one pass over the pool) is bounded by.
BandwidthBenchResult read_bandwidth_bench(int64_t bytes, double min_seconds, const std::atomic<bool>* cancel = nullptr);

}  // namespace instill
