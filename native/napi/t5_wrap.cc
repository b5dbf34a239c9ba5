// The T5 model handle (src/model/model.ts wraps it): one Napi::ObjectWrap per model. Every method heavier than
// a field read runs on a worker thread through TaskWorker (Promise + progress), with the object Ref()'d until it
// settles. A model runs one call at a time: a second call while one is in flight, or any call after dispose(),
// throws an Error that says so. Native memory (weights, optimizer state) is reported to V8 with
// AdjustExternalMemory. All math lives in native/core (t5/, lora/, train/).
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "common/errors.h"
#include "io/peft.h"
#include "lora/lora.h"
#include "napi/errors.h"
#include "napi/marshal.h"
#include "napi/modules.h"
#include "dist/ddp_bench.h"
#include "napi/dist_wrap.h"
#include "napi/worker.h"
#include "t5/config.h"
#include "t5/generate.h"
#include "t5/model.h"
#include "t5/pretrained.h"
#include "train/optim.h"
#include "train/t5_task.h"
#include "train/trainer.h"

namespace instill::napi {
namespace {

struct ModelState {
  t5::T5ForConditionalGeneration model{nullptr};
  std::unique_ptr<train::Optimizer> optimizer;
  bool has_optim = false;
  train::OptimConfig optim_cfg;
  bool has_lora = false;
  lora::LoraConfig lora_cfg;

  int64_t bytes() const {
    int64_t n = 0;
    if (model) {
      for (const auto& p : model->parameters(true)) n += p.numel() * static_cast<int64_t>(p.element_size());
      for (const auto& b : model->buffers(true)) n += b.numel() * static_cast<int64_t>(b.element_size());
    }
    if (optimizer) n += optimizer->state_bytes();
    return n;
  }

  std::vector<std::pair<std::string, at::Tensor>> trainable() const {
    std::vector<std::pair<std::string, at::Tensor>> v;
    for (auto& kv : model->named_parameters(true))
      if (kv.value().requires_grad()) v.emplace_back(kv.key(), kv.value());
    return v;
  }

