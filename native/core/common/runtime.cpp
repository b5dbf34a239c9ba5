#include "common/runtime.h"

#include <cpuid.h>
#include <dlfcn.h>
#include <link.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <string>

#include <torch/torch.h>
#include <torch/version.h>

#include "common/cpu.h"
#include "common/errors.h"
#include "common/memory.h"

namespace instill {
namespace {

std::string resolve(const char* p) {
  char buf[PATH_MAX];
  if (p && realpath(p, buf)) return buf;
  return p ? p : "";
}

int collect(struct dl_phdr_info* info, size_t, void* data) {
  auto* libs = static_cast<std::vector<std::string>*>(data);
  if (info->dlpi_name && info->dlpi_name[0]) libs->push_back(resolve(info->dlpi_name));
  return 0;
}

bool contains(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

}  // namespace

BlasInfo detect_blas() {
  std::vector<std::string> libs;
  dl_iterate_phdr(collect, &libs);
  BlasInfo info;
  info.name = "unknown";
  // Prefer the library that provides sgemm_ in this process.
  void* sym = dlsym(RTLD_DEFAULT, "sgemm_");
  if (sym) {
    Dl_info dli;
    if (dladdr(sym, &dli) && dli.dli_fname) info.path = resolve(dli.dli_fname);
  }
  if (info.path.empty()) {
    for (const auto& l : libs) {
      if (contains(l, "blas") || contains(l, "mkl") || contains(l, "blis")) {
        info.path = l;
        break;
      }
    }
  }
  const std::string& p = info.path;
  if (contains(p, "openblas")) info.name = "openblas";
  else if (contains(p, "mkl")) info.name = "mkl";
  else if (contains(p, "blis")) info.name = "blis";
  else if (contains(p, "atlas")) info.name = "atlas";
  else if (contains(p, "libblas")) { info.name = "reference"; info.reference = true; }
  else if (p.empty()) {
    // Torch may be linked statically against MKL (PyTorch wheels).
    for (const auto& l : libs) if (contains(l, "libtorch_cpu")) info.path = l;
    if (dlsym(RTLD_DEFAULT, "mkl_get_version")) info.name = "mkl";
  }
  using cfg_fn = char* (*)();
  if (auto f = reinterpret_cast<cfg_fn>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    info.config = f();
    if (info.name == "unknown" || info.name == "reference") { info.name = "openblas"; info.reference = false; }
  }
  return info;
}

RuntimeInfo runtime_info() {
  RuntimeInfo r;
  r.torch_version = TORCH_VERSION;
#ifdef INSTILL_WITH_CUDA
  r.cuda_build = true;
#endif
  r.cuda_available = torch::cuda::is_available();
  r.cuda_device_count = r.cuda_available ? static_cast<int>(torch::cuda::device_count()) : 0;
  for (int i = 0; i < r.cuda_device_count; ++i) r.cuda_devices.push_back("cuda:" + std::to_string(i));
  r.intra_op_threads = at::get_num_threads();
  r.inter_op_threads = at::get_num_interop_threads();
  r.blas = detect_blas();
  return r;
}

namespace {
std::atomic<int> g_threads{0};
}

static void set_blas_threads(int n) {
  using set_fn = void (*)(int);
  static auto f = reinterpret_cast<set_fn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (f) f(n);
}

void set_threads(int n) {
  if (n < 1 || n > 4096) throw RangeError("threads must be between 1 and 4096, got " + std::to_string(n));
  g_threads = n;
  at::set_num_threads(n);
  set_blas_threads(n);
}

int get_threads() {
  int n = g_threads.load();
  return n > 0 ? n : at::get_num_threads();
}

void apply_threads() {
  static const bool cache = CpuCache::install();  // once per process
  (void)cache;
  int n = g_threads.load();
  if (n > 0 && at::get_num_threads() != n) at::set_num_threads(n);
}

int blas_threads() {
  using get_fn = int (*)();
  static auto f = reinterpret_cast<get_fn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return f ? f() : 0;
}

bool cpu_has_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, a, b, c, d);
  const bool amx_bf16 = (d >> 22) & 1u;
  __cpuid_count(7, 1, a, b, c, d);
  const bool avx512_bf16 = (a >> 5) & 1u;
  return amx_bf16 || avx512_bf16;
#else
  return false;
#endif
}

}  // namespace instill
