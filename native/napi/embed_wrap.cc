// Instruction embedders glue (native/core/select/embed.h): EncoderEmbedder (a checkpoint's pooled T5 encoder)
// and SentenceEncoder (the contrastively trained encoder of the `trained` embedder). Both are Handles
// (napi/handle.h): heavy calls run on a worker thread, one call at a time, dispose() refused meanwhile.
#include <napi.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/errors.h"
#include "napi/handle.h"
#include "napi/marshal.h"
#include "napi/modules.h"
#include "select/embed.h"

namespace instill::napi {
namespace {

at::Tensor OptionalMask(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() > i && !info[i].IsUndefined() && !info[i].IsNull()) return TensorFromJs(info[i], "mask");
  return at::Tensor();
}

// ---- EncoderEmbedder ----
class EncoderEmbedderWrap : public Handle<EncoderEmbedderWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineHandle(env, "EncoderEmbedder",
                        {InstanceMethod<&EncoderEmbedderWrap::Load>("load"),
                         InstanceMethod<&EncoderEmbedderWrap::Embed>("embed"),
                         InstanceAccessor<&EncoderEmbedderWrap::DModel>("dModel"),
                         InstanceAccessor<&EncoderEmbedderWrap::VocabSize>("vocabSize")});
  }
  explicit EncoderEmbedderWrap(const Napi::CallbackInfo& info)
      : Handle(info, "EncoderEmbedder", "not loaded (call load(dir))") {}

 private:
  bool HasState() const override { return model_ != nullptr; }
  void DropState() override { model_.reset(); }

  // load(dir, {pool?: "mean" | "firstlast"}): Promise<void>
  Napi::Value Load(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      std::string dir = RequireString(info[0], "dir");
      instill::select::Pool pool = instill::select::Pool::Mean;
      if (auto v = OptionalField(OptionsArg(info, 1), "pool"))
        pool = instill::select::pool_from_name(RequireString(*v, "options.pool"), "options.pool");
      auto out = std::make_shared<std::shared_ptr<instill::select::EncoderEmbedder>>();
      return Run(info, "load", [=](const Reporter&) { *out = std::make_shared<instill::select::EncoderEmbedder>(dir, pool); },
                 [this, out](Napi::Env env) -> Napi::Value {
                   model_ = *out;
                   return env.Undefined();
                 },
                 false);
    });
  }

  // embed(ids: [B,S] int32, mask?: [B,S]): Promise<{data: Float32Array, shape: [B, dModel]}>
  Napi::Value Embed(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "embed");
      auto model = model_;
      at::Tensor ids = TensorFromJs(info[0], "ids");
      at::Tensor mask = OptionalMask(info, 1);
      instill::select::check_ids_mask(ids, mask, model->vocab_size());  // argument errors throw synchronously
      auto out = std::make_shared<at::Tensor>();
      return Run(info, "embed", [=](const Reporter&) { *out = model->embed(ids, mask); },
                 [out](Napi::Env env) -> Napi::Value { return TensorToJs(env, *out); }, false);
    });
  }

  Napi::Value DModel(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), model_ ? static_cast<double>(model_->d_model()) : 0);
  }
  Napi::Value VocabSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), model_ ? static_cast<double>(model_->vocab_size()) : 0);
  }

  std::shared_ptr<instill::select::EncoderEmbedder> model_;
};

// ---- SentenceEncoder ----
struct EncoderBox {
  instill::select::SentenceEncoder enc{nullptr};
};

