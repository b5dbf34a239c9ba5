// Checkpoint I/O glue: safetensors files, HF checkpoint folders (safetensors or torch.save .bin), conversion to
// safetensors, and PEFT LoRA adapters (native/core/io).
// File reads and writes run on a worker thread (TaskWorker); tensors cross as {data, shape, dtype}.
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/peft.h"
#include "io/safetensors.h"
#include "napi/errors.h"
#include "napi/marshal.h"
#include "napi/modules.h"
#include "napi/worker.h"

namespace instill::napi {
namespace {

Napi::Object MetadataToJs(Napi::Env env, const std::map<std::string, std::string>& m) {
  auto o = Napi::Object::New(env);
  for (const auto& [k, v] : m) o.Set(k, v);
  return o;
}

// [[name, tensor], ...] in order.
Napi::Array NamedToJs(Napi::Env env, const io::NamedTensors& t) {
  auto a = Napi::Array::New(env, t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    auto pair = Napi::Array::New(env, 2);
    pair.Set(uint32_t(0), t[i].first);
    pair.Set(uint32_t(1), TensorToJs(env, t[i].second));
    a.Set(static_cast<uint32_t>(i), pair);
  }
  return a;
}

// [[name, HostTensor], ...] -> NamedTensors (copies, on the main thread).
io::NamedTensors NamedFromJs(const Napi::Value& v, const std::string& arg) {
  if (!v.IsArray()) throw instill::ArgumentError(arg + ": expected an array of [name, tensor] pairs");
  auto a = v.As<Napi::Array>();
  io::NamedTensors out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    std::string at_arg = arg + "[" + std::to_string(i) + "]";
    Napi::Value e = a.Get(i);
    if (!e.IsArray() || e.As<Napi::Array>().Length() != 2)
      throw instill::ArgumentError(at_arg + ": expected a [name, tensor] pair");
    auto pair = e.As<Napi::Array>();
    std::string name = RequireString(pair.Get(uint32_t(0)), at_arg + "[0]");
    out.emplace_back(name, TensorFromJs(pair.Get(uint32_t(1)), at_arg + "[1]"));
  }
  return out;
}

std::map<std::string, std::string> MetadataFromJs(const Napi::Value& v, const std::string& arg) {
  std::map<std::string, std::string> m;
  if (v.IsUndefined() || v.IsNull()) return m;
  auto o = RequireObject(v, arg);
  auto keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    std::string k = keys.Get(i).ToString().Utf8Value();
    m[k] = RequireString(o.Get(k), arg + "." + k);
  }
  return m;
}

// readSafetensors(path) -> Promise<{metadata, tensors: [name, tensor][]}>
Napi::Value ReadSafetensors(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    std::string path = RequireString(info[0], "path");
    auto result = std::make_shared<io::SafetensorsFile>();
    return TaskWorker::Start(
        info.Env(), "instill.readSafetensors", [=](const Reporter&) { *result = io::read_safetensors(path); },
        [=](Napi::Env env) -> Napi::Value {
          auto o = Napi::Object::New(env);
          o.Set("metadata", MetadataToJs(env, result->metadata));
          o.Set("tensors", NamedToJs(env, result->tensors));
          return o;
        },
        /*grad_enabled=*/false);
  });
}

Napi::Array EntriesToJs(Napi::Env env, const std::vector<io::SafetensorsEntry>& entries) {
  auto list = Napi::Array::New(env, entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    auto t = Napi::Object::New(env);
    t.Set("name", e.name);
    t.Set("dtype", DtypeName(e.dtype));
    auto shape = Napi::Array::New(env, e.shape.size());
    for (size_t d = 0; d < e.shape.size(); ++d) shape.Set(static_cast<uint32_t>(d), static_cast<double>(e.shape[d]));
    t.Set("shape", shape);
    auto off = Napi::Array::New(env, 2);
    off.Set(uint32_t(0), static_cast<double>(e.begin));
    off.Set(uint32_t(1), static_cast<double>(e.end));
    t.Set("dataOffsets", off);
    list.Set(static_cast<uint32_t>(i), t);
  }
  return list;
}

