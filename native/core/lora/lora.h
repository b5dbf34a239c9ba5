// LoRA on a T5ForConditionalGeneration (see lora/linear.h for the two modes).
//
// Mode 1, trainable adapters registered on the model (PEFT semantics and names):
//   LoraConfig lc; lc.r = 8; lc.alpha = 16; lc.target_modules = {"q", "v"};
//   add_lora(*model, lc, seed);       // <path>.lora_A.weight [r, in] Kaiming-uniform(a=sqrt(5)), lora_B zeros
//   freeze_base(*model);              // only LoRA parameters require grad
//   lora_parameters(*model), lora_state(*model)  // for the optimizer / saving
//   merge_lora(*model);               // W += alpha/r * B A, adapters removed (inference)
//   save_adapter(*model, dir, lc) / load_adapter(*model, dir)  // PEFT folder (adapter_config.json + safetensors)
// Mode 2, functional per-example adapters: lora_sites(*model, lc) lists the paths and shapes; fill an
//   AdapterBatch {path -> (A [B, r, in], B [B, out, r])} and pass it as T5Inputs::adapters.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "lora/linear.h"
#include "t5/model.h"

namespace instill::lora {

struct LoraConfig {
  int64_t r = 8;
  double alpha = 16;     // scaling = alpha / r
  double dropout = 0.0;  // on the adapter input, train mode only
  // Any of q, k, v, o, wi, wi_0, wi_1, wo ("wi" also selects wi_0 and wi_1 of gated FFNs).
  std::vector<std::string> target_modules = {"q", "v"};
  bool encoder = true, decoder = true;
  bool self_attention = true, cross_attention = true, feed_forward = true;
};

struct LoraSite {
  std::string path;  // e.g. "decoder.block.1.layer.1.EncDecAttention.k"
  int64_t in_features = 0, out_features = 0;
};

// The projections a config selects, sorted by path. ArgumentError for unknown target names or an empty selection.
std::vector<LoraSite> lora_sites(const t5::T5ForConditionalGenerationImpl& model, const LoraConfig& cfg);

// Registers trainable adapters on the selected projections (deterministic from seed); returns the sites.
std::vector<LoraSite> add_lora(t5::T5ForConditionalGenerationImpl& model, const LoraConfig& cfg, uint64_t seed = 0);
// requires_grad = false on every base parameter, true on every LoRA parameter.
void freeze_base(t5::T5ForConditionalGenerationImpl& model);
std::vector<at::Tensor> lora_parameters(const t5::T5ForConditionalGenerationImpl& model);
// "<path>.lora_A.weight" / "<path>.lora_B.weight" in path order.
t5::NamedTensors lora_state(const t5::T5ForConditionalGenerationImpl& model);
void merge_lora(t5::T5ForConditionalGenerationImpl& model);
void remove_lora(t5::T5ForConditionalGenerationImpl& model);

// PEFT layout: keys base_model.model.<path>.lora_{A,B}.weight; adapter_config.json with r, lora_alpha,
// target_modules (via io/peft.h).
void save_adapter(const t5::T5ForConditionalGenerationImpl& model, const std::string& dir, const LoraConfig& cfg,
                  const std::string& base_model_name_or_path = "");
// Registers and fills adapters from a PEFT folder (scaling from its config); ArgumentError for modules this model
// lacks or shape mismatches.
void load_adapter(t5::T5ForConditionalGenerationImpl& model, const std::string& dir);

}  // namespace instill::lora
