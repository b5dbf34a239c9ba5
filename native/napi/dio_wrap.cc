// DIO glue (issue 8): the DioNative handle (src/dio/native.ts wraps it) owns one T5 model, its learnable
// instructions and the two optimizers of native/core/train/dio.h; plus dioBenchHypergrad() for
// bench/hypergrad.ts. Every heavy call runs on a worker thread (TaskWorker); one call at a time per handle.
// create() takes options.processGroup (data parallelism: inner gradients and the hypergradient's products averaged
// over the group); saveState / loadState carry both optimizers, the RNG states and the step counter (checkpoints).
#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "common/errors.h"
#include "dist/ddp_bench.h"
#include "dist/process_group.h"
#include "napi/dist_wrap.h"
#include "napi/errors.h"
#include "napi/marshal.h"
#include "napi/modules.h"
#include "napi/worker.h"
#include "t5/config.h"
#include "t5/model.h"
#include "t5/pretrained.h"
#include "train/dio.h"
#include "train/optim.h"
#include "train/t5_task.h"

namespace instill::napi {
namespace {

train::OptimConfig DioOptimFromJs(const Napi::Value& v, const std::string& arg) {
  auto o = RequireObject(v, arg);
  train::OptimConfig c;
  c.name = "adamw";
  if (auto x = OptionalField(o, "name")) c.name = RequireString(*x, arg + ".name");
  auto lr = OptionalField(o, "lr");
  if (!lr) throw ArgumentError(arg + ".lr: expected a number");
  c.lr = RequireNumber(*lr, arg + ".lr");
  if (auto x = OptionalField(o, "totalSteps")) c.total_steps = RequireInt(*x, arg + ".totalSteps", 1, int64_t{1} << 40);
  if (auto x = OptionalField(o, "weightDecay")) c.weight_decay = RequireNumber(*x, arg + ".weightDecay");
  if (auto x = OptionalField(o, "schedule")) c.schedule = RequireString(*x, arg + ".schedule");
  if (auto x = OptionalField(o, "warmupSteps")) c.warmup_steps = RequireInt(*x, arg + ".warmupSteps", 0, int64_t{1} << 40);
  if (auto x = OptionalField(o, "clipNorm")) c.clip_norm = RequireNumber(*x, arg + ".clipNorm");
  if (auto x = OptionalField(o, "eps")) c.eps = RequireNumber(*x, arg + ".eps");
  c.validate();
  return c;
}

at::Tensor OptTensor(const Napi::Object& o, const char* key, const std::string& arg) {
  auto v = OptionalField(o, key);
  if (!v) return at::Tensor();
  return TensorFromJs(*v, arg + "." + key).to(at::kLong);
}

dio::DioBatch DioBatchFromJs(const Napi::Value& v, const std::string& arg, const t5::T5Config& cfg, bool labels,
                             at::Device dev) {
  auto o = RequireObject(v, arg);
  dio::DioBatch b;
  b.batch = train::check_batch(cfg, OptTensor(o, "inputIds", arg), OptTensor(o, "attentionMask", arg),
                               OptTensor(o, "labels", arg), arg, labels, dev);
  b.task_ids = OptTensor(o, "taskIds", arg);
  b.instr_ids = OptTensor(o, "instrIds", arg);
  b.instr_mask = OptTensor(o, "instrMask", arg);
  b.demo_ids = OptTensor(o, "demoIds", arg);
  b.demo_mask = OptTensor(o, "demoMask", arg);
  b.demo_task_ids = OptTensor(o, "demoTaskIds", arg);
  if (auto x = OptionalField(o, "lossScale")) {
    b.loss_scale = RequireNumber(*x, arg + ".lossScale");
    if (!(b.loss_scale >= 0) || !std::isfinite(b.loss_scale))
      throw RangeError(arg + ".lossScale: expected a finite number >= 0, got " + std::to_string(b.loss_scale));
  }
  if ((b.demo_mask.defined() || b.demo_task_ids.defined()) && !b.demo_ids.defined())
    throw ArgumentError(arg + ".demoIds: required with demoMask / demoTaskIds");
  return b;
}

Napi::Array Nums(Napi::Env env, const std::vector<double>& v) {
  auto a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), v[i]);
  return a;
}

