#include "t5/pretrained.h"

#include <torch/torch.h>

#include <map>
#include <set>

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

namespace {

std::string base_name(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Highest block index + 1 among "<stack>.block.<i>." names; -1 when a block index is not a number.
int64_t count_blocks(const std::map<std::string, WeightInfo>& w, const std::string& stack) {
  const std::string prefix = stack + ".block.";
  std::set<int64_t> seen;
  for (const auto& [name, info] : w) {
    if (name.rfind(prefix, 0) != 0) continue;
    size_t end = name.find('.', prefix.size());
    std::string idx = name.substr(prefix.size(), end == std::string::npos ? std::string::npos : end - prefix.size());
    if (idx.empty() || idx.size() > 9 || idx.find_first_not_of("0123456789") != std::string::npos) continue;
    seen.insert(std::stoll(idx));
  }
  return seen.empty() ? 0 : *seen.rbegin() + 1;
}

}  // namespace

std::map<std::string, WeightInfo> weight_infos(const std::string& dir) {
  std::map<std::string, WeightInfo> out;
  for (const auto& file : io::checkpoint_weight_files(dir))
    for (auto& e : io::read_weight_file_header(file)) out[e.name] = WeightInfo{e.dtype, e.shape, file};
  return out;
}

void check_config_against_weights(const T5Config& c, const std::map<std::string, WeightInfo>& w,
                                  const std::string& config_path) {
  auto mismatch = [&](const char* field, int64_t value, const std::string& what) {
    throw ArgumentError(config_path + ": field \"" + field + "\" is " + std::to_string(value) + " but " + what +
                        "; the config does not describe these weights (nothing was allocated)");
  };
  auto dim = [&](const std::string& name, size_t axis, const char* field, int64_t value) {
    auto it = w.find(name);
    if (it == w.end()) return;
    const auto& s = it->second.shape;
    if (s.size() != 2)
      throw ArgumentError(base_name(it->second.file) + ": tensor " + name + " has shape " + shape_str(s) + ", expected 2 dimensions");
    if (s[axis] != value)
      mismatch(field, value, "tensor " + name + " in " + base_name(it->second.file) + " has shape " + shape_str(s));
  };
  dim("shared.weight", 0, "vocab_size", c.vocab_size);
  dim("shared.weight", 1, "d_model", c.d_model);
  dim("lm_head.weight", 0, "vocab_size", c.vocab_size);
  for (const char* stack : {"encoder", "decoder"}) {
    const bool enc = std::string(stack) == "encoder";
    const int64_t want = enc ? c.num_layers : c.num_decoder_layers;
    const int64_t have = count_blocks(w, stack);
    if (have > 0 && have != want) {
      std::string any;
      for (const auto& [name, info] : w)
        if (name.rfind(std::string(stack) + ".block.", 0) == 0) any = base_name(info.file);
      mismatch(enc ? "num_layers" : "num_decoder_layers", want,
               any + " holds " + std::to_string(have) + " " + stack + " blocks (" + stack + ".block.0.." +
                   std::to_string(have - 1) + ")");
    }
    const std::string b0 = std::string(stack) + ".block.0.layer.0.SelfAttention.";
    dim(b0 + "q.weight", 0, "num_heads * d_kv", c.num_heads * c.d_kv);
    dim(b0 + "q.weight", 1, "d_model", c.d_model);
    dim(b0 + "relative_attention_bias.weight", 1, "num_heads", c.num_heads);
    dim(b0 + "relative_attention_bias.weight", 0, "relative_attention_num_buckets", c.relative_attention_num_buckets);
    const std::string ff = std::string(stack) + ".block.0.layer." + (enc ? "1" : "2") + ".DenseReluDense.";
    dim(ff + (c.is_gated() ? "wi_0.weight" : "wi.weight"), 0, "d_ff", c.d_ff);
  }
}

at::ScalarType stored_dtype(const std::map<std::string, WeightInfo>& w) {
  auto it = w.find("shared.weight");
  if (it != w.end() && at::isFloatingType(it->second.dtype)) return it->second.dtype;
  for (const auto& [name, info] : w)
    if (at::isFloatingType(info.dtype)) return info.dtype;
  return at::kFloat;
}

T5ForConditionalGeneration from_pretrained(const std::string& dir, at::ScalarType dtype) {
  if (dtype != at::ScalarType::Undefined && !at::isFloatingType(dtype))
    throw ArgumentError("from_pretrained: dtype must be a floating type");
  const std::string cfg_path = io::path_join(dir, "config.json");
  // Sizes first, against the weights' headers, then the total: a hostile config.json fails here, not in an allocator.
  T5Config cfg = T5Config::from_json(io::read_text_file(cfg_path), cfg_path, /*check_size=*/false);
  auto infos = weight_infos(dir);
  check_config_against_weights(cfg, infos, cfg_path);
  cfg.validate(cfg_path);
  if (dtype == at::ScalarType::Undefined) dtype = stored_dtype(infos);
  T5ForConditionalGeneration model(cfg);
  model->to(dtype);
  load_hf_weights(*model, io::read_checkpoint_weights(dir), dir);
  return model;
}

}  // namespace instill::t5