class SentenceEncoderWrap : public Handle<SentenceEncoderWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineHandle(env, "SentenceEncoder",
                        {InstanceMethod<&SentenceEncoderWrap::Init>("init"),
                         InstanceMethod<&SentenceEncoderWrap::Load>("load"),
                         InstanceMethod<&SentenceEncoderWrap::Config>("config"),
                         InstanceMethod<&SentenceEncoderWrap::Train>("train"),
                         InstanceMethod<&SentenceEncoderWrap::Embed>("embed"),
                         InstanceMethod<&SentenceEncoderWrap::Save>("save")},
                        /*cancellable=*/true);
  }
  explicit SentenceEncoderWrap(const Napi::CallbackInfo& info)
      : Handle(info, "SentenceEncoder", "not initialized or loaded") {}

 private:
  bool HasState() const override { return box_ != nullptr; }
  void DropState() override { box_.reset(); }
  int64_t StateBytes() const override { return box_ ? ModuleBytes(box_->enc) : 0; }

  // Runs `build` for init/load and installs the encoder it makes.
  Napi::Value Install(const Napi::CallbackInfo& info, const char* what, std::function<void(EncoderBox&)> build) {
    auto box = std::make_shared<EncoderBox>();
    return Run(info, what, [=](const Reporter&) { build(*box); },
               [this, box](Napi::Env env) -> Napi::Value {
                 box_ = box;
                 return env.Undefined();
               },
               false);
  }

  // init(configJson: string, {seed?, init?: t5 checkpoint dir}): Promise<void>
  Napi::Value Init(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      std::string text = RequireString(info[0], "config");
      auto cfg = instill::select::SentenceEncoderConfig::from_json(text, "config");
      auto opts = OptionsArg(info, 1);
      uint64_t seed = 0;
      std::string init;
      if (auto v = OptionalField(opts, "seed")) seed = RequireSeed(*v, "options.seed");
      if (auto v = OptionalField(opts, "init")) init = RequireString(*v, "options.init");
      if (cfg.kind == "t5" && init.empty()) throw instill::ArgumentError("options.init: a t5 sentence encoder needs a T5 checkpoint folder");
      return Install(info, "init", [=](EncoderBox& b) { b.enc = instill::select::SentenceEncoder(cfg, seed, init); });
    });
  }

  // load(dir): Promise<void>
  Napi::Value Load(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      std::string dir = RequireString(info[0], "dir");
      return Install(info, "load", [=](EncoderBox& b) { b.enc = instill::select::load_sentence_encoder(dir); });
    });
  }

  Napi::Value Config(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "config");
      return Napi::String::New(info.Env(), box_->enc->config().to_json());
    });
  }

  // train({ids, mask?, groups}, {steps?, batch?, lr?, weightDecay?, seed?, onProgress?}):
  //   Promise<{losses: number[], steps, seconds, cancelled}>
  Napi::Value Train(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "train");
      auto box = box_;
      auto data = RequireObject(info[0], "data");
      if (!OptionalField(data, "ids")) throw instill::ArgumentError("data.ids: expected a [N,S] integer tensor");
      if (!OptionalField(data, "groups")) throw instill::ArgumentError("data.groups: expected a [N] integer tensor");
      at::Tensor ids = TensorField(data, "ids", "data");
      at::Tensor groups = TensorField(data, "groups", "data");
      at::Tensor mask = TensorField(data, "mask", "data");
      instill::select::check_ids_mask(ids, mask, box->enc->config().vocab_size);
      instill::select::ContrastiveOptions o;
      auto opts = OptionsArg(info, 1);
      if (auto v = OptionalField(opts, "steps")) o.steps = RequireInt(*v, "options.steps", 0, int64_t{1} << 40);
      if (auto v = OptionalField(opts, "batch")) o.batch = RequireInt(*v, "options.batch", 2, int64_t{1} << 30);
      if (auto v = OptionalField(opts, "lr")) o.lr = RequireNumber(*v, "options.lr");
      if (auto v = OptionalField(opts, "weightDecay")) o.weight_decay = RequireNumber(*v, "options.weightDecay");
      if (auto v = OptionalField(opts, "seed")) o.seed = RequireSeed(*v, "options.seed");
      auto cb = OptionalFunction(opts, "onProgress", "options");
      if (!(o.lr > 0)) throw instill::RangeError("options.lr: must be > 0");
      if (!(o.weight_decay >= 0)) throw instill::RangeError("options.weightDecay: must be >= 0");
      auto result = std::make_shared<instill::select::ContrastiveResult>();
      bool want = cb.has_value();
      return Run(
          info, "train",
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
            out.Set("losses", NumbersToJs(env, result->losses));
            out.Set("steps", static_cast<double>(result->steps));
            out.Set("seconds", result->seconds);
            out.Set("cancelled", result->cancelled);
            return out;
          },
          true, cb);
    });
  }

  // embed(ids [B,S], mask?): Promise<{data: Float32Array, shape: [B, dim]}>
  Napi::Value Embed(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "embed");
      auto box = box_;
      at::Tensor ids = TensorFromJs(info[0], "ids");
      at::Tensor mask = OptionalMask(info, 1);
      instill::select::check_ids_mask(ids, mask, box->enc->config().vocab_size);
      auto out = std::make_shared<at::Tensor>();
      return Run(info, "embed", [=](const Reporter&) { *out = instill::select::embed_sentences(box->enc, ids, mask); },
                 [out](Napi::Env env) -> Napi::Value { return TensorToJs(env, *out); }, false);
    });
  }

  // save(dir): Promise<void>
  Napi::Value Save(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Check(Env(), "save");
      auto box = box_;
      std::string dir = RequireString(info[0], "dir");
      return Run(info, "save", [=](const Reporter&) { instill::select::save_sentence_encoder(box->enc, dir); }, nullptr, false);
    });
  }

  std::shared_ptr<EncoderBox> box_;
};

}  // namespace

void InitEmbed(Napi::Env env, Napi::Object exports) {
  exports.Set("EncoderEmbedder", EncoderEmbedderWrap::Define(env));
  exports.Set("SentenceEncoder", SentenceEncoderWrap::Define(env));
}

}  // namespace instill::napi
