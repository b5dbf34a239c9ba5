// Exact top-k glue (native/core/select): a TopkIndex handle (napi/handle.h) that keeps the pool native side, a one-shot
// topk(queries, pool, k) and readBandwidthBench (common/bench.h). Searches run on a worker thread on a snapshot of the
// index's row blocks (Access::Shared), so searches may overlap and add() during a search is safe; dispose() is refused
// meanwhile.
#include <napi.h>

#include <ATen/ATen.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "common/bench.h"
#include "common/errors.h"
#include "napi/handle.h"
#include "napi/marshal.h"
#include "napi/modules.h"
#include "select/topk.h"

namespace instill::napi {
namespace {

constexpr int64_t kMaxRows = std::numeric_limits<int32_t>::max();  // indices cross as int32

Napi::Object ResultToJs(Napi::Env env, const instill::TopkResult& r) {
  auto o = Napi::Object::New(env);
  o.Set("scores", TensorToJs(env, r.scores));
  o.Set("indices", TensorToJs(env, r.indices.to(at::kInt)));
  return o;
}

int64_t ChunkRows(const Napi::Object& opts, const std::string& arg) {
  if (auto v = OptionalField(opts, "chunkRows")) return RequireInt(*v, arg + ".chunkRows", 1, int64_t{1} << 40);
  return instill::TopkOptions().chunk_rows;
}

// Wraps a progress callback into TopkOptions::progress (throttled to ~100 events per search).
void WireProgress(instill::TopkOptions& o, const Reporter& report, bool wanted) {
  if (!wanted) return;
  auto last = std::make_shared<double>(-1.0);
  o.progress = [&report, last](double f) {
    if (f >= 1.0 || f - *last >= 0.01) {
      *last = f;
      report({{{"fraction", f}}, ""});
    }
  };
  o.cancel = report.cancel_flag();
}

class TopkIndexWrap : public Handle<TopkIndexWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineHandle(env, "TopkIndex",
                        {InstanceMethod<&TopkIndexWrap::Add>("add"),
                         InstanceMethod<&TopkIndexWrap::AddRandom>("addRandom"),
                         InstanceMethod<&TopkIndexWrap::Search>("search"),
                         InstanceAccessor<&TopkIndexWrap::Size>("size"),
                         InstanceAccessor<&TopkIndexWrap::Dim>("dim")});
  }

  explicit TopkIndexWrap(const Napi::CallbackInfo& info) : Handle(info, "TopkIndex", "not constructed") {
    try {
      auto opts = RequireObject(info[0], "options");
      auto dimV = OptionalField(opts, "dim");
      if (!dimV) throw instill::ArgumentError("options.dim: expected an integer");
      int64_t dim = RequireInt(*dimV, "options.dim", 1, int64_t{1} << 24);
      bool normalize = true;
      if (auto v = OptionalField(opts, "normalize")) normalize = RequireBool(*v, "options.normalize");
      index_ = std::make_shared<instill::TopkIndex>(dim, normalize);
    } catch (...) {
      TranslateCurrentException(info.Env()).ThrowAsJavaScriptException();
    }
  }

 private:
  bool HasState() const override { return index_ != nullptr; }
  int64_t StateBytes() const override { return index_ ? index_->bytes() : 0; }
  void DropState() override { index_.reset(); }

  void CheckGrowth(int64_t extra) {
    if (index_->size() + extra > kMaxRows)
      throw instill::RangeError("TopkIndex: at most 2147483647 rows (indices are int32), got " +
                                std::to_string(index_->size() + extra));
  }

