// The TAGI handle (src/tagi/tagi.ts wraps it): a base T5 + hypernetwork (+ teachers), all math in
// native/core/hypernet. Heavy calls run on a worker thread (TaskWorker) with the object Ref()'d; one call at a time.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "common/errors.h"
#include "dist/ddp_bench.h"
#include "hypernet/hypernet.h"
#include "io/checkpoint.h"
#include "io/peft.h"
#include "napi/dist_wrap.h"
#include "napi/errors.h"
#include "napi/marshal.h"
#include "napi/modules.h"
#include "napi/worker.h"
#include "t5/generate.h"
#include "t5/pretrained.h"
#include "train/optim.h"
#include "train/t5_task.h"
#include "train/trainer.h"

namespace instill::napi {
namespace {

struct TagiState {
  hypernet::Tagi tagi;
  bool train_base = false;
  std::unique_ptr<train::Optimizer> optimizer;
};

at::Tensor Field(const Napi::Object& o, const char* key, const std::string& arg, bool required) {
  auto v = OptionalField(o, key);
  if (!v) {
    if (required) throw ArgumentError(arg + "." + key + ": missing");
    return at::Tensor();
  }
  return TensorFromJs(*v, arg + "." + key);
}

at::Tensor Ids(const at::Tensor& t, int64_t vocab, const std::string& arg) {
  if (!t.defined()) return t;
  if (t.dim() != 2 || t.size(0) < 1 || t.size(1) < 1) throw RangeError(arg + ": expected shape [B, L] with B, L >= 1");
  at::Tensor l = t.to(at::kLong);
  if (l.min().item<int64_t>() < 0 || l.max().item<int64_t>() >= vocab)
    throw RangeError(arg + ": id outside the vocabulary [0, " + std::to_string(vocab) + ")");
  return l;
}

hypernet::TagiBatch TagiBatchFromJs(const Napi::Value& v, const std::string& arg, const t5::T5Config& cfg, bool labels) {
  auto o = RequireObject(v, arg);
  hypernet::TagiBatch b;
  b.student = train::check_batch(cfg, Field(o, "inputIds", arg, true), Field(o, "attentionMask", arg, true),
                                 Field(o, "labels", arg, labels), arg, labels, at::kCPU);
  const int64_t B = b.student.input_ids.size(0);
  b.instr_ids = Ids(Field(o, "instrIds", arg, true), cfg.vocab_size, arg + ".instrIds");
  b.instr_mask = Field(o, "instrMask", arg, true).to(at::kLong);
  if (b.instr_ids.size(0) != B || !b.instr_mask.sizes().equals(b.instr_ids.sizes()))
    throw RangeError(arg + ".instrIds/instrMask: expected shape [" + std::to_string(B) + ", L], same for both");
  b.teacher_input_ids = Ids(Field(o, "teacherInputIds", arg, false), cfg.vocab_size, arg + ".teacherInputIds");
  if (b.teacher_input_ids.defined()) {
    b.teacher_attention_mask = Field(o, "teacherAttentionMask", arg, true).to(at::kLong);
    if (b.teacher_input_ids.size(0) != B || !b.teacher_attention_mask.sizes().equals(b.teacher_input_ids.sizes()))
      throw RangeError(arg + ".teacherInputIds: expected [" + std::to_string(B) + ", S'] with a matching mask");
  }
  at::Tensor ti = Field(o, "teacherIndex", arg, false);
  if (ti.defined()) {
    if (ti.numel() != B) throw RangeError(arg + ".teacherIndex: expected one entry per row");
    b.teacher_index = ti.reshape({B}).to(at::kLong);
  }
  // Data-parallel shards: each term's share of the global batch (src/tagi/tagi.ts computes it).
  if (auto v = OptionalField(o, "lossScale")) {
    auto ls = RequireObject(*v, arg + ".lossScale");
    auto one = [&](const char* k) {
      auto f = OptionalField(ls, k);
      if (!f) return 1.0;
      const double x = RequireNumber(*f, arg + ".lossScale." + k);
      if (!(x >= 0) || !std::isfinite(x)) throw RangeError(arg + ".lossScale." + k + ": must be a finite number >= 0");
      return x;
    };
    b.ce_scale = one("ce");
    b.kl_scale = one("kl");
    b.mse_scale = one("mse");
  }
  return b;
}

hypernet::HyperNetOptions HyperFromJs(const Napi::Object& o) {
  hypernet::HyperNetOptions h;
  if (auto v = OptionalField(o, "rank")) h.rank = RequireInt(*v, "hypernet.rank", 1, 4096);
  if (auto v = OptionalField(o, "alpha")) h.alpha = RequireNumber(*v, "hypernet.alpha");
  if (auto v = OptionalField(o, "projDim")) h.proj_dim = RequireInt(*v, "hypernet.projDim", 2, 1 << 16);
  if (auto v = OptionalField(o, "hidden")) h.hidden = RequireInt(*v, "hypernet.hidden", 1, 1 << 16);
  if (auto v = OptionalField(o, "initStd")) h.init_std = RequireNumber(*v, "hypernet.initStd");
  if (auto v = OptionalField(o, "init")) h.init = RequireString(*v, "hypernet.init");
  if (auto v = OptionalField(o, "scaleB")) h.scale_b = RequireBool(*v, "hypernet.scaleB");
  if (auto v = OptionalField(o, "fusion")) h.fusion = RequireBool(*v, "hypernet.fusion");
  if (auto v = OptionalField(o, "targetModules")) {
    if (!v->IsArray()) throw ArgumentError("hypernet.targetModules: expected an array of names");
    auto a = v->As<Napi::Array>();
    h.target_modules.clear();
    for (uint32_t i = 0; i < a.Length(); ++i) h.target_modules.push_back(RequireString(a.Get(i), "hypernet.targetModules"));
  }
  h.validate();
  return h;
}

train::OptimConfig OptimFromJs(const Napi::Object& o) {
  train::OptimConfig c;
  if (auto x = OptionalField(o, "name")) c.name = RequireString(*x, "optimizer.name");
  if (auto x = OptionalField(o, "lr")) c.lr = RequireNumber(*x, "optimizer.lr");
  if (auto x = OptionalField(o, "totalSteps")) c.total_steps = RequireInt(*x, "optimizer.totalSteps", 1, int64_t{1} << 40);
  if (auto x = OptionalField(o, "weightDecay")) c.weight_decay = RequireNumber(*x, "optimizer.weightDecay");
  if (auto x = OptionalField(o, "schedule")) c.schedule = RequireString(*x, "optimizer.schedule");
  if (auto x = OptionalField(o, "warmupSteps")) c.warmup_steps = RequireInt(*x, "optimizer.warmupSteps", 0, int64_t{1} << 40);
  if (auto x = OptionalField(o, "clipNorm")) c.clip_norm = RequireNumber(*x, "optimizer.clipNorm");
  if (auto x = OptionalField(o, "gradAccumulation")) c.grad_accumulation = RequireInt(*x, "optimizer.gradAccumulation", 1, 1 << 20);
  if (auto x = OptionalField(o, "scaleParameter")) c.scale_parameter = RequireBool(*x, "optimizer.scaleParameter");
  c.validate();
  return c;
}

// A number, or null for NaN (a loss term that is off).
Napi::Value NumberOrNull(Napi::Env env, double x) {
  return std::isnan(x) ? env.Null() : Napi::Number::New(env, x);
}

Napi::Array Numbers(Napi::Env env, const std::vector<double>& v) {
  auto a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), NumberOrNull(env, v[i]));
  return a;
}

