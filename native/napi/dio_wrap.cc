// DIO glue: the DioNative handle (src/dio/dio.ts's Dio class wraps it) owns one T5 model, its learnable
// instructions and the two optimizers of native/core/dio/dio.h; plus dioBenchHypergrad() for bench/hypergrad.ts
// (native/core/dio/bench.h). A Handle (napi/handle.h): heavy calls run on a worker thread, one call at a time.
// init() takes options.processGroup (data parallelism: inner gradients and the hypergradient's products averaged
// over the group); saveTrainingState / loadTrainingState carry both optimizers, the RNG states and the step counter
// (checkpoints).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "common/errors.h"
#include "dio/bench.h"
#include "dio/dio.h"
#include "dist/process_group.h"
#include "napi/dist_wrap.h"
#include "napi/handle.h"
#include "napi/marshal.h"
#include "napi/modules.h"
#include "t5/config.h"
#include "t5/model.h"
#include "t5/pretrained.h"
#include "train/optim.h"
#include "train/t5_task.h"

namespace instill::napi {
namespace {

dio::DioBatch DioBatchFromJs(const Napi::Value& v, const std::string& arg, const t5::T5Config& cfg, bool labels,
                             at::Device dev) {
  auto o = RequireObject(v, arg);
  dio::DioBatch b;
  b.batch = BatchFromJs(o, arg, cfg, labels, dev);
  auto ids = [&](const char* key) {
    at::Tensor t = TensorField(o, key, arg);
    return t.defined() ? t.to(at::kLong) : t;
  };
  b.task_ids = ids("taskIds");
  b.instr_ids = ids("instrIds");
  b.instr_mask = ids("instrMask");
  b.demo_ids = ids("demoIds");
  b.demo_mask = ids("demoMask");
  b.demo_task_ids = ids("demoTaskIds");
  if (auto x = OptionalField(o, "lossScale")) b.loss_scale = RequireLossScale(*x, arg + ".lossScale");
  if ((b.demo_mask.defined() || b.demo_task_ids.defined()) && !b.demo_ids.defined())
    throw ArgumentError(arg + ".demoIds: required with demoMask / demoTaskIds");
  return b;
}

dio::DioOptions DioOptionsFromJs(const Napi::Value& v) {
  auto o = RequireObject(v, "options");
  dio::DioOptions d;
  if (auto x = OptionalField(o, "variant")) d.variant = RequireString(*x, "options.variant");
  if (auto x = OptionalField(o, "promptLength")) d.prompt_length = RequireInt(*x, "options.promptLength", 1, 4096);
  if (auto x = OptionalField(o, "numTasks")) d.num_tasks = RequireInt(*x, "options.numTasks", 0, 1 << 24);
  if (auto x = OptionalField(o, "hypergrad")) d.hypergrad = RequireString(*x, "options.hypergrad");
  if (auto x = OptionalField(o, "alpha")) d.hypergrad_options.alpha = RequireNumber(*x, "options.alpha");
  if (auto x = OptionalField(o, "damping")) d.hypergrad_options.damping = RequireNumber(*x, "options.damping");
  if (auto x = OptionalField(o, "unrollLr")) {  // a fixed lr for unroll / fd / sama instead of the inner optimizer's
    d.hypergrad_options.inner_lr = RequireNumber(*x, "options.unrollLr");
    d.hypergrad_lr_from_inner = false;
  }
  if (auto x = OptionalField(o, "metaEvery")) d.meta_every = RequireInt(*x, "options.metaEvery", 0, 1 << 20);
  if (auto x = OptionalField(o, "seed")) d.seed = RequireSeed(*x, "options.seed");
  if (auto x = OptionalField(o, "instructionEncoding")) d.instruction_encoding = RequireString(*x, "options.instructionEncoding");
  if (auto x = OptionalField(o, "numDemonstrations")) d.num_demonstrations = RequireInt(*x, "options.numDemonstrations", 0, 4096);
  if (auto x = OptionalField(o, "gumbelTau")) d.gumbel_tau = RequireNumber(*x, "options.gumbelTau");
  if (auto x = OptionalField(o, "processGroup")) {
    // Data parallelism: the inner gradients and every product of the hypergradient are averaged over the group;
    // TypeScript gives each rank its contiguous shard of every batch.
    auto pg = ProcessGroupFromJs(*x, "options.processGroup");
    d.grad_sync = instill::dist::make_grad_sync(pg);
    d.reduce = [pg](std::vector<at::Tensor>& xs) { pg->allreduce_mean_(xs); };
    d.shard_rank = pg->rank();
    d.shard_world = pg->world_size();
  }
  auto inner = OptionalField(o, "inner");
  auto outer = OptionalField(o, "outer");
  if (!inner || !outer) throw ArgumentError("options.inner / options.outer: optimizer options are required");
  train::OptimConfig adamw;
  adamw.name = "adamw";
  d.inner = OptimConfigFromJs(*inner, "options.inner", adamw, {"lr"});
  d.outer = OptimConfigFromJs(*outer, "options.outer", adamw, {"lr"});
  d.validate();
  return d;
}

struct Item {
  dio::DioBatch train, meta;
  bool has_meta = false;
};

// The bilevel steps of one call: DioTrainer::step per item with a progress event each, until cancelled.
std::vector<dio::DioStepStats> DioSteps(dio::DioTrainer& t, std::vector<Item>& items, const Reporter& report) {
  std::vector<dio::DioStepStats> out;
  for (size_t i = 0; i < items.size() && !report.cancelled(); ++i) {
    auto& it = items[i];
    out.push_back(t.step(it.train, it.has_meta ? &it.meta : nullptr));
    report({{{"step", static_cast<double>(t.steps())},
             {"stepInCall", static_cast<double>(i + 1)},
             {"stepsInCall", static_cast<double>(items.size())},
             {"loss", out.back().train_loss},
             {"metaLoss", out.back().meta_loss},
             {"lr", t.inner_optimizer().current_lr()}},
            ""});
  }
  return out;
}

Napi::Object StepsToJs(Napi::Env env, const std::vector<dio::DioStepStats>& steps) {
  std::vector<double> tl, ml, hn, sec, hs;
  double hvp = 0, grads = 0;
  for (auto& s : steps) {
    tl.push_back(s.train_loss);
    ml.push_back(s.meta_loss);
    hn.push_back(s.hypergrad_norm);
    sec.push_back(s.seconds);
    hs.push_back(s.hypergrad_seconds);
    hvp += static_cast<double>(s.hvp_count);
    grads += static_cast<double>(s.grad_count);
  }
  auto o = Napi::Object::New(env);
  o.Set("trainLoss", NumbersToJs(env, tl));
  o.Set("metaLoss", NumbersToJs(env, ml));  // NaN where no outer update ran
  o.Set("hypergradNorm", NumbersToJs(env, hn));
  o.Set("seconds", NumbersToJs(env, sec));
  o.Set("hypergradSeconds", NumbersToJs(env, hs));
  o.Set("hvpCount", hvp);
  o.Set("gradCount", grads);
  return o;
}

class DioWrap : public Handle<DioWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineHandle(env, "DioNative",
                        {InstanceMethod<&DioWrap::Init>("init"), InstanceMethod<&DioWrap::TrainSteps>("trainSteps"),
                         InstanceMethod<&DioWrap::Generate>("generate"),
                         InstanceMethod<&DioWrap::ScoreOptions>("scoreOptions"),
                         InstanceMethod<&DioWrap::EvalLoss>("evalLoss"), InstanceMethod<&DioWrap::Save>("save"),
                         InstanceMethod<&DioWrap::LoadPhi>("loadPhi"), InstanceMethod<&DioWrap::Info>("info"),
                         InstanceMethod<&DioWrap::SaveTrainingState>("saveTrainingState"),
                         InstanceMethod<&DioWrap::LoadTrainingState>("loadTrainingState"),
                         InstanceMethod<&DioWrap::ReadPhi>("readPhi")},
                        /*cancellable=*/true);
  }
  explicit DioWrap(const Napi::CallbackInfo& info) : Handle(info, "DioNative", "init() it first") {}

