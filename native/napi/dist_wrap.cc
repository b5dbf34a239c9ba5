// ProcessGroup handle: c10d rendezvous and collectives for data-parallel training (native/core/dist).
// Every collective blocks until all ranks join it, so each runs on a worker thread (TaskWorker) and returns a
// Promise; one call at a time per handle (c10d requires the same call order on every rank).
#include "napi/dist_wrap.h"

#include <atomic>
#include <memory>
#include <vector>

#include "common/errors.h"
#include "dist/ddp_bench.h"
#include "napi/handle.h"
#include "napi/marshal.h"
#include "napi/modules.h"

namespace instill::napi {
namespace {

using instill::dist::ProcessGroup;

Napi::FunctionReference* g_ctor = nullptr;  // the class constructor, alive for the process

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

class ProcessGroupWrap : public Handle<ProcessGroupWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineHandle(env, "ProcessGroup",
                        {InstanceAccessor<&ProcessGroupWrap::Rank>("rank"),
                         InstanceAccessor<&ProcessGroupWrap::WorldSize>("worldSize"),
                         InstanceAccessor<&ProcessGroupWrap::LocalRank>("localRank"),
                         InstanceAccessor<&ProcessGroupWrap::Backend>("backend"),
                         InstanceMethod<&ProcessGroupWrap::Barrier>("barrier"),
                         InstanceMethod<&ProcessGroupWrap::Broadcast>("broadcast"),
                         InstanceMethod<&ProcessGroupWrap::AllreduceMean>("allreduceMean"),
                         InstanceMethod<&ProcessGroupWrap::AllreduceSum>("allreduceSum"),
                         InstanceMethod<&ProcessGroupWrap::AllgatherScalars>("allgatherScalars"),
                         InstanceMethod<&ProcessGroupWrap::AllreduceMeanScalars>("allreduceMeanScalars"),
                         InstanceMethod<&ProcessGroupWrap::Stats>("stats"),
                         InstanceMethod<&ProcessGroupWrap::ResetStats>("resetStats"),
                         InstanceMethod<&ProcessGroupWrap::DdpBench>("ddpBench")});
  }

  explicit ProcessGroupWrap(const Napi::CallbackInfo& info) : Handle(info, "ProcessGroup", "no group") {
    // Only distInit() constructs these, passing the group as an External.
    if (info.Length() != 1 || !info[0].IsExternal()) {
      Napi::TypeError::New(info.Env(), "ProcessGroup: create one with distInit(options)").ThrowAsJavaScriptException();
      return;
    }
    pg_ = *info[0].As<Napi::External<std::shared_ptr<ProcessGroup>>>().Data();
  }

  // The group for another handle's call (a training call's options.processGroup): refused once disposed.
  std::shared_ptr<ProcessGroup> group(const std::string& arg) const {
    if (!pg_) throw instill::ArgumentError(arg + ": the process group was disposed");
    return pg_;
  }

 private:
  bool HasState() const override { return pg_ != nullptr; }
  void DropState() override { pg_.reset(); }

