// TAGI hypernetwork, losses and training loop: see hypernet.h.
#include "hypernet/hypernet.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "common/errors.h"
#include "io/safetensors.h"

namespace instill::hypernet {

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

// "encoder.block.3.layer.0.SelfAttention.q" -> layer 3, group "encoder.layer.0.SelfAttention.q"
void split_path(const std::string& path, int64_t* layer, std::string* group) {
  static const std::regex re(R"(^(encoder|decoder)\.block\.(\d+)\.(.*)$)");
  std::smatch m;
  if (!std::regex_match(path, m, re)) throw ArgumentError("hypernet: unexpected module path '" + path + "'");
  *layer = std::stoll(m[2].str());
  *group = m[1].str() + "." + m[3].str();
}

void init_linear(torch::nn::Linear& l, double std, at::Generator& gen) {
  torch::NoGradGuard ng;
  l->weight.copy_(at::normal(0.0, std, l->weight.sizes(), gen, l->weight.options()));
  l->bias.zero_();
}

std::string param_key(const std::string& group) {
  std::string s = group;
  for (auto& c : s)
    if (c == '.') c = '_';
  return s;
}

}  // namespace

void HyperNetOptions::validate() const {
  if (rank < 1) throw RangeError("hypernet.rank: must be >= 1, got " + std::to_string(rank));
  if (proj_dim < 2) throw RangeError("hypernet.projDim: must be >= 2, got " + std::to_string(proj_dim));
  if (hidden < 1) throw RangeError("hypernet.hidden: must be >= 1, got " + std::to_string(hidden));
  if (!(init_std > 0)) throw RangeError("hypernet.initStd: must be > 0");
  if (!(alpha > 0)) throw RangeError("hypernet.alpha: must be > 0");
  if (init != "lora" && init != "paper")
    throw ArgumentError("hypernet.init: expected \"lora\" or \"paper\", got \"" + init + "\"");
  if (target_modules.empty()) throw ArgumentError("hypernet.targetModules: empty");
}

std::string HyperNetOptions::to_json() const {
  nlohmann::json j;
  j["rank"] = rank;
  j["alpha"] = alpha;
  j["projDim"] = proj_dim;
  j["hidden"] = hidden;
  j["initStd"] = init_std;
  j["init"] = init;
  j["scaleB"] = scale_b;
  j["targetModules"] = target_modules;
  j["fusion"] = fusion;
  return j.dump();
}

HyperNetOptions HyperNetOptions::from_json(const std::string& text, const std::string& source) {
  HyperNetOptions o;
  try {
    auto j = nlohmann::json::parse(text);
    o.rank = j.at("rank").get<int64_t>();
    o.alpha = j.at("alpha").get<double>();
    o.proj_dim = j.at("projDim").get<int64_t>();
    o.hidden = j.at("hidden").get<int64_t>();
    o.init_std = j.at("initStd").get<double>();
    o.init = j.value("init", std::string("paper"));  // files written before the option: the paper's init
    o.scale_b = j.at("scaleB").get<bool>();
    o.target_modules = j.at("targetModules").get<std::vector<std::string>>();
    o.fusion = j.at("fusion").get<bool>();
  } catch (const nlohmann::json::exception& e) {
    throw FileError(source, std::string("hypernetwork options: ") + e.what());
  }
  o.validate();
  return o;
}

InstructionEncoding encode_instruction(t5::T5ForConditionalGenerationImpl& model, const at::Tensor& ids,
                                       const at::Tensor& mask) {
  if (!ids.defined() || ids.dim() != 2 || ids.size(1) < 1)
    throw ArgumentError("instruction ids: expected [B, L] with L >= 1");
  t5::T5Inputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  t5::EncoderOutput enc = model.encode(in);
  InstructionEncoding out;
  out.hidden = enc.hidden;
  out.mask = enc.mask;
  at::Tensor first = model.shared->forward(ids).to(enc.hidden.scalar_type());
  at::Tensor m = enc.mask.to(enc.hidden.scalar_type()).unsqueeze(-1);
  at::Tensor avg = (first + enc.hidden) * 0.5;
  out.pooled = (avg * m).sum(1) / m.sum(1).clamp_min(1.0);
  return out;
}