  // (Re)creates the optimizer over the current trainable parameters (fresh state, step 0).
  void rebuild_optimizer() {
    optimizer.reset();
    if (!has_optim) return;
    auto params = trainable();
    if (params.empty()) throw ArgumentError("setOptimizer: the model has no trainable parameters");
    optimizer = std::make_unique<train::Optimizer>(std::move(params), optim_cfg);
  }
};

train::OptimConfig OptimFromJs(const Napi::Value& v) {
  auto o = RequireObject(v, "optimizer");
  train::OptimConfig c;
  auto name = OptionalField(o, "name");
  if (!name) throw ArgumentError("optimizer.name: expected 'adamw' or 'adafactor'");
  c.name = RequireString(*name, "optimizer.name");
  auto lr = OptionalField(o, "lr");
  if (!lr) throw ArgumentError("optimizer.lr: expected a number");
  c.lr = RequireNumber(*lr, "optimizer.lr");
  auto total = OptionalField(o, "totalSteps");
  if (!total) throw ArgumentError("optimizer.totalSteps: expected an integer");
  c.total_steps = RequireInt(*total, "optimizer.totalSteps", 1, int64_t{1} << 40);
  if (auto x = OptionalField(o, "weightDecay")) c.weight_decay = RequireNumber(*x, "optimizer.weightDecay");
  if (auto x = OptionalField(o, "betas")) {
    if (!x->IsArray() || x->As<Napi::Array>().Length() != 2)
      throw ArgumentError("optimizer.betas: expected [beta1, beta2]");
    auto a = x->As<Napi::Array>();
    c.beta1 = RequireNumber(a.Get(uint32_t(0)), "optimizer.betas[0]");
    c.beta2 = RequireNumber(a.Get(uint32_t(1)), "optimizer.betas[1]");
  }
  if (auto x = OptionalField(o, "eps")) c.eps = RequireNumber(*x, "optimizer.eps");
  if (auto x = OptionalField(o, "schedule")) c.schedule = RequireString(*x, "optimizer.schedule");
  if (auto x = OptionalField(o, "warmupSteps")) c.warmup_steps = RequireInt(*x, "optimizer.warmupSteps", 0, int64_t{1} << 40);
  if (auto x = OptionalField(o, "clipNorm")) c.clip_norm = RequireNumber(*x, "optimizer.clipNorm");
  if (auto x = OptionalField(o, "gradAccumulation"))
    c.grad_accumulation = RequireInt(*x, "optimizer.gradAccumulation", 1, 1 << 20);
  if (auto x = OptionalField(o, "scaleParameter")) c.scale_parameter = RequireBool(*x, "optimizer.scaleParameter");
  c.validate();
  return c;
}

at::Tensor OptionalTensor(const Napi::Object& o, const char* key, const std::string& arg) {
  auto v = OptionalField(o, key);
  if (!v) return at::Tensor();
  return TensorFromJs(*v, arg + "." + key);
}

train::Batch BatchFromJs(const Napi::Value& v, const std::string& arg, const t5::T5Config& cfg, bool labels_required,
                         at::Device device) {
  auto o = RequireObject(v, arg);
  train::Batch b = train::check_batch(cfg, OptionalTensor(o, "inputIds", arg), OptionalTensor(o, "attentionMask", arg),
                                      OptionalTensor(o, "labels", arg), arg, labels_required, device);
  if (auto x = OptionalField(o, "lossScale")) {
    b.loss_scale = RequireNumber(*x, arg + ".lossScale");
    if (!(b.loss_scale >= 0) || !std::isfinite(b.loss_scale))
      throw RangeError(arg + ".lossScale: expected a finite number >= 0, got " + std::to_string(b.loss_scale));
  }
  return b;
}

std::vector<train::Batch> BatchesFromJs(const Napi::Value& v, const std::string& arg, const t5::T5Config& cfg,
                                        bool labels_required, at::Device device) {
  if (!v.IsArray()) throw ArgumentError(arg + ": expected an array of batches");
  auto a = v.As<Napi::Array>();
  if (a.Length() == 0) throw ArgumentError(arg + ": empty");
  std::vector<train::Batch> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i)
    out.push_back(BatchFromJs(a.Get(i), arg + "[" + std::to_string(i) + "]", cfg, labels_required, device));
  return out;
}

Napi::Array NumbersToJs(Napi::Env env, const std::vector<double>& v) {
  auto a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), v[i]);
  return a;
}

