// The TAGI handle (src/tagi/tagi.ts wraps it): a base T5 + hypernetwork (+ teachers), all math in
// native/core/hypernet. A Handle (napi/handle.h): heavy calls run on a worker thread, one call at a time.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "common/errors.h"
#include "hypernet/hypernet.h"
#include "io/checkpoint.h"
#include "io/peft.h"
#include "napi/dist_wrap.h"
#include "napi/handle.h"
#include "napi/marshal.h"
#include "napi/modules.h"
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

  int64_t bytes() const {
    return ModuleBytes(tagi.model) + ModuleBytes(tagi.hypernet) + ModuleBytes(tagi.teacher_model) +
           (optimizer ? optimizer->state_bytes() : 0);
  }
};

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
  b.student = BatchFromJs(o, arg, cfg, labels, at::kCPU);
  const int64_t B = b.student.input_ids.size(0);
  b.instr_ids = Ids(TensorField(o, "instrIds", arg, true), cfg.vocab_size, arg + ".instrIds");
  b.instr_mask = TensorField(o, "instrMask", arg, true).to(at::kLong);
  if (b.instr_ids.size(0) != B || !b.instr_mask.sizes().equals(b.instr_ids.sizes()))
    throw RangeError(arg + ".instrIds/instrMask: expected shape [" + std::to_string(B) + ", L], same for both");
  b.teacher_input_ids = Ids(TensorField(o, "teacherInputIds", arg), cfg.vocab_size, arg + ".teacherInputIds");
  if (b.teacher_input_ids.defined()) {
    b.teacher_attention_mask = TensorField(o, "teacherAttentionMask", arg, true).to(at::kLong);
    if (b.teacher_input_ids.size(0) != B || !b.teacher_attention_mask.sizes().equals(b.teacher_input_ids.sizes()))
      throw RangeError(arg + ".teacherInputIds: expected [" + std::to_string(B) + ", S'] with a matching mask");
  }
  at::Tensor ti = TensorField(o, "teacherIndex", arg);
  if (ti.defined()) {
    if (ti.numel() != B) throw RangeError(arg + ".teacherIndex: expected one entry per row");
    b.teacher_index = ti.reshape({B}).to(at::kLong);
  }
  // Data-parallel shards: each term's share of the global batch (src/tagi/tagi.ts computes it).
  if (auto v = OptionalField(o, "lossScale")) {
    auto ls = RequireObject(*v, arg + ".lossScale");
    auto one = [&](const char* k) {
      auto f = OptionalField(ls, k);
      return f ? RequireLossScale(*f, arg + ".lossScale." + k) : 1.0;
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
  if (auto v = OptionalField(o, "targetModules")) h.target_modules = RequireStringArray(*v, "hypernet.targetModules");
  h.validate();
  return h;
}

// The operations the worker runs, one function each.
hypernet::Tagi LoadTagi(const std::string& dir, const hypernet::HyperNetOptions& hopt, const std::string& hpath,
                        const std::vector<std::string>& teachers, const std::string& tdir, bool train_base,
                        uint64_t seed, at::ScalarType dtype) {
  torch::manual_seed(seed);
  hypernet::Tagi t;
  t.model = t5::from_pretrained(dir, dtype);
  t.model->eval();
  for (auto& p : t.model->parameters()) p.set_requires_grad(train_base);
  if (!hpath.empty()) t.hypernet = hypernet::load_hypernet(*t.model, hpath);
  else t.hypernet = hypernet::HyperNet(*t.model, hopt, seed);
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
  return t;
}

// tagi_train_steps in train mode (the base too with trainBase), back in eval mode whatever happens.
hypernet::TagiStepsResult TrainTagi(TagiState& st, const std::vector<hypernet::TagiBatch>& batches, const Reporter& report,
                                    const train::GradSync* sync, bool term_norms) {
  struct EvalAfter {
    hypernet::Tagi& t;
    ~EvalAfter() {
      t.model->eval();
      t.hypernet->eval();
    }
  } eval_after{st.tagi};
  st.tagi.hypernet->train();
  if (st.train_base) st.tagi.model->train();
  return hypernet::tagi_train_steps(
      st.tagi, *st.optimizer, batches, [&report](const train::StepProgress& p) { report(StepProgressEvent(p)); },
      report.cancel_flag(), sync, term_norms);
}

// The PEFT adapter generated for one instruction, written to `dir`; returns its module count and the generation time.
std::pair<size_t, double> WriteTagiAdapter(hypernet::Tagi& t, const at::Tensor& ids, const std::string& dir,
                                           const std::string& base) {
  auto t0 = std::chrono::steady_clock::now();
  auto mods = t.adapter_for(ids, at::ones_like(ids));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto cfg = t.peft_config();
  cfg["base_model_name_or_path"] = base;
  io::write_peft_adapter(dir, mods, cfg);
  return {mods.size(), secs};
}

void SaveTagi(const TagiState& st, const std::string& dir) {
  io::make_directories(dir);
  hypernet::save_hypernet(*st.tagi.hypernet, dir + "/hypernet.safetensors");
  if (st.train_base) t5::save_pretrained(*st.tagi.model, dir + "/model");
}

class TagiWrap : public Handle<TagiWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineHandle(env, "TagiNative",
                        {InstanceMethod<&TagiWrap::Load>("load"), InstanceMethod<&TagiWrap::Info>("info"),
                         InstanceMethod<&TagiWrap::SetLoss>("setLoss"),
                         InstanceMethod<&TagiWrap::SetOptimizer>("setOptimizer"),
                         InstanceMethod<&TagiWrap::TrainSteps>("trainSteps"),
                         InstanceMethod<&TagiWrap::Generate>("generate"),
                         InstanceMethod<&TagiWrap::ScoreOptions>("scoreOptions"),
                         InstanceMethod<&TagiWrap::WriteAdapter>("writeAdapter"),
                         InstanceMethod<&TagiWrap::Save>("save"),
                         InstanceMethod<&TagiWrap::SaveTrainingState>("saveTrainingState"),
                         InstanceMethod<&TagiWrap::LoadTrainingState>("loadTrainingState")},
                        /*cancellable=*/true);
  }
  explicit TagiWrap(const Napi::CallbackInfo& info) : Handle(info, "Tagi", "nothing loaded (load() first)") {}

 private:
  bool HasState() const override { return st_ != nullptr; }
  void DropState() override { st_.reset(); }
  int64_t StateBytes() const override { return st_ ? st_->bytes() : 0; }

  // load(modelDir, {hypernet?: options, hypernetPath?, teachers?: string[], teacherModelDir?, trainBase?, seed?,
  //                 dtype?}) -> Promise<void>
  Napi::Value Load(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "load", false);
      if (st_) throw Napi::Error::New(Env(), "Tagi.load: already loaded");
      std::string dir = RequireString(info[0], "modelDir");
      auto o = OptionsArg(info, 1);
      hypernet::HyperNetOptions hopt;
      std::string hpath, tdir;
      std::vector<std::string> teachers;
      bool train_base = false;
      uint64_t seed = 0;
      at::ScalarType dtype = at::kFloat;
      if (auto v = OptionalField(o, "hypernet")) hopt = HyperFromJs(RequireObject(*v, "options.hypernet"));
      if (auto v = OptionalField(o, "hypernetPath")) hpath = RequireString(*v, "options.hypernetPath");
      if (auto v = OptionalField(o, "teacherModelDir")) tdir = RequireString(*v, "options.teacherModelDir");
      if (auto v = OptionalField(o, "trainBase")) train_base = RequireBool(*v, "options.trainBase");
      if (auto v = OptionalField(o, "seed")) seed = RequireSeed(*v, "options.seed");
      if (auto v = OptionalField(o, "dtype")) dtype = FloatDtypeFromJs(*v, "options.dtype", {"float32", "float64"});
      if (auto v = OptionalField(o, "teachers")) teachers = RequireStringArray(*v, "options.teachers");
      auto st = std::make_shared<TagiState>();
      st->train_base = train_base;
      return Run(info, "load",
                 [st, dir, hopt, hpath, tdir, teachers, train_base, seed, dtype](const Reporter&) {
                   st->tagi = LoadTagi(dir, hopt, hpath, teachers, tdir, train_base, seed, dtype);
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
      Check(Env(), "info");
      auto o = Napi::Object::New(info.Env());
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
      Check(Env(), "setLoss");
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
      Check(Env(), "setOptimizer");
      auto c = OptimConfigFromJs(info[0], "optimizer");
      std::vector<std::pair<std::string, at::Tensor>> params;
      for (auto& kv : st_->tagi.hypernet->named_parameters()) params.emplace_back("hypernet." + kv.key(), kv.value());
      if (st_->train_base)
        for (auto& kv : st_->tagi.model->named_parameters()) params.emplace_back("model." + kv.key(), kv.value());
      st_->optimizer = std::make_unique<train::Optimizer>(std::move(params), c);
      Account(info.Env());
      return info.Env().Undefined();
    });
  }

  // trainSteps(batches, {onProgress?, processGroup?, termGradNorms?}) -> Promise<{losses, gradNorms, lrs, ce, kl, mse,
  // termGradNorms, tokens, seconds, step, cancelled}>. With a process group, gradients are averaged over the ranks
  // before clipping (as T5Model's).
  Napi::Value TrainSteps(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "trainSteps");
      if (!st_->optimizer) throw Napi::Error::New(Env(), "Tagi.trainSteps: call setOptimizer() first");
      const auto& cfg = st_->tagi.model->config();
      auto batches = std::make_shared<std::vector<hypernet::TagiBatch>>(ArrayFromJs(
          info[0], "batches", [&](const Napi::Value& v, const std::string& a) { return TagiBatchFromJs(v, a, cfg, true); }));
      auto opts = OptionsArg(info, 1);
      auto cb = OptionalFunction(opts, "onProgress", "options");
      bool term_norms = false;
      if (auto v = OptionalField(opts, "termGradNorms")) term_norms = RequireBool(*v, "options.termGradNorms");
      auto sync = GradSyncFromJs(opts, "options");
      auto st = st_;
      auto res = std::make_shared<hypernet::TagiStepsResult>();
      return Run(info, "trainSteps",
                 [st, batches, res, sync, term_norms](const Reporter& report) {
                   *res = TrainTagi(*st, *batches, report, sync.get(), term_norms);
                 },
                 [res](Napi::Env env) -> Napi::Value {
                   auto o = Napi::Object::New(env);
                   StepsResultToJs(o, res->steps, /*nan_as_null=*/true);
                   o.Set("ce", NumbersToJs(env, res->ce, true));
                   o.Set("kl", NumbersToJs(env, res->kl, true));
                   o.Set("mse", NumbersToJs(env, res->mse, true));
                   Napi::Value norms = env.Null();
                   if (res->term_grad_norms) {
                     const auto& t = *res->term_grad_norms;
                     auto g = NumbersToJs(env, {t.ce, t.kl, t.mse}, true);
                     auto n = Napi::Object::New(env);
                     n.Set("ce", g.Get(uint32_t(0)));
                     n.Set("kl", g.Get(uint32_t(1)));
                     n.Set("mse", g.Get(uint32_t(2)));
                     norms = n;
                   }
                   o.Set("termGradNorms", norms);
                   return o;
                 },
                 true, cb);
    });
  }

  // generate(batch{inputIds, attentionMask, instrIds, instrMask}, {maxNewTokens?, numBeams?}) -> Promise<number[][]>
  Napi::Value Generate(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "generate");
      auto b = std::make_shared<hypernet::TagiBatch>(TagiBatchFromJs(info[0], "batch", st_->tagi.model->config(), false));
      t5::GenerateOptions g = GenerateOptionsFromJs(info[1], "options", false);
      auto st = st_;
      auto out = std::make_shared<std::vector<std::vector<int64_t>>>();
      return Run(info, "generate",
                 [st, b, g, out](const Reporter&) {
                   at::Tensor ids = st->tagi.generate(b->student.input_ids, b->student.attention_mask, b->instr_ids,
                                                      b->instr_mask, g);
                   *out = train::strip_generated(ids, st->tagi.model->config().eos_token_id);
                 },
                 [out](Napi::Env env) -> Napi::Value { return TokenRowsToJs(env, *out); }, false);
    });
  }

  // scoreOptions(batch{inputIds, attentionMask, instrIds, instrMask}, options: number[][][]) -> Promise<number[][]>:
  // summed log-likelihood of each option under the example's generated adapter (+ fusion), as T5Model.scoreOptions.
  Napi::Value ScoreOptions(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "scoreOptions");
      const auto& cfg = st_->tagi.model->config();
      auto b = std::make_shared<hypernet::TagiBatch>(TagiBatchFromJs(info[0], "batch", cfg, false));
      OptionIds parsed = OptionIdsFromJs(info[1], b->student.input_ids.size(0), cfg.vocab_size);
      at::Tensor options = parsed.ids;
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
                 [sums, counts = parsed.counts](Napi::Env env) -> Napi::Value { return OptionScoresToJs(env, *sums, counts); },
                 false);
    });
  }

  // writeAdapter(instrIds {data, shape [1, L]}, dir, {baseModel?}) -> Promise<{modules, seconds}>: PEFT folder.
  Napi::Value WriteAdapter(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "writeAdapter");
      at::Tensor ids = Ids(TensorFromJs(info[0], "instrIds"), st_->tagi.model->config().vocab_size, "instrIds");
      if (ids.size(0) != 1) throw RangeError("instrIds: expected shape [1, L]");
      std::string dir = RequireString(info[1], "dir");
      std::string base;
      if (auto v = OptionalField(OptionsArg(info, 2), "baseModel")) base = RequireString(*v, "options.baseModel");
      auto st = st_;
      auto out = std::make_shared<std::pair<size_t, double>>();
      return Run(info, "writeAdapter",
                 [st, ids, dir, base, out](const Reporter&) { *out = WriteTagiAdapter(st->tagi, ids, dir, base); },
                 [out](Napi::Env env) -> Napi::Value {
                   auto o = Napi::Object::New(env);
                   o.Set("modules", static_cast<double>(out->first));
                   o.Set("seconds", out->second);
                   return o;
                 },
                 false);
    });
  }

  // save(dir) -> Promise<void>: <dir>/hypernet.safetensors (+ <dir>/model when the base was trained).
  Napi::Value Save(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "save");
      std::string dir = RequireString(info[0], "dir");
      auto st = st_;
      return Run(info, "save", [st, dir](const Reporter&) { SaveTagi(*st, dir); }, nullptr, false);
    });
  }

  // saveTrainingState(path) / loadTrainingState(path) -> Promise<void>: the optimizer state, the scheduler step and the RNG states
  // (train::save_training_state / load_training_state, one safetensors file), for checkpoints. loadTrainingState needs
  // setOptimizer() first, with the same optimizer over the same parameters (hypernetwork, + base with trainBase).
  Napi::Value SaveTrainingState(const Napi::CallbackInfo& info) { return State(info, "saveTrainingState", true); }
  Napi::Value LoadTrainingState(const Napi::CallbackInfo& info) { return State(info, "loadTrainingState", false); }
  Napi::Value State(const Napi::CallbackInfo& info, const char* what, bool save) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), what);
      if (!st_->optimizer) throw Napi::Error::New(Env(), Name(what) + ": call setOptimizer() first");
      std::string path = RequireString(info[0], "path");
      auto st = st_;
      return Run(info, what,
                 [st, path, save](const Reporter&) {
                   if (save) train::save_training_state(path, *st->optimizer);
                   else train::load_training_state(path, *st->optimizer);
                 },
                 nullptr, false);
    });
  }

  std::shared_ptr<TagiState> st_;
};

}  // namespace

void InitTagi(Napi::Env env, Napi::Object exports) { exports.Set("TagiNative", TagiWrap::Define(env)); }

}  // namespace instill::napi
