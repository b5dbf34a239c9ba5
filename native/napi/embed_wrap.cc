// Instruction embedders glue (native/core/select/embed.h): EncoderEmbedder (a checkpoint's pooled T5 encoder)
// and SentenceEncoder (the contrastively trained encoder of the `trained` embedder). Heavy calls run on a
// worker thread (TaskWorker); one call at a time per handle; dispose() is refused while a call is in flight.
#include <napi.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/errors.h"
#include "napi/errors.h"
#include "napi/marshal.h"
#include "napi/modules.h"
#include "napi/worker.h"
#include "select/embed.h"

namespace instill::napi {
namespace {

// Shared by both wraps: a busy flag set on the main thread and cleared when the task settles.
struct Busy {
  std::shared_ptr<std::atomic<bool>> flag = std::make_shared<std::atomic<bool>>(false);
  void enter(Napi::Env env, const std::string& what) {
    if (flag->exchange(true)) throw Napi::Error::New(env, what + ": another call on this handle is still running");
  }
  std::function<void()> leave() const {
    auto f = flag;
    return [f] { f->store(false); };
  }
  bool busy() const { return flag->load(); }
};

at::Tensor OptionalMask(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() > i && !info[i].IsUndefined() && !info[i].IsNull()) return TensorFromJs(info[i], "mask");
  return at::Tensor();
}

void DefineAsyncDispose(Napi::Env env, Napi::Function ctor) {
  Napi::Value symbol = env.Global().Get("Symbol").As<Napi::Object>().Get("asyncDispose");
  if (!symbol.IsSymbol()) return;
  Napi::Object proto = ctor.Get("prototype").As<Napi::Object>();
  proto.Set(symbol, Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Env e = info.Env();
    auto deferred = Napi::Promise::Deferred::New(e);
    try {
      info.This().As<Napi::Object>().Get("dispose").As<Napi::Function>().Call(info.This(), {});
      deferred.Resolve(e.Undefined());
    } catch (const Napi::Error& err) {
      deferred.Reject(err.Value());
    }
    return deferred.Promise();
  }));
}

// ---- EncoderEmbedder ----
class EncoderEmbedderWrap : public Napi::ObjectWrap<EncoderEmbedderWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "EncoderEmbedder",
                       {InstanceMethod<&EncoderEmbedderWrap::Load>("load"),
                        InstanceMethod<&EncoderEmbedderWrap::Embed>("embed"),
                        InstanceMethod<&EncoderEmbedderWrap::Dispose>("dispose"),
                        InstanceAccessor<&EncoderEmbedderWrap::DModel>("dModel"),
                        InstanceAccessor<&EncoderEmbedderWrap::VocabSize>("vocabSize"),
                        InstanceAccessor<&EncoderEmbedderWrap::IsBusy>("busy"),
                        InstanceAccessor<&EncoderEmbedderWrap::Disposed>("disposed")});
  }
  explicit EncoderEmbedderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EncoderEmbedderWrap>(info) {}

 private:
  // load(dir, {pool?: "mean" | "firstlast"}): Promise<void>
  Napi::Value Load(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      std::string dir = RequireString(info[0], "dir");
      instill::select::Pool pool = instill::select::Pool::Mean;
      if (info.Length() > 1 && !info[1].IsUndefined()) {
        auto opts = RequireObject(info[1], "options");
        if (auto v = OptionalField(opts, "pool")) pool = instill::select::pool_from_name(RequireString(*v, "options.pool"), "options.pool");
      }
      busy_.enter(info.Env(), "EncoderEmbedder.load");
      auto out = std::make_shared<std::shared_ptr<instill::select::EncoderEmbedder>>();
      return TaskWorker::Start(
          info.Env(), "instill.EncoderEmbedder.load",
          [=](const Reporter&) { *out = std::make_shared<instill::select::EncoderEmbedder>(dir, pool); },
          [this, out](Napi::Env env) -> Napi::Value {
            model_ = *out;
            return env.Undefined();
          },
          false, std::nullopt, nullptr, info.This().As<Napi::Object>(), busy_.leave());
    });
  }

  // embed(ids: [B,S] int32, mask?: [B,S]): Promise<{data: Float32Array, shape: [B, dModel]}>
  Napi::Value Embed(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto model = live(info.Env(), "embed");
      at::Tensor ids = TensorFromJs(info[0], "ids");
      at::Tensor mask = OptionalMask(info, 1);
      instill::select::check_ids_mask(ids, mask, model->vocab_size());  // argument errors throw synchronously
      busy_.enter(info.Env(), "EncoderEmbedder.embed");
      auto out = std::make_shared<at::Tensor>();
      return TaskWorker::Start(
          info.Env(), "instill.EncoderEmbedder.embed", [=](const Reporter&) { *out = model->embed(ids, mask); },
          [out](Napi::Env env) -> Napi::Value { return TensorToJs(env, *out); }, false, std::nullopt, nullptr,
          info.This().As<Napi::Object>(), busy_.leave());
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      if (busy_.busy()) throw Napi::Error::New(info.Env(), "EncoderEmbedder.dispose: refused while a call is in flight");
      model_.reset();
      return info.Env().Undefined();
    });
  }

  std::shared_ptr<instill::select::EncoderEmbedder> live(Napi::Env env, const char* what) {
    if (!model_) throw Napi::Error::New(env, std::string("EncoderEmbedder.") + what + ": not loaded (call load(dir)) or disposed");
    return model_;
  }
  Napi::Value DModel(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), model_ ? static_cast<double>(model_->d_model()) : 0);
  }
  Napi::Value VocabSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), model_ ? static_cast<double>(model_->vocab_size()) : 0);
  }
  Napi::Value IsBusy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), busy_.busy()); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !model_); }

  std::shared_ptr<instill::select::EncoderEmbedder> model_;
  Busy busy_;
};

