#include "t5/pretrained.h"

#include <torch/torch.h>

#include "common/errors.h"
#include "io/checkpoint.h"
#include "io/file_util.h"

namespace instill::t5 {

void save_pretrained(const T5ForConditionalGenerationImpl& model, const std::string& dir) {
  io::make_directories(dir);
  NamedTensors state;
  for (auto& kv : hf_state(model)) state.emplace_back(kv.first, kv.second.detach());
  io::write_checkpoint_weights(dir, state);
  io::write_text_file_atomic(io::path_join(dir, "config.json"), model.config().to_json());
}

T5ForConditionalGeneration from_pretrained(const std::string& dir, at::ScalarType dtype) {
  if (!at::isFloatingType(dtype)) throw ArgumentError("from_pretrained: dtype must be a floating type");
  const std::string cfg_path = io::path_join(dir, "config.json");
  T5Config cfg = T5Config::from_json(io::read_text_file(cfg_path), cfg_path);
  T5ForConditionalGeneration model(cfg);
  model->to(dtype);
  load_hf_weights(*model, io::read_checkpoint_weights(dir), dir);
  return model;
}

}  // namespace instill::t5