struct DioState {
  std::unique_ptr<dio::DioTrainer> trainer;
};

class DioWrap : public Napi::ObjectWrap<DioWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DioNative",
                       {InstanceMethod<&DioWrap::Create>("create"), InstanceMethod<&DioWrap::Steps>("steps"),
                        InstanceMethod<&DioWrap::Cancel>("cancel"), InstanceMethod<&DioWrap::Generate>("generate"),
                        InstanceMethod<&DioWrap::ScoreOptions>("scoreOptions"),
                        InstanceMethod<&DioWrap::EvalLoss>("evalLoss"), InstanceMethod<&DioWrap::Save>("save"),
                        InstanceMethod<&DioWrap::LoadPhi>("loadPhi"), InstanceMethod<&DioWrap::Info>("info"),
                        InstanceMethod<&DioWrap::SaveState>("saveState"),
                        InstanceMethod<&DioWrap::LoadState>("loadState"),
                        InstanceMethod<&DioWrap::ReadPhi>("readPhi"),
                        InstanceMethod<&DioWrap::Dispose>("dispose"), InstanceAccessor<&DioWrap::Busy>("busy")});
  }
  explicit DioWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<DioWrap>(info), cancel_(std::make_shared<std::atomic<bool>>(false)) {}

 private:
  void CheckUsable(const char* what, bool need = true) {
    if (disposed_) throw Napi::Error::New(Env(), std::string("DioNative.") + what + ": disposed");
    if (!busy_.empty())
      throw Napi::Error::New(Env(), std::string("DioNative.") + what + ": another call (" + busy_ +
                                        ") is still running; await it first");
    if (need && !st_) throw Napi::Error::New(Env(), std::string("DioNative.") + what + ": create() it first");
  }
  Napi::Value Run(const Napi::CallbackInfo& info, const char* what, TaskWorker::Body body, TaskWorker::Finish finish,
                  bool grad, std::optional<Napi::Function> on_progress = std::nullopt) {
    busy_ = what;
    return TaskWorker::Start(info.Env(), (std::string("instill.Dio.") + what).c_str(), std::move(body),
                             std::move(finish), grad, on_progress, cancel_, info.This().As<Napi::Object>(),
                             [this] { busy_.clear(); });
  }

  // create(modelDir, options, initIds?: number[][]) -> Promise<void>
  Napi::Value Create(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("create", false);
      if (st_) throw Napi::Error::New(Env(), "DioNative.create: already created");
      std::string dir = RequireString(info[0], "modelDir");
      auto o = RequireObject(info[1], "options");
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
      if (auto x = OptionalField(o, "seed")) d.seed = static_cast<uint64_t>(RequireInt(*x, "options.seed", 0, int64_t{1} << 52));
      if (auto x = OptionalField(o, "instructionEncoding"))
        d.instruction_encoding = RequireString(*x, "options.instructionEncoding");
      if (auto x = OptionalField(o, "numDemonstrations"))
        d.num_demonstrations = RequireInt(*x, "options.numDemonstrations", 0, 4096);
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
      d.inner = DioOptimFromJs(*inner, "options.inner");
      d.outer = DioOptimFromJs(*outer, "options.outer");
      std::vector<std::vector<int64_t>> init;
      if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
        if (!info[2].IsArray()) throw ArgumentError("initIds: expected number[][]");
        auto a = info[2].As<Napi::Array>();
        for (uint32_t i = 0; i < a.Length(); ++i)
          init.push_back(RequireIntArray(a.Get(i), "initIds[" + std::to_string(i) + "]"));
      }
      d.validate();
      auto st = std::make_shared<DioState>();
      return Run(info, "create",
                 [st, dir, d, init](const Reporter&) {
                   torch::manual_seed(d.seed);
                   auto model = t5::from_pretrained(dir, at::kFloat);
                   for (auto& p : model->parameters(true)) p.set_requires_grad(true);
                   st->trainer = std::make_unique<dio::DioTrainer>(model, d, init);
                 },
                 [this, st](Napi::Env env) -> Napi::Value {
                   st_ = st;
                   return env.Undefined();
                 },
                 false);
    });
  }

  // steps([{train, meta?}], onProgress?) -> Promise<{trainLoss[], metaLoss[], hypergradNorm[], ...}>
  Napi::Value Steps(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("steps");
      auto& model = st_->trainer->model();
      const auto& cfg = model->config();
      if (!info[0].IsArray()) throw ArgumentError("items: expected [{train, meta?}]");
      auto a = info[0].As<Napi::Array>();
      if (a.Length() == 0) throw ArgumentError("items: empty");
      struct Item {
        dio::DioBatch train, meta;
        bool has_meta = false;
      };
      auto items = std::make_shared<std::vector<Item>>();
      for (uint32_t i = 0; i < a.Length(); ++i) {
        auto o = RequireObject(a.Get(i), "items[" + std::to_string(i) + "]");
        Item it;
        auto tr = OptionalField(o, "train");
        if (!tr) throw ArgumentError("items[" + std::to_string(i) + "].train: required");
        it.train = DioBatchFromJs(*tr, "items[" + std::to_string(i) + "].train", cfg, true, model->device());
        if (auto m = OptionalField(o, "meta")) {
          it.meta = DioBatchFromJs(*m, "items[" + std::to_string(i) + "].meta", cfg, true, model->device());
          it.has_meta = true;
        }
        items->push_back(std::move(it));
      }
      std::optional<Napi::Function> cb;
      if (info.Length() > 1 && info[1].IsFunction()) cb = info[1].As<Napi::Function>();
      cancel_->store(false);
      auto st = st_;
      auto out = std::make_shared<std::vector<dio::DioStepStats>>();
      return Run(info, "steps",
                 [st, items, out](const Reporter& report) {
                   for (size_t i = 0; i < items->size(); ++i) {
                     if (report.cancelled()) break;
                     auto& it = (*items)[i];
                     auto s = st->trainer->step(it.train, it.has_meta ? &it.meta : nullptr);
                     out->push_back(s);
                     report({{{"step", static_cast<double>(st->trainer->steps())},
                              {"stepInCall", static_cast<double>(i + 1)},
                              {"stepsInCall", static_cast<double>(items->size())},
                              {"loss", s.train_loss},
                              {"metaLoss", s.meta_loss},
                              {"lr", st->trainer->inner_optimizer().current_lr()}},
                             ""});
                   }
                 },
                 [out](Napi::Env env) -> Napi::Value {
                   std::vector<double> tl, ml, hn, sec, hs;
                   double hvp = 0, grads = 0;
                   for (auto& s : *out) {
                     tl.push_back(s.train_loss);
                     ml.push_back(s.meta_loss);
                     hn.push_back(s.hypergrad_norm);
                     sec.push_back(s.seconds);
                     hs.push_back(s.hypergrad_seconds);
                     hvp += static_cast<double>(s.hvp_count);
                     grads += static_cast<double>(s.grad_count);
                   }
                   auto o = Napi::Object::New(env);
                   o.Set("trainLoss", Nums(env, tl));
                   o.Set("metaLoss", Nums(env, ml));  // NaN where no outer update ran
                   o.Set("hypergradNorm", Nums(env, hn));
                   o.Set("seconds", Nums(env, sec));
                   o.Set("hypergradSeconds", Nums(env, hs));
                   o.Set("hvpCount", hvp);
                   o.Set("gradCount", grads);
                   return o;
                 },
                 true, cb);
    });
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    cancel_->store(true);
    return info.Env().Undefined();
  }

  // generate(batch (with taskIds / instrIds or neither), {maxNewTokens, numBeams?}) -> number[][]
  Napi::Value Generate(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("generate");
      auto& model = st_->trainer->model();
      auto b = std::make_shared<dio::DioBatch>(DioBatchFromJs(info[0], "batch", model->config(), false, model->device()));
      auto o = RequireObject(info[1], "options");
      auto mnt = OptionalField(o, "maxNewTokens");
      if (!mnt) throw ArgumentError("options.maxNewTokens: expected an integer");
      int64_t max_new = RequireInt(*mnt, "options.maxNewTokens", 0, 1 << 20), beams = 1;
      if (auto v = OptionalField(o, "numBeams")) beams = RequireInt(*v, "options.numBeams", 1, 1024);
      auto st = st_;
      auto rows = std::make_shared<std::vector<std::vector<int64_t>>>();
      return Run(info, "generate",
                 [st, b, max_new, beams, rows](const Reporter&) {
                   at::Tensor ids = st->trainer->generate(*b, max_new, beams);
                   *rows = train::strip_generated(ids, st->trainer->model()->config().eos_token_id);
                 },
                 [rows](Napi::Env env) -> Napi::Value {
                   auto a = Napi::Array::New(env, rows->size());
                   for (size_t i = 0; i < rows->size(); ++i) {
                     auto ra = Napi::Array::New(env, (*rows)[i].size());
                     for (size_t j = 0; j < (*rows)[i].size(); ++j)
                       ra.Set(static_cast<uint32_t>(j), static_cast<double>((*rows)[i][j]));
                     a.Set(static_cast<uint32_t>(i), ra);
                   }
                   return a;
                 },
                 false);
    });
  }

  // scoreOptions(batch (with taskIds / instrIds / demonstrations or none), options: number[][][]) -> Promise<number[][]>:
  // rank classification through the DIO model with its soft tokens (summed log-likelihood, as T5Model.scoreOptions).
  Napi::Value ScoreOptions(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("scoreOptions");
      auto& model = st_->trainer->model();
      const auto& cfg = model->config();
      auto b = std::make_shared<dio::DioBatch>(DioBatchFromJs(info[0], "batch", cfg, false, model->device()));
      OptionIds parsed = OptionIdsFromJs(info[1], b->batch.input_ids.size(0), cfg.vocab_size);
      at::Tensor options = parsed.ids;
      std::vector<size_t> counts = std::move(parsed.counts);
      auto st = st_;
      auto sums = std::make_shared<at::Tensor>();
      return Run(info, "scoreOptions",
                 [st, b, options, sums](const Reporter&) { *sums = st->trainer->score_options(*b, options); },
                 [sums, counts](Napi::Env env) -> Napi::Value { return OptionScoresToJs(env, *sums, counts); },
                 false);
    });
  }

  // evalLoss(batches) -> Promise<number[]>: mean token loss per batch with its soft tokens, eval mode, no grad.
  Napi::Value EvalLoss(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("evalLoss");
      auto& model = st_->trainer->model();
      if (!info[0].IsArray()) throw ArgumentError("batches: expected an array");
      auto a = info[0].As<Napi::Array>();
      auto bs = std::make_shared<std::vector<dio::DioBatch>>();
      for (uint32_t i = 0; i < a.Length(); ++i)
        bs->push_back(DioBatchFromJs(a.Get(i), "batches[" + std::to_string(i) + "]", model->config(), true, model->device()));
      auto st = st_;
      auto out = std::make_shared<std::vector<double>>();
      return Run(info, "evalLoss",
                 [st, bs, out](const Reporter&) {
                   auto& m = st->trainer->model();
                   const bool tr = m->is_training();
                   m->eval();
                   for (auto& b : *bs) out->push_back(st->trainer->loss(b).item<double>());
                   if (tr) m->train();
                 },
                 [out](Napi::Env env) -> Napi::Value { return Nums(env, *out); }, false);
    });
  }

  // save(dir): the model (config.json + model.safetensors) and <dir>/dio_instructions.safetensors
  Napi::Value Save(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("save");
      std::string dir = RequireString(info[0], "dir");
      auto st = st_;
      return Run(info, "save",
                 [st, dir](const Reporter&) {
                   t5::save_pretrained(*st->trainer->model(), dir);
                   st->trainer->save_phi(dir + "/dio_instructions.safetensors");
                 },
                 nullptr, false);
    });
  }

  Napi::Value LoadPhi(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("loadPhi");
      std::string path = RequireString(info[0], "path");
      auto st = st_;
      return Run(info, "loadPhi", [st, path](const Reporter&) { st->trainer->load_phi(path); }, nullptr, false);
    });
  }

  // saveState(path) / loadState(path): both optimizers, the RNG states and the step counter (dio.h save_state).
  Napi::Value SaveState(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("saveState");
      std::string path = RequireString(info[0], "path");
      auto st = st_;
      return Run(info, "saveState", [st, path](const Reporter&) { st->trainer->save_state(path); }, nullptr, false);
    });
  }

  Napi::Value LoadState(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("loadState");
      std::string path = RequireString(info[0], "path");
      auto st = st_;
      return Run(info, "loadState", [st, path](const Reporter&) { st->trainer->load_state(path); }, nullptr, false);
    });
  }

  // readPhi() -> {name: HostTensor(float64)}: the instruction parameters (small; tests and inspection).
  Napi::Value ReadPhi(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("readPhi");
      auto o = Napi::Object::New(info.Env());
      for (auto& kv : st_->trainer->named_phi())
        o.Set(kv.first, TensorToJs(info.Env(), kv.second.detach().cpu().to(at::kDouble).contiguous()));
      return o;
    });
  }

  // info() -> {variant, promptLength, numTasks, hypergrad, steps, phiParameters, thetaParameters}
  Napi::Value Info(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      CheckUsable("info");
      auto& t = *st_->trainer;
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

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      if (disposed_) return info.Env().Undefined();
      if (!busy_.empty()) throw Napi::Error::New(Env(), "DioNative.dispose: a call (" + busy_ + ") is still running");
      st_.reset();
      disposed_ = true;
      return info.Env().Undefined();
    });
  }
  Napi::Value Busy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !busy_.empty()); }

  std::shared_ptr<DioState> st_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  std::string busy_;
  bool disposed_ = false;
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
    if (!spec.empty() && spec.front() == '{') b.config = t5::T5Config::from_json(spec, "options.config");
    else b.config = t5::preset(spec, vocab);
    b.config.validate("options.config");
    if (auto x = OptionalField(o, "batch")) b.batch = RequireInt(*x, "options.batch", 1, 4096);
    if (auto x = OptionalField(o, "sourceLength")) b.source_length = RequireInt(*x, "options.sourceLength", 1, 1 << 16);
    if (auto x = OptionalField(o, "targetLength")) b.target_length = RequireInt(*x, "options.targetLength", 1, 1 << 16);
    if (auto x = OptionalField(o, "promptLength")) b.prompt_length = RequireInt(*x, "options.promptLength", 1, 4096);
    if (auto x = OptionalField(o, "repeats")) b.repeats = RequireInt(*x, "options.repeats", 1, 1000);
    if (auto x = OptionalField(o, "maxRepeats")) b.max_repeats = RequireInt(*x, "options.maxRepeats", 1, 1000);
    if (auto x = OptionalField(o, "seed")) b.seed = static_cast<uint64_t>(RequireInt(*x, "options.seed", 0, int64_t{1} << 52));
    auto strings = [&](const char* key, std::vector<std::string>& out, bool required) {
      auto v = OptionalField(o, key);
      if (!v) {
        if (required) throw ArgumentError(std::string("options.") + key + ": expected string[]");
        return;
      }
      if (!v->IsArray()) throw ArgumentError(std::string("options.") + key + ": expected string[]");
      auto sa = v->As<Napi::Array>();
      for (uint32_t i = 0; i < sa.Length(); ++i) {
        out.push_back(RequireString(sa.Get(i), std::string("options.") + key + "[" + std::to_string(i) + "]"));
        hypergrad::parse_spec(out.back());
      }
    };
    strings("specs", b.specs, true);
    strings("dioSpecs", b.dio_specs, false);
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
            e.Set("seconds", Nums(env, x.seconds));
            e.Set("ratio_to_train_step", Nums(env, x.ratio_to_train_step));
            e.Set("ratio_to_grad", Nums(env, x.ratio_to_grad));
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
