#include "common/bench.h"

#include <algorithm>
#include <chrono>
#include <string>

#include <torch/torch.h>

#include "common/errors.h"

namespace instill {

MatmulBenchResult matmul_bench(int64_t n, double min_seconds, const std::function<void(double)>& progress,
                               const std::atomic<bool>* cancel) {
  if (n < 1 || n > 16384) throw RangeError("matmul size n must be in [1, 16384], got " + std::to_string(n));
  if (!(min_seconds >= 0) || min_seconds > 3600) throw RangeError("seconds must be in [0, 3600]");
  torch::NoGradGuard no_grad;
  auto a = torch::randn({n, n});
  auto b = torch::randn({n, n});
  auto c = torch::mm(a, b);  // warm-up
  MatmulBenchResult res;
  res.n = n;
  auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  double last_report = -1;
  do {
    torch::mm_out(c, a, b);
    ++res.iterations;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (progress && min_seconds > 0 && elapsed - last_report > 0.05) {
      last_report = elapsed;
      progress(std::min(1.0, elapsed / min_seconds));
    }
    if (cancel && cancel->load()) break;
  } while (elapsed < min_seconds);
  res.seconds = elapsed;
  res.gflops = 2.0 * n * n * n * res.iterations / elapsed / 1e9;
  if (progress) progress(1.0);
  return res;
}


BandwidthBenchResult read_bandwidth_bench(int64_t bytes, double min_seconds, const std::atomic<bool>* cancel) {
  c10::NoGradGuard no_grad;
  if (bytes < 4 || bytes > (int64_t{1} << 36)) throw RangeError("bytes must be in [4, 2^36], got " + std::to_string(bytes));
  if (!(min_seconds >= 0) || min_seconds > 3600) throw RangeError("seconds must be in [0, 3600]");
  const int64_t n = bytes / 4;
  at::Tensor x = at::ones({n}, at::kFloat);
  volatile float sink = x.sum().item<float>();  // warm-up: pages touched
  BandwidthBenchResult r;
  r.bytes = n * 4;
  auto t0 = std::chrono::steady_clock::now();
  do {
    sink = x.sum().item<float>();
    ++r.iterations;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (cancel && cancel->load()) break;
  } while (r.seconds < min_seconds);
  (void)sink;
  r.gbps = static_cast<double>(r.bytes) * r.iterations / r.seconds / 1e9;
  return r;
}

}  // namespace instill
