// Facts about the running LibTorch: version, CUDA, the BLAS actually loaded, threads.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace instill {

struct BlasInfo {
  std::string name;     // "openblas", "mkl", "blis", "reference", "unknown"
  std::string path;     // resolved path of the loaded shared object
  std::string config;   // openblas_get_config() when available
  bool reference = false;
};

struct RuntimeInfo {
  std::string torch_version;
  bool cuda_build = false;      // compiled with INSTILL_WITH_CUDA kernels
  bool cuda_available = false;  // torch::cuda::is_available()
  int cuda_device_count = 0;
  std::vector<std::string> cuda_devices;
  int intra_op_threads = 0;
  int inter_op_threads = 0;
  BlasInfo blas;
};

RuntimeInfo runtime_info();
BlasInfo detect_blas();

// Sets intra-op threads (>= 1) for this thread and remembers it for apply_threads();
// throws RangeError otherwise.
void set_threads(int n);
int get_threads();
// Applies the remembered thread count on the calling thread (OpenMP settings are per thread,
// so every worker thread calls this before it computes).
void apply_threads();

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

}  // namespace instill
