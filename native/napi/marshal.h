// Conversions between JavaScript values and tensors / plain C++ values, with argument checks that
// throw instill::ArgumentError (-> TypeError) or instill::RangeError naming the argument.
#pragma once
#include <napi.h>

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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