HyperNetImpl::HyperNetImpl(const t5::T5ForConditionalGenerationImpl& model, HyperNetOptions o, uint64_t seed)
    : opt(std::move(o)) {
  opt.validate();
  lora::LoraConfig lc;
  lc.r = opt.rank;
  lc.alpha = opt.alpha;
  lc.target_modules = opt.target_modules;
  auto sites = lora::lora_sites(model, lc);
  auto gen = at::detail::createCPUGenerator(seed);
  const int64_t d = model.config().d_model, P = opt.proj_dim, H = opt.hidden, r = opt.rank;
  const bool lora_init = opt.init == "lora";
  proj = register_module("proj", torch::nn::Linear(d, P - 1));
  // LoRA-style: pre-activations of unit scale for inputs of unit scale (relu halves the variance, hence sqrt 2).
  init_linear(proj, lora_init ? 1.0 / std::sqrt(static_cast<double>(d)) : opt.init_std, gen);
  std::map<std::string, size_t> gidx;
  for (const auto& s : sites) {
    Slot sl;
    sl.path = s.path;
    sl.in = s.in_features;
    sl.out = s.out_features;
    split_path(s.path, &sl.layer, &sl.group);
    auto it = gidx.find(sl.group);
    if (it == gidx.end()) {
      it = gidx.emplace(sl.group, groups.size()).first;
      Group g;
      g.name = sl.group;
      g.in = sl.in;
      g.out = sl.out;
      groups.push_back(std::move(g));
    }
    slots.push_back(sl);
    groups[it->second].slots.push_back(slots.size() - 1);
  }
  for (auto& g : groups) {
    const std::string k = param_key(g.name);
    g.a0 = register_module(k + "_A0", torch::nn::Linear(P, H));
    g.a1 = register_module(k + "_A1", torch::nn::Linear(H, g.in * r));
    g.b0 = register_module(k + "_B0", torch::nn::Linear(P, H));
    g.b1 = register_module(k + "_B1", torch::nn::Linear(H, g.out * r));
    if (lora_init) {
      const double hidden_std = std::sqrt(2.0 / static_cast<double>(P));
      init_linear(g.a0, hidden_std, gen);
      // A = a1(relu(a0(code))): entries ~ N(0, 1/(3 in)), the variance of LoRA's kaiming-uniform A.
      init_linear(g.a1, std::sqrt(2.0 / (3.0 * static_cast<double>(H) * static_cast<double>(g.in))), gen);
      init_linear(g.b0, hidden_std, gen);
      init_linear(g.b1, opt.init_std, gen);  // B near zero, as LoRA's B = 0
    } else {
      for (auto* l : {&g.a0, &g.a1, &g.b0, &g.b1}) init_linear(*l, opt.init_std, gen);
    }
    const int64_t n = static_cast<int64_t>(g.slots.size());
    g.emb = register_parameter(k + "_emb", at::normal(0.0, 1.0 / std::sqrt(static_cast<double>(P)), {n, P}, gen));
    std::vector<double> ls;
    for (size_t i : g.slots) ls.push_back(static_cast<double>(slots[i].layer));
    g.layers = register_buffer(k + "_layers", torch::tensor(ls, at::kFloat));
  }
  to(model.dtype());
}

int64_t HyperNetImpl::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