class TagiWrap : public Napi::ObjectWrap<TagiWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TagiNative",
                       {InstanceMethod<&TagiWrap::Load>("load"), InstanceMethod<&TagiWrap::Info>("info"),
                        InstanceMethod<&TagiWrap::SetLoss>("setLoss"),
                        InstanceMethod<&TagiWrap::SetOptimizer>("setOptimizer"),
                        InstanceMethod<&TagiWrap::TrainSteps>("trainSteps"),
                        InstanceMethod<&TagiWrap::Generate>("generate"),
                        InstanceMethod<&TagiWrap::ScoreOptions>("scoreOptions"),
                        InstanceMethod<&TagiWrap::WriteAdapter>("writeAdapter"),
                        InstanceMethod<&TagiWrap::Save>("save"), InstanceMethod<&TagiWrap::SaveState>("saveState"),
                        InstanceMethod<&TagiWrap::LoadState>("loadState"), InstanceMethod<&TagiWrap::Cancel>("cancel"),
                        InstanceMethod<&TagiWrap::Dispose>("dispose"),
                        InstanceAccessor<&TagiWrap::Busy>("busy")});
  }
  explicit TagiWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<TagiWrap>(info), cancel_(std::make_shared<std::atomic<bool>>(false)) {}

 private:
  void CheckUsable(const char* what, bool need = true) {
    if (disposed_) throw Napi::Error::New(Env(), std::string("Tagi.") + what + ": disposed");
    if (!busy_.empty())
      throw Napi::Error::New(Env(), std::string("Tagi.") + what + ": another call (" + busy_ + ") is still running");
    if (need && !st_) throw Napi::Error::New(Env(), std::string("Tagi.") + what + ": nothing loaded");
  }
  Napi::Value Run(const Napi::CallbackInfo& info, const char* what, TaskWorker::Body body, TaskWorker::Finish finish,
                  bool grad, std::optional<Napi::Function> cb = std::nullopt) {
    busy_ = what;
    return TaskWorker::Start(info.Env(), (std::string("instill.Tagi.") + what).c_str(), std::move(body),
                             std::move(finish), grad, cb, cancel_, info.This().As<Napi::Object>(),
                             [this] { busy_.clear(); });
  }

  // load(modelDir, {hypernet?: options, hypernetPath?, teachers?: string[], teacherModelDir?, trainBase?, seed?,
  //                 dtype?}) -> Promise<void>
  Napi::Value Load(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("load", false);
      if (st_) throw Napi::Error::New(Env(), "Tagi.load: already loaded");
      std::string dir = RequireString(info[0], "modelDir");
      hypernet::HyperNetOptions hopt;
      std::string hpath, tdir;
      std::vector<std::string> teachers;
      bool train_base = false;
      int64_t seed = 0;
      at::ScalarType dtype = at::kFloat;
      if (info.Length() > 1 && !info[1].IsUndefined()) {
        auto o = RequireObject(info[1], "options");
        if (auto v = OptionalField(o, "hypernet")) hopt = HyperFromJs(RequireObject(*v, "options.hypernet"));
        if (auto v = OptionalField(o, "hypernetPath")) hpath = RequireString(*v, "options.hypernetPath");
        if (auto v = OptionalField(o, "teacherModelDir")) tdir = RequireString(*v, "options.teacherModelDir");
        if (auto v = OptionalField(o, "trainBase")) train_base = RequireBool(*v, "options.trainBase");
        if (auto v = OptionalField(o, "seed")) seed = RequireInt(*v, "options.seed", 0, int64_t{1} << 52);
        if (auto v = OptionalField(o, "dtype")) {
          std::string d = RequireString(*v, "options.dtype");
          if (d == "float64") dtype = at::kDouble;
          else if (d != "float32") throw ArgumentError("options.dtype: expected 'float32' or 'float64'");
        }
        if (auto v = OptionalField(o, "teachers")) {
          if (!v->IsArray()) throw ArgumentError("options.teachers: expected an array of adapter folders");
          auto a = v->As<Napi::Array>();
          for (uint32_t i = 0; i < a.Length(); ++i) teachers.push_back(RequireString(a.Get(i), "options.teachers"));
        }
      }
      auto st = std::make_shared<TagiState>();
      st->train_base = train_base;
      return Run(info, "load",
                 [st, dir, hopt, hpath, tdir, teachers, train_base, seed, dtype](const Reporter&) {
                   torch::manual_seed(static_cast<uint64_t>(seed));
                   auto& t = st->tagi;
                   t.model = t5::from_pretrained(dir, dtype);
                   t.model->eval();
                   for (auto& p : t.model->parameters()) p.set_requires_grad(train_base);
                   if (!hpath.empty()) t.hypernet = hypernet::load_hypernet(*t.model, hpath);
                   else t.hypernet = hypernet::HyperNet(*t.model, hopt, static_cast<uint64_t>(seed));
                   t.hypernet->to(dtype);
                   if (!teachers.empty()) {
                     t.bank = std::make_shared<hypernet::TeacherBank>(hypernet::TeacherBank::from_peft(teachers, dtype));
                     // The teachers were trained on a base that must not move with the student's.
                     if (train_base || !tdir.empty()) {
                       t.teacher_model = t5::from_pretrained(tdir.empty() ? dir : tdir, dtype);
                       t.teacher_model->eval();
                       for (auto& p : t.teacher_model->parameters()) p.set_requires_grad(false);
                     }
                   }
                 },
                 [this, st](Napi::Env env) -> Napi::Value {
                   st_ = st;
                   return env.Undefined();
                 },
                 false);
    });
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("info");
      auto env = info.Env();
      auto o = Napi::Object::New(env);
      const auto& hn = *st_->tagi.hypernet;
      o.Set("hypernetParameters", static_cast<double>(hn.parameter_count()));
      int64_t base = 0;
      for (const auto& p : st_->tagi.model->parameters()) base += p.numel();
      o.Set("baseParameters", static_cast<double>(base));
      o.Set("slots", static_cast<double>(hn.slots.size()));
      o.Set("rank", static_cast<double>(hn.opt.rank));
      o.Set("fusion", hn.opt.fusion);
      o.Set("teachers", static_cast<double>(st_->tagi.bank ? st_->tagi.bank->size : 0));
      o.Set("trainBase", st_->train_base);
      o.Set("options", hn.opt.to_json());
      return o;
    });
  }

  // setLoss({ce?, kl?, temperature?, mse?})
  Napi::Value SetLoss(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("setLoss");
      auto o = RequireObject(info[0], "loss");
      auto& l = st_->tagi.loss;
      if (auto v = OptionalField(o, "ce")) l.ce_weight = RequireNumber(*v, "loss.ce");
      if (auto v = OptionalField(o, "kl")) l.kl_weight = RequireNumber(*v, "loss.kl");
      if (auto v = OptionalField(o, "temperature")) l.temperature = RequireNumber(*v, "loss.temperature");
      if (auto v = OptionalField(o, "mse")) l.mse_weight = RequireNumber(*v, "loss.mse");
      if (l.ce_weight < 0 || l.kl_weight < 0 || l.mse_weight < 0) throw RangeError("loss: weights must be >= 0");
      if (!(l.temperature > 0)) throw RangeError("loss.temperature: must be > 0");
      return info.Env().Undefined();
    });
  }

  // setOptimizer(options): hypernetwork parameters (+ the base model's with trainBase).
  Napi::Value SetOptimizer(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("setOptimizer");
      auto c = OptimFromJs(RequireObject(info[0], "optimizer"));
      std::vector<std::pair<std::string, at::Tensor>> params;
      for (auto& kv : st_->tagi.hypernet->named_parameters()) params.emplace_back("hypernet." + kv.key(), kv.value());
      if (st_->train_base)
        for (auto& kv : st_->tagi.model->named_parameters()) params.emplace_back("model." + kv.key(), kv.value());
      st_->optimizer = std::make_unique<train::Optimizer>(std::move(params), c);
      return info.Env().Undefined();
    });
  }

  // trainSteps(batches, {onProgress?, processGroup?}) -> Promise<{losses, gradNorms, lrs, ce, kl, mse, tokens, seconds,
  // step, cancelled}>. With a process group, gradients are averaged over the ranks before clipping (as T5Model's).
  Napi::Value TrainSteps(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("trainSteps");
      if (!st_->optimizer) throw Napi::Error::New(Env(), "Tagi.trainSteps: call setOptimizer() first");
      if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() == 0)
        throw ArgumentError("batches: expected a non-empty array");
      auto arr = info[0].As<Napi::Array>();
      auto batches = std::make_shared<std::vector<hypernet::TagiBatch>>();
      for (uint32_t i = 0; i < arr.Length(); ++i)
        batches->push_back(TagiBatchFromJs(arr.Get(i), "batches[" + std::to_string(i) + "]", st_->tagi.model->config(), true));
      std::optional<Napi::Function> cb;
      std::shared_ptr<train::GradSync> sync;
      bool term_norms = false;
      if (info.Length() > 1 && !info[1].IsUndefined()) {
        auto opts = RequireObject(info[1], "options");
        cb = OptionalFunction(opts, "onProgress", "options");
        if (auto v = OptionalField(opts, "termGradNorms")) term_norms = RequireBool(*v, "options.termGradNorms");
        if (auto pgv = OptionalField(opts, "processGroup"))
          sync = std::make_shared<train::GradSync>(
              instill::dist::make_grad_sync(ProcessGroupFromJs(*pgv, "options.processGroup")));
      }
      cancel_->store(false);
      auto st = st_;
      auto res = std::make_shared<hypernet::TagiStepsResult>();
      return Run(info, "trainSteps",
                 [st, batches, res, sync, term_norms](const Reporter& report) {
                   st->tagi.hypernet->train();
                   if (st->train_base) st->tagi.model->train();
                   try {
                     *res = hypernet::tagi_train_steps(
                         st->tagi, *st->optimizer, *batches,
                         [&report](const train::StepProgress& p) {
                           report({{{"step", static_cast<double>(p.global_step)},
                                    {"stepInCall", static_cast<double>(p.step_in_call)},
                                    {"stepsInCall", static_cast<double>(p.steps_in_call)},
                                    {"loss", p.loss}, {"gradNorm", p.grad_norm}, {"lr", p.lr},
                                    {"seconds", p.seconds}}, ""});
                         },
                         report.cancel_flag(), sync.get(), term_norms);
                   } catch (...) {
                     st->tagi.model->eval();
                     st->tagi.hypernet->eval();
                     throw;
                   }
                   st->tagi.model->eval();
                   st->tagi.hypernet->eval();
                 },
                 [res](Napi::Env env) -> Napi::Value {
                   auto o = Napi::Object::New(env);
                   o.Set("losses", Numbers(env, res->steps.losses));
                   o.Set("gradNorms", Numbers(env, res->steps.grad_norms));
                   o.Set("lrs", Numbers(env, res->steps.lrs));
                   o.Set("ce", Numbers(env, res->ce));
                   o.Set("kl", Numbers(env, res->kl));
                   o.Set("mse", Numbers(env, res->mse));
                   if (res->term_grad_norms) {
                     auto g = Napi::Object::New(env);
                     const auto& t = *res->term_grad_norms;
                     g.Set("ce", NumberOrNull(env, t.ce));
                     g.Set("kl", NumberOrNull(env, t.kl));
                     g.Set("mse", NumberOrNull(env, t.mse));
                     o.Set("termGradNorms", g);
                   } else {
                     o.Set("termGradNorms", env.Null());
                   }
                   o.Set("tokens", static_cast<double>(res->steps.tokens));
                   o.Set("seconds", res->steps.seconds);
                   o.Set("step", static_cast<double>(res->steps.step));
                   o.Set("cancelled", res->steps.cancelled);
                   return o;
                 },
                 true, cb);
    });
  }

  // generate(batch{inputIds, attentionMask, instrIds, instrMask}, {maxNewTokens?, numBeams?}) -> Promise<number[][]>
  Napi::Value Generate(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("generate");
      auto b = std::make_shared<hypernet::TagiBatch>(TagiBatchFromJs(info[0], "batch", st_->tagi.model->config(), false));
      t5::GenerateOptions g;
      if (info.Length() > 1 && !info[1].IsUndefined()) {
        auto o = RequireObject(info[1], "options");
        if (auto v = OptionalField(o, "maxNewTokens")) g.max_new_tokens = RequireInt(*v, "options.maxNewTokens", 1, 1 << 16);
        if (auto v = OptionalField(o, "numBeams")) g.num_beams = RequireInt(*v, "options.numBeams", 1, 64);
      }
      auto st = st_;
      auto out = std::make_shared<std::vector<std::vector<int64_t>>>();
      return Run(info, "generate",
                 [st, b, g, out](const Reporter&) {
                   at::Tensor ids = st->tagi.generate(b->student.input_ids, b->student.attention_mask, b->instr_ids,
                                                      b->instr_mask, g);
                   *out = train::strip_generated(ids, st->tagi.model->config().eos_token_id);
                 },
                 [out](Napi::Env env) -> Napi::Value {
                   auto a = Napi::Array::New(env, out->size());
                   for (size_t i = 0; i < out->size(); ++i) {
                     auto r = Napi::Array::New(env, (*out)[i].size());
                     for (size_t j = 0; j < (*out)[i].size(); ++j) r.Set(static_cast<uint32_t>(j), static_cast<double>((*out)[i][j]));
                     a.Set(static_cast<uint32_t>(i), r);
                   }
                   return a;
                 },
                 false);
    });
  }

  // scoreOptions(batch{inputIds, attentionMask, instrIds, instrMask}, options: number[][][]) -> Promise<number[][]>:
  // summed log-likelihood of each option under the example's generated adapter (+ fusion), as T5Model.scoreOptions.
  Napi::Value ScoreOptions(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("scoreOptions");
      const auto& cfg = st_->tagi.model->config();
      auto b = std::make_shared<hypernet::TagiBatch>(TagiBatchFromJs(info[0], "batch", cfg, false));
      OptionIds parsed = OptionIdsFromJs(info[1], b->student.input_ids.size(0), cfg.vocab_size);
      at::Tensor options = parsed.ids;
      std::vector<size_t> counts = std::move(parsed.counts);
      auto st = st_;
      auto sums = std::make_shared<at::Tensor>();
      return Run(info, "scoreOptions",
                 [st, b, options, sums](const Reporter&) {
                   *sums = st->tagi
                               .score_options(b->student.input_ids, b->student.attention_mask, b->instr_ids,
                                              b->instr_mask, options)
                               .sum.to(at::kCPU, at::kDouble)
                               .contiguous();
                 },
                 [sums, counts](Napi::Env env) -> Napi::Value { return OptionScoresToJs(env, *sums, counts); },
                 false);
    });
  }

  // writeAdapter(instrIds {data, shape [1, L]}, dir, {baseModel?}) -> Promise<{modules, seconds}>: PEFT folder.
  Napi::Value WriteAdapter(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("writeAdapter");
      at::Tensor ids = Ids(TensorFromJs(info[0], "instrIds"), st_->tagi.model->config().vocab_size, "instrIds");
      if (ids.size(0) != 1) throw RangeError("instrIds: expected shape [1, L]");
      std::string dir = RequireString(info[1], "dir");
      std::string base;
      if (info.Length() > 2 && !info[2].IsUndefined())
        if (auto v = OptionalField(RequireObject(info[2], "options"), "baseModel")) base = RequireString(*v, "options.baseModel");
      auto st = st_;
      auto secs = std::make_shared<double>(0);
      auto n = std::make_shared<size_t>(0);
      return Run(info, "writeAdapter",
                 [st, ids, dir, base, secs, n](const Reporter&) {
                   auto t0 = std::chrono::steady_clock::now();
                   auto mods = st->tagi.adapter_for(ids, at::ones_like(ids));
                   *secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                   auto cfg = st->tagi.peft_config();
                   cfg["base_model_name_or_path"] = base;
                   io::write_peft_adapter(dir, mods, cfg);
                   *n = mods.size();
                 },
                 [secs, n](Napi::Env env) -> Napi::Value {
                   auto o = Napi::Object::New(env);
                   o.Set("modules", static_cast<double>(*n));
                   o.Set("seconds", *secs);
                   return o;
                 },
                 false);
    });
  }

  // save(dir) -> Promise<void>: <dir>/hypernet.safetensors (+ <dir>/model when the base was trained).
  Napi::Value Save(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("save");
      std::string dir = RequireString(info[0], "dir");
      auto st = st_;
      return Run(info, "save",
                 [st, dir](const Reporter&) {
                   io::make_directories(dir);
                   hypernet::save_hypernet(*st->tagi.hypernet, dir + "/hypernet.safetensors");
                   if (st->train_base) t5::save_pretrained(*st->tagi.model, dir + "/model");
                 },
                 nullptr, false);
    });
  }

  // saveState(path) / loadState(path) -> Promise<void>: the optimizer state, the scheduler step and the RNG states
  // (train::save_training_state / load_training_state, one safetensors file), for checkpoints. loadState needs
  // setOptimizer() first, with the same optimizer over the same parameters (hypernetwork, + base with trainBase).
  Napi::Value SaveState(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("saveState");
      if (!st_->optimizer) throw Napi::Error::New(Env(), "Tagi.saveState: call setOptimizer() first");
      std::string path = RequireString(info[0], "path");
      auto st = st_;
      return Run(info, "saveState", [st, path](const Reporter&) { train::save_training_state(path, *st->optimizer); },
                 nullptr, false);
    });
  }
  Napi::Value LoadState(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("loadState");
      if (!st_->optimizer) throw Napi::Error::New(Env(), "Tagi.loadState: call setOptimizer() first");
      std::string path = RequireString(info[0], "path");
      auto st = st_;
      return Run(info, "loadState", [st, path](const Reporter&) { train::load_training_state(path, *st->optimizer); },
                 nullptr, false);
    });
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      cancel_->store(true);
      return info.Env().Undefined();
    });
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      if (!busy_.empty()) throw Napi::Error::New(Env(), "Tagi.dispose: a call (" + busy_ + ") is still running");
      st_.reset();
      disposed_ = true;
      return info.Env().Undefined();
    });
  }
  Napi::Value Busy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !busy_.empty()); }

  std::shared_ptr<TagiState> st_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  std::string busy_;
  bool disposed_ = false;
};

}  // namespace

void InitTagi(Napi::Env env, Napi::Object exports) { exports.Set("TagiNative", TagiWrap::Define(env)); }

}  // namespace instill::napi
