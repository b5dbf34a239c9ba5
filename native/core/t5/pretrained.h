// HF checkpoint folders for T5: config.json + model.safetensors (or a sharded index), via native/core/io.
#pragma once
#include <string>

#include "t5/model.h"

namespace instill::t5 {

// Writes <dir>/config.json and <dir>/model.safetensors (hf_state: HF names, model dtype; LoRA excluded),
// each atomically; creates dir when missing.
void save_pretrained(const T5ForConditionalGenerationImpl& model, const std::string& dir);
// Reads config.json and the weights (model.safetensors or sharded), converting them to `dtype`.
T5ForConditionalGeneration from_pretrained(const std::string& dir, at::ScalarType dtype = at::kFloat);

}  // namespace instill::t5
