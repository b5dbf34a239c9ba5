// The T5 model handle (src/model/model.ts wraps it): one Handle per model (napi/handle.h: one call at a time,
// dispose, memory reported to V8). Every method heavier than a field read runs on a worker thread. All math lives
// in native/core (t5/, lora/, train/).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "common/errors.h"
#include "io/peft.h"
#include "lora/lora.h"
#include "napi/dist_wrap.h"
#include "napi/handle.h"
#include "napi/marshal.h"
#include "napi/modules.h"
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

  int64_t bytes() const { return ModuleBytes(model) + (optimizer ? optimizer->state_bytes() : 0); }

  std::vector<std::pair<std::string, at::Tensor>> trainable() const {
    std::vector<std::pair<std::string, at::Tensor>> v;
    for (auto& kv : model->named_parameters(true))
      if (kv.value().requires_grad()) v.emplace_back(kv.key(), kv.value());
    return v;
  }

  void set_optimizer(const train::OptimConfig& cfg) {
    auto params = trainable();
    if (params.empty()) throw ArgumentError("setOptimizer: the model has no trainable parameters");
    optimizer = std::make_unique<train::Optimizer>(std::move(params), cfg);
    optim_cfg = cfg;
    has_optim = true;
  }

  // (Re)creates the optimizer over the current trainable parameters (fresh state, step 0).
  void rebuild_optimizer() {
    optimizer.reset();
    if (has_optim) set_optimizer(optim_cfg);
  }

  void unfreeze_all() {
    for (auto& p : model->parameters(true)) p.set_requires_grad(true);
  }

  // Replaces any adapters with the folder's (trainable, base frozen); resets the optimizer.
  void load_adapter(const std::string& dir) {
    io::PeftAdapter a = io::read_peft_adapter(dir);
    if (has_lora) lora::remove_lora(*model);
    has_lora = false;
    try {
      lora::load_adapter(*model, dir);
    } catch (...) {
      lora::remove_lora(*model);
      unfreeze_all();
      rebuild_optimizer();
      throw;
    }
    lora::freeze_base(*model);
    lora::LoraConfig lc;
    lc.r = a.r;
    lc.alpha = a.alpha;
    lc.target_modules = a.target_modules;
    if (a.config.contains("lora_dropout") && a.config["lora_dropout"].is_number())
      lc.dropout = a.config["lora_dropout"].get<double>();
    lora_cfg = lc;
    has_lora = true;
    rebuild_optimizer();
  }
};

lora::LoraConfig LoraFromJs(const Napi::Value& v) {
  auto o = RequireObject(v, "lora");
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
  lc.target_modules = RequireStringArray(*modules, "lora.modules");
  return lc;
}

