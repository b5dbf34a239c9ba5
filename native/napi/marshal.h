// The one options / marshalling module of the addon: conversions between JavaScript values and tensors, plain C++
// values and the core's option structs, with argument checks that throw instill::ArgumentError (-> TypeError) or
// instill::RangeError naming the argument. An option means the same thing (name, range, default) in every class.
#pragma once
#include <napi.h>

#include <ATen/ATen.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "t5/config.h"
#include "t5/generate.h"
#include "train/optim.h"
#include "train/trainer.h"
#include "napi/worker.h"

namespace instill::napi {

at::ScalarType DtypeFromName(const std::string& name, const std::string& arg);
std::string DtypeName(at::ScalarType t);

// {data: TypedArray, shape: number[], dtype?: string} -> an owning contiguous CPU tensor (a copy).
at::Tensor TensorFromJs(const Napi::Value& v, const std::string& arg);
// A contiguous CPU tensor -> {data, shape, dtype} with a fresh TypedArray.
Napi::Object TensorToJs(Napi::Env env, const at::Tensor& t);

// Object field helpers; `arg` names the argument for messages ("options.n").
Napi::Object RequireObject(const Napi::Value& v, const std::string& arg);
double RequireNumber(const Napi::Value& v, const std::string& arg);
int64_t RequireInt(const Napi::Value& v, const std::string& arg, int64_t lo, int64_t hi);
std::string RequireString(const Napi::Value& v, const std::string& arg);
bool RequireBool(const Napi::Value& v, const std::string& arg);
std::vector<int64_t> RequireIntArray(const Napi::Value& v, const std::string& arg);
std::optional<Napi::Value> OptionalField(const Napi::Object& o, const char* key);
std::optional<Napi::Function> OptionalFunction(const Napi::Object& o, const char* key, const std::string& arg);
// info[i] as an options object; an empty object when it is absent or undefined.
Napi::Object OptionsArg(const Napi::CallbackInfo& info, size_t i, const std::string& arg = "options");
// o[key] as a tensor; an undefined tensor when absent (ArgumentError "<arg>.<key>: missing" when required).
at::Tensor TensorField(const Napi::Object& o, const char* key, const std::string& arg, bool required = false);
std::vector<std::string> RequireStringArray(const Napi::Value& v, const std::string& arg);
std::vector<double> RequireNumberArray(const Napi::Value& v, const std::string& arg);
// A seed: an integer in [0, 2^52].
uint64_t RequireSeed(const Napi::Value& v, const std::string& arg);
// A loss multiplier: a finite number >= 0.
double RequireLossScale(const Napi::Value& v, const std::string& arg);
// A floating dtype name among `allowed` ("stored" = at::ScalarType::Undefined: the checkpoint's own dtype).
at::ScalarType FloatDtypeFromJs(const Napi::Value& v, const std::string& arg, std::initializer_list<const char*> allowed);

// Numbers out; with nan_as_null NaN becomes null (a loss term that is off).
Napi::Array NumbersToJs(Napi::Env env, const std::vector<double>& v, bool nan_as_null = false);
Napi::Array StringsToJs(Napi::Env env, const std::vector<std::string>& v);
// Generated token rows (train::strip_generated) -> number[][].
Napi::Array TokenRowsToJs(Napi::Env env, const std::vector<std::vector<int64_t>>& rows);

// ---- core option structs ----
// Optimizer options {name, lr, totalSteps, weightDecay, betas, eps, schedule, warmupSteps, clipNorm,
// gradAccumulation, scaleParameter} over `defaults`; `required` names the fields that must be given.
train::OptimConfig OptimConfigFromJs(const Napi::Value& v, const std::string& arg, train::OptimConfig defaults = {},
                                     std::initializer_list<const char*> required = {});
// Generation options {maxNewTokens, numBeams}; maxNewTokens is required (and `v` too) when `required`.
t5::GenerateOptions GenerateOptionsFromJs(const Napi::Value& v, const std::string& arg, bool required);
// A model config: a preset name ("tiny", "small", ...) or config.json text; `vocab` > 0 overrides the vocabulary.
t5::T5Config T5ConfigFromSpec(const std::string& spec, int64_t vocab, const std::string& arg);
// {inputIds, attentionMask, labels?} checked for `cfg` (train::check_batch); lossScale is the caller's.
train::Batch BatchFromJs(const Napi::Object& o, const std::string& arg, const t5::T5Config& cfg, bool labels_required,
                         at::Device device);
// An array (non-empty unless allow_empty), each element converted by `one(value, "<arg>[i]")`.
template <class F>
auto ArrayFromJs(const Napi::Value& v, const std::string& arg, F&& one, bool allow_empty = false) {
  if (!v.IsArray()) throw instill::ArgumentError(arg + ": expected an array");
  auto a = v.As<Napi::Array>();
  if (a.Length() == 0 && !allow_empty) throw instill::ArgumentError(arg + ": empty");
  std::vector<decltype(one(v, arg))> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(one(a.Get(i), arg + "[" + std::to_string(i) + "]"));
  return out;
}
// One training step's progress as a JS progress event.
ProgressEvent StepProgressEvent(const train::StepProgress& p);
// losses, gradNorms, lrs, tokens, seconds, step, cancelled of a train_steps result onto `o`.
void StepsResultToJs(Napi::Object o, const train::TrainStepsResult& r, bool nan_as_null = false);

// Rank classification (scoreOptions of T5Model and Tagi): `options` = one non-empty array of token-id lists per
// example (`batch` examples, ids below `vocab_size`) -> ids [batch, K, T] int64 padded with -100 (examples with
// fewer than K options get all-padding rows) and each example's option count. Errors name options[e][k].
struct OptionIds {
  at::Tensor ids;
  std::vector<size_t> counts;
};
OptionIds OptionIdsFromJs(const Napi::Value& options, int64_t batch, int64_t vocab_size);
// Summed scores [batch, K] (CPU double) -> number[][] with counts[e] entries per example.
Napi::Array OptionScoresToJs(Napi::Env env, const at::Tensor& sums, const std::vector<size_t>& counts);

}  // namespace instill::napi
