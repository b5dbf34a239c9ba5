#include "napi/marshal.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/errors.h"
#include "train/t5_task.h"

namespace instill::napi {
namespace {

struct DtypeEntry {
  const char* name;
  at::ScalarType type;
  napi_typedarray_type array;
};

const DtypeEntry kDtypes[] = {
    {"float32", at::kFloat, napi_float32_array},   {"float64", at::kDouble, napi_float64_array},
    {"float16", at::kHalf, napi_uint16_array},     {"bfloat16", at::kBFloat16, napi_uint16_array},
    {"int8", at::kChar, napi_int8_array},          {"uint8", at::kByte, napi_uint8_array},
    {"int16", at::kShort, napi_int16_array},       {"int32", at::kInt, napi_int32_array},
    {"int64", at::kLong, napi_bigint64_array},     {"bool", at::kBool, napi_uint8_array},
};

const DtypeEntry& EntryFor(at::ScalarType t) {
  for (const auto& e : kDtypes)
    if (e.type == t) return e;
  throw instill::ArgumentError(std::string("unsupported tensor dtype ") + c10::toString(t));
}

const char* ArrayName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

}  // namespace

at::ScalarType DtypeFromName(const std::string& name, const std::string& arg) {
  for (const auto& e : kDtypes)
    if (name == e.name) return e.type;
  throw instill::ArgumentError(arg + ": unknown dtype '" + name +
                               "' (expected float32, float64, float16, bfloat16, int8, uint8, int16, int32, int64 or bool)");
}

std::string DtypeName(at::ScalarType t) { return EntryFor(t).name; }

Napi::Object RequireObject(const Napi::Value& v, const std::string& arg) {
  if (!v.IsObject() || v.IsArray()) throw instill::ArgumentError(arg + ": expected an object");
  return v.As<Napi::Object>();
}

double RequireNumber(const Napi::Value& v, const std::string& arg) {
  if (!v.IsNumber()) throw instill::ArgumentError(arg + ": expected a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw instill::RangeError(arg + ": expected a finite number");
  return d;
}

int64_t RequireInt(const Napi::Value& v, const std::string& arg, int64_t lo, int64_t hi) {
  double d = RequireNumber(v, arg);
  if (std::floor(d) != d) throw instill::ArgumentError(arg + ": expected an integer, got " + std::to_string(d));
  if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
    throw instill::RangeError(arg + ": " + std::to_string(static_cast<int64_t>(d)) + " is outside [" +
                              std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int64_t>(d);
}

std::string RequireString(const Napi::Value& v, const std::string& arg) {
  if (!v.IsString()) throw instill::ArgumentError(arg + ": expected a string");
  return v.As<Napi::String>().Utf8Value();
}

bool RequireBool(const Napi::Value& v, const std::string& arg) {
  if (!v.IsBoolean()) throw instill::ArgumentError(arg + ": expected a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::vector<int64_t> RequireIntArray(const Napi::Value& v, const std::string& arg) {
  if (!v.IsArray()) throw instill::ArgumentError(arg + ": expected an array of integers");
  auto a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i)
    out[i] = RequireInt(a.Get(i), arg + "[" + std::to_string(i) + "]", 0, std::numeric_limits<int32_t>::max());
  return out;
}

std::optional<Napi::Value> OptionalField(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return std::nullopt;
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  return v;
}

std::optional<Napi::Function> OptionalFunction(const Napi::Object& o, const char* key, const std::string& arg) {
  auto v = OptionalField(o, key);
  if (!v) return std::nullopt;
  if (!v->IsFunction()) throw instill::ArgumentError(arg + "." + key + ": expected a function");
  return v->As<Napi::Function>();
}

Napi::Object OptionsArg(const Napi::CallbackInfo& info, size_t i, const std::string& arg) {
  if (info.Length() > i && !info[i].IsUndefined()) return RequireObject(info[i], arg);
  return Napi::Object::New(info.Env());
}

at::Tensor TensorField(const Napi::Object& o, const char* key, const std::string& arg, bool required) {
  auto v = OptionalField(o, key);
  if (!v) {
    if (required) throw instill::ArgumentError(arg + "." + key + ": missing");
    return at::Tensor();
  }
  return TensorFromJs(*v, arg + "." + key);
}

std::vector<std::string> RequireStringArray(const Napi::Value& v, const std::string& arg) {
  return ArrayFromJs(v, arg, RequireString, /*allow_empty=*/true);
}

std::vector<double> RequireNumberArray(const Napi::Value& v, const std::string& arg) {
  return ArrayFromJs(v, arg, RequireNumber, /*allow_empty=*/true);
}

uint64_t RequireSeed(const Napi::Value& v, const std::string& arg) {
  return static_cast<uint64_t>(RequireInt(v, arg, 0, int64_t{1} << 52));
}

double RequireLossScale(const Napi::Value& v, const std::string& arg) {
  const double x = RequireNumber(v, arg);
  if (!(x >= 0)) throw instill::RangeError(arg + ": expected a finite number >= 0, got " + std::to_string(x));
  return x;
}

at::ScalarType FloatDtypeFromJs(const Napi::Value& v, const std::string& arg, std::initializer_list<const char*> allowed) {
  const std::string d = RequireString(v, arg);
  const std::vector<const char*> names(allowed);
  std::string list;
  for (size_t i = 0; i < names.size(); ++i) {
    if (d == names[i]) return d == "stored" ? at::ScalarType::Undefined : DtypeFromName(d, arg);
    list += std::string(i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + "'" + names[i] + "'";
  }
  throw instill::ArgumentError(arg + ": expected " + list + ", got '" + d + "'");
}

Napi::Array NumbersToJs(Napi::Env env, const std::vector<double>& v, bool nan_as_null) {
  auto a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i)
    a.Set(static_cast<uint32_t>(i), nan_as_null && std::isnan(v[i]) ? env.Null() : Napi::Number::New(env, v[i]));
  return a;
}

Napi::Array StringsToJs(Napi::Env env, const std::vector<std::string>& v) {
  auto a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), v[i]);
  return a;
}

Napi::Array TokenRowsToJs(Napi::Env env, const std::vector<std::vector<int64_t>>& rows) {
  auto a = Napi::Array::New(env, rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    auto r = Napi::Array::New(env, rows[i].size());
    for (size_t j = 0; j < rows[i].size(); ++j) r.Set(static_cast<uint32_t>(j), static_cast<double>(rows[i][j]));
    a.Set(static_cast<uint32_t>(i), r);
  }
  return a;
}

train::OptimConfig OptimConfigFromJs(const Napi::Value& v, const std::string& arg, train::OptimConfig c,
                                     std::initializer_list<const char*> required) {
  auto o = RequireObject(v, arg);
  for (const char* k : required)
    if (!OptionalField(o, k)) {
      const std::string f = std::string(k);
      throw instill::ArgumentError(arg + "." + f + ": " +
                                   (f == "name" ? "expected 'adamw' or 'adafactor'"
                                    : f == "lr" ? "expected a number"
                                                : "expected an integer"));
    }
  const auto key = [&](const char* k) { return arg + "." + k; };
  if (auto x = OptionalField(o, "name")) c.name = RequireString(*x, key("name"));
  if (auto x = OptionalField(o, "lr")) c.lr = RequireNumber(*x, key("lr"));
  if (auto x = OptionalField(o, "totalSteps")) c.total_steps = RequireInt(*x, key("totalSteps"), 1, int64_t{1} << 40);
  if (auto x = OptionalField(o, "weightDecay")) c.weight_decay = RequireNumber(*x, key("weightDecay"));
  if (auto x = OptionalField(o, "betas")) {
    if (!x->IsArray() || x->As<Napi::Array>().Length() != 2) throw instill::ArgumentError(key("betas") + ": expected [beta1, beta2]");
    auto a = x->As<Napi::Array>();
    c.beta1 = RequireNumber(a.Get(uint32_t(0)), key("betas[0]"));
    c.beta2 = RequireNumber(a.Get(uint32_t(1)), key("betas[1]"));
  }
  if (auto x = OptionalField(o, "eps")) c.eps = RequireNumber(*x, key("eps"));
  if (auto x = OptionalField(o, "schedule")) c.schedule = RequireString(*x, key("schedule"));
  if (auto x = OptionalField(o, "warmupSteps")) c.warmup_steps = RequireInt(*x, key("warmupSteps"), 0, int64_t{1} << 40);
  if (auto x = OptionalField(o, "clipNorm")) c.clip_norm = RequireNumber(*x, key("clipNorm"));
  if (auto x = OptionalField(o, "gradAccumulation")) c.grad_accumulation = RequireInt(*x, key("gradAccumulation"), 1, 1 << 20);
  if (auto x = OptionalField(o, "scaleParameter")) c.scale_parameter = RequireBool(*x, key("scaleParameter"));
  c.validate();
  return c;
}

t5::GenerateOptions GenerateOptionsFromJs(const Napi::Value& v, const std::string& arg, bool required) {
  t5::GenerateOptions g;
  if (!required && (v.IsUndefined() || v.IsNull())) return g;
  auto o = RequireObject(v, arg);
  auto mnt = OptionalField(o, "maxNewTokens");
  if (!mnt && required) throw instill::ArgumentError(arg + ".maxNewTokens: expected an integer");
  if (mnt) g.max_new_tokens = RequireInt(*mnt, arg + ".maxNewTokens", 0, 1 << 20);
  if (auto x = OptionalField(o, "numBeams")) g.num_beams = RequireInt(*x, arg + ".numBeams", 1, 1024);
  return g;
}

t5::T5Config T5ConfigFromSpec(const std::string& spec, int64_t vocab, const std::string& arg) {
  t5::T5Config cfg;
  if (!spec.empty() && spec.front() == '{') {
    cfg = t5::T5Config::from_json(spec, arg);
    if (vocab > 0) cfg.vocab_size = vocab;
  } else {
    cfg = t5::preset(spec, vocab > 0 ? vocab : 32128);
  }
  cfg.validate(arg);
  return cfg;
}

train::Batch BatchFromJs(const Napi::Object& o, const std::string& arg, const t5::T5Config& cfg, bool labels_required,
                         at::Device device) {
  return train::check_batch(cfg, TensorField(o, "inputIds", arg), TensorField(o, "attentionMask", arg),
                            TensorField(o, "labels", arg), arg, labels_required, device);
}

ProgressEvent StepProgressEvent(const train::StepProgress& p) {
  return {{{"step", static_cast<double>(p.global_step)},
           {"stepInCall", static_cast<double>(p.step_in_call)},
           {"stepsInCall", static_cast<double>(p.steps_in_call)},
           {"loss", p.loss},
           {"gradNorm", p.grad_norm},
           {"lr", p.lr},
           {"tokens", static_cast<double>(p.tokens)},
           {"seconds", p.seconds}},
          ""};
}

void StepsResultToJs(Napi::Object o, const train::TrainStepsResult& r, bool nan_as_null) {
  Napi::Env env = o.Env();
  o.Set("losses", NumbersToJs(env, r.losses, nan_as_null));
  o.Set("gradNorms", NumbersToJs(env, r.grad_norms, nan_as_null));
  o.Set("lrs", NumbersToJs(env, r.lrs, nan_as_null));
  o.Set("tokens", static_cast<double>(r.tokens));
  o.Set("seconds", r.seconds);
  o.Set("step", static_cast<double>(r.step));
  o.Set("cancelled", r.cancelled);
}

at::Tensor TensorFromJs(const Napi::Value& v, const std::string& arg) {
  auto o = RequireObject(v, arg);
  auto data = OptionalField(o, "data");
  if (!data || !data->IsTypedArray()) throw instill::ArgumentError(arg + ".data: expected a TypedArray");
  auto ta = data->As<Napi::TypedArray>();
  auto shapeV = OptionalField(o, "shape");
  if (!shapeV) throw instill::ArgumentError(arg + ".shape: expected an array of integers");
  auto shape = RequireIntArray(*shapeV, arg + ".shape");
  at::ScalarType dtype;
  if (auto d = OptionalField(o, "dtype")) {
    dtype = DtypeFromName(RequireString(*d, arg + ".dtype"), arg + ".dtype");
  } else {
    bool found = false;
    for (const auto& e : kDtypes)
      if (e.array == ta.TypedArrayType() && e.type != at::kBFloat16 && e.type != at::kBool) {
        dtype = e.type;
        found = true;
        break;
      }
    if (!found) throw instill::ArgumentError(arg + ".data: " + ArrayName(ta.TypedArrayType()) + " has no default dtype; pass dtype");
  }
  const auto& entry = EntryFor(dtype);
  if (ta.TypedArrayType() != entry.array)
    throw instill::ArgumentError(arg + ".data: dtype " + entry.name + " needs a " + ArrayName(entry.array) + ", got a " +
                                 ArrayName(ta.TypedArrayType()));
  // Overflow-safe element count.
  uint64_t numel = 1;
  for (auto s : shape) {
    if (s != 0 && numel > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(s))
      throw instill::RangeError(arg + ".shape: too many elements");
    numel *= static_cast<uint64_t>(s);
  }
  if (numel != ta.ElementLength())
    throw instill::RangeError(arg + ": shape [" + [&] {
      std::string s;
      for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
      return s;
    }() + "] holds " + std::to_string(numel) + " elements but data has " + std::to_string(ta.ElementLength()));
  auto t = at::empty(shape, at::TensorOptions().dtype(dtype));
  if (numel) {
    const uint8_t* src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    std::memcpy(t.data_ptr(), src, ta.ByteLength());
  }
  if (dtype == at::kBool) {
    // Uint8Array values other than 0/1 are not valid booleans.
    if (numel && t.view(at::kByte).gt(1).any().item<bool>())
      throw instill::RangeError(arg + ".data: bool tensors take only 0 and 1");
  }
  return t;
}

Napi::Object TensorToJs(Napi::Env env, const at::Tensor& src) {
  at::Tensor t = src.device().is_cpu() ? src.contiguous() : src.to(at::kCPU).contiguous();
  const auto& entry = EntryFor(t.scalar_type());
  size_t n = static_cast<size_t>(t.numel());
  size_t bytes = n * t.element_size();
  auto buf = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) std::memcpy(buf.Data(), t.data_ptr(), bytes);
  Napi::Value data;
  switch (entry.array) {
    case napi_float32_array: data = Napi::Float32Array::New(env, n, buf, 0); break;
    case napi_float64_array: data = Napi::Float64Array::New(env, n, buf, 0); break;
    case napi_uint16_array: data = Napi::Uint16Array::New(env, n, buf, 0); break;
    case napi_int8_array: data = Napi::Int8Array::New(env, n, buf, 0); break;
    case napi_uint8_array: data = Napi::Uint8Array::New(env, n, buf, 0); break;
    case napi_int16_array: data = Napi::Int16Array::New(env, n, buf, 0); break;
    case napi_int32_array: data = Napi::Int32Array::New(env, n, buf, 0); break;
    case napi_bigint64_array: data = Napi::BigInt64Array::New(env, n, buf, 0); break;
    default: throw instill::ArgumentError("unsupported output array type");
  }
  auto shape = Napi::Array::New(env, t.dim());
  for (int64_t i = 0; i < t.dim(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.size(i))));
  auto out = Napi::Object::New(env);
  out.Set("data", data);
  out.Set("shape", shape);
  out.Set("dtype", entry.name);
  return out;
}