lora::AdapterBatch HyperNetImpl::generate(const at::Tensor& pooled) {
  if (pooled.dim() != 2) throw ArgumentError("hypernet.generate: pooled must be [B, d_model]");
  const int64_t B = pooled.size(0), r = opt.rank;
  at::Tensor z = torch::tanh(proj->forward(pooled));  // [B, P-1]
  lora::AdapterBatch out;
  out.scaling = scaling();
  const double bscale = opt.scale_b ? 1.0 / std::sqrt(static_cast<double>(r)) : 1.0;
  for (auto& g : groups) {
    const int64_t n = g.emb.size(0);
    at::Tensor li = g.layers.to(z.scalar_type()).view({1, n, 1}).expand({B, n, 1});
    at::Tensor code = at::cat({z.unsqueeze(1).expand({B, n, z.size(1)}), li}, -1) + g.emb.unsqueeze(0);  // [B,n,P]
    at::Tensor A = g.a1->forward(torch::relu(g.a0->forward(code))).view({B, n, r, g.in});
    at::Tensor Bm = (g.b1->forward(torch::relu(g.b0->forward(code))) * bscale).view({B, n, g.out, r});
    for (int64_t i = 0; i < n; ++i)
      out.adapters[slots[g.slots[static_cast<size_t>(i)]].path] = {A.select(1, i), Bm.select(1, i)};
  }
  return out;
}

void save_hypernet(const HyperNetImpl& hn, const std::string& path) {
  io::NamedTensors t;
  for (const auto& kv : hn.named_parameters(true)) t.emplace_back(kv.key(), kv.value().detach());
  io::write_safetensors(path, t, {{"format", "instill-tagi-hypernet"}, {"options", hn.opt.to_json()}});
}

HyperNet load_hypernet(const t5::T5ForConditionalGenerationImpl& model, const std::string& path) {
  auto f = io::read_safetensors(path);
  auto it = f.metadata.find("format");
  if (it == f.metadata.end() || it->second != "instill-tagi-hypernet")
    throw FileError(path, "not a TAGI hypernetwork file (metadata format != instill-tagi-hypernet)");
  auto oit = f.metadata.find("options");
  if (oit == f.metadata.end()) throw FileError(path, "metadata 'options' missing");
  HyperNet hn(model, HyperNetOptions::from_json(oit->second, path));
  std::map<std::string, at::Tensor> byname(f.tensors.begin(), f.tensors.end());
  torch::NoGradGuard ng;
  for (auto& kv : hn->named_parameters(true)) {
    auto t = byname.find(kv.key());
    if (t == byname.end()) throw FileError(path, "tensor '" + kv.key() + "' missing");
    if (!t->second.sizes().equals(kv.value().sizes()))
      throw FileError(path, "tensor '" + kv.key() + "' has a shape that does not fit this model");
    kv.value().copy_(t->second);
    byname.erase(t);
  }
  if (!byname.empty()) throw FileError(path, "unexpected tensor '" + byname.begin()->first + "'");
  return hn;
}

TeacherBank TeacherBank::from_peft(const std::vector<std::string>& dirs, at::ScalarType dtype) {
  if (dirs.empty()) throw ArgumentError("teachers: no adapter folders given");
  TeacherBank bank;
  std::map<std::string, std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>>> acc;
  for (size_t i = 0; i < dirs.size(); ++i) {
    io::PeftAdapter a = io::read_peft_adapter(dirs[i]);
    if (i == 0) bank.scaling = a.scaling;
    else if (std::abs(a.scaling - bank.scaling) > 1e-12)
      throw ArgumentError(dirs[i] + ": LoRA scaling differs from the first teacher's");
    std::set<std::string> seen;
    for (auto& m : a.modules) {
      if (i > 0 && !acc.count(m.module))
        throw ArgumentError(dirs[i] + ": module '" + m.module + "' not in the first teacher");
      auto& e = acc[m.module];
      if (!e.first.empty() && !e.first[0].sizes().equals(m.A.sizes()))
        throw ArgumentError(dirs[i] + ": module '" + m.module + "' has another rank or shape than the first teacher's");
      e.first.push_back(m.A.to(dtype));
      e.second.push_back(m.B.to(dtype));
      seen.insert(m.module);
    }
    if (seen.size() != acc.size()) throw ArgumentError(dirs[i] + ": lacks modules the first teacher has");
  }
  for (auto& kv : acc) bank.adapters[kv.first] = {at::stack(kv.second.first), at::stack(kv.second.second)};
  bank.size = static_cast<int64_t>(dirs.size());
  return bank;
}