class T5Wrap : public Napi::ObjectWrap<T5Wrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "T5Native",
                       {InstanceMethod<&T5Wrap::Load>("load"),
                        InstanceMethod<&T5Wrap::InitModel>("init"),
                        InstanceMethod<&T5Wrap::Config>("config"),
                        InstanceMethod<&T5Wrap::ParameterCount>("parameterCount"),
                        InstanceMethod<&T5Wrap::SetOptimizer>("setOptimizer"),
                        InstanceMethod<&T5Wrap::AddLora>("addLora"),
                        InstanceMethod<&T5Wrap::MergeLora>("mergeLora"),
                        InstanceMethod<&T5Wrap::TrainSteps>("trainSteps"),
                        InstanceMethod<&T5Wrap::Cancel>("cancel"),
                        InstanceMethod<&T5Wrap::EvalLoss>("evalLoss"),
                        InstanceMethod<&T5Wrap::Generate>("generate"),
                        InstanceMethod<&T5Wrap::ScoreOptions>("scoreOptions"),
                        InstanceMethod<&T5Wrap::Save>("save"),
                        InstanceMethod<&T5Wrap::SaveAdapter>("saveAdapter"),
                        InstanceMethod<&T5Wrap::LoadAdapter>("loadAdapter"),
                        InstanceMethod<&T5Wrap::SaveTrainingState>("saveTrainingState"),
                        InstanceMethod<&T5Wrap::LoadTrainingState>("loadTrainingState"),
                        InstanceMethod<&T5Wrap::Dispose>("dispose"),
                        InstanceAccessor<&T5Wrap::Busy>("busy"),
                        InstanceAccessor<&T5Wrap::Disposed>("disposed"),
                        InstanceAccessor<&T5Wrap::Bytes>("bytes"),
                        InstanceAccessor<&T5Wrap::Step>("step")});
  }

  explicit T5Wrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<T5Wrap>(info), cancel_(std::make_shared<std::atomic<bool>>(false)) {}

  void Finalize(Napi::Env env) override {
    // Backstop when dispose() was never called: the state is freed with this object.
    if (accounted_) Napi::MemoryManagement::AdjustExternalMemory(env, -accounted_);
    accounted_ = 0;
  }

 private:
  // ---- lifetime and exclusivity (main thread only) ----
  void CheckUsable(const char* what, bool need_model = true) {
    if (disposed_) throw Napi::Error::New(Env(), std::string("T5Model.") + what + ": the model is disposed");
    if (!busy_.empty())
      throw Napi::Error::New(Env(), std::string("T5Model.") + what + ": another call (" + busy_ +
                                        ") is still running on this model; await it first (one call at a time)");
    if (need_model && !st_) throw Napi::Error::New(Env(), std::string("T5Model.") + what + ": no model loaded");
  }

  void AccountBytes(Napi::Env env) {
    const int64_t now = st_ ? st_->bytes() : 0;
    if (now != accounted_) Napi::MemoryManagement::AdjustExternalMemory(env, now - accounted_);
    accounted_ = now;
  }

  // Starts an async call: marks the model busy until it settles, keeps `this` alive, accounts memory at the end.
  Napi::Value Run(const Napi::CallbackInfo& info, const char* what, TaskWorker::Body body,
                  TaskWorker::Finish finish, bool grad, std::optional<Napi::Function> on_progress = std::nullopt) {
    busy_ = what;
    auto finish_and_account = [this, finish = std::move(finish)](Napi::Env env) -> Napi::Value {
      Napi::Value v = finish ? finish(env) : env.Undefined();
      AccountBytes(env);
      return v;
    };
    return TaskWorker::Start(info.Env(), (std::string("instill.T5Model.") + what).c_str(), std::move(body),
                             finish_and_account, grad, on_progress, cancel_, info.This().As<Napi::Object>(),
                             [this] { busy_.clear(); });
  }

  // ---- construction ----
  // load(dir, {dtype?: "float32"|"float64", seed?}) -> Promise<void>
  Napi::Value Load(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("load", false);
      if (st_) throw Napi::Error::New(Env(), "T5Model.load: this handle already holds a model");
      std::string dir = RequireString(info[0], "dir");
      at::ScalarType dtype = at::kFloat;
      int64_t seed = -1;
      if (info.Length() > 1 && !info[1].IsUndefined()) {
        auto o = RequireObject(info[1], "options");
        if (auto v = OptionalField(o, "dtype")) {
          std::string d = RequireString(*v, "options.dtype");
          // "stored": the checkpoint's own floating dtype (e.g. bfloat16), see t5::from_pretrained.
          if (d == "float64") dtype = at::kDouble;
          else if (d == "bfloat16") dtype = at::kBFloat16;
          else if (d == "float16") dtype = at::kHalf;
          else if (d == "stored") dtype = at::ScalarType::Undefined;
          else if (d != "float32")
            throw ArgumentError("options.dtype: expected 'float32', 'float64', 'bfloat16', 'float16' or 'stored', got '" + d + "'");
        }
        if (auto v = OptionalField(o, "seed")) seed = RequireInt(*v, "options.seed", 0, int64_t{1} << 52);
      }
      auto st = std::make_shared<ModelState>();
      return Run(info, "load",
                 [st, dir, dtype, seed](const Reporter&) {
                   if (seed >= 0) torch::manual_seed(static_cast<uint64_t>(seed));
                   st->model = t5::from_pretrained(dir, dtype);
                   st->model->eval();
                 },
                 [this, st](Napi::Env env) -> Napi::Value {
                   st_ = st;
                   return env.Undefined();
                 },
                 false);
    });
  }

  // init(spec: preset name | config.json text, {seed?, vocabSize?, dtype?}) -> Promise<void>: random HF init.
  Napi::Value InitModel(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("init", false);
      if (st_) throw Napi::Error::New(Env(), "T5Model.init: this handle already holds a model");
      std::string spec = RequireString(info[0], "config");
      int64_t seed = 0, vocab = -1;
      at::ScalarType dtype = at::kFloat;
      if (info.Length() > 1 && !info[1].IsUndefined()) {
        auto o = RequireObject(info[1], "options");
        if (auto v = OptionalField(o, "seed")) seed = RequireInt(*v, "options.seed", 0, int64_t{1} << 52);
        if (auto v = OptionalField(o, "vocabSize")) vocab = RequireInt(*v, "options.vocabSize", 1, int64_t{1} << 24);
        if (auto v = OptionalField(o, "dtype")) {
          std::string d = RequireString(*v, "options.dtype");
          if (d == "float64") dtype = at::kDouble;
          else if (d != "float32") throw ArgumentError("options.dtype: expected 'float32' or 'float64', got '" + d + "'");
        }
      }
      t5::T5Config cfg;
      if (!spec.empty() && spec.front() == '{') {
        cfg = t5::T5Config::from_json(spec, "config");
        if (vocab > 0) cfg.vocab_size = vocab;
      } else {
        cfg = t5::preset(spec, vocab > 0 ? vocab : 32128);
      }
      cfg.validate("config");
      auto st = std::make_shared<ModelState>();
      return Run(info, "init",
                 [st, cfg, seed, dtype](const Reporter&) {
                   torch::manual_seed(static_cast<uint64_t>(seed));
                   st->model = t5::T5ForConditionalGeneration(cfg);
                   st->model->init_weights(static_cast<uint64_t>(seed));
                   if (dtype != at::kFloat) st->model->to(dtype);
                   st->model->eval();
                 },
                 [this, st](Napi::Env env) -> Napi::Value {
                   st_ = st;
                   return env.Undefined();
                 },
                 false);
    });
  }

  // ---- synchronous queries and setup ----
  Napi::Value Config(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("config");
      return Napi::String::New(info.Env(), st_->model->config().to_json());
    });
  }

  Napi::Value ParameterCount(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("parameterCount");
      double total = 0, trainable = 0;
      for (const auto& p : st_->model->parameters(true)) {
        total += static_cast<double>(p.numel());
        if (p.requires_grad()) trainable += static_cast<double>(p.numel());
      }
      auto o = Napi::Object::New(info.Env());
      o.Set("total", total);
      o.Set("trainable", trainable);
      return o;
    });
  }

  Napi::Value SetOptimizer(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("setOptimizer");
      auto cfg = OptimFromJs(info[0]);
      auto params = st_->trainable();
      if (params.empty()) throw ArgumentError("setOptimizer: the model has no trainable parameters");
      st_->optimizer = std::make_unique<train::Optimizer>(std::move(params), cfg);
      st_->optim_cfg = cfg;
      st_->has_optim = true;
      AccountBytes(info.Env());
      return info.Env().Undefined();
    });
  }

  // addLora({r, alpha, dropout?, modules, seed?}): trainable adapters, base frozen; resets the optimizer.
  Napi::Value AddLora(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("addLora");
      if (st_->has_lora) throw Napi::Error::New(Env(), "T5Model.addLora: the model already has LoRA adapters; mergeLora() first");
      auto o = RequireObject(info[0], "lora");
      lora::LoraConfig lc;
      auto r = OptionalField(o, "r");
      auto alpha = OptionalField(o, "alpha");
      auto modules = OptionalField(o, "modules");
      if (!r) throw ArgumentError("lora.r: expected an integer");
      if (!alpha) throw ArgumentError("lora.alpha: expected a number");
      if (!modules || !modules->IsArray()) throw ArgumentError("lora.modules: expected an array of module names");
      lc.r = RequireInt(*r, "lora.r", 1, 1 << 16);
      lc.alpha = RequireNumber(*alpha, "lora.alpha");
      if (auto d = OptionalField(o, "dropout")) lc.dropout = RequireNumber(*d, "lora.dropout");
      if (!(lc.dropout >= 0 && lc.dropout < 1)) throw RangeError("lora.dropout: must be in [0, 1)");
      lc.target_modules.clear();
      auto a = modules->As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i)
        lc.target_modules.push_back(RequireString(a.Get(i), "lora.modules[" + std::to_string(i) + "]"));
      int64_t seed = 0;
      if (auto s = OptionalField(o, "seed")) seed = RequireInt(*s, "lora.seed", 0, int64_t{1} << 52);
      lora::lora_sites(*st_->model, lc);  // validates names before anything changes
      lora::add_lora(*st_->model, lc, static_cast<uint64_t>(seed));
      lora::freeze_base(*st_->model);
      st_->has_lora = true;
      st_->lora_cfg = lc;
      st_->rebuild_optimizer();
      AccountBytes(info.Env());
      return info.Env().Undefined();
    });
  }

  // mergeLora(): W += alpha/r B A, adapters removed, every base parameter trainable again; resets the optimizer.
  Napi::Value MergeLora(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("mergeLora");
      if (!st_->has_lora) throw Napi::Error::New(Env(), "T5Model.mergeLora: the model has no LoRA adapters");
      lora::merge_lora(*st_->model);
      for (auto& p : st_->model->parameters(true)) p.set_requires_grad(true);
      st_->has_lora = false;
      st_->rebuild_optimizer();
      AccountBytes(info.Env());
      return info.Env().Undefined();
    });
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      cancel_->store(true);
      return info.Env().Undefined();
    });
  }

  // ---- async work ----
  // trainSteps(batches, {onProgress?, processGroup?, precision?: 'auto'|'float32'|'bf16'}) -> Promise<{losses, gradNorms, lrs, tokens, seconds, step, cancelled}>
  Napi::Value TrainSteps(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("trainSteps");
      if (!st_->optimizer) throw Napi::Error::New(Env(), "T5Model.trainSteps: call setOptimizer() first");
      auto batches = std::make_shared<std::vector<train::Batch>>(
          BatchesFromJs(info[0], "batches", st_->model->config(), true, st_->model->device()));
      std::optional<Napi::Function> cb;
      // Data parallelism: with options.processGroup, gradients are averaged over the group (bucketed
      // all-reduce) after each step's backward and before clipping.
      std::shared_ptr<train::GradSync> sync;
      train::Precision precision = train::Precision::kAuto;
      if (info.Length() > 1 && !info[1].IsUndefined()) {
        auto opts = RequireObject(info[1], "options");
        cb = OptionalFunction(opts, "onProgress", "options");
        if (auto pv = OptionalField(opts, "precision"))
          precision = train::parse_precision(RequireString(*pv, "options.precision"), "options.precision");
        if (auto pgv = OptionalField(opts, "processGroup"))
          sync = std::make_shared<train::GradSync>(instill::dist::make_grad_sync(ProcessGroupFromJs(*pgv, "options.processGroup")));
      }
      cancel_->store(false);
      auto st = st_;
      auto result = std::make_shared<train::TrainStepsResult>();
      return Run(info, "trainSteps",
                 [st, batches, result, sync, precision](const Reporter& report) {
                   st->model->train();
                   *result = train::train_steps(
                       train::t5_loss_fn(*st->model), *st->optimizer, *batches,
                       [&report](const train::StepProgress& p) {
                         report({{{"step", static_cast<double>(p.global_step)},
                                  {"stepInCall", static_cast<double>(p.step_in_call)},
                                  {"stepsInCall", static_cast<double>(p.steps_in_call)},
                                  {"loss", p.loss},
                                  {"gradNorm", p.grad_norm},
                                  {"lr", p.lr},
                                  {"tokens", static_cast<double>(p.tokens)},
                                  {"seconds", p.seconds}},
                                 ""});
                       },
                       report.cancel_flag(), precision, sync.get());
                   st->model->eval();
                 },
                 [result](Napi::Env env) -> Napi::Value {
                   auto o = Napi::Object::New(env);
                   o.Set("losses", NumbersToJs(env, result->losses));
                   o.Set("gradNorms", NumbersToJs(env, result->grad_norms));
                   o.Set("lrs", NumbersToJs(env, result->lrs));
                   o.Set("tokens", static_cast<double>(result->tokens));
                   o.Set("seconds", result->seconds);
                   o.Set("step", static_cast<double>(result->step));
                   o.Set("cancelled", result->cancelled);
                   return o;
                 },
                 true, cb);
    });
  }

  Napi::Value EvalLoss(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("evalLoss");
      auto batches = std::make_shared<std::vector<train::Batch>>(
          BatchesFromJs(info[0], "batches", st_->model->config(), true, st_->model->device()));
      auto st = st_;
      auto out = std::make_shared<std::vector<double>>();
      return Run(info, "evalLoss", [st, batches, out](const Reporter&) { *out = train::t5_eval_loss(*st->model, *batches); },
                 [out](Napi::Env env) -> Napi::Value { return NumbersToJs(env, *out); }, false);
    });
  }

  // generate(batch, {maxNewTokens, numBeams?, useCache?}) -> Promise<number[][]> (no start id, cut at EOS)
  Napi::Value Generate(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("generate");
      const auto& cfg = st_->model->config();
      auto batch = std::make_shared<train::Batch>(BatchFromJs(info[0], "batch", cfg, false, st_->model->device()));
      auto o = RequireObject(info[1], "options");
      auto mnt = OptionalField(o, "maxNewTokens");
      if (!mnt) throw ArgumentError("options.maxNewTokens: expected an integer");
      t5::GenerateOptions g;
      g.max_new_tokens = RequireInt(*mnt, "options.maxNewTokens", 0, 1 << 20);
      if (auto v = OptionalField(o, "numBeams")) g.num_beams = RequireInt(*v, "options.numBeams", 1, 1024);
      bool use_cache = true;
      if (auto v = OptionalField(o, "useCache")) use_cache = RequireBool(*v, "options.useCache");
      if (!use_cache && g.num_beams != 1)
        throw ArgumentError("options.useCache: false is only supported with numBeams 1 (greedy)");
      auto st = st_;
      auto rows = std::make_shared<std::vector<std::vector<int64_t>>>();
      return Run(info, "generate",
                 [st, batch, g, use_cache, rows](const Reporter&) {
                   st->model->eval();
                   t5::T5Inputs in;
                   in.input_ids = batch->input_ids;
                   in.attention_mask = batch->attention_mask;
                   at::Tensor ids = use_cache ? t5::generate(*st->model, in, g)
                                              : train::greedy_generate_uncached(*st->model, in, g.max_new_tokens);
                   *rows = train::strip_generated(ids, st->model->config().eos_token_id);
                 },
                 [rows](Napi::Env env) -> Napi::Value {
                   auto a = Napi::Array::New(env, rows->size());
                   for (size_t i = 0; i < rows->size(); ++i) {
                     const auto& r = (*rows)[i];
                     auto ra = Napi::Array::New(env, r.size());
                     for (size_t j = 0; j < r.size(); ++j) ra.Set(static_cast<uint32_t>(j), static_cast<double>(r[j]));
                     a.Set(static_cast<uint32_t>(i), ra);
                   }
                   return a;
                 },
                 false);
    });
  }

  // scoreOptions(batch, options: number[][][]) -> Promise<number[][]>: summed log-likelihood per option.
  Napi::Value ScoreOptions(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("scoreOptions");
      const auto& cfg = st_->model->config();
      auto batch = std::make_shared<train::Batch>(BatchFromJs(info[0], "batch", cfg, false, st_->model->device()));
      OptionIds parsed = OptionIdsFromJs(info[1], batch->input_ids.size(0), cfg.vocab_size);
      at::Tensor options = parsed.ids;
      std::vector<size_t> counts = std::move(parsed.counts);
      auto st = st_;
      auto sums = std::make_shared<at::Tensor>();
      return Run(info, "scoreOptions",
                 [st, batch, options, sums](const Reporter&) {
                   torch::NoGradGuard ng;
                   st->model->eval();
                   t5::T5Inputs in;
                   in.input_ids = batch->input_ids;
                   in.attention_mask = batch->attention_mask;
                   *sums = t5::score_options(*st->model, in, options.to(st->model->device())).sum.to(at::kCPU, at::kDouble).contiguous();
                 },
                 [sums, counts](Napi::Env env) -> Napi::Value { return OptionScoresToJs(env, *sums, counts); },
                 false);
    });
  }

  Napi::Value Save(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("save");
      std::string dir = RequireString(info[0], "dir");
      auto st = st_;
      return Run(info, "save", [st, dir](const Reporter&) { t5::save_pretrained(*st->model, dir); }, nullptr, false);
    });
  }

  Napi::Value SaveAdapter(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("saveAdapter");
      if (!st_->has_lora) throw Napi::Error::New(Env(), "T5Model.saveAdapter: the model has no LoRA adapters (addLora or loadAdapter first)");
      std::string dir = RequireString(info[0], "dir");
      auto st = st_;
      return Run(info, "saveAdapter", [st, dir](const Reporter&) { lora::save_adapter(*st->model, dir, st->lora_cfg); },
                 nullptr, false);
    });
  }

  // loadAdapter(dir): replaces any LoRA adapters with the folder's (trainable, base frozen); resets the optimizer.
  Napi::Value LoadAdapter(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("loadAdapter");
      std::string dir = RequireString(info[0], "dir");
      auto st = st_;
      return Run(info, "loadAdapter",
                 [st, dir](const Reporter&) {
                   io::PeftAdapter a = io::read_peft_adapter(dir);
                   if (st->has_lora) lora::remove_lora(*st->model);
                   st->has_lora = false;
                   try {
                     lora::load_adapter(*st->model, dir);
                   } catch (...) {
                     lora::remove_lora(*st->model);
                     for (auto& p : st->model->parameters(true)) p.set_requires_grad(true);
                     st->rebuild_optimizer();
                     throw;
                   }
                   lora::freeze_base(*st->model);
                   lora::LoraConfig lc;
                   lc.r = a.r;
                   lc.alpha = a.alpha;
                   lc.target_modules = a.target_modules;
                   if (a.config.contains("lora_dropout") && a.config["lora_dropout"].is_number())
                     lc.dropout = a.config["lora_dropout"].get<double>();
                   st->lora_cfg = lc;
                   st->has_lora = true;
                   st->rebuild_optimizer();
                 },
                 nullptr, false);
    });
  }

  Napi::Value SaveTrainingState(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("saveTrainingState");
      if (!st_->optimizer) throw Napi::Error::New(Env(), "T5Model.saveTrainingState: no optimizer (setOptimizer first)");
      std::string path = RequireString(info[0], "path");
      auto st = st_;
      return Run(info, "saveTrainingState",
                 [st, path](const Reporter&) { train::save_training_state(path, *st->optimizer); }, nullptr, false);
    });
  }

  Napi::Value LoadTrainingState(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("loadTrainingState");
      if (!st_->optimizer)
        throw Napi::Error::New(Env(), "T5Model.loadTrainingState: call setOptimizer() with the same options first");
      std::string path = RequireString(info[0], "path");
      auto st = st_;
      return Run(info, "loadTrainingState",
                 [st, path](const Reporter&) { train::load_training_state(path, *st->optimizer); }, nullptr, false);
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      if (disposed_) return info.Env().Undefined();
      if (!busy_.empty())
        throw Napi::Error::New(Env(), "T5Model.dispose: a call (" + busy_ + ") is still running; await it (or cancel() it) first");
      st_.reset();
      disposed_ = true;
      AccountBytes(info.Env());
      return info.Env().Undefined();
    });
  }

  Napi::Value Busy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !busy_.empty()); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed_); }
  Napi::Value Bytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(accounted_)); }
  Napi::Value Step(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), st_ && st_->optimizer ? static_cast<double>(st_->optimizer->step()) : 0.0);
  }

  std::shared_ptr<ModelState> st_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  std::string busy_;
  bool disposed_ = false;
  int64_t accounted_ = 0;
};

}  // namespace

void InitT5(Napi::Env env, Napi::Object exports) { exports.Set("T5Native", T5Wrap::Define(env)); }

}  // namespace instill::napi
