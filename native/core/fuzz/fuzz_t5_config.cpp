// Fuzz harness: instill::t5::T5Config::from_json on hostile config.json text. Accepted configs must validate and
// survive a to_json/from_json round trip unchanged; rejections must be instill::ArgumentError naming the source.
#include "fuzz/common.h"
#include "t5/config.h"

namespace instill_fuzz {

const char* kName = "t5_config";

std::vector<std::string> seeds() {
  std::vector<std::string> out;
  for (const char* p : {"tiny", "small", "base"}) out.push_back(instill::t5::preset(p, 520).to_json());
  out.push_back("{\"d_model\": 32, \"d_kv\": 8, \"d_ff\": 64, \"num_heads\": 4, \"num_layers\": 1, \"num_decoder_layers\": 1, "
                "\"relative_attention_num_buckets\": 8, \"relative_attention_max_distance\": 32, \"layer_norm_epsilon\": 1e-06, "
                "\"feed_forward_proj\": \"gated-gelu\", \"tie_word_embeddings\": false, \"vocab_size\": 520, \"pad_token_id\": 0, "
                "\"eos_token_id\": 1, \"decoder_start_token_id\": 0, \"dropout_rate\": 0, \"model_type\": \"t5\"}");
  return out;
}

std::vector<std::string> dictionary() {
  return {"\"vocab_size\"", "\"d_model\"", "\"d_kv\"", "\"d_ff\"", "\"num_heads\"", "\"num_layers\"",
          "\"num_decoder_layers\"", "\"relative_attention_num_buckets\"", "\"relative_attention_max_distance\"",
          "\"dropout_rate\"", "\"layer_norm_epsilon\"", "\"initializer_factor\"", "\"feed_forward_proj\"",
          "\"tie_word_embeddings\"", "\"pad_token_id\"", "\"eos_token_id\"", "\"decoder_start_token_id\"",
          "\"gated-gelu\"", "\"relu\"", "\"gated-\"", "\"swish\"", "null", "true", "false", "[]", "{}", "\"\"",
          "-1", "0", "1e400", "1.5", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
          "\"model_type\"", "\"t5\"", ",", ":", "{", "}"};
}

void fixup(std::string&, Rng&) {}

Outcome one(const uint8_t* data, size_t size) {
  static const std::string source = "/fuzz/config.json";
  const std::string text(reinterpret_cast<const char*>(data), size);
  instill::t5::T5Config c;
  try {
    c = instill::t5::T5Config::from_json(text, source);
  } catch (const instill::ArgumentError& e) {
    const std::string msg = e.what();
    if (msg.rfind(source, 0) != 0) throw Violation("ArgumentError does not start with the source: " + msg);
    return rejected("ArgumentError");
  }
  try {
    c.validate(source);
  } catch (const std::exception& e) {
    throw Violation(std::string("from_json accepted a config validate() rejects: ") + e.what());
  }
  const std::string again = c.to_json();
  if (instill::t5::T5Config::from_json(again, source).to_json() != again) throw Violation("config changed in a round trip");
  return Outcome{};
}

}  // namespace instill_fuzz

INSTILL_FUZZ_MAIN()
