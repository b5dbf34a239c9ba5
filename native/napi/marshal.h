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

}  // namespace instill::napi