 private:
  bool HasState() const override { return trainer_ != nullptr; }
  void DropState() override { trainer_.reset(); }
  int64_t StateBytes() const override {
    if (!trainer_) return 0;
    int64_t n = ModuleBytes(trainer_->model()) + trainer_->inner_optimizer().state_bytes() +
                trainer_->outer_optimizer().state_bytes();
    for (const auto& p : trainer_->phi()) n += p.numel() * static_cast<int64_t>(p.element_size());
    return n;
  }

  dio::DioBatch Batch(const Napi::Value& v, const std::string& arg, bool labels) const {
    auto& model = trainer_->model();
    return DioBatchFromJs(v, arg, model->config(), labels, model->device());
  }

  // init(modelDir, options, initIds?: number[][]) -> Promise<void>
  Napi::Value Init(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "init", false);
      if (trainer_) throw Napi::Error::New(Env(), "DioNative.init: already initialized");
      std::string dir = RequireString(info[0], "modelDir");
      dio::DioOptions d = DioOptionsFromJs(info[1]);
      std::vector<std::vector<int64_t>> init;
      if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
        if (!info[2].IsArray()) throw ArgumentError("initIds: expected number[][]");
        init = ArrayFromJs(info[2], "initIds", RequireIntArray, /*allow_empty=*/true);
      }
      auto out = std::make_shared<std::shared_ptr<dio::DioTrainer>>();
      return Run(info, "init",
                 [out, dir, d, init](const Reporter&) { *out = dio::load_trainer(dir, d, init); },
                 [this, out](Napi::Env env) -> Napi::Value {
                   trainer_ = *out;
                   return env.Undefined();
                 },
                 false);
    });
  }

  // trainSteps([{train, meta?}], onProgress?) -> Promise<{trainLoss[], metaLoss[], hypergradNorm[], ...}>
  Napi::Value TrainSteps(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "trainSteps");
      auto items = std::make_shared<std::vector<Item>>(ArrayFromJs(info[0], "items", [&](const Napi::Value& v, const std::string& a) {
        auto o = RequireObject(v, a);
        Item it;
        auto tr = OptionalField(o, "train");
        if (!tr) throw ArgumentError(a + ".train: required");
        it.train = Batch(*tr, a + ".train", true);
        if (auto m = OptionalField(o, "meta")) {
          it.meta = Batch(*m, a + ".meta", true);
          it.has_meta = true;
        }
        return it;
      }));
      std::optional<Napi::Function> cb;
      if (info.Length() > 1 && info[1].IsFunction()) cb = info[1].As<Napi::Function>();
      auto t = trainer_;
      auto out = std::make_shared<std::vector<dio::DioStepStats>>();
      return Run(info, "trainSteps", [t, items, out](const Reporter& report) { *out = DioSteps(*t, *items, report); },
                 [out](Napi::Env env) -> Napi::Value { return StepsToJs(env, *out); }, true, cb);
    });
  }

  // generate(batch (with taskIds / instrIds or neither), {maxNewTokens, numBeams?}) -> number[][]
  Napi::Value Generate(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "generate");
      auto b = std::make_shared<dio::DioBatch>(Batch(info[0], "batch", false));
      t5::GenerateOptions g = GenerateOptionsFromJs(info[1], "options", true);
      auto t = trainer_;
      auto rows = std::make_shared<std::vector<std::vector<int64_t>>>();
      return Run(info, "generate",
                 [t, b, g, rows](const Reporter&) {
                   *rows = train::strip_generated(t->generate(*b, g.max_new_tokens, g.num_beams),
                                                  t->model()->config().eos_token_id);
                 },
                 [rows](Napi::Env env) -> Napi::Value { return TokenRowsToJs(env, *rows); }, false);
    });
  }

  // scoreOptions(batch (with taskIds / instrIds / demonstrations or none), options: number[][][]) -> Promise<number[][]>:
  // rank classification through the DIO model with its soft tokens (summed log-likelihood, as T5Model.scoreOptions).
  Napi::Value ScoreOptions(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "scoreOptions");
      auto b = std::make_shared<dio::DioBatch>(Batch(info[0], "batch", false));
      OptionIds parsed = OptionIdsFromJs(info[1], b->batch.input_ids.size(0), trainer_->model()->config().vocab_size);
      at::Tensor options = parsed.ids;
      auto t = trainer_;
      auto sums = std::make_shared<at::Tensor>();
      return Run(info, "scoreOptions", [t, b, options, sums](const Reporter&) { *sums = t->score_options(*b, options); },
                 [sums, counts = parsed.counts](Napi::Env env) -> Napi::Value { return OptionScoresToJs(env, *sums, counts); },
                 false);
    });
  }

  // evalLoss(batches) -> Promise<number[]>: mean token loss per batch with its soft tokens, eval mode, no grad.
  Napi::Value EvalLoss(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "evalLoss");
      auto bs = std::make_shared<std::vector<dio::DioBatch>>(ArrayFromJs(
          info[0], "batches", [&](const Napi::Value& v, const std::string& a) { return Batch(v, a, true); }, true));
      auto t = trainer_;
      auto out = std::make_shared<std::vector<double>>();
      return Run(info, "evalLoss", [t, bs, out](const Reporter&) { *out = t->eval_loss(*bs); },
                 [out](Napi::Env env) -> Napi::Value { return NumbersToJs(env, *out); }, false);
    });
  }

  // Runs fn(trainer, path) for the call `what` that takes one path argument.
  template <class F>
  Napi::Value RunWithPath(const Napi::CallbackInfo& info, const char* what, const char* arg, F fn) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), what);
      std::string path = RequireString(info[0], arg);
      auto t = trainer_;
      return Run(info, what, [t, path, fn](const Reporter&) { fn(*t, path); }, nullptr, false);
    });
  }

  // save(dir): the model (config.json + model.safetensors) and <dir>/dio_instructions.safetensors
  Napi::Value Save(const Napi::CallbackInfo& info) {
    return RunWithPath(info, "save", "dir", [](dio::DioTrainer& t, const std::string& dir) { t.save(dir); });
  }
  Napi::Value LoadPhi(const Napi::CallbackInfo& info) {
    return RunWithPath(info, "loadPhi", "path", [](dio::DioTrainer& t, const std::string& p) { t.load_phi(p); });
  }
  // saveTrainingState(path) / loadTrainingState(path): both optimizers, the RNG states and the step counter (dio.h save_state).
  Napi::Value SaveTrainingState(const Napi::CallbackInfo& info) {
    return RunWithPath(info, "saveTrainingState", "path", [](dio::DioTrainer& t, const std::string& p) { t.save_state(p); });
  }
  Napi::Value LoadTrainingState(const Napi::CallbackInfo& info) {
    return RunWithPath(info, "loadTrainingState", "path", [](dio::DioTrainer& t, const std::string& p) { t.load_state(p); });
  }

  // readPhi() -> {name: HostTensor(float64)}: the instruction parameters (small; tests and inspection).
  Napi::Value ReadPhi(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "readPhi");
      auto o = Napi::Object::New(info.Env());
      for (auto& kv : trainer_->named_phi())
        o.Set(kv.first, TensorToJs(info.Env(), kv.second.detach().cpu().to(at::kDouble).contiguous()));
      return o;
    });
  }

  // info() -> {variant, promptLength, numTasks, hypergrad, steps, instructionEncoding, numDemonstrations,
  //            phiParameters, thetaParameters}
  Napi::Value Info(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "info");
      auto& t = *trainer_;
      auto o = Napi::Object::New(info.Env());
      o.Set("variant", t.options().variant);
      o.Set("promptLength", static_cast<double>(t.options().prompt_length));
      o.Set("numTasks", static_cast<double>(t.options().num_tasks));
      o.Set("hypergrad", t.options().hypergrad);
      o.Set("steps", static_cast<double>(t.steps()));
      o.Set("instructionEncoding", t.options().instruction_encoding);
      o.Set("numDemonstrations", static_cast<double>(t.options().num_demonstrations));
      double np = 0, nt = 0;
      for (auto& p : t.phi()) np += static_cast<double>(p.numel());
      for (auto& p : t.theta()) nt += static_cast<double>(p.numel());
      o.Set("phiParameters", np);
      o.Set("thetaParameters", nt);
      return o;
    });
  }

  std::shared_ptr<dio::DioTrainer> trainer_;
};