// ---- SentenceEncoder ----
struct EncoderBox {
  instill::select::SentenceEncoder enc{nullptr};
};

class SentenceEncoderWrap : public Napi::ObjectWrap<SentenceEncoderWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SentenceEncoder",
                       {InstanceMethod<&SentenceEncoderWrap::Create>("create"),
                        InstanceMethod<&SentenceEncoderWrap::Load>("load"),
                        InstanceMethod<&SentenceEncoderWrap::Config>("config"),
                        InstanceMethod<&SentenceEncoderWrap::Train>("train"),
                        InstanceMethod<&SentenceEncoderWrap::Embed>("embed"),
                        InstanceMethod<&SentenceEncoderWrap::Save>("save"),
                        InstanceMethod<&SentenceEncoderWrap::Dispose>("dispose"),
                        InstanceAccessor<&SentenceEncoderWrap::IsBusy>("busy"),
                        InstanceAccessor<&SentenceEncoderWrap::Disposed>("disposed")});
  }
  explicit SentenceEncoderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SentenceEncoderWrap>(info) {}

 private:
  Napi::Value Finish(const Napi::CallbackInfo& info, const char* name, std::function<void(EncoderBox&)> body) {
    auto box = std::make_shared<EncoderBox>();
    return TaskWorker::Start(
        info.Env(), name, [=](const Reporter&) { body(*box); },
        [this, box](Napi::Env env) -> Napi::Value {
          box_ = box;
          return env.Undefined();
        },
        false, std::nullopt, nullptr, info.This().As<Napi::Object>(), busy_.leave());
  }

  // create(configJson: string, {seed?, init?: t5 checkpoint dir}): Promise<void>
  Napi::Value Create(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      std::string text = RequireString(info[0], "config");
      auto cfg = instill::select::SentenceEncoderConfig::from_json(text, "config");
      uint64_t seed = 0;
      std::string init;
      if (info.Length() > 1 && !info[1].IsUndefined()) {
        auto opts = RequireObject(info[1], "options");
        if (auto v = OptionalField(opts, "seed")) seed = static_cast<uint64_t>(RequireInt(*v, "options.seed", 0, int64_t{1} << 52));
        if (auto v = OptionalField(opts, "init")) init = RequireString(*v, "options.init");
      }
      if (cfg.kind == "t5" && init.empty()) throw instill::ArgumentError("options.init: a t5 sentence encoder needs a T5 checkpoint folder");
      busy_.enter(info.Env(), "SentenceEncoder.create");
      return Finish(info, "instill.SentenceEncoder.create",
                    [=](EncoderBox& b) { b.enc = instill::select::SentenceEncoder(cfg, seed, init); });
    });
  }

  // load(dir): Promise<void>
  Napi::Value Load(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      std::string dir = RequireString(info[0], "dir");
      busy_.enter(info.Env(), "SentenceEncoder.load");
      return Finish(info, "instill.SentenceEncoder.load",
                    [=](EncoderBox& b) { b.enc = instill::select::load_sentence_encoder(dir); });
    });
  }

  Napi::Value Config(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), live(info.Env(), "config")->enc->config().to_json()); });
  }

  // train({ids, mask?, groups}, {steps?, batch?, lr?, weightDecay?, seed?, onProgress?}):
  //   Promise<{losses: number[], steps, seconds, cancelled}>
  Napi::Value Train(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto box = live(info.Env(), "train");
      auto data = RequireObject(info[0], "data");
      auto idsV = OptionalField(data, "ids");
      auto groupsV = OptionalField(data, "groups");
      if (!idsV) throw instill::ArgumentError("data.ids: expected a [N,S] integer tensor");
      if (!groupsV) throw instill::ArgumentError("data.groups: expected a [N] integer tensor");
      at::Tensor ids = TensorFromJs(*idsV, "data.ids");
      at::Tensor groups = TensorFromJs(*groupsV, "data.groups");
      at::Tensor mask;
      if (auto v = OptionalField(data, "mask")) mask = TensorFromJs(*v, "data.mask");
      instill::select::check_ids_mask(ids, mask, box->enc->config().vocab_size);
      instill::select::ContrastiveOptions o;
      std::optional<Napi::Function> cb;
      if (info.Length() > 1 && !info[1].IsUndefined()) {
        auto opts = RequireObject(info[1], "options");
        if (auto v = OptionalField(opts, "steps")) o.steps = RequireInt(*v, "options.steps", 0, int64_t{1} << 40);
        if (auto v = OptionalField(opts, "batch")) o.batch = RequireInt(*v, "options.batch", 2, int64_t{1} << 30);
        if (auto v = OptionalField(opts, "lr")) o.lr = RequireNumber(*v, "options.lr");
        if (auto v = OptionalField(opts, "weightDecay")) o.weight_decay = RequireNumber(*v, "options.weightDecay");
        if (auto v = OptionalField(opts, "seed")) o.seed = static_cast<uint64_t>(RequireInt(*v, "options.seed", 0, int64_t{1} << 52));
        cb = OptionalFunction(opts, "onProgress", "options");
      }
      if (!(o.lr > 0)) throw instill::RangeError("options.lr: must be > 0");
      if (!(o.weight_decay >= 0)) throw instill::RangeError("options.weightDecay: must be >= 0");
      busy_.enter(info.Env(), "SentenceEncoder.train");
      auto result = std::make_shared<instill::select::ContrastiveResult>();
      auto cancel = std::make_shared<std::atomic<bool>>(false);
      bool want = cb.has_value();
      return TaskWorker::Start(
          info.Env(), "instill.SentenceEncoder.train",
          [=](const Reporter& report) {
            instill::select::ContrastiveOptions oo = o;
            oo.cancel = report.cancel_flag();
            int64_t total = o.steps;
            if (want)
              oo.progress = [&report, total](int64_t step, double loss) {
                if (step == total || step % 10 == 0) report({{{"step", double(step)}, {"total", double(total)}, {"loss", loss}}, ""});
              };
            *result = instill::select::train_contrastive(box->enc, ids, mask, groups, oo);
          },
          [result](Napi::Env env) -> Napi::Value {
            auto out = Napi::Object::New(env);
            auto losses = Napi::Array::New(env, result->losses.size());
            for (size_t i = 0; i < result->losses.size(); ++i) losses.Set(static_cast<uint32_t>(i), result->losses[i]);
            out.Set("losses", losses);
            out.Set("steps", static_cast<double>(result->steps));
            out.Set("seconds", result->seconds);
            out.Set("cancelled", result->cancelled);
            return out;
          },
          true, cb, cancel, info.This().As<Napi::Object>(), busy_.leave());
    });
  }

  // embed(ids [B,S], mask?): Promise<{data: Float32Array, shape: [B, dim]}>
  Napi::Value Embed(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto box = live(info.Env(), "embed");
      at::Tensor ids = TensorFromJs(info[0], "ids");
      at::Tensor mask = OptionalMask(info, 1);
      instill::select::check_ids_mask(ids, mask, box->enc->config().vocab_size);
      busy_.enter(info.Env(), "SentenceEncoder.embed");
      auto out = std::make_shared<at::Tensor>();
      return TaskWorker::Start(
          info.Env(), "instill.SentenceEncoder.embed",
          [=](const Reporter&) { *out = instill::select::embed_sentences(box->enc, ids, mask); },
          [out](Napi::Env env) -> Napi::Value { return TensorToJs(env, *out); }, false, std::nullopt, nullptr,
          info.This().As<Napi::Object>(), busy_.leave());
    });
  }

  // save(dir): Promise<void>
  Napi::Value Save(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto box = live(info.Env(), "save");
      std::string dir = RequireString(info[0], "dir");
      busy_.enter(info.Env(), "SentenceEncoder.save");
      return TaskWorker::Start(
          info.Env(), "instill.SentenceEncoder.save",
          [=](const Reporter&) { instill::select::save_sentence_encoder(box->enc, dir); },
          [](Napi::Env env) -> Napi::Value { return env.Undefined(); }, false, std::nullopt, nullptr,
          info.This().As<Napi::Object>(), busy_.leave());
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      if (busy_.busy()) throw Napi::Error::New(info.Env(), "SentenceEncoder.dispose: refused while a call is in flight");
      box_.reset();
      return info.Env().Undefined();
    });
  }

  std::shared_ptr<EncoderBox> live(Napi::Env env, const char* what) {
    if (!box_) throw Napi::Error::New(env, std::string("SentenceEncoder.") + what + ": not created or loaded, or disposed");
    return box_;
  }
  Napi::Value IsBusy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), busy_.busy()); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !box_); }

  std::shared_ptr<EncoderBox> box_;
  Busy busy_;
};

}  // namespace

void InitEmbed(Napi::Env env, Napi::Object exports) {
  Napi::Function enc = EncoderEmbedderWrap::Define(env);
  DefineAsyncDispose(env, enc);
  exports.Set("EncoderEmbedder", enc);
  Napi::Function sent = SentenceEncoderWrap::Define(env);
  DefineAsyncDispose(env, sent);
  exports.Set("SentenceEncoder", sent);
}

}  // namespace instill::napi
