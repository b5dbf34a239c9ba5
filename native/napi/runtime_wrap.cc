// Runtime functions: version and build facts (instill doctor), threads, tensor marshalling checks,
// and an asynchronous matmul benchmark (the FLOP/s every benchmark reports against).
#include <ATen/CPUGeneratorImpl.h>
#include <mutex>
#include <memory>

#include "common/bench.h"
#include "common/cpu.h"
#include "common/memory.h"
#include "common/runtime.h"
#include "napi/errors.h"
#include "napi/marshal.h"
#include "napi/worker.h"

namespace instill::napi {
namespace {

Napi::Value RuntimeInfo(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto r = instill::runtime_info();
    auto o = Napi::Object::New(env);
    o.Set("torchVersion", r.torch_version);
    o.Set("cudaBuild", r.cuda_build);
    o.Set("cudaAvailable", r.cuda_available);
    o.Set("cudaDevices", StringsToJs(env, r.cuda_devices));
    o.Set("intraOpThreads", instill::get_threads());
    o.Set("interOpThreads", r.inter_op_threads);
    o.Set("blasThreads", instill::blas_threads());
    instill::CpuCache::install();  // what the worker threads use (apply_threads installs it too)
    o.Set("cpuAllocator", instill::CpuCache::name());
    o.Set("cpuBf16", instill::cpu_has_bf16());
    auto blas = Napi::Object::New(env);
    blas.Set("name", r.blas.name);
    blas.Set("path", r.blas.path);
    blas.Set("config", r.blas.config);
    blas.Set("reference", r.blas.reference);
    o.Set("blas", blas);
    o.Set("addonVersion", INSTILL_VERSION);
    o.Set("napiVersion", NAPI_VERSION);
    return o;
  });
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    instill::set_threads(static_cast<int>(RequireInt(info[0], "threads", 1, 4096)));
    return info.Env().Undefined();
  });
}

// manualSeed(seed): reseeds LibTorch's default CPU generator (dropout draws from it), e.g. per data-parallel rank.
// Call it between native calls: a call running on a worker thread draws from the same generator.
Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const auto seed = static_cast<uint64_t>(RequireInt(info[0], "seed", 0, int64_t{1} << 52));
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
    return info.Env().Undefined();
  });
}

Napi::Value GetThreads(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), instill::get_threads()); });
}

// tensorRoundTrip(t): JS -> tensor -> JS, through a real copy (clone) in LibTorch.
Napi::Value TensorRoundTrip(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    at::Tensor t = TensorFromJs(info[0], "tensor");
    return TensorToJs(info.Env(), t.clone());
  });
}

// matmulBench({n, seconds, onProgress?}) -> Promise<{n, iterations, seconds, gflops}>
Napi::Value MatmulBench(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto opts = RequireObject(info[0], "options");
    int64_t n = 512;
    double seconds = 0.5;
    if (auto v = OptionalField(opts, "n")) n = RequireInt(*v, "options.n", 1, 16384);
    if (auto v = OptionalField(opts, "seconds")) seconds = RequireNumber(*v, "options.seconds");
    if (seconds < 0 || seconds > 3600) throw instill::RangeError("options.seconds: must be in [0, 3600]");
    auto cb = OptionalFunction(opts, "onProgress", "options");
    auto result = std::make_shared<instill::MatmulBenchResult>();
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    return TaskWorker::Start(
        info.Env(), "instill.matmulBench",
        [=](const Reporter& report) {
          *result = instill::matmul_bench(
              n, seconds, [&](double f) { report({{{"fraction", f}}, ""}); }, report.cancel_flag());
        },
        [=](Napi::Env env) -> Napi::Value {
          auto o = Napi::Object::New(env);
          o.Set("n", static_cast<double>(result->n));
          o.Set("iterations", static_cast<double>(result->iterations));
          o.Set("seconds", result->seconds);
          o.Set("gflops", result->gflops);
          return o;
        },
        /*grad_enabled=*/false, cb, cancel);
  });
}

}  // namespace

void InitRuntime(Napi::Env env, Napi::Object exports) {
  exports.Set("runtimeInfo", Napi::Function::New(env, RuntimeInfo, "runtimeInfo"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed, "manualSeed"));
  exports.Set("getThreads", Napi::Function::New(env, GetThreads, "getThreads"));
  exports.Set("tensorRoundTrip", Napi::Function::New(env, TensorRoundTrip, "tensorRoundTrip"));
  exports.Set("matmulBench", Napi::Function::New(env, MatmulBench, "matmulBench"));
}

}  // namespace instill::napi