// readSafetensorsHeader(path) -> {metadata, headerBytes, dataBytes, tensors: [{name, dtype, shape, dataOffsets}]}
Napi::Value ReadSafetensorsHeader(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    io::SafetensorsHeader h = io::read_safetensors_header(RequireString(info[0], "path"));
    auto o = Napi::Object::New(env);
    o.Set("metadata", MetadataToJs(env, h.metadata));
    o.Set("headerBytes", static_cast<double>(h.header_bytes));
    o.Set("dataBytes", static_cast<double>(h.data_bytes));
    o.Set("tensors", EntriesToJs(env, h.entries));
    return o;
  });
}

// readWeightsHeader(path) -> [{name, dtype, shape, dataOffsets}]: a .safetensors header, or the tensors a torch.save
// file's pickle describes (restricted unpickler; storages are not read; dataOffsets [0, 0]).
Napi::Value ReadWeightsHeader(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    return EntriesToJs(info.Env(), io::read_weight_file_header(RequireString(info[0], "path")));
  });
}

// convertCheckpoint(src, outDir, {dtype?: "stored"|"float32"|"bfloat16"|"float16"|"float64", maxShardBytes?})
//   -> Promise<{tensors, bytes, dropped: string[], files: string[]}>
Napi::Value ConvertCheckpoint(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    std::string src = RequireString(info[0], "src");
    std::string out = RequireString(info[1], "outDir");
    at::ScalarType dtype = at::ScalarType::Undefined;
    uint64_t max_shard = 0;
    if (info.Length() > 2 && !info[2].IsUndefined()) {
      auto o = RequireObject(info[2], "options");
      if (auto v = OptionalField(o, "dtype"))
        dtype = FloatDtypeFromJs(*v, "options.dtype", {"stored", "float32", "bfloat16", "float16", "float64"});
      if (auto v = OptionalField(o, "maxShardBytes")) max_shard = static_cast<uint64_t>(RequireInt(*v, "options.maxShardBytes", 0, int64_t{1} << 52));
    }
    auto result = std::make_shared<io::ConvertResult>();
    return TaskWorker::Start(
        info.Env(), "instill.convertCheckpoint",
        [=](const Reporter&) { *result = io::convert_checkpoint(src, out, dtype, max_shard); },
        [=](Napi::Env env) -> Napi::Value {
          auto o = Napi::Object::New(env);
          o.Set("tensors", static_cast<double>(result->tensors));
          o.Set("bytes", static_cast<double>(result->bytes));
          o.Set("dropped", StringsToJs(env, result->dropped));
          o.Set("files", StringsToJs(env, result->files));
          return o;
        },
        /*grad_enabled=*/false);
  });
}

// writeSafetensors(path, tensors: [name, tensor][], metadata?) -> Promise<void>
Napi::Value WriteSafetensors(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    std::string path = RequireString(info[0], "path");
    auto tensors = std::make_shared<io::NamedTensors>(NamedFromJs(info[1], "tensors"));
    auto meta = std::make_shared<std::map<std::string, std::string>>(MetadataFromJs(info[2], "metadata"));
    return TaskWorker::Start(
        info.Env(), "instill.writeSafetensors", [=](const Reporter&) { io::write_safetensors(path, *tensors, *meta); },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); }, /*grad_enabled=*/false);
  });
}

// readCheckpointWeights(dir) -> Promise<[name, tensor][]>
Napi::Value ReadCheckpointWeights(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    std::string dir = RequireString(info[0], "dir");
    auto result = std::make_shared<io::NamedTensors>();
    return TaskWorker::Start(
        info.Env(), "instill.readCheckpointWeights",
        [=](const Reporter&) { *result = io::read_checkpoint_weights(dir); },
        [=](Napi::Env env) -> Napi::Value { return NamedToJs(env, *result); }, /*grad_enabled=*/false);
  });
}

// checkpointWeightFiles(dir) -> string[]
Napi::Value CheckpointWeightFiles(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    return StringsToJs(info.Env(), io::checkpoint_weight_files(RequireString(info[0], "dir")));
  });
}

