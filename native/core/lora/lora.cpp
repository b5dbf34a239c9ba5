#include "lora/lora.h"

#include <torch/torch.h>

#include <set>

#include "common/errors.h"
#include "io/peft.h"

namespace instill::lora {

namespace {

bool selected(const std::string& path, const LoraConfig& cfg) {
  bool enc = path.rfind("encoder.", 0) == 0, dec = path.rfind("decoder.", 0) == 0;
  if ((enc && !cfg.encoder) || (dec && !cfg.decoder) || (!enc && !dec)) return false;
  bool self = path.find(".SelfAttention.") != std::string::npos;
  bool cross = path.find(".EncDecAttention.") != std::string::npos;
  bool ff = path.find(".DenseReluDense.") != std::string::npos;
  if ((self && !cfg.self_attention) || (cross && !cfg.cross_attention) || (ff && !cfg.feed_forward)) return false;
  std::string leaf = path.substr(path.rfind('.') + 1);
  for (const auto& t : cfg.target_modules)
    if (leaf == t || (t == "wi" && (leaf == "wi_0" || leaf == "wi_1"))) return true;
  return false;
}

}  // namespace

std::vector<LoraSite> lora_sites(const t5::T5ForConditionalGenerationImpl& model, const LoraConfig& cfg) {
  static const std::set<std::string> known = {"q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"};
  for (const auto& t : cfg.target_modules)
    if (!known.count(t))
      throw ArgumentError("lora target_modules: unknown module \"" + t + "\" (expected q, k, v, o, wi, wi_0, wi_1, wo)");
  if (cfg.r <= 0) throw RangeError("lora r must be positive, got " + std::to_string(cfg.r));
  std::vector<LoraSite> out;
  for (const auto& kv : model.linears())
    if (selected(kv.first, cfg)) out.push_back({kv.first, kv.second->in_features, kv.second->out_features});
  if (out.empty()) throw ArgumentError("lora: the configuration selects no module of this model");
  return out;
}

std::vector<LoraSite> add_lora(t5::T5ForConditionalGenerationImpl& model, const LoraConfig& cfg, uint64_t seed) {
  auto sites = lora_sites(model, cfg);
  auto gen = at::detail::createCPUGenerator(seed);
  for (const auto& s : sites) model.linears().at(s.path)->add_lora(cfg.r, cfg.alpha, cfg.dropout, &gen);
  return sites;
}

void freeze_base(t5::T5ForConditionalGenerationImpl& model) {
  for (auto& p : model.named_parameters(true)) {
    bool is_lora = p.key().find(".lora_A.") != std::string::npos || p.key().find(".lora_B.") != std::string::npos;
    p.value().set_requires_grad(is_lora);
  }
}

std::vector<at::Tensor> lora_parameters(const t5::T5ForConditionalGenerationImpl& model) {
  std::vector<at::Tensor> out;
  for (auto& kv : lora_state(model)) out.push_back(kv.second);
  return out;
}

t5::NamedTensors lora_state(const t5::T5ForConditionalGenerationImpl& model) {
  t5::NamedTensors out;
  for (const auto& kv : model.linears()) {
    const auto& lin = *kv.second;
    if (!lin.has_lora()) continue;
    out.emplace_back(kv.first + ".lora_A.weight", lin.lora_A->weight);
    out.emplace_back(kv.first + ".lora_B.weight", lin.lora_B->weight);
  }
  return out;
}

void merge_lora(t5::T5ForConditionalGenerationImpl& model) {
  for (auto& kv : model.linears()) kv.second.ptr()->merge_lora();
}

void remove_lora(t5::T5ForConditionalGenerationImpl& model) {
  for (auto& kv : model.linears()) kv.second.ptr()->remove_lora();
}

void save_adapter(const t5::T5ForConditionalGenerationImpl& model, const std::string& dir, const LoraConfig& cfg,
                  const std::string& base_model_name_or_path) {
  t5::NamedTensors state;
  for (auto& kv : lora_state(model)) state.emplace_back(kv.first, kv.second.detach());
  if (state.empty()) throw ArgumentError("save_adapter: the model has no LoRA adapters");
  std::vector<std::string> targets;
  std::set<std::string> seen;
  for (const auto& kv : model.linears())
    if (kv.second->has_lora()) {
      std::string leaf = kv.first.substr(kv.first.rfind('.') + 1);
      if (seen.insert(leaf).second) targets.push_back(leaf);
      if (kv.second->lora_r != cfg.r || kv.second->lora_alpha != cfg.alpha)
        throw ArgumentError("save_adapter: adapter at " + kv.first + " has r/alpha different from the config");
    }
  io::write_peft_adapter(dir, state, io::make_peft_lora_config(cfg.r, cfg.alpha, targets, base_model_name_or_path,
                                                               cfg.dropout));
}

void load_adapter(t5::T5ForConditionalGenerationImpl& model, const std::string& dir) {
  io::PeftAdapter a = io::read_peft_adapter(dir);
  torch::NoGradGuard ng;
  for (const auto& m : a.modules) {
    auto it = model.linears().find(m.module);
    if (it == model.linears().end())
      throw ArgumentError(dir + ": adapter module " + m.module + " is not a projection of this T5");
    auto& lin = *it->second;
    if (m.A.size(1) != lin.in_features || m.B.size(0) != lin.out_features)
      throw ArgumentError(dir + ": adapter " + m.module + " has A " + c10::str(m.A.sizes()) + ", B " +
                          c10::str(m.B.sizes()) + ", expected in " + std::to_string(lin.in_features) + ", out " +
                          std::to_string(lin.out_features));
    double dropout = 0.0;
    if (a.config.contains("lora_dropout") && a.config["lora_dropout"].is_number())
      dropout = a.config["lora_dropout"].get<double>();
    lin.add_lora(m.A.size(0), a.alpha, dropout, nullptr);
    lin.lora_scaling = a.scaling;
    lin.lora_A->weight.copy_(m.A);
    lin.lora_B->weight.copy_(m.B);
  }
}

}  // namespace instill::lora