  // A synchronous query of the group.
  template <class F>
  Napi::Value Query(const Napi::CallbackInfo& info, const char* what, F f) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), what, true, Access::Shared);
      return f(info.Env(), *pg_);
    });
  }
  Napi::Value Rank(const Napi::CallbackInfo& info) {
    return Query(info, "rank", [](Napi::Env e, ProcessGroup& pg) { return Napi::Number::New(e, pg.rank()); });
  }
  Napi::Value WorldSize(const Napi::CallbackInfo& info) {
    return Query(info, "worldSize", [](Napi::Env e, ProcessGroup& pg) { return Napi::Number::New(e, pg.world_size()); });
  }
  Napi::Value LocalRank(const Napi::CallbackInfo& info) {
    return Query(info, "localRank", [](Napi::Env e, ProcessGroup& pg) { return Napi::Number::New(e, pg.local_rank()); });
  }
  Napi::Value Backend(const Napi::CallbackInfo& info) {
    return Query(info, "backend", [](Napi::Env e, ProcessGroup& pg) { return Napi::String::New(e, pg.backend()); });
  }

  // Runs body(pg) on a worker thread: one collective in flight per handle (c10d wants the same order on every rank).
  Napi::Value Collective(const Napi::CallbackInfo& info, const char* what, std::function<void(ProcessGroup&)> body,
                         TaskWorker::Finish finish) {
    Check(Env(), what);
    auto pg = pg_;
    return Run(info, what, [pg, body](const Reporter&) { body(*pg); }, std::move(finish), /*grad=*/false);
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      return Collective(info, "barrier", [](ProcessGroup& pg) { pg.barrier(); }, nullptr);
    });
  }

  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto ts = std::make_shared<std::vector<at::Tensor>>(ArrayFromJs(info[0], "tensors", TensorFromJs, /*allow_empty=*/true));
      int root = 0;
      if (info.Length() > 1 && !info[1].IsUndefined()) root = static_cast<int>(RequireInt(info[1], "root", 0, 1 << 20));
      return Collective(
          info, "broadcast", [ts, root](ProcessGroup& pg) { pg.broadcast_(*ts, root); },
          [ts](Napi::Env env) -> Napi::Value { return TensorsToJs(env, *ts); });
    });
  }

  Napi::Value Allreduce(const Napi::CallbackInfo& info, bool mean) {
    return Guard(info, [&]() -> Napi::Value {
      auto ts = std::make_shared<std::vector<at::Tensor>>(ArrayFromJs(info[0], "tensors", TensorFromJs, /*allow_empty=*/true));
      int64_t bucket = ProcessGroup::kDefaultBucketBytes;
      if (info.Length() > 1 && info[1].IsObject())
        if (auto f = OptionalField(info[1].As<Napi::Object>(), "bucketBytes"))
          bucket = RequireInt(*f, "options.bucketBytes", 1, int64_t{1} << 40);
      return Collective(
          info, mean ? "allreduceMean" : "allreduceSum",
          [ts, bucket, mean](ProcessGroup& pg) {
            if (mean) pg.allreduce_mean_(*ts, bucket);
            else pg.allreduce_sum_(*ts, bucket);
          },
          [ts](Napi::Env env) -> Napi::Value { return TensorsToJs(env, *ts); });
    });
  }
  Napi::Value AllreduceMean(const Napi::CallbackInfo& info) { return Allreduce(info, true); }
  Napi::Value AllreduceSum(const Napi::CallbackInfo& info) { return Allreduce(info, false); }

  Napi::Value Scalars(const Napi::CallbackInfo& info, const char* what, bool gather) {
    return Guard(info, [&]() -> Napi::Value {
      auto in = std::make_shared<std::vector<double>>(RequireNumberArray(info[0], "values"));
      auto out = std::make_shared<std::vector<double>>();
      return Collective(
          info, what,
          [in, out, gather](ProcessGroup& pg) { *out = gather ? pg.allgather_scalars(*in) : pg.allreduce_mean_scalars(*in); },
          [out](Napi::Env env) -> Napi::Value { return NumbersToJs(env, *out); });
    });
  }
  Napi::Value AllgatherScalars(const Napi::CallbackInfo& info) { return Scalars(info, "allgatherScalars", true); }
  Napi::Value AllreduceMeanScalars(const Napi::CallbackInfo& info) { return Scalars(info, "allreduceMeanScalars", false); }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    return Query(info, "stats", [](Napi::Env e, ProcessGroup& pg) -> Napi::Value {
      const auto s = pg.stats();
      auto o = Napi::Object::New(e);
      o.Set("calls", static_cast<double>(s.calls));
      o.Set("buckets", static_cast<double>(s.buckets));
      o.Set("bytes", static_cast<double>(s.bytes));
      o.Set("seconds", s.seconds);
      return o;
    });
  }

  Napi::Value ResetStats(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "resetStats");
      pg_->reset_stats();
      return info.Env().Undefined();
    });
  }

  Napi::Value DdpBench(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto opts = BenchOptionsFromJs(info[0]);
      auto out = std::make_shared<instill::dist::DdpBenchResult>();
      return Collective(
          info, "ddpBench", [opts, out](ProcessGroup& pg) { *out = instill::dist::ddp_bench(&pg, opts); },
          [out](Napi::Env env) -> Napi::Value { return BenchResultToJs(env, *out); });
    });
  }

  std::shared_ptr<ProcessGroup> pg_;
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

std::shared_ptr<train::GradSync> GradSyncFromJs(const Napi::Object& options, const std::string& arg) {
  auto v = OptionalField(options, "processGroup");
  if (!v) return nullptr;
  return std::make_shared<train::GradSync>(instill::dist::make_grad_sync(ProcessGroupFromJs(*v, arg + ".processGroup")));
}

std::shared_ptr<instill::dist::ProcessGroup> ProcessGroupFromJs(const Napi::Value& v, const std::string& arg) {
  if (!g_ctor || !v.IsObject() || !v.As<Napi::Object>().InstanceOf(g_ctor->Value()))
    throw instill::ArgumentError(arg + ": expected a ProcessGroup (from distInit)");
  return ProcessGroupWrap::Unwrap(v.As<Napi::Object>())->group(arg);
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