lora::AdapterBatch TeacherBank::select(const at::Tensor& index) const {
  lora::AdapterBatch out;
  out.scaling = scaling;
  for (const auto& kv : adapters)
    out.adapters[kv.first] = {kv.second.first.index_select(0, index.to(kv.second.first.device())),
                              kv.second.second.index_select(0, index.to(kv.second.first.device()))};
  return out;
}

Tagi::Prepared Tagi::prepare(const at::Tensor& instr_ids, const at::Tensor& instr_mask) {
  Prepared p;
  p.enc = encode_instruction(*model, instr_ids, instr_mask);
  p.adapters = hypernet->generate(p.enc.pooled);
  return p;
}

namespace {
// The student's forward inputs: its instance tokens, the generated per-example adapters and, with fusion, the
// encoded instruction appended to the encoder states. `p` must outlive the returned inputs.
t5::T5Inputs student_inputs(const Tagi::Prepared& p, bool fusion, const at::Tensor& input_ids,
                            const at::Tensor& attention_mask) {
  t5::T5Inputs in;
  in.input_ids = input_ids;
  in.attention_mask = attention_mask;
  in.adapters = &p.adapters;
  if (fusion) {
    in.extra_encoder_states = p.enc.hidden;
    in.extra_encoder_mask = p.enc.mask;
  }
  return in;
}
}  // namespace

TagiTerms Tagi::compute_loss(const TagiBatch& b) {
  if (!b.student.labels.defined()) throw ArgumentError("tagi: every batch needs labels");
  const int64_t B = b.student.input_ids.size(0);
  if (b.instr_ids.size(0) != B) throw ArgumentError("tagi: instruction batch size differs from the inputs'");
  Prepared p = prepare(b.instr_ids, b.instr_mask);
  t5::T5Inputs in = student_inputs(p, hypernet->opt.fusion, b.student.input_ids, b.student.attention_mask);
  in.labels = b.student.labels;
  t5::T5Output out = model->forward(in);
  TagiTerms t;
  t.ce = b.ce_scale == 1.0 ? out.loss : out.loss * b.ce_scale;
  at::Tensor total = t.ce * loss.ce_weight;
  const bool want_teacher = (loss.kl_weight > 0 || loss.mse_weight > 0) && bank && b.teacher_index.defined();
  if (want_teacher) {
    at::Tensor tidx = b.teacher_index.to(at::kLong).to(at::kCPU);
    at::Tensor has = tidx.ge(0);
    if (tidx.numel() != B) throw ArgumentError("tagi: teacherIndex must have one entry per row");
    if (tidx.max().item<int64_t>() >= bank->size)
      throw RangeError("tagi: teacherIndex " + std::to_string(tidx.max().item<int64_t>()) + " >= number of teachers " +
                       std::to_string(bank->size));
    const int64_t nt = has.sum().item<int64_t>();
    if (nt > 0) {
      at::Tensor rows = has.nonzero().view({-1});
      at::Tensor sel = tidx.index_select(0, rows);
      lora::AdapterBatch teach = bank->select(sel);
      at::Tensor rows_dev = rows.to(b.student.input_ids.device());
      if (loss.kl_weight > 0) {
        at::Tensor tlogits;
        {
          torch::NoGradGuard ng;
          auto& tm = teacher_model ? *teacher_model : *model;
          t5::T5Inputs ti;
          const bool own = b.teacher_input_ids.defined();
          ti.input_ids = (own ? b.teacher_input_ids : b.student.input_ids).index_select(0, rows_dev);
          ti.attention_mask = (own ? b.teacher_attention_mask : b.student.attention_mask).index_select(0, rows_dev);
          ti.decoder_input_ids = t5::shift_right(b.student.labels.index_select(0, rows_dev),
                                                 model->config().decoder_start_token_id, model->config().pad_token_id);
          ti.adapters = &teach;
          tlogits = tm.forward(ti).logits.detach();
        }
        const double T = loss.temperature;
        at::Tensor slog = out.logits.index_select(0, rows_dev);
        if (slog.scalar_type() != at::kDouble) slog = slog.to(at::kFloat);
        tlogits = tlogits.to(slog.scalar_type());
        at::Tensor lps = torch::log_softmax(slog / T, -1);
        at::Tensor lpt = torch::log_softmax(tlogits / T, -1);
        at::Tensor kl_tok = (lpt.exp() * (lpt - lps)).sum(-1);  // [n, T]
        at::Tensor lm = b.student.labels.index_select(0, rows_dev).ne(-100).to(kl_tok.scalar_type());
        t.kl = (kl_tok * lm).sum() / lm.sum().clamp_min(1.0) * (T * T * b.kl_scale);
        total = total + t.kl * loss.kl_weight;
      }
      if (loss.mse_weight > 0) {
        const double ratio = bank->scaling / hypernet->scaling();
        at::Tensor se;
        int64_t count = 0;
        for (const auto& kv : p.adapters.adapters) {
          auto it = teach.adapters.find(kv.first);
          if (it == teach.adapters.end())
            throw ArgumentError("tagi: the teachers have no adapter for '" + kv.first + "' (hypernetwork target)");
          at::Tensor ga = kv.second.first.index_select(0, rows_dev), gb = kv.second.second.index_select(0, rows_dev);
          if (!ga.sizes().equals(it->second.first.sizes()) || !gb.sizes().equals(it->second.second.sizes()))
            throw ArgumentError("tagi: teacher adapter '" + kv.first + "' has another rank than the hypernetwork's");
          at::Tensor s = (ga - it->second.first.to(ga.scalar_type())).pow(2).sum() +
                         (gb - it->second.second.to(gb.scalar_type()) * ratio).pow(2).sum();
          se = se.defined() ? se + s : s;
          count += ga.numel() + gb.numel();
        }
        t.mse = se / static_cast<double>(count);
        if (b.mse_scale != 1.0) t.mse = t.mse * b.mse_scale;
        total = total + t.mse * loss.mse_weight;
      }
    }
  }
  t.total = total;
  return t;
}