// readPeftAdapter(dir) -> Promise<{configJson, r, alpha, scaling, targetModules, baseModelNameOrPath,
//                                  modules: [{module, A, B}]}>
Napi::Value ReadPeftAdapter(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    std::string dir = RequireString(info[0], "dir");
    auto result = std::make_shared<io::PeftAdapter>();
    return TaskWorker::Start(
        info.Env(), "instill.readPeftAdapter", [=](const Reporter&) { *result = io::read_peft_adapter(dir); },
        [=](Napi::Env env) -> Napi::Value {
          auto o = Napi::Object::New(env);
          o.Set("configJson", result->config.dump());
          o.Set("r", static_cast<double>(result->r));
          o.Set("alpha", result->alpha);
          o.Set("scaling", result->scaling);
          o.Set("targetModules", StringsToJs(env, result->target_modules));
          o.Set("baseModelNameOrPath", result->base_model_name_or_path);
          auto mods = Napi::Array::New(env, result->modules.size());
          for (size_t i = 0; i < result->modules.size(); ++i) {
            const auto& m = result->modules[i];
            auto mo = Napi::Object::New(env);
            mo.Set("module", m.module);
            mo.Set("A", TensorToJs(env, m.A.contiguous()));
            mo.Set("B", TensorToJs(env, m.B.contiguous()));
            mods.Set(static_cast<uint32_t>(i), mo);
          }
          o.Set("modules", mods);
          return o;
        },
        /*grad_enabled=*/false);
  });
}

// writePeftAdapter(dir, modules: [{module, A, B}], configJson: string) -> Promise<void>
Napi::Value WritePeftAdapter(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    std::string dir = RequireString(info[0], "dir");
    if (!info[1].IsArray()) throw instill::ArgumentError("modules: expected an array of {module, A, B}");
    auto arr = info[1].As<Napi::Array>();
    auto modules = std::make_shared<std::vector<io::LoraModuleWeights>>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      std::string arg = "modules[" + std::to_string(i) + "]";
      auto o = RequireObject(arr.Get(i), arg);
      io::LoraModuleWeights m;
      m.module = RequireString(o.Get("module"), arg + ".module");
      m.A = TensorFromJs(o.Get("A"), arg + ".A");
      m.B = TensorFromJs(o.Get("B"), arg + ".B");
      modules->push_back(std::move(m));
    }
    std::string cfg_text = RequireString(info[2], "configJson");
    auto cfg = std::make_shared<nlohmann::json>();
    try {
      *cfg = nlohmann::json::parse(cfg_text);
    } catch (const nlohmann::json::exception& e) {
      throw instill::ArgumentError(std::string("configJson: not valid JSON: ") + e.what());
    }
    return TaskWorker::Start(
        info.Env(), "instill.writePeftAdapter", [=](const Reporter&) { io::write_peft_adapter(dir, *modules, *cfg); },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); }, /*grad_enabled=*/false);
  });
}

}  // namespace

void InitIo(Napi::Env env, Napi::Object exports) {
  exports.Set("readSafetensors", Napi::Function::New(env, ReadSafetensors, "readSafetensors"));
  exports.Set("readSafetensorsHeader", Napi::Function::New(env, ReadSafetensorsHeader, "readSafetensorsHeader"));
  exports.Set("writeSafetensors", Napi::Function::New(env, WriteSafetensors, "writeSafetensors"));
  exports.Set("readCheckpointWeights", Napi::Function::New(env, ReadCheckpointWeights, "readCheckpointWeights"));
  exports.Set("checkpointWeightFiles", Napi::Function::New(env, CheckpointWeightFiles, "checkpointWeightFiles"));
  exports.Set("readWeightsHeader", Napi::Function::New(env, ReadWeightsHeader, "readWeightsHeader"));
  exports.Set("convertCheckpoint", Napi::Function::New(env, ConvertCheckpoint, "convertCheckpoint"));
  exports.Set("readPeftAdapter", Napi::Function::New(env, ReadPeftAdapter, "readPeftAdapter"));
  exports.Set("writePeftAdapter", Napi::Function::New(env, WritePeftAdapter, "writePeftAdapter"));
}

}  // namespace instill::napi
