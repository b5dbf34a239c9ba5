// ProcessGroup handle: c10d rendezvous and collectives for data-parallel training (native/core/dist).
// Every collective blocks until all ranks join it, so each runs on a worker thread (TaskWorker) and returns a
// Promise; one call at a time per handle (c10d requires the same call order on every rank).
#include "napi/dist_wrap.h"

#include <atomic>
#include <memory>
#include <vector>

#include "common/errors.h"
#include "dist/ddp_bench.h"
#include "napi/errors.h"
#include "napi/marshal.h"
#include "napi/modules.h"
#include "napi/worker.h"

namespace instill::napi {
namespace {

using instill::dist::ProcessGroup;

Napi::FunctionReference* g_ctor = nullptr;  // the class constructor, alive for the process

std::vector<double> RequireNumbers(const Napi::Value& v, const std::string& arg) {
  if (!v.IsArray()) throw instill::ArgumentError(arg + ": expected an array of numbers");
  auto a = v.As<Napi::Array>();
  std::vector<double> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) out[i] = RequireNumber(a.Get(i), arg + "[" + std::to_string(i) + "]");
  return out;
}

std::vector<at::Tensor> RequireTensors(const Napi::Value& v, const std::string& arg) {
  if (!v.IsArray()) throw instill::ArgumentError(arg + ": expected an array of tensors");
  auto a = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(TensorFromJs(a.Get(i), arg + "[" + std::to_string(i) + "]"));
  return out;
}

Napi::Array NumbersToJs(Napi::Env env, const std::vector<double>& v) {
  auto a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), v[i]);
  return a;
}

Napi::Array TensorsToJs(Napi::Env env, const std::vector<at::Tensor>& v) {
  auto a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), TensorToJs(env, v[i].contiguous()));
  return a;
}

instill::dist::DistConfig ConfigFromJs(const Napi::Value& v) {
  instill::dist::DistConfig c = instill::dist::config_from_env();
  if (v.IsUndefined() || v.IsNull()) return c;
  auto o = RequireObject(v, "options");
  if (auto f = OptionalField(o, "masterAddr")) c.master_addr = RequireString(*f, "options.masterAddr");
  if (auto f = OptionalField(o, "masterPort")) c.master_port = static_cast<int>(RequireInt(*f, "options.masterPort", 1, 65535));
  if (auto f = OptionalField(o, "worldSize")) c.world_size = static_cast<int>(RequireInt(*f, "options.worldSize", 1, 1 << 20));
  if (auto f = OptionalField(o, "rank")) c.rank = static_cast<int>(RequireInt(*f, "options.rank", 0, 1 << 20));
  if (auto f = OptionalField(o, "localRank")) c.local_rank = static_cast<int>(RequireInt(*f, "options.localRank", 0, 1 << 20));
  if (auto f = OptionalField(o, "backend")) c.backend = RequireString(*f, "options.backend");
  if (auto f = OptionalField(o, "timeoutSeconds")) c.timeout_s = RequireNumber(*f, "options.timeoutSeconds");
  c.validate();
  return c;
}

Napi::Object ConfigToJs(Napi::Env env, const instill::dist::DistConfig& c) {
  auto o = Napi::Object::New(env);
  o.Set("masterAddr", c.master_addr);
  o.Set("masterPort", c.master_port);
  o.Set("worldSize", c.world_size);
  o.Set("rank", c.rank);
  o.Set("localRank", c.local_rank);
  o.Set("backend", c.backend);
  o.Set("timeoutSeconds", c.timeout_s);
  return o;
}

instill::dist::DdpBenchOptions BenchOptionsFromJs(const Napi::Value& v) {
  instill::dist::DdpBenchOptions b;
  if (v.IsUndefined() || v.IsNull()) return b;
  auto o = RequireObject(v, "options");
  if (auto f = OptionalField(o, "width")) b.width = RequireInt(*f, "options.width", 1, 16384);
  if (auto f = OptionalField(o, "layers")) b.layers = RequireInt(*f, "options.layers", 1, 64);
  if (auto f = OptionalField(o, "globalBatch")) b.global_batch = RequireInt(*f, "options.globalBatch", 1, 1 << 24);
  if (auto f = OptionalField(o, "steps")) b.steps = RequireInt(*f, "options.steps", 1, 100000);
  if (auto f = OptionalField(o, "bucketBytes")) b.bucket_bytes = RequireInt(*f, "options.bucketBytes", 1, int64_t{1} << 40);
  return b;
}

Napi::Object BenchResultToJs(Napi::Env env, const instill::dist::DdpBenchResult& r) {
  auto o = Napi::Object::New(env);
  o.Set("steps", static_cast<double>(r.steps));
  o.Set("params", static_cast<double>(r.params));
  o.Set("localBatch", static_cast<double>(r.local_batch));
  o.Set("seconds", r.seconds);
  o.Set("allreduceSeconds", r.allreduce_seconds);
  o.Set("finalLoss", r.final_loss);
  return o;
}