  // add(rows: {data: Float32Array, shape: [n, dim]}): number (the new size). Copies the rows; safe during a search.
  Napi::Value Add(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "add", true, Access::Shared);
      at::Tensor rows = TensorFromJs(info[0], "rows");
      if (rows.dim() == 2) CheckGrowth(rows.size(0));
      int64_t n = index_->add(rows);
      Account(info.Env());
      return Napi::Number::New(info.Env(), static_cast<double>(n));
    });
  }

  // addRandom({rows, seed?}): Promise<number>. N(0,1) rows (normalized when the index normalizes),
  // generated natively in parallel: for benchmarks and tests.
  Napi::Value AddRandom(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "addRandom", true, Access::Shared);
      auto opts = RequireObject(info[0], "options");
      auto rowsV = OptionalField(opts, "rows");
      if (!rowsV) throw instill::ArgumentError("options.rows: expected an integer");
      int64_t n = RequireInt(*rowsV, "options.rows", 0, kMaxRows);
      uint64_t seed = 0;
      if (auto v = OptionalField(opts, "seed")) seed = RequireSeed(*v, "options.seed");
      CheckGrowth(n);
      auto index = index_;
      auto blocks = std::make_shared<std::vector<at::Tensor>>();
      return Run(info, "addRandom", [=](const Reporter&) { *blocks = index->random_blocks(n, seed); },
                 [this, blocks](Napi::Env env) -> Napi::Value {
                   CheckGrowth(0);
                   return Napi::Number::New(env, static_cast<double>(index_->add_blocks(*blocks)));
                 },
                 false, std::nullopt, Access::Shared);
    });
  }

  // search(queries: {data: Float32Array, shape: [Q, dim]}, k, {chunkRows?, onProgress?}?):
  //   Promise<{scores: [Q, k] float32, indices: [Q, k] int32}>
  Napi::Value Search(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "search", true, Access::Shared);
      at::Tensor queries = TensorFromJs(info[0], "queries");
      int64_t k = RequireInt(info[1], "k", std::numeric_limits<int32_t>::min(), kMaxRows);
      Napi::Object opts = OptionsArg(info, 2);
      int64_t chunk = ChunkRows(opts, "options");
      auto cb = OptionalFunction(opts, "onProgress", "options");
      queries = index_->prepare_queries(queries);  // argument errors surface synchronously
      auto blocks = std::make_shared<std::vector<at::Tensor>>(index_->blocks());
      instill::check_topk_args(queries, *blocks, k, chunk);
      auto result = std::make_shared<instill::TopkResult>();
      bool want_progress = cb.has_value();
      return Run(
          info, "search",
          [=](const Reporter& report) {
            instill::TopkOptions o;
            o.chunk_rows = chunk;
            WireProgress(o, report, want_progress);
            *result = instill::exact_topk(queries, *blocks, k, o);
          },
          [result](Napi::Env env) -> Napi::Value { return ResultToJs(env, *result); }, false, cb, Access::Shared);
    });
  }

  Napi::Value Size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), index_ ? static_cast<double>(index_->size()) : 0);
  }
  Napi::Value Dim(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), index_ ? static_cast<double>(index_->dim()) : 0);
  }

  std::shared_ptr<instill::TopkIndex> index_;
};

// topk(queries, pool, k, {chunkRows?, onProgress?}?): Promise<{scores, indices}>; plain dot products
// (normalize rows first for cosine). The pool is copied for the call.
Napi::Value Topk(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    at::Tensor queries = TensorFromJs(info[0], "queries");
    at::Tensor pool = TensorFromJs(info[1], "pool");
    int64_t k = RequireInt(info[2], "k", std::numeric_limits<int32_t>::min(), kMaxRows);
    Napi::Object opts = OptionsArg(info, 3);
    int64_t chunk = ChunkRows(opts, "options");
    auto cb = OptionalFunction(opts, "onProgress", "options");
    if (pool.dim() == 2 && pool.size(0) > kMaxRows) throw instill::RangeError("pool: at most 2147483647 rows");
    // Shape, dtype and k checks synchronously, so mistakes throw instead of rejecting later.
    instill::check_topk_args(queries, {pool}, k, chunk);
    auto result = std::make_shared<instill::TopkResult>();
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    bool want_progress = cb.has_value();
    return TaskWorker::Start(
        info.Env(), "instill.topk",
        [=](const Reporter& report) {
          instill::TopkOptions o;
          o.chunk_rows = chunk;
          WireProgress(o, report, want_progress);
          *result = instill::exact_topk(queries, pool, k, o);
        },
        [result](Napi::Env env) -> Napi::Value { return ResultToJs(env, *result); }, false, cb, cancel);
  });
}

// readBandwidthBench({bytes?, seconds?}): Promise<{bytes, iterations, seconds, gbps}>
Napi::Value ReadBandwidthBench(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto opts = OptionsArg(info, 0);
    int64_t bytes = int64_t{1} << 30;
    double seconds = 0.5;
    if (auto v = OptionalField(opts, "bytes")) bytes = RequireInt(*v, "options.bytes", 4, int64_t{1} << 36);
    if (auto v = OptionalField(opts, "seconds")) seconds = RequireNumber(*v, "options.seconds");
    if (seconds < 0 || seconds > 3600) throw instill::RangeError("options.seconds: must be in [0, 3600]");
    auto result = std::make_shared<instill::BandwidthBenchResult>();
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    return TaskWorker::Start(
        info.Env(), "instill.readBandwidthBench",
        [=](const Reporter& report) { *result = instill::read_bandwidth_bench(bytes, seconds, report.cancel_flag()); },
        [result](Napi::Env env) -> Napi::Value {
          auto o = Napi::Object::New(env);
          o.Set("bytes", static_cast<double>(result->bytes));
          o.Set("iterations", static_cast<double>(result->iterations));
          o.Set("seconds", result->seconds);
          o.Set("gbps", result->gbps);
          return o;
        },
        false, std::nullopt, cancel);
  });
}

}  // namespace

void InitSelect(Napi::Env env, Napi::Object exports) {
  exports.Set("TopkIndex", TopkIndexWrap::Define(env));
  exports.Set("topk", Napi::Function::New(env, Topk, "topk"));
  exports.Set("readBandwidthBench", Napi::Function::New(env, ReadBandwidthBench, "readBandwidthBench"));
}

}  // namespace instill::napi