// dioBenchHypergrad({config: preset name | config.json text, vocabSize?, batch?, sourceLength?, targetLength?,
//                    promptLength?, repeats?, maxRepeats?, specs: string[], dioSpecs?: string[], seed?}) -> Promise<BenchResult>:
// {parameters, threads, interop_threads, matmul_gflops, cases: {name: {seconds[], ratio_to_train_step[],
//  ratio_to_grad[], peak_bytes, hvp_count, grad_count, iterations, negative_curvature}}} (per-run arrays, rounds
// aligned across cases).
Napi::Value BenchHypergrad(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto o = RequireObject(info[0], "options");
    dio::BenchOptions b;
    int64_t vocab = 512;
    if (auto x = OptionalField(o, "vocabSize")) vocab = RequireInt(*x, "options.vocabSize", 8, 1 << 20);
    std::string spec = "tiny";
    if (auto x = OptionalField(o, "config")) spec = RequireString(*x, "options.config");
    b.config = T5ConfigFromSpec(spec, spec.rfind('{', 0) == 0 ? -1 : vocab, "options.config");  // vocabSize: presets
    if (auto x = OptionalField(o, "batch")) b.batch = RequireInt(*x, "options.batch", 1, 4096);
    if (auto x = OptionalField(o, "sourceLength")) b.source_length = RequireInt(*x, "options.sourceLength", 1, 1 << 16);
    if (auto x = OptionalField(o, "targetLength")) b.target_length = RequireInt(*x, "options.targetLength", 1, 1 << 16);
    if (auto x = OptionalField(o, "promptLength")) b.prompt_length = RequireInt(*x, "options.promptLength", 1, 4096);
    if (auto x = OptionalField(o, "repeats")) b.repeats = RequireInt(*x, "options.repeats", 1, 1000);
    if (auto x = OptionalField(o, "maxRepeats")) b.max_repeats = RequireInt(*x, "options.maxRepeats", 1, 1000);
    if (auto x = OptionalField(o, "seed")) b.seed = RequireSeed(*x, "options.seed");
    auto specs = [&](const char* key, bool required) {
      auto v = OptionalField(o, key);
      if (!v && required) throw ArgumentError(std::string("options.") + key + ": expected string[]");
      auto out = v ? RequireStringArray(*v, std::string("options.") + key) : std::vector<std::string>{};
      for (const auto& s : out) hypergrad::parse_spec(s);
      return out;
    };
    b.specs = specs("specs", true);
    b.dio_specs = specs("dioSpecs", false);
    auto res = std::make_shared<dio::BenchResult>();
    return TaskWorker::Start(
        info.Env(), "instill.dioBenchHypergrad", [b, res](const Reporter&) { *res = dio::bench_hypergrad(b); },
        [res](Napi::Env env) -> Napi::Value {
          auto r = Napi::Object::New(env);
          r.Set("parameters", static_cast<double>(res->parameters));
          r.Set("threads", res->threads);
          r.Set("interop_threads", res->interop_threads);
          r.Set("matmul_gflops", res->matmul_gflops);
          r.Set("stable", res->stable);
          auto m = Napi::Object::New(env);
          for (auto& x : res->cases) {
            auto e = Napi::Object::New(env);
            e.Set("seconds", NumbersToJs(env, x.seconds));
            e.Set("ratio_to_train_step", NumbersToJs(env, x.ratio_to_train_step));
            e.Set("ratio_to_grad", NumbersToJs(env, x.ratio_to_grad));
            e.Set("peak_bytes", static_cast<double>(x.peak_bytes));
            e.Set("hvp_count", static_cast<double>(x.hvp_count));
            e.Set("grad_count", static_cast<double>(x.grad_count));
            e.Set("iterations", static_cast<double>(x.iterations));
            e.Set("negative_curvature", x.negative_curvature);
            m.Set(x.name, e);
          }
          r.Set("cases", m);
          return r;
        },
        true);
  });
}

}  // namespace

void InitDio(Napi::Env env, Napi::Object exports) {
  exports.Set("DioNative", DioWrap::Define(env));
  exports.Set("dioBenchHypergrad", Napi::Function::New(env, BenchHypergrad, "dioBenchHypergrad"));
}

}  // namespace instill::napi
