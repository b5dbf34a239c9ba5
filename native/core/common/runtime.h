// Facts about the running LibTorch: version, CUDA, the BLAS actually loaded, threads.
#pragma once
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

}  // namespace instill
