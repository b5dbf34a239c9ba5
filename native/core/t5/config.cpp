#include "t5/config.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "common/errors.h"

namespace instill::t5 {

namespace {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& source, const std::string& field, const std::string& why) {
  throw ArgumentError(source + ": field \"" + field + "\" " + why);
}

void get_int(const json& j, const char* key, int64_t& out, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (it->is_number_integer() || it->is_number_unsigned()) {
    out = it->get<int64_t>();
  } else if (it->is_number_float() && it->get<double>() == static_cast<double>(static_cast<int64_t>(it->get<double>()))) {
    out = static_cast<int64_t>(it->get<double>());
  } else {
    bad(source, key, "must be an integer, got " + it->dump());
  }
}

void get_token_id(const json& j, const char* key, int64_t& out, const std::string& source) {
  auto it = j.find(key);
  if (it != j.end() && it->is_array()) {  // newer configs allow a list of eos ids: take the first
    if (it->empty()) bad(source, key, "must not be an empty list");
    json first = (*it)[0];
    json tmp = {{key, first}};
    get_int(tmp, key, out, source);
    return;
  }
  get_int(j, key, out, source);
}

void get_double(const json& j, const char* key, double& out, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (!it->is_number()) bad(source, key, "must be a number, got " + it->dump());
  out = it->get<double>();
}

void get_bool(const json& j, const char* key, bool& out, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (!it->is_boolean()) bad(source, key, "must be true or false, got " + it->dump());
  out = it->get<bool>();
}

}  // namespace

bool T5Config::is_gated() const { return feed_forward_proj.rfind("gated-", 0) == 0; }

std::string T5Config::act() const {
  std::string a = is_gated() ? feed_forward_proj.substr(6) : feed_forward_proj;
  if (a == "gelu" && is_gated()) return "gelu_new";  // HF maps gated-gelu to gelu_new
  if (a == "gelu_new") return "gelu_new";
  return a;
}

double T5Config::parameter_count() const {
  const double d = static_cast<double>(d_model), inner = static_cast<double>(num_heads) * static_cast<double>(d_kv);
  const double ff = static_cast<double>(d_ff) * d * (is_gated() ? 3.0 : 2.0);
  const double attn = 4.0 * d * inner;
  const double bias = static_cast<double>(relative_attention_num_buckets) * static_cast<double>(num_heads);
  const double embed = static_cast<double>(vocab_size) * d * (tie_word_embeddings ? 1.0 : 2.0);
  const double enc = static_cast<double>(num_layers) * (attn + ff + 2.0 * d) + bias + d;
  const double dec = static_cast<double>(num_decoder_layers) * (2.0 * attn + ff + 3.0 * d) + bias + d;
  return embed + enc + dec;
}