at::Tensor Tagi::generate(const at::Tensor& input_ids, const at::Tensor& attention_mask, const at::Tensor& instr_ids,
                          const at::Tensor& instr_mask, const t5::GenerateOptions& opt) {
  torch::NoGradGuard ng;
  Prepared p = prepare(instr_ids, instr_mask);
  t5::T5Inputs in = student_inputs(p, hypernet->opt.fusion, input_ids, attention_mask);
  return t5::generate(*model, in, opt);
}

std::vector<io::LoraModuleWeights> Tagi::adapter_for(const at::Tensor& instr_ids, const at::Tensor& instr_mask) {
  torch::NoGradGuard ng;
  if (instr_ids.size(0) != 1) throw ArgumentError("adapter_for: one instruction at a time");
  Prepared p = prepare(instr_ids, instr_mask);
  std::vector<io::LoraModuleWeights> out;
  for (const auto& kv : p.adapters.adapters)
    out.push_back({kv.first, kv.second.first[0].to(at::kFloat).contiguous(), kv.second.second[0].to(at::kFloat).contiguous()});
  return out;
}

t5::OptionScores Tagi::score_options(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                     const at::Tensor& instr_ids, const at::Tensor& instr_mask,
                                     const at::Tensor& options, int64_t chunk_rows) {
  torch::NoGradGuard ng;
  if (instr_ids.size(0) != input_ids.size(0))
    throw ArgumentError("tagi.score_options: instruction batch size differs from the inputs'");
  Prepared p = prepare(instr_ids, instr_mask);
  t5::T5Inputs in = student_inputs(p, hypernet->opt.fusion, input_ids, attention_mask);
  // Same convention as the plain model's rank classification (T5Model.scoreOptions): summed log-likelihood, the
  // encoder (and here the hypernetwork) once per example, each option row decoding under its example's adapter.
  return t5::score_options(*model, in, options, chunk_rows);
}

