// HF checkpoint folders for T5: config.json + model.safetensors (or a sharded index), or pytorch_model.bin (read by
// the restricted unpickler of io/torch_bin.h), via native/core/io.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "t5/model.h"

namespace instill::t5 {

// Writes <dir>/config.json and <dir>/model.safetensors (hf_state: HF names, model dtype; LoRA excluded),
// each atomically; creates dir when missing.
void save_pretrained(const T5ForConditionalGenerationImpl& model, const std::string& dir);

// Reads config.json and the weights (model.safetensors, sharded, or pytorch_model.bin), converting them to `dtype`
// (bfloat16/float16 files load to float32 by default, exactly); at::ScalarType::Undefined keeps the stored floating
// dtype (that of shared.weight). Before anything is allocated, the config's sizes are compared with the weights'
// headers (check_config_against_weights) and bounded (T5Config::validate), so a hostile config.json is an
// ArgumentError naming the file and the field, not an allocator failure.
T5ForConditionalGeneration from_pretrained(const std::string& dir, at::ScalarType dtype = at::kFloat);

// Dtype, shape and file of each tensor of a checkpoint, from the headers only.
struct WeightInfo {
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
  std::string file;
};
std::map<std::string, WeightInfo> weight_infos(const std::string& dir);

// Throws ArgumentError "<config_path>: field "vocab_size" is N but tensor shared.weight in model.safetensors has
// shape [...]" when vocab_size, d_model, num_layers / num_decoder_layers (blocks present), num_heads * d_kv,
// num_heads, relative_attention_num_buckets or d_ff disagree with the weights. Tensors absent are not checked here
// (load_hf_weights reports missing tensors).
void check_config_against_weights(const T5Config& cfg, const std::map<std::string, WeightInfo>& weights,
                                  const std::string& config_path);

// The floating dtype the checkpoint stores (shared.weight's, else the first floating tensor's, else float32).
at::ScalarType stored_dtype(const std::map<std::string, WeightInfo>& weights);

}  // namespace instill::t5