namespace {

// Physical memory in bytes (0 when unknown).
double physical_memory() {
  long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
}

std::string human(double x, const char* unit) {
  const char* prefixes[] = {"", "K", "M", "G", "T", "P", "E", "Z", "Y"};
  int k = 0;
  while (x >= 1000.0 && k < 8) x /= 1000.0, ++k;
  char b[64];
  std::snprintf(b, sizeof b, "%.3g %s%s", x, prefixes[k], unit);
  return b;
}

std::string sci(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", x);
  return b;
}

// The field of the largest term of parameter_count that is furthest above a typical T5 value.
std::string dominant_field(const T5Config& c) {
  const double d = static_cast<double>(c.d_model), inner = static_cast<double>(c.num_heads) * static_cast<double>(c.d_kv);
  const double layer = 8.0 * d * inner + 3.0 * static_cast<double>(c.d_ff) * d;
  const double embed = static_cast<double>(c.vocab_size) * d;
  const double enc = static_cast<double>(c.num_layers) * layer, dec = static_cast<double>(c.num_decoder_layers) * layer;
  std::vector<std::pair<const char*, double>> cand;  // value / typical
  if (embed >= enc && embed >= dec) cand = {{"vocab_size", c.vocab_size / 32128.0}, {"d_model", d / 1024.0}};
  else
    cand = {{enc >= dec ? "num_layers" : "num_decoder_layers", (enc >= dec ? c.num_layers : c.num_decoder_layers) / 24.0},
            {"d_model", d / 1024.0}, {"d_ff", c.d_ff / 4096.0}, {"num_heads", c.num_heads / 16.0}, {"d_kv", c.d_kv / 64.0}};
  return std::max_element(cand.begin(), cand.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;
}

int64_t field_value(const T5Config& c, const std::string& f) {
  if (f == "vocab_size") return c.vocab_size;
  if (f == "num_layers") return c.num_layers;
  if (f == "num_decoder_layers") return c.num_decoder_layers;
  if (f == "d_ff") return c.d_ff;
  if (f == "num_heads") return c.num_heads;
  if (f == "d_kv") return c.d_kv;
  return c.d_model;
}

}  // namespace

void T5Config::validate(const std::string& source, bool check_size) const {
  auto pos = [&](const char* f, int64_t v) {
    if (v <= 0) bad(source, f, "must be positive, got " + std::to_string(v));
  };
  pos("vocab_size", vocab_size);
  pos("d_model", d_model);
  pos("d_kv", d_kv);
  pos("d_ff", d_ff);
  pos("num_heads", num_heads);
  pos("num_layers", num_layers);
  pos("num_decoder_layers", num_decoder_layers);
  pos("relative_attention_num_buckets", relative_attention_num_buckets);
  pos("relative_attention_max_distance", relative_attention_max_distance);
  if (relative_attention_num_buckets < 4)
    bad(source, "relative_attention_num_buckets", "must be at least 4");
  if (!(dropout_rate >= 0.0 && dropout_rate < 1.0))
    bad(source, "dropout_rate", "must be in [0, 1), got " + std::to_string(dropout_rate));
  if (!(layer_norm_epsilon > 0.0)) bad(source, "layer_norm_epsilon", "must be positive");
  if (!(initializer_factor > 0.0)) bad(source, "initializer_factor", "must be positive");
  std::string a = is_gated() ? feed_forward_proj.substr(6) : feed_forward_proj;
  if (a != "relu" && a != "gelu" && a != "gelu_new" && a != "silu")
    bad(source, "feed_forward_proj",
        "must be relu, gated-gelu, gated-relu, gelu, gated-silu or silu, got \"" + feed_forward_proj + "\"");
  auto tok = [&](const char* f, int64_t v) {
    if (v < 0 || v >= vocab_size)
      bad(source, f, "must be a token id in [0, vocab_size=" + std::to_string(vocab_size) + "), got " + std::to_string(v));
  };
  tok("pad_token_id", pad_token_id);
  tok("eos_token_id", eos_token_id);
  tok("decoder_start_token_id", decoder_start_token_id);
  if (!check_size) return;
  const double params = parameter_count(), bytes = params * 4.0, mem = physical_memory();
  const bool too_many = !(params <= kMaxParameters), too_big = mem > 0 && bytes > mem;
  if (too_many || too_big) {
    const std::string f = dominant_field(*this);
    bad(source, f,
        "= " + std::to_string(field_value(*this, f)) + " is implausible: the config describes a T5 of " +
            sci(params) + " parameters (" + human(bytes, "B") + " as float32), " +
            (too_many ? "more than instill's limit of " + sci(kMaxParameters) + " parameters"
                      : "more than this machine's " + human(mem, "B") + " of memory") +
            "; nothing was allocated");
  }
}

T5Config T5Config::from_json(const std::string& text, const std::string& source, bool check_size) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    throw ArgumentError(source + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw ArgumentError(source + ": config must be a JSON object");
  if (j.contains("model_type") && j["model_type"].is_string() && j["model_type"] != "t5" &&
      j["model_type"] != "mt5")
    bad(source, "model_type", "must be \"t5\", got " + j["model_type"].dump());
  T5Config c;
  bool has_dec_layers = j.contains("num_decoder_layers") && !j["num_decoder_layers"].is_null();
  get_int(j, "vocab_size", c.vocab_size, source);
  get_int(j, "d_model", c.d_model, source);
  get_int(j, "d_kv", c.d_kv, source);
  get_int(j, "d_ff", c.d_ff, source);
  get_int(j, "num_heads", c.num_heads, source);
  get_int(j, "num_layers", c.num_layers, source);
  c.num_decoder_layers = c.num_layers;
  if (has_dec_layers) get_int(j, "num_decoder_layers", c.num_decoder_layers, source);
  get_int(j, "relative_attention_num_buckets", c.relative_attention_num_buckets, source);
  get_int(j, "relative_attention_max_distance", c.relative_attention_max_distance, source);
  get_double(j, "dropout_rate", c.dropout_rate, source);
  get_double(j, "layer_norm_epsilon", c.layer_norm_epsilon, source);
  get_double(j, "initializer_factor", c.initializer_factor, source);
  if (j.contains("feed_forward_proj") && !j["feed_forward_proj"].is_null()) {
    if (!j["feed_forward_proj"].is_string())
      bad(source, "feed_forward_proj", "must be a string, got " + j["feed_forward_proj"].dump());
    c.feed_forward_proj = j["feed_forward_proj"].get<std::string>();
  }
  get_bool(j, "tie_word_embeddings", c.tie_word_embeddings, source);
  get_token_id(j, "pad_token_id", c.pad_token_id, source);
  get_token_id(j, "eos_token_id", c.eos_token_id, source);
  get_token_id(j, "decoder_start_token_id", c.decoder_start_token_id, source);
  c.validate(source, check_size);
  return c;
}

std::string T5Config::to_json() const {
  json j;
  j["architectures"] = json::array({"T5ForConditionalGeneration"});
  j["model_type"] = "t5";
  j["is_encoder_decoder"] = true;
  j["vocab_size"] = vocab_size;
  j["d_model"] = d_model;
  j["d_kv"] = d_kv;
  j["d_ff"] = d_ff;
  j["num_heads"] = num_heads;
  j["num_layers"] = num_layers;
  j["num_decoder_layers"] = num_decoder_layers;
  j["relative_attention_num_buckets"] = relative_attention_num_buckets;
  j["relative_attention_max_distance"] = relative_attention_max_distance;
  j["dropout_rate"] = dropout_rate;
  j["layer_norm_epsilon"] = layer_norm_epsilon;
  j["initializer_factor"] = initializer_factor;
  j["feed_forward_proj"] = feed_forward_proj;
  j["dense_act_fn"] = act();
  j["is_gated_act"] = is_gated();
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["pad_token_id"] = pad_token_id;
  j["eos_token_id"] = eos_token_id;
  j["decoder_start_token_id"] = decoder_start_token_id;
  j["use_cache"] = true;
  return j.dump(2) + "\n";
}

T5Config preset(const std::string& name, int64_t vocab_size) {
  T5Config c;
  c.vocab_size = vocab_size;
  if (name == "tiny") {
    c.d_model = 64; c.d_kv = 16; c.d_ff = 128; c.num_heads = 4;
    c.num_layers = 2; c.num_decoder_layers = 2;
    c.feed_forward_proj = "gated-gelu"; c.tie_word_embeddings = false;
  } else if (name == "small") {
    c.d_model = 512; c.d_kv = 64; c.d_ff = 2048; c.num_heads = 8;
    c.num_layers = 6; c.num_decoder_layers = 6;
    c.feed_forward_proj = "relu"; c.tie_word_embeddings = true;
  } else if (name == "base") {
    c.d_model = 768; c.d_kv = 64; c.d_ff = 2048; c.num_heads = 12;
    c.num_layers = 12; c.num_decoder_layers = 12;
    c.feed_forward_proj = "gated-gelu"; c.tie_word_embeddings = false;
  } else {
    throw ArgumentError("unknown T5 preset \"" + name + "\" (expected tiny, small or base)");
  }
  c.validate("preset " + name);
  return c;
}

}  // namespace instill::t5