OptionIds OptionIdsFromJs(const Napi::Value& options, int64_t batch, int64_t vocab_size) {
  if (!options.IsArray() || options.As<Napi::Array>().Length() != static_cast<uint32_t>(batch))
    throw instill::ArgumentError("options: expected one array of options per example (" + std::to_string(batch) + ")");
  auto outer = options.As<Napi::Array>();
  std::vector<std::vector<std::vector<int64_t>>> opts(static_cast<size_t>(batch));
  int64_t K = 0, T = 1;
  for (int64_t e = 0; e < batch; ++e) {
    const std::string arg = "options[" + std::to_string(e) + "]";
    Napi::Value ov = outer.Get(static_cast<uint32_t>(e));
    if (!ov.IsArray() || ov.As<Napi::Array>().Length() == 0)
      throw instill::ArgumentError(arg + ": expected a non-empty array of token-id lists");
    auto oa = ov.As<Napi::Array>();
    for (uint32_t k = 0; k < oa.Length(); ++k) {
      const std::string ak = arg + "[" + std::to_string(k) + "]";
      auto ids = RequireIntArray(oa.Get(k), ak);  // ids >= 0
      if (ids.empty()) throw instill::ArgumentError(ak + ": an option needs at least one token");
      for (auto id : ids)
        if (id >= vocab_size)
          throw instill::RangeError(ak + ": id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                    std::to_string(vocab_size) + ")");
      T = std::max<int64_t>(T, static_cast<int64_t>(ids.size()));
      opts[static_cast<size_t>(e)].push_back(std::move(ids));
    }
    K = std::max<int64_t>(K, static_cast<int64_t>(oa.Length()));
  }
  OptionIds out;
  out.ids = at::full({batch, K, T}, -100, at::kLong);
  auto acc = out.ids.accessor<int64_t, 3>();
  for (int64_t e = 0; e < batch; ++e) {
    const auto& oe = opts[static_cast<size_t>(e)];
    out.counts.push_back(oe.size());
    for (size_t k = 0; k < oe.size(); ++k)
      for (size_t t = 0; t < oe[k].size(); ++t) acc[e][static_cast<int64_t>(k)][static_cast<int64_t>(t)] = oe[k][t];
  }
  return out;
}

Napi::Array OptionScoresToJs(Napi::Env env, const at::Tensor& sums, const std::vector<size_t>& counts) {
  auto a = Napi::Array::New(env, counts.size());
  auto sa = sums.accessor<double, 2>();
  for (size_t e = 0; e < counts.size(); ++e) {
    auto row = Napi::Array::New(env, counts[e]);
    for (size_t k = 0; k < counts[e]; ++k)
      row.Set(static_cast<uint32_t>(k), sa[static_cast<int64_t>(e)][static_cast<int64_t>(k)]);
    a.Set(static_cast<uint32_t>(e), row);
  }
  return a;
}

}  // namespace instill::napi