class ProcessGroupWrap : public Napi::ObjectWrap<ProcessGroupWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ProcessGroup",
                       {InstanceAccessor<&ProcessGroupWrap::Rank>("rank"),
                        InstanceAccessor<&ProcessGroupWrap::WorldSize>("worldSize"),
                        InstanceAccessor<&ProcessGroupWrap::LocalRank>("localRank"),
                        InstanceAccessor<&ProcessGroupWrap::Backend>("backend"),
                        InstanceAccessor<&ProcessGroupWrap::Disposed>("disposed"),
                        InstanceMethod<&ProcessGroupWrap::Barrier>("barrier"),
                        InstanceMethod<&ProcessGroupWrap::Broadcast>("broadcast"),
                        InstanceMethod<&ProcessGroupWrap::AllreduceMean>("allreduceMean"),
                        InstanceMethod<&ProcessGroupWrap::AllreduceSum>("allreduceSum"),
                        InstanceMethod<&ProcessGroupWrap::AllgatherScalars>("allgatherScalars"),
                        InstanceMethod<&ProcessGroupWrap::AllreduceMeanScalars>("allreduceMeanScalars"),
                        InstanceMethod<&ProcessGroupWrap::Stats>("stats"),
                        InstanceMethod<&ProcessGroupWrap::ResetStats>("resetStats"),
                        InstanceMethod<&ProcessGroupWrap::DdpBench>("ddpBench"),
                        InstanceMethod<&ProcessGroupWrap::Dispose>("dispose")});
  }

  explicit ProcessGroupWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessGroupWrap>(info) {
    // Only distInit() constructs these, passing the group as an External.
    if (info.Length() != 1 || !info[0].IsExternal()) {
      Napi::TypeError::New(info.Env(), "ProcessGroup: create one with distInit(options)").ThrowAsJavaScriptException();
      return;
    }
    pg_ = *info[0].As<Napi::External<std::shared_ptr<ProcessGroup>>>().Data();
  }

  std::shared_ptr<ProcessGroup> group(const char* what) const {
    if (!pg_) throw instill::ArgumentError(std::string("ProcessGroup.") + what + ": the process group was disposed");
    return pg_;
  }

 private:
  Napi::Value Rank(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), group("rank")->rank()); });
  }
  Napi::Value WorldSize(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), group("worldSize")->world_size()); });
  }
  Napi::Value LocalRank(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), group("localRank")->local_rank()); });
  }
  Napi::Value Backend(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), group("backend")->backend()); });
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !pg_); }

  // Runs body(pg) on a worker thread; one call in flight per handle.
  Napi::Value Run(const Napi::CallbackInfo& info, const char* what, std::function<void(ProcessGroup&)> body,
                  TaskWorker::Finish finish) {
    auto pg = group(what);
    if (busy_->exchange(true))
      throw instill::ArgumentError(std::string("ProcessGroup.") + what +
                                   ": another collective is in flight on this group; await it first");
    auto busy = busy_;
    return TaskWorker::Start(
        info.Env(), "instill.dist", [pg, body](const Reporter&) { body(*pg); }, std::move(finish),
        /*grad_enabled=*/false, std::nullopt, nullptr, info.This().As<Napi::Object>(), [busy] { busy->store(false); });
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      return Run(info, "barrier", [](ProcessGroup& pg) { pg.barrier(); }, nullptr);
    });
  }

  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto ts = std::make_shared<std::vector<at::Tensor>>(RequireTensors(info[0], "tensors"));
      int root = 0;
      if (info.Length() > 1 && !info[1].IsUndefined()) root = static_cast<int>(RequireInt(info[1], "root", 0, 1 << 20));
      return Run(
          info, "broadcast", [ts, root](ProcessGroup& pg) { pg.broadcast_(*ts, root); },
          [ts](Napi::Env env) -> Napi::Value { return TensorsToJs(env, *ts); });
    });
  }

  Napi::Value Allreduce(const Napi::CallbackInfo& info, bool mean) {
    auto ts = std::make_shared<std::vector<at::Tensor>>(RequireTensors(info[0], "tensors"));
    int64_t bucket = ProcessGroup::kDefaultBucketBytes;
    if (info.Length() > 1 && info[1].IsObject()) {
      if (auto f = OptionalField(info[1].As<Napi::Object>(), "bucketBytes"))
        bucket = RequireInt(*f, "options.bucketBytes", 1, int64_t{1} << 40);
    }
    return Run(
        info, mean ? "allreduceMean" : "allreduceSum",
        [ts, bucket, mean](ProcessGroup& pg) {
          if (mean)
            pg.allreduce_mean_(*ts, bucket);
          else
            pg.allreduce_sum_(*ts, bucket);
        },
        [ts](Napi::Env env) -> Napi::Value { return TensorsToJs(env, *ts); });
  }
  Napi::Value AllreduceMean(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value { return Allreduce(info, true); });
  }
  Napi::Value AllreduceSum(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value { return Allreduce(info, false); });
  }

  Napi::Value AllgatherScalars(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto in = std::make_shared<std::vector<double>>(RequireNumbers(info[0], "values"));
      auto out = std::make_shared<std::vector<double>>();
      return Run(
          info, "allgatherScalars", [in, out](ProcessGroup& pg) { *out = pg.allgather_scalars(*in); },
          [out](Napi::Env env) -> Napi::Value { return NumbersToJs(env, *out); });
    });
  }

  Napi::Value AllreduceMeanScalars(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto in = std::make_shared<std::vector<double>>(RequireNumbers(info[0], "values"));
      auto out = std::make_shared<std::vector<double>>();
      return Run(
          info, "allreduceMeanScalars", [in, out](ProcessGroup& pg) { *out = pg.allreduce_mean_scalars(*in); },
          [out](Napi::Env env) -> Napi::Value { return NumbersToJs(env, *out); });
    });
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      const auto s = group("stats")->stats();
      auto o = Napi::Object::New(info.Env());
      o.Set("calls", static_cast<double>(s.calls));
      o.Set("buckets", static_cast<double>(s.buckets));
      o.Set("bytes", static_cast<double>(s.bytes));
      o.Set("seconds", s.seconds);
      return o;
    });
  }

  Napi::Value ResetStats(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      if (busy_->load()) throw instill::ArgumentError("ProcessGroup.resetStats: a collective is in flight");
      group("resetStats")->reset_stats();
      return info.Env().Undefined();
    });
  }

  Napi::Value DdpBench(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto opts = BenchOptionsFromJs(info[0]);
      auto out = std::make_shared<instill::dist::DdpBenchResult>();
      return Run(
          info, "ddpBench", [opts, out](ProcessGroup& pg) { *out = instill::dist::ddp_bench(&pg, opts); },
          [out](Napi::Env env) -> Napi::Value { return BenchResultToJs(env, *out); });
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      if (busy_->load()) throw instill::ArgumentError("ProcessGroup.dispose: a collective is in flight; await it first");
      pg_.reset();
      return info.Env().Undefined();
    });
  }

  std::shared_ptr<ProcessGroup> pg_;
  std::shared_ptr<std::atomic<bool>> busy_ = std::make_shared<std::atomic<bool>>(false);
};