class T5Wrap : public Handle<T5Wrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineHandle(env, "T5Native",
                        {InstanceMethod<&T5Wrap::Load>("load"),
                         InstanceMethod<&T5Wrap::InitModel>("init"),
                         InstanceMethod<&T5Wrap::Config>("config"),
                         InstanceMethod<&T5Wrap::ParameterCount>("parameterCount"),
                         InstanceMethod<&T5Wrap::SetOptimizer>("setOptimizer"),
                         InstanceMethod<&T5Wrap::AddLora>("addLora"),
                         InstanceMethod<&T5Wrap::MergeLora>("mergeLora"),
                         InstanceMethod<&T5Wrap::TrainSteps>("trainSteps"),
                         InstanceMethod<&T5Wrap::EvalLoss>("evalLoss"),
                         InstanceMethod<&T5Wrap::Generate>("generate"),
                         InstanceMethod<&T5Wrap::ScoreOptions>("scoreOptions"),
                         InstanceMethod<&T5Wrap::Save>("save"),
                         InstanceMethod<&T5Wrap::SaveAdapter>("saveAdapter"),
                         InstanceMethod<&T5Wrap::LoadAdapter>("loadAdapter"),
                         InstanceMethod<&T5Wrap::SaveTrainingState>("saveTrainingState"),
                         InstanceMethod<&T5Wrap::LoadTrainingState>("loadTrainingState"),
                         InstanceAccessor<&T5Wrap::Step>("step")},
                        /*cancellable=*/true);
  }

  explicit T5Wrap(const Napi::CallbackInfo& info) : Handle(info, "T5Model", "no model loaded (load() or init() first)") {}

 private:
  bool HasState() const override { return st_ != nullptr; }
  void DropState() override { st_.reset(); }
  int64_t StateBytes() const override { return st_ ? st_->bytes() : 0; }

  // Installs the state a load/init call built, when it settles.
  TaskWorker::Finish Install(std::shared_ptr<ModelState> st) {
    return [this, st](Napi::Env env) -> Napi::Value {
      st_ = st;
      return env.Undefined();
    };
  }

  train::Batch Batch(const Napi::Value& v, const std::string& arg, bool labels) const {
    auto o = RequireObject(v, arg);
    train::Batch b = BatchFromJs(o, arg, st_->model->config(), labels, st_->model->device());
    if (auto x = OptionalField(o, "lossScale")) b.loss_scale = RequireLossScale(*x, arg + ".lossScale");
    return b;
  }
  std::shared_ptr<std::vector<train::Batch>> Batches(const Napi::Value& v, bool labels) const {
    return std::make_shared<std::vector<train::Batch>>(
        ArrayFromJs(v, "batches", [&](const Napi::Value& x, const std::string& a) { return Batch(x, a, labels); }));
  }

  // ---- construction ----
  // load(dir, {dtype?: "float32"|"float64"|"bfloat16"|"float16"|"stored", seed?}) -> Promise<void>
  Napi::Value Load(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "load", false);
      if (st_) throw Napi::Error::New(Env(), "T5Model.load: this handle already holds a model");
      std::string dir = RequireString(info[0], "dir");
      auto o = OptionsArg(info, 1);
      at::ScalarType dtype = at::kFloat;
      int64_t seed = -1;
      // "stored": the checkpoint's own floating dtype (e.g. bfloat16), see t5::from_pretrained.
      if (auto v = OptionalField(o, "dtype"))
        dtype = FloatDtypeFromJs(*v, "options.dtype", {"float32", "float64", "bfloat16", "float16", "stored"});
      if (auto v = OptionalField(o, "seed")) seed = static_cast<int64_t>(RequireSeed(*v, "options.seed"));
      auto st = std::make_shared<ModelState>();
      return Run(info, "load",
                 [st, dir, dtype, seed](const Reporter&) {
                   if (seed >= 0) torch::manual_seed(static_cast<uint64_t>(seed));
                   st->model = t5::from_pretrained(dir, dtype);
                   st->model->eval();
                 },
                 Install(st), false);
    });
  }

  // init(spec: preset name | config.json text, {seed?, vocabSize?, dtype?}) -> Promise<void>: random HF init.
  Napi::Value InitModel(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "init", false);
      if (st_) throw Napi::Error::New(Env(), "T5Model.init: this handle already holds a model");
      std::string spec = RequireString(info[0], "config");
      auto o = OptionsArg(info, 1);
      uint64_t seed = 0;
      int64_t vocab = -1;
      at::ScalarType dtype = at::kFloat;
      if (auto v = OptionalField(o, "seed")) seed = RequireSeed(*v, "options.seed");
      if (auto v = OptionalField(o, "vocabSize")) vocab = RequireInt(*v, "options.vocabSize", 1, int64_t{1} << 24);
      if (auto v = OptionalField(o, "dtype")) dtype = FloatDtypeFromJs(*v, "options.dtype", {"float32", "float64"});
      t5::T5Config cfg = T5ConfigFromSpec(spec, vocab, "config");
      auto st = std::make_shared<ModelState>();
      return Run(info, "init",
                 [st, cfg, seed, dtype](const Reporter&) {
                   torch::manual_seed(seed);
                   st->model = t5::T5ForConditionalGeneration(cfg);
                   st->model->init_weights(seed);
                   if (dtype != at::kFloat) st->model->to(dtype);
                   st->model->eval();
                 },
                 Install(st), false);
    });
  }

  // ---- synchronous queries and setup ----
  Napi::Value Config(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "config");
      return Napi::String::New(info.Env(), st_->model->config().to_json());
    });
  }

  Napi::Value ParameterCount(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "parameterCount");
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
      Check(Env(), "setOptimizer");
      st_->set_optimizer(OptimConfigFromJs(info[0], "optimizer", {}, {"name", "lr", "totalSteps"}));
      Account(info.Env());
      return info.Env().Undefined();
    });
  }

  // addLora({r, alpha, dropout?, modules, seed?}): trainable adapters, base frozen; resets the optimizer.
  Napi::Value AddLora(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "addLora");
      if (st_->has_lora) throw Napi::Error::New(Env(), "T5Model.addLora: the model already has LoRA adapters; mergeLora() first");
      lora::LoraConfig lc = LoraFromJs(info[0]);
      uint64_t seed = 0;
      if (auto s = OptionalField(info[0].As<Napi::Object>(), "seed")) seed = RequireSeed(*s, "lora.seed");
      lora::lora_sites(*st_->model, lc);  // validates names before anything changes
      lora::add_lora(*st_->model, lc, seed);
      lora::freeze_base(*st_->model);
      st_->has_lora = true;
      st_->lora_cfg = lc;
      st_->rebuild_optimizer();
      Account(info.Env());
      return info.Env().Undefined();
    });
  }

  // mergeLora(): W += alpha/r B A, adapters removed, every base parameter trainable again; resets the optimizer.
  Napi::Value MergeLora(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "mergeLora");
      if (!st_->has_lora) throw Napi::Error::New(Env(), "T5Model.mergeLora: the model has no LoRA adapters");
      lora::merge_lora(*st_->model);
      st_->unfreeze_all();
      st_->has_lora = false;
      st_->rebuild_optimizer();
      Account(info.Env());
      return info.Env().Undefined();
    });
  }

  // ---- async work ----
  // trainSteps(batches, {onProgress?, processGroup?, precision?: 'auto'|'float32'|'bf16'})
  //   -> Promise<{losses, gradNorms, lrs, tokens, seconds, step, cancelled}>
  // With options.processGroup, gradients are averaged over the group (bucketed all-reduce) after each step's
  // backward and before clipping.
  Napi::Value TrainSteps(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "trainSteps");
      if (!st_->optimizer) throw Napi::Error::New(Env(), "T5Model.trainSteps: call setOptimizer() first");
      auto batches = Batches(info[0], true);
      auto opts = OptionsArg(info, 1);
      auto cb = OptionalFunction(opts, "onProgress", "options");
      train::Precision precision = train::Precision::kAuto;
      if (auto pv = OptionalField(opts, "precision"))
        precision = train::parse_precision(RequireString(*pv, "options.precision"), "options.precision");
      auto sync = GradSyncFromJs(opts, "options");
      auto st = st_;
      auto result = std::make_shared<train::TrainStepsResult>();
      return Run(info, "trainSteps",
                 [st, batches, result, sync, precision](const Reporter& report) {
                   st->model->train();
                   *result = train::train_steps(
                       train::t5_loss_fn(*st->model), *st->optimizer, *batches,
                       [&report](const train::StepProgress& p) { report(StepProgressEvent(p)); }, report.cancel_flag(),
                       precision, sync.get());
                   st->model->eval();
                 },
                 [result](Napi::Env env) -> Napi::Value {
                   auto o = Napi::Object::New(env);
                   StepsResultToJs(o, *result);
                   return o;
                 },
                 true, cb);
    });
  }

  Napi::Value EvalLoss(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "evalLoss");
      auto batches = Batches(info[0], true);
      auto st = st_;
      auto out = std::make_shared<std::vector<double>>();
      return Run(info, "evalLoss", [st, batches, out](const Reporter&) { *out = train::t5_eval_loss(*st->model, *batches); },
                 [out](Napi::Env env) -> Napi::Value { return NumbersToJs(env, *out); }, false);
    });
  }

  // generate(batch, {maxNewTokens, numBeams?, useCache?}) -> Promise<number[][]> (no start id, cut at EOS)
  Napi::Value Generate(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "generate");
      auto batch = std::make_shared<train::Batch>(Batch(info[0], "batch", false));
      t5::GenerateOptions g = GenerateOptionsFromJs(info[1], "options", true);
      bool use_cache = true;
      if (auto v = OptionalField(info[1].As<Napi::Object>(), "useCache")) use_cache = RequireBool(*v, "options.useCache");
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
                 [rows](Napi::Env env) -> Napi::Value { return TokenRowsToJs(env, *rows); }, false);
    });
  }

  // scoreOptions(batch, options: number[][][]) -> Promise<number[][]>: summed log-likelihood per option.
  Napi::Value ScoreOptions(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "scoreOptions");
      auto batch = std::make_shared<train::Batch>(Batch(info[0], "batch", false));
      OptionIds parsed = OptionIdsFromJs(info[1], batch->input_ids.size(0), st_->model->config().vocab_size);
      at::Tensor options = parsed.ids;
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
                 [sums, counts = parsed.counts](Napi::Env env) -> Napi::Value { return OptionScoresToJs(env, *sums, counts); },
                 false);
    });
  }

  // Runs fn(state, path) for the call `what` that takes one path argument.
  template <class F>
  Napi::Value RunWithPath(const Napi::CallbackInfo& info, const char* what, const char* arg, F fn) {
    std::string path = RequireString(info[0], arg);
    auto st = st_;
    return Run(info, what, [st, path, fn](const Reporter&) { fn(*st, path); }, nullptr, false);
  }

  Napi::Value Save(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "save");
      return RunWithPath(info, "save", "dir", [](ModelState& s, const std::string& d) { t5::save_pretrained(*s.model, d); });
    });
  }

  Napi::Value SaveAdapter(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "saveAdapter");
      if (!st_->has_lora) throw Napi::Error::New(Env(), "T5Model.saveAdapter: the model has no LoRA adapters (addLora or loadAdapter first)");
      return RunWithPath(info, "saveAdapter", "dir",
                         [](ModelState& s, const std::string& d) { lora::save_adapter(*s.model, d, s.lora_cfg); });
    });
  }

  // loadAdapter(dir): replaces any LoRA adapters with the folder's (trainable, base frozen); resets the optimizer.
  Napi::Value LoadAdapter(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "loadAdapter");
      return RunWithPath(info, "loadAdapter", "dir", [](ModelState& s, const std::string& d) { s.load_adapter(d); });
    });
  }

  Napi::Value SaveTrainingState(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "saveTrainingState");
      if (!st_->optimizer) throw Napi::Error::New(Env(), "T5Model.saveTrainingState: no optimizer (setOptimizer first)");
      return RunWithPath(info, "saveTrainingState", "path",
                         [](ModelState& s, const std::string& p) { train::save_training_state(p, *s.optimizer); });
    });
  }

  Napi::Value LoadTrainingState(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "loadTrainingState");
      if (!st_->optimizer)
        throw Napi::Error::New(Env(), "T5Model.loadTrainingState: call setOptimizer() with the same options first");
      return RunWithPath(info, "loadTrainingState", "path",
                         [](ModelState& s, const std::string& p) { train::load_training_state(p, *s.optimizer); });
    });
  }

  // Optimizer steps taken. While a call runs, the value from before it: the worker may be stepping the optimizer.
  Napi::Value Step(const Napi::CallbackInfo& info) {
    if (!busy()) step_ = st_ && st_->optimizer ? st_->optimizer->step() : 0;
    return Napi::Number::New(info.Env(), static_cast<double>(step_));
  }

  std::shared_ptr<ModelState> st_;
  int64_t step_ = 0;
};

}  // namespace

void InitT5(Napi::Env env, Napi::Object exports) { exports.Set("T5Native", T5Wrap::Define(env)); }

}  // namespace instill::napi
