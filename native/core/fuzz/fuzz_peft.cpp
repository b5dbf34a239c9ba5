// Fuzz harness: instill::io::read_peft_adapter on hostile adapter folders. One input holds both files:
// adapter_config.json, the separator "\n@@adapter_model.safetensors@@\n", then adapter_model.safetensors (no
// separator: the folder has no safetensors file). Accepted adapters must be consistent (A [r, in], B [out, r] for
// every module, finite scaling); rejections must be instill::FileError naming the folder or a file in it.
#include "fuzz/common.h"
#include "io/peft.h"

#include <filesystem>

namespace instill_fuzz {

const char* kName = "peft";
static const std::string kSep = "\n@@adapter_model.safetensors@@\n";

static std::string folder() {
  static const std::string d = [] {
    std::string p = scratch_path("peft", "");
    std::filesystem::create_directories(p);
    return p;
  }();
  return d;
}

std::vector<std::string> seeds() {
  torch::manual_seed(5);
  std::vector<std::string> out;
  const std::string dir = scratch_path("peft", "-seed");
  auto add = [&](const instill::io::NamedTensors& w, const nlohmann::json& cfg) {
    instill::io::write_peft_adapter(dir, w, cfg);
    out.push_back(read_whole(dir + "/adapter_config.json") + kSep + read_whole(dir + "/adapter_model.safetensors"));
  };
  const std::string e0 = "encoder.block.0.layer.0.SelfAttention.";
  const std::string d0 = "decoder.block.0.layer.1.EncDecAttention.";
  add({{e0 + "q.lora_A.weight", torch::randn({2, 8})},
       {e0 + "q.lora_B.weight", torch::randn({8, 2})},
       {e0 + "v.lora_A.weight", torch::randn({2, 8})},
       {e0 + "v.lora_B.weight", torch::randn({8, 2})},
       {d0 + "q.lora_A.weight", torch::randn({2, 8})},
       {d0 + "q.lora_B.weight", torch::randn({8, 2})}},
      instill::io::make_peft_lora_config(2, 4, {"q", "v"}, "base"));
  auto rs = instill::io::make_peft_lora_config(4, 8, {"wi"});
  rs["use_rslora"] = true;
  add({{"base_model.model." + e0 + "wi.lora_A.weight", torch::randn({4, 6}).to(torch::kBFloat16)},
       {"base_model.model." + e0 + "wi.lora_B.weight", torch::randn({12, 4}).to(torch::kBFloat16)}},
      rs);
  std::filesystem::remove_all(dir);
  return out;
}

std::vector<std::string> dictionary() {
  auto d = safetensors_dictionary();
  for (const char* t : {"\"peft_type\"", "\"LORA\"", "\"IA3\"", "\"r\"", "\"lora_alpha\"", "\"target_modules\"",
                        "\"use_rslora\"", "\"use_dora\"", "\"fan_in_fan_out\"", "\"rank_pattern\"", "\"alpha_pattern\"",
                        "\"bias\"", "\"task_type\"", "\"base_model_name_or_path\"", ".lora_A.weight", ".lora_B.weight",
                        ".lora_A.default.weight", "base_model.model.", "lora_A", "lora_B", "0", "-4", "0.0", "1e400",
                        "\"q\"", "[\"q\",\"v\"]", "\"all-linear\"", "{\"a\":2}", kSep.c_str()})
    d.push_back(t);
  return d;
}

// Repairs the safetensors part's header length.
void fixup(std::string& s, Rng&) {
  size_t p = s.find(kSep);
  if (p == std::string::npos) return;
  std::string st = s.substr(p + kSep.size());
  fix_safetensors_length(st);
  s = s.substr(0, p + kSep.size()) + st;
}

Outcome one(const uint8_t* data, size_t size) {
  const std::string dir = folder();
  const std::string in(reinterpret_cast<const char*>(data), size);
  const size_t p = in.find(kSep);
  const std::string cfg = in.substr(0, p);
  write_whole(dir + "/adapter_config.json", cfg.data(), cfg.size());
  const std::string st_path = dir + "/adapter_model.safetensors";
  if (p == std::string::npos) std::filesystem::remove(st_path);
  else {
    const std::string st = in.substr(p + kSep.size());
    write_whole(st_path, st.data(), st.size());
  }
  instill::io::PeftAdapter a;
  try {
    a = instill::io::read_peft_adapter(dir);
  } catch (const instill::FileError& e) {
    return file_rejection(e, dir);
  }
  // PEFT itself does not forbid lora_alpha <= 0 (a negative scaling only flips B), so only finiteness is required
  // here; that read_peft_adapter accepts alpha = -9.2e18 (seed 1, input 14741) is reported in the README.
  if (!(a.r > 0) || !std::isfinite(a.scaling) || !std::isfinite(a.alpha))
    throw Violation("accepted adapter with r " + std::to_string(a.r) + ", alpha " + std::to_string(a.alpha) +
                    ", scaling " + std::to_string(a.scaling));
  for (const auto& m : a.modules) {
    if (m.A.dim() != 2 || m.B.dim() != 2 || m.A.size(0) != a.r || m.B.size(1) != a.r)
      throw Violation("accepted module '" + m.module + "' with inconsistent shapes");
  }
  std::vector<std::pair<std::string, at::Tensor>> all;
  for (const auto& m : a.modules) {
    all.emplace_back(m.module + ".A", m.A);
    all.emplace_back(m.module + ".B", m.B);
  }
  touch_all(all);
  return Outcome{};
}

}  // namespace instill_fuzz

INSTILL_FUZZ_MAIN()