nlohmann::json Tagi::peft_config() const {
  auto c = io::make_peft_lora_config(hypernet->opt.rank, hypernet->opt.alpha, hypernet->opt.target_modules);
  return c;
}

TermGradNorms term_grad_norms(Tagi& tagi, const TagiBatch& b) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  TermGradNorms out{nan, nan, nan};
  std::vector<at::Tensor> params;
  for (auto& p : tagi.hypernet->parameters())
    if (p.requires_grad()) params.push_back(p);
  if (params.empty()) return out;
  const auto rng = train::rng_state();  // restored below: the run's dropout stream stays as without logging
  auto restore = [&] { train::set_rng_state(rng); };
  try {
    TagiTerms t = tagi.compute_loss(b);
    const std::vector<std::pair<at::Tensor, double>> terms = {
        {t.ce, tagi.loss.ce_weight}, {t.kl, tagi.loss.kl_weight}, {t.mse, tagi.loss.mse_weight}};
    double* dst[] = {&out.ce, &out.kl, &out.mse};
    size_t last = 0;
    for (size_t k = 0; k < terms.size(); ++k)
      if (terms[k].first.defined() && terms[k].second > 0) last = k;
    for (size_t k = 0; k < terms.size(); ++k) {
      if (!terms[k].first.defined() || !(terms[k].second > 0)) continue;
      auto g = torch::autograd::grad({terms[k].first * terms[k].second}, params, {}, /*retain_graph=*/k < last,
                                     /*create_graph=*/false, /*allow_unused=*/true);
      double sq = 0;
      for (const auto& gi : g)
        if (gi.defined()) sq += gi.to(at::kDouble).pow(2).sum().item<double>();
      *dst[k] = std::sqrt(sq);
    }
  } catch (...) {
    restore();
    throw;
  }
  restore();
  return out;
}

TagiStepsResult tagi_train_steps(Tagi& tagi, train::Optimizer& optimizer, const std::vector<TagiBatch>& batches,
                                 const std::function<void(const train::StepProgress&)>& progress,
                                 const std::atomic<bool>* cancel, const train::GradSync* grad_sync,
                                 bool log_term_grad_norms) {
  std::vector<train::Batch> plain;
  plain.reserve(batches.size());
  for (const auto& b : batches) plain.push_back(b.student);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> ce(batches.size(), nan), kl(batches.size(), nan), mse(batches.size(), nan);
  const train::Batch* base = plain.data();
  auto fn = [&](const train::Batch& b) -> at::Tensor {
    const std::ptrdiff_t i = &b - base;
    if (i < 0 || i >= static_cast<std::ptrdiff_t>(batches.size())) throw ArgumentError("tagi: unexpected batch");
    TagiTerms t = tagi.compute_loss(batches[static_cast<size_t>(i)]);
    ce[static_cast<size_t>(i)] = t.ce.item<double>();
    if (t.kl.defined()) kl[static_cast<size_t>(i)] = t.kl.item<double>();
    if (t.mse.defined()) mse[static_cast<size_t>(i)] = t.mse.item<double>();
    return t.total;
  };
  TagiStepsResult r;
  if (log_term_grad_norms && !batches.empty()) r.term_grad_norms = term_grad_norms(tagi, batches.front());
  r.steps = train::train_steps(fn, optimizer, plain, progress, cancel, /*autocast_cuda=*/false, grad_sync);
  const size_t accum = static_cast<size_t>(optimizer.config().grad_accumulation);
  auto per_step = [&](const std::vector<double>& v) {
    std::vector<double> o;
    for (size_t s = 0; s < r.steps.losses.size(); ++s) {
      double sum = 0;
      for (size_t k = 0; k < accum; ++k) sum += v[s * accum + k];
      o.push_back(sum / static_cast<double>(accum));
    }
    return o;
  };
  r.ce = per_step(ce);
  r.kl = per_step(kl);
  r.mse = per_step(mse);
  return r;
}

}  // namespace instill::hypernet
