#include "io/peft.h"

#include <ATen/ATen.h>

#include <cmath>
#include <map>
#include <set>

#include "common/errors.h"
#include "io/checkpoint.h"
#include "io/file_util.h"
#include "io/torch_bin.h"

namespace instill::io {
namespace {

const std::string kPrefix = "base_model.model.";
const char* kConfig = "adapter_config.json";
const char* kWeights = "adapter_model.safetensors";

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// "<module>.lora_A.weight" or "<module>.lora_A.<adapter>.weight" -> (module, 'A'); false when not a LoRA key.
bool split_lora_key(const std::string& key, std::string* module, char* which) {
  if (!ends_with(key, ".weight")) return false;
  std::string stem = key.substr(0, key.size() - 7);
  for (char w : {'A', 'B'}) {
    const std::string tag = std::string(".lora_") + w;
    auto pos = stem.rfind(tag);
    if (pos == std::string::npos || pos == 0) continue;
    std::string rest = stem.substr(pos + tag.size());
    if (!rest.empty() && (rest[0] != '.' || rest.find('.', 1) != std::string::npos || rest.size() == 1)) continue;
    *module = stem.substr(0, pos);
    *which = w;
    return true;
  }
  return false;
}

std::string last_component(const std::string& module) {
  auto p = module.find_last_of('.');
  return p == std::string::npos ? module : module.substr(p + 1);
}

}  // namespace

nlohmann::json make_peft_lora_config(int64_t r, double lora_alpha, const std::vector<std::string>& target_modules,
                                     const std::string& base_model_name_or_path, double lora_dropout) {
  nlohmann::json c = nlohmann::json::object();
  c["alpha_pattern"] = nlohmann::json::object();
  c["base_model_name_or_path"] = base_model_name_or_path.empty() ? nlohmann::json(nullptr)
                                                                 : nlohmann::json(base_model_name_or_path);
  c["bias"] = "none";
  c["fan_in_fan_out"] = false;
  c["inference_mode"] = true;
  c["init_lora_weights"] = true;
  c["layers_pattern"] = nullptr;
  c["layers_to_transform"] = nullptr;
  // Integral alpha is written as an integer, as PEFT configs usually hold it.
  if (std::isfinite(lora_alpha) && lora_alpha == std::floor(lora_alpha) && std::fabs(lora_alpha) < 1e15)
    c["lora_alpha"] = static_cast<int64_t>(lora_alpha);
  else
    c["lora_alpha"] = lora_alpha;
  c["lora_dropout"] = lora_dropout;
  c["modules_to_save"] = nullptr;
  c["peft_type"] = "LORA";
  c["r"] = r;
  c["rank_pattern"] = nlohmann::json::object();
  c["revision"] = nullptr;
  c["target_modules"] = target_modules;
  c["task_type"] = "SEQ_2_SEQ_LM";
  c["use_dora"] = false;
  c["use_rslora"] = false;
  return c;
}

void write_peft_adapter(const std::string& dir, const std::vector<LoraModuleWeights>& modules,
                        const nlohmann::json& adapter_config) {
  if (!adapter_config.is_object()) throw ArgumentError("adapter_config must be a JSON object");
  auto ri = adapter_config.find("r");
  if (ri == adapter_config.end() || !ri->is_number_integer() || ri->get<int64_t>() <= 0)
    throw ArgumentError("adapter_config.r must be a positive integer");
  auto ai = adapter_config.find("lora_alpha");
  if (ai == adapter_config.end() || !ai->is_number()) throw ArgumentError("adapter_config.lora_alpha must be a number");
  const int64_t r = ri->get<int64_t>();
  if (modules.empty()) throw ArgumentError("write_peft_adapter: no LoRA modules");

  NamedTensors tensors;
  std::set<std::string> names, targets;
  for (const auto& m : modules) {
    if (m.module.empty()) throw ArgumentError("write_peft_adapter: empty module name");
    if (!names.insert(m.module).second) throw ArgumentError("write_peft_adapter: module '" + m.module + "' given twice");
    if (!m.A.defined() || !m.B.defined())
      throw ArgumentError("write_peft_adapter: module '" + m.module + "' needs both lora_A and lora_B");
    if (m.A.dim() != 2 || m.B.dim() != 2 || m.A.size(0) != r || m.B.size(1) != r)
      throw ArgumentError("write_peft_adapter: module '" + m.module + "': lora_A " + c10::str(m.A.sizes()) +
                          " and lora_B " + c10::str(m.B.sizes()) + " must be [r, in] and [out, r] with r = " +
                          std::to_string(r));
    const std::string base = starts_with(m.module, kPrefix) ? m.module : kPrefix + m.module;
    tensors.emplace_back(base + ".lora_A.weight", m.A);
    tensors.emplace_back(base + ".lora_B.weight", m.B);
    targets.insert(last_component(m.module));
  }
  nlohmann::json cfg = make_peft_lora_config(r, ai->get<double>(), std::vector<std::string>(targets.begin(), targets.end()));
  for (auto it = adapter_config.begin(); it != adapter_config.end(); ++it) cfg[it.key()] = it.value();
  if (cfg.value("peft_type", std::string("LORA")) != "LORA") throw ArgumentError("adapter_config.peft_type must be LORA");

  make_directories(dir);
  write_safetensors(path_join(dir, kWeights), tensors, {{"format", "pt"}});
  write_text_file_atomic(path_join(dir, kConfig), cfg.dump(2) + "\n");
}

void write_peft_adapter(const std::string& dir, const NamedTensors& lora_weights, const nlohmann::json& adapter_config) {
  std::map<std::string, LoraModuleWeights> by_module;
  for (const auto& [key, t] : lora_weights) {
    std::string module;
    char which = 0;
    if (!split_lora_key(key, &module, &which))
      throw ArgumentError("write_peft_adapter: '" + key + "' is not named <module>.lora_A.weight or <module>.lora_B.weight");
    if (starts_with(module, kPrefix)) module = module.substr(kPrefix.size());
    auto& m = by_module[module];
    m.module = module;
    at::Tensor& slot = which == 'A' ? m.A : m.B;
    if (slot.defined()) throw ArgumentError("write_peft_adapter: '" + key + "' given twice");
    slot = t;
  }
  std::vector<LoraModuleWeights> modules;
  for (auto& [name, m] : by_module) modules.push_back(std::move(m));
  write_peft_adapter(dir, modules, adapter_config);
}

PeftAdapter read_peft_adapter(const std::string& dir) {
  const std::string cfg_path = path_join(dir, kConfig), w_path = path_join(dir, kWeights);
  if (!path_is_directory(dir)) throw FileError(dir, "adapter folder not found");
  // adapter_model.bin (older PEFT, torch.save) is read by the restricted unpickler of io/torch_bin.h.
  std::string weights_path = w_path;
  if (!path_is_regular_file(w_path)) {
    if (!path_is_regular_file(path_join(dir, "adapter_model.bin"))) throw FileError(w_path, "file not found");
    weights_path = path_join(dir, "adapter_model.bin");
  }
  PeftAdapter a;
  try {
    a.config = nlohmann::json::parse(read_text_file(cfg_path));
  } catch (const nlohmann::json::exception& e) {
    throw FileError(cfg_path, std::string("not valid JSON: ") + e.what());
  }
  const auto& c = a.config;
  if (!c.is_object()) throw FileError(cfg_path, "not a JSON object");
  auto str_field = [&](const char* k) -> std::string {
    auto it = c.find(k);
    return it != c.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto true_field = [&](const char* k) {
    auto it = c.find(k);
    return it != c.end() && it->is_boolean() && it->get<bool>();
  };
  auto nonempty_object = [&](const char* k) {
    auto it = c.find(k);
    return it != c.end() && !it->is_null() && !(it->is_object() && it->empty());
  };
  const std::string peft_type = str_field("peft_type");
  if (peft_type != "LORA") throw FileError(cfg_path, "peft_type is '" + peft_type + "'; only LORA adapters are supported");
  auto ri = c.find("r");
  if (ri == c.end() || !ri->is_number_integer() || ri->get<int64_t>() <= 0)
    throw FileError(cfg_path, "\"r\" must be a positive integer");
  a.r = ri->get<int64_t>();
  auto ai = c.find("lora_alpha");
  if (ai == c.end()) a.alpha = 8.0;  // PEFT's default
  else if (ai->is_number()) a.alpha = ai->get<double>();
  else throw FileError(cfg_path, "\"lora_alpha\" must be a number");
  if (true_field("use_dora")) throw FileError(cfg_path, "use_dora: DoRA adapters are not supported");
  if (true_field("fan_in_fan_out")) throw FileError(cfg_path, "fan_in_fan_out: transposed (Conv1D) layers are not supported");
  if (nonempty_object("rank_pattern")) throw FileError(cfg_path, "rank_pattern (per-module ranks) is not supported");
  if (nonempty_object("alpha_pattern")) throw FileError(cfg_path, "alpha_pattern (per-module alphas) is not supported");
  a.scaling = true_field("use_rslora") ? a.alpha / std::sqrt(static_cast<double>(a.r)) : a.alpha / static_cast<double>(a.r);
  a.base_model_name_or_path = str_field("base_model_name_or_path");
  if (auto tm = c.find("target_modules"); tm != c.end()) {
    if (tm->is_string()) a.target_modules.push_back(tm->get<std::string>());
    else if (tm->is_array())
      for (const auto& x : *tm)
        if (x.is_string()) a.target_modules.push_back(x.get<std::string>());
  }

  const NamedTensors weights = weights_path == w_path ? read_safetensors(w_path).tensors : read_torch_bin(weights_path);
  const std::string& w_name = weights_path;
  std::map<std::string, LoraModuleWeights> by_module;
  for (auto& [key, t] : weights) {
    if (!starts_with(key, kPrefix)) throw FileError(w_name, "tensor '" + key + "': key does not start with base_model.model.");
    std::string module;
    char which = 0;
    if (!split_lora_key(key, &module, &which))
      throw FileError(w_name, "tensor '" + key + "': not a LoRA weight (<module>.lora_A.weight / lora_B.weight)");
    module = module.substr(kPrefix.size());
    if (module.empty()) throw FileError(w_name, "tensor '" + key + "': empty module name");
    auto& m = by_module[module];
    m.module = module;
    at::Tensor& slot = which == 'A' ? m.A : m.B;
    if (slot.defined()) throw FileError(w_name, "tensor '" + key + "': module '" + module + "' has two lora_" + which);
    if (t.dim() != 2) throw FileError(w_name, "tensor '" + key + "': expected a matrix, got shape " + c10::str(t.sizes()));
    if (!at::isFloatingType(t.scalar_type()))
      throw FileError(w_name, "tensor '" + key + "': expected a floating-point dtype");
    slot = t;
  }
  if (by_module.empty()) throw FileError(w_name, "no LoRA weights");
  for (auto& [name, m] : by_module) {
    if (!m.A.defined() || !m.B.defined())
      throw FileError(w_name, "module '" + name + "' has lora_" + (m.A.defined() ? "A" : "B") + " but no lora_" +
                                  (m.A.defined() ? "B" : "A"));
    if (m.A.size(0) != a.r || m.B.size(1) != a.r)
      throw FileError(w_name, "module '" + name + "': lora_A " + c10::str(m.A.sizes()) + " and lora_B " +
                                  c10::str(m.B.sizes()) + " disagree with r = " + std::to_string(a.r) + " in " + kConfig);
    a.modules.push_back(std::move(m));
  }
  return a;
}

}  // namespace instill::io
