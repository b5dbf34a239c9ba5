// T5 configuration: the fields of Hugging Face's T5Config that change the function a T5 computes.
// Parsed from / written to HF `config.json` text.
#pragma once
#include <cstdint>
#include <string>

namespace instill::t5 {

// The largest T5 instill builds (T5-XXL has 11e9 parameters): a config beyond it is a typo or hostile.
constexpr double kMaxParameters = 100e9;

struct T5Config {
  int64_t vocab_size = 32128;
  int64_t d_model = 512;
  int64_t d_kv = 64;
  int64_t d_ff = 2048;
  int64_t num_heads = 8;
  int64_t num_layers = 6;          // encoder blocks
  int64_t num_decoder_layers = 6;  // decoder blocks (HF: defaults to num_layers)
  int64_t relative_attention_num_buckets = 32;
  int64_t relative_attention_max_distance = 128;
  double dropout_rate = 0.1;
  double layer_norm_epsilon = 1e-6;
  double initializer_factor = 1.0;
  // "relu" (original T5), "gated-gelu" (T5 v1.1 / Flan-T5, gelu_new), "gated-relu", "gelu", "gated-silu".
  std::string feed_forward_proj = "relu";
  bool tie_word_embeddings = true;
  int64_t pad_token_id = 0;
  int64_t eos_token_id = 1;
  int64_t decoder_start_token_id = 0;

  // Derived from feed_forward_proj.
  bool is_gated() const;
  // "relu", "gelu_new" (tanh approximation), "gelu" (erf), "silu".
  std::string act() const;
  int64_t inner_dim() const { return num_heads * d_kv; }

  // Throws instill::ArgumentError naming the field and `source` when a value is invalid. With check_size (default)
  // also refuses sizes a machine cannot hold before anything is allocated: more than kMaxParameters parameters, or
  // more float32 bytes than the machine's physical memory; the message names the field that dominates the count.
  void validate(const std::string& source = "config", bool check_size = true) const;

  // Parameter count of T5ForConditionalGeneration with this config (as a double: it may exceed int64 for hostile
  // configs). The same count parameterCount() reports for a built model.
  double parameter_count() const;

  // Parses HF config.json text. `source` (usually the file path) is named in error messages. check_size as validate
  // (from_pretrained first compares the sizes with the weights file, then checks the total).
  static T5Config from_json(const std::string& text, const std::string& source = "config.json", bool check_size = true);
  // HF-compatible config.json text (architectures T5ForConditionalGeneration, model_type t5).
  std::string to_json() const;
};

// Presets: "tiny" (d_model 64, d_kv 16, d_ff 128, 4 heads, 2+2 layers, gated-gelu, untied),
// "small" (t5-small shapes, relu, tied), "base" (t5-v1_1-base shapes: 768/64/2048, 12 heads,
// 12+12 layers, gated-gelu, untied). Unknown names throw ArgumentError.
T5Config preset(const std::string& name, int64_t vocab_size = 32128);

}  // namespace instill::t5
