// LoRA adapters in PEFT's layout (what PeftModel.save_pretrained writes and Text-to-LoRA publishes):
//   <dir>/adapter_config.json        {"peft_type": "LORA", "r", "lora_alpha", "target_modules", ...}
//   <dir>/adapter_model.safetensors  base_model.model.<module>.lora_A.weight  [r, in_features]
//                                    base_model.model.<module>.lora_B.weight  [out_features, r]
// with <module> the HF module name, e.g. encoder.block.0.layer.0.SelfAttention.q. The adapted layer computes
// W x + scaling * B (A x), scaling = lora_alpha / r (lora_alpha / sqrt(r) when "use_rslora" is true).
#pragma once
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace instill::io {

struct LoraModuleWeights {
  std::string module;  // HF module name, without "base_model.model." and without ".lora_A.weight"
  at::Tensor A;        // [r, in_features]
  at::Tensor B;        // [out_features, r]
};

struct PeftAdapter {
  nlohmann::json config;                  // adapter_config.json as read
  std::vector<LoraModuleWeights> modules; // sorted by module name
  int64_t r = 0;
  double alpha = 0;
  double scaling = 0;                     // alpha / r, or alpha / sqrt(r) with use_rslora
  std::vector<std::string> target_modules;
  std::string base_model_name_or_path;
};

// The adapter_config.json PEFT writes for a T5 LoRA (task_type SEQ_2_SEQ_LM, bias "none", fan_in_fan_out false,
// inference_mode true, use_rslora false, use_dora false, empty rank/alpha patterns).
nlohmann::json make_peft_lora_config(int64_t r, double lora_alpha, const std::vector<std::string>& target_modules,
                                     const std::string& base_model_name_or_path = "", double lora_dropout = 0.0);

// Writes adapter_config.json and adapter_model.safetensors into `dir` (created if missing), each atomically.
// `lora_weights` names are "<module>.lora_A.weight" / "<module>.lora_B.weight" (a leading "base_model.model." is
// accepted and not doubled). Every module needs both A [r, in] and B [out, r] with the config's r.
// `adapter_config` must hold "r" and "lora_alpha"; missing PEFT fields get the defaults of make_peft_lora_config;
// missing "target_modules" is derived from the modules' last name component (e.g. ["q", "v"]).
// ArgumentError for inconsistent weights or config.
void write_peft_adapter(const std::string& dir, const NamedTensors& lora_weights, const nlohmann::json& adapter_config);
void write_peft_adapter(const std::string& dir, const std::vector<LoraModuleWeights>& modules,
                        const nlohmann::json& adapter_config);

// Reads an adapter folder: adapter_model.safetensors, else adapter_model.bin (torch.save, read by the restricted
// unpickler of io/torch_bin.h; nothing is executed). FileError (naming the file and key) for: missing files,
// peft_type other than LORA, DoRA, fan_in_fan_out, non-empty rank_pattern/alpha_pattern (not supported), keys
// that are not base_model.model.<module>.lora_{A,B}.weight (an adapter name such as ".lora_A.default.weight" is
// accepted), a module with only A or only B, and shapes that disagree with r or with each other.
PeftAdapter read_peft_adapter(const std::string& dir);

}  // namespace instill::io