// distInit(options?) -> Promise<ProcessGroup>: rendezvous (blocking, on a worker thread).
Napi::Value DistInit(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto cfg = ConfigFromJs(info.Length() > 0 ? info[0] : info.Env().Undefined());
    std::string device = "cpu";
    if (info.Length() > 0 && info[0].IsObject())
      if (auto f = OptionalField(info[0].As<Napi::Object>(), "device")) device = RequireString(*f, "options.device");
    auto pg = std::make_shared<std::shared_ptr<ProcessGroup>>();
    return TaskWorker::Start(
        info.Env(), "instill.distInit", [cfg, device, pg](const Reporter&) { *pg = std::make_shared<ProcessGroup>(cfg, device); },
        [pg](Napi::Env env) -> Napi::Value {
          auto ext = Napi::External<std::shared_ptr<ProcessGroup>>::New(env, new std::shared_ptr<ProcessGroup>(*pg),
                                                                       [](Napi::Env, std::shared_ptr<ProcessGroup>* p) { delete p; });
          return g_ctor->New({ext});
        },
        /*grad_enabled=*/false);
  });
}

Napi::Value DistConfigFromEnv(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return ConfigToJs(info.Env(), instill::dist::config_from_env()); });
}

Napi::Value DistBackendAvailable(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    return Napi::Boolean::New(info.Env(), instill::dist::backend_available(RequireString(info[0], "backend")));
  });
}

// ddpBenchLocal(options) -> Promise<result>: the same workload in one process without a group.
Napi::Value DdpBenchLocal(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto opts = BenchOptionsFromJs(info.Length() > 0 ? info[0] : info.Env().Undefined());
    auto out = std::make_shared<instill::dist::DdpBenchResult>();
    return TaskWorker::Start(
        info.Env(), "instill.ddpBench", [opts, out](const Reporter&) { *out = instill::dist::ddp_bench(nullptr, opts); },
        [out](Napi::Env env) -> Napi::Value { return BenchResultToJs(env, *out); }, /*grad_enabled=*/false);
  });
}

}  // namespace

std::shared_ptr<instill::dist::ProcessGroup> ProcessGroupFromJs(const Napi::Value& v, const std::string& arg) {
  if (!g_ctor || !v.IsObject() || !v.As<Napi::Object>().InstanceOf(g_ctor->Value()))
    throw instill::ArgumentError(arg + ": expected a ProcessGroup (from distInit)");
  return ProcessGroupWrap::Unwrap(v.As<Napi::Object>())->group("use");
}

void InitDist(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = ProcessGroupWrap::Define(env);
  if (!g_ctor) g_ctor = new Napi::FunctionReference(Napi::Persistent(ctor));
  exports.Set("ProcessGroup", ctor);
  exports.Set("distInit", Napi::Function::New(env, DistInit, "distInit"));
  exports.Set("distConfigFromEnv", Napi::Function::New(env, DistConfigFromEnv, "distConfigFromEnv"));
  exports.Set("distBackendAvailable", Napi::Function::New(env, DistBackendAvailable, "distBackendAvailable"));
  exports.Set("ddpBenchLocal", Napi::Function::New(env, DdpBenchLocal, "ddpBenchLocal"));
}

}  // namespace instill::napi
