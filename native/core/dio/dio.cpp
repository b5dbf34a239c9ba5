// DIO bilevel trainer on T5: see dio.h.
#include "dio/dio.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "common/memory.h"
#include "io/safetensors.h"
#include "t5/generate.h"
#include "t5/pretrained.h"
#include "train/trainer.h"

namespace instill::dio {

namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

void check_ids(const at::Tensor& t, const std::string& name, int64_t lo, int64_t hi) {
  if (!t.defined() || t.numel() == 0) return;
  const auto mn = t.min().item<int64_t>(), mx = t.max().item<int64_t>();
  if (mn < lo || mx >= hi)
    throw RangeError(name + ": ids must lie in [" + std::to_string(lo) + ", " + std::to_string(hi) + "), got " +
                     std::to_string(mn < lo ? mn : mx));
}

}  // namespace

void DioOptions::validate() const {
  if (variant != "prompt" && variant != "embedder")
    throw ArgumentError("dio options.variant: expected \"prompt\" or \"embedder\", got \"" + variant + "\"");
  if (prompt_length < 1 || prompt_length > 4096)
    throw RangeError("dio options.promptLength: expected 1..4096, got " + std::to_string(prompt_length));
  if (variant == "prompt" && num_tasks < 1)
    throw RangeError("dio options.numTasks: the prompt variant needs at least one training task, got " +
                     std::to_string(num_tasks));
  if (instruction_encoding != "embeddings" && instruction_encoding != "encoder")
    throw ArgumentError("dio options.instructionEncoding: expected \"embeddings\" or \"encoder\", got \"" +
                        instruction_encoding + "\"");
  if (num_demonstrations < 0 || num_demonstrations > 4096)
    throw RangeError("dio options.numDemonstrations: expected 0..4096, got " + std::to_string(num_demonstrations));
  if (num_demonstrations > 0 && num_tasks < 1)
    throw RangeError("dio options.numTasks: demonstration selection needs at least one training task, got " +
                     std::to_string(num_tasks));
  if (!(gumbel_tau > 0) || !std::isfinite(gumbel_tau))
    throw RangeError("dio options.gumbelTau: expected a finite number > 0, got " + std::to_string(gumbel_tau));
  if (shard_world < 1 || shard_rank < 0 || shard_rank >= shard_world)
    throw RangeError("dio options: shard rank " + std::to_string(shard_rank) + " is not in [0, " +
                     std::to_string(shard_world) + ")");
  if (meta_every < 0) throw RangeError("dio options.metaEvery: expected >= 0, got " + std::to_string(meta_every));
  hypergrad::parse_spec(hypergrad, hypergrad_options);  // throws on a bad spec
  inner.validate();
  outer.validate();
}

DioTrainer::DioTrainer(t5::T5ForConditionalGeneration model, DioOptions options,
                       const std::vector<std::vector<int64_t>>& init_ids)
    : model_(std::move(model)), options_(std::move(options)) {
  options_.validate();
  spec_ = hypergrad::parse_spec(options_.hypergrad, options_.hypergrad_options);
  const auto& cfg = model_->config();
  const int64_t n = options_.prompt_length, d = cfg.d_model, V = cfg.vocab_size;
  const auto opts = model_->shared->weight.options();
  auto gen = at::detail::createCPUGenerator(options_.seed);
  auto sample_ids = [&](int64_t k) { return at::randint(std::min<int64_t>(2, V - 1), V, {k}, gen, at::kLong); };
  torch::NoGradGuard no_grad;
  const at::Tensor emb = model_->shared->weight.detach();
  if (options_.variant == "prompt") {
    if (!init_ids.empty() && static_cast<int64_t>(init_ids.size()) != options_.num_tasks)
      throw ArgumentError("dio initIds: expected one row per training task (" + std::to_string(options_.num_tasks) +
                          "), got " + std::to_string(init_ids.size()));
    std::vector<at::Tensor> rows;
    for (int64_t t = 0; t < options_.num_tasks; ++t) {
      at::Tensor ids;
      if (!init_ids.empty() && !init_ids[static_cast<size_t>(t)].empty()) {
        const auto& r = init_ids[static_cast<size_t>(t)];
        std::vector<int64_t> cyc(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) cyc[static_cast<size_t>(i)] = r[static_cast<size_t>(i) % r.size()];
        ids = torch::tensor(cyc, at::kLong);
        check_ids(ids, "dio initIds[" + std::to_string(t) + "]", 0, V);
      } else {
        ids = sample_ids(n);
      }
      rows.push_back(emb.index_select(0, ids.to(emb.device())));
    }
    prompts_ = at::stack(rows).clone().requires_grad_(true);
  } else {
    query_ = emb.index_select(0, sample_ids(n).to(emb.device())).clone().requires_grad_(true);
    key_ = (at::randn({d, d}, gen, at::kDouble) / std::sqrt(static_cast<double>(d)))
               .to(opts)
               .requires_grad_(true);
    value_ = at::zeros({d, d}, opts).requires_grad_(true);
  }
  if (options_.num_demonstrations > 0)
    demo_logits_ = at::zeros({options_.num_tasks, options_.num_demonstrations}, opts).requires_grad_(true);
  // Its own stream, so that sampling demonstrations does not shift the dropout draws of the default generator.
  gumbel_gen_ = at::detail::createCPUGenerator(options_.seed ^ 0x9e3779b97f4a7c15ULL);
  std::vector<std::pair<std::string, at::Tensor>> th;
  for (const auto& kv : model_->named_parameters(true))
    if (kv.value().requires_grad()) th.emplace_back(kv.key(), kv.value());
  if (th.empty()) throw ArgumentError("dio: the model has no trainable parameters");
  inner_opt_ = std::make_unique<train::Optimizer>(th, options_.inner);
  outer_opt_ = std::make_unique<train::Optimizer>(named_phi(), options_.outer);
}

std::vector<std::pair<std::string, at::Tensor>> DioTrainer::named_phi() const {
  std::vector<std::pair<std::string, at::Tensor>> v;
  if (options_.variant == "prompt") v = {{"dio.prompts", prompts_}};
  else v = {{"dio.query", query_}, {"dio.key", key_}, {"dio.value", value_}};
  if (demo_logits_.defined()) v.emplace_back("dio.demo_logits", demo_logits_);
  return v;
}

std::vector<at::Tensor> DioTrainer::phi() const {
  std::vector<at::Tensor> v;
  for (const auto& kv : named_phi()) v.push_back(kv.second);
  return v;
}

std::vector<at::Tensor> DioTrainer::theta() const { return inner_opt_->param_tensors(); }

at::Tensor DioTrainer::soft_tokens(const DioBatch& b, bool checked) const {
  const int64_t B = b.batch.input_ids.size(0);
  if (options_.variant == "prompt") {
    if (!b.task_ids.defined()) return {};
    if (b.task_ids.dim() != 1 || b.task_ids.size(0) != B)
      throw ArgumentError("dio batch.taskIds: expected shape [" + std::to_string(B) + "]");
    if (!checked) check_ids(b.task_ids, "dio batch.taskIds", 0, options_.num_tasks);
    return prompts_.index_select(0, b.task_ids.to(at::kLong).to(prompts_.device()));
  }
  if (!b.instr_ids.defined()) return {};
  if (b.instr_ids.dim() != 2 || b.instr_ids.size(0) != B)
    throw ArgumentError("dio batch.instrIds: expected shape [" + std::to_string(B) + ", L]");
  const auto& cfg = model_->config();
  if (!checked) check_ids(b.instr_ids, "dio batch.instrIds", 0, cfg.vocab_size);
  const auto dev = query_.device();
  at::Tensor ids = b.instr_ids.to(at::kLong).to(dev);
  at::Tensor mask = b.instr_mask.defined() ? (b.instr_mask.to(dev) != 0) : at::ones_like(ids, at::kBool);
  if (!mask.sizes().equals(ids.sizes())) throw ArgumentError("dio batch.instrMask: must match instrIds' shape");
  if (!checked && (mask.sum(1) == 0).any().item<bool>())
    throw ArgumentError("dio batch.instrMask: every example needs at least one instruction token");
  const int64_t L = ids.size(1), d = cfg.d_model;
  at::Tensor E;
  if (options_.instruction_encoding == "encoder") {
    // The written instruction alone through the model's encoder (theta, not detached).
    t5::T5Inputs in;
    in.input_ids = ids;
    in.attention_mask = mask.to(at::kLong);
    t5::T5ForConditionalGeneration m = model_;  // a handle to the same module; encode() is not const
    E = m->encode(in).hidden;
  } else {
    E = model_->shared->weight.index_select(0, ids.reshape({-1})).view({B, L, d});
  }
  at::Tensor K = at::matmul(E, key_);
  at::Tensor Vv = at::matmul(E, value_) + E;
  at::Tensor scores = at::matmul(query_.unsqueeze(0), K.transpose(1, 2)) / std::sqrt(static_cast<double>(d));
  scores = scores.masked_fill(mask.unsqueeze(1).logical_not(), -std::numeric_limits<double>::infinity());
  return at::matmul(at::softmax(scores, -1), Vv);  // [B, n, d]
}

DioTrainer::Demonstrations DioTrainer::demonstrations(const DioBatch& b, bool checked) const {
  Demonstrations out;
  if (!b.demo_ids.defined()) return out;
  const int64_t B = b.batch.input_ids.size(0);
  const auto& cfg = model_->config();
  if (b.demo_ids.dim() != 3 || b.demo_ids.size(0) != B || b.demo_ids.size(1) < 1 || b.demo_ids.size(2) < 1)
    throw ArgumentError("dio batch.demoIds: expected shape [" + std::to_string(B) + ", m, Ld] with m, Ld >= 1");
  if (!checked) check_ids(b.demo_ids, "dio batch.demoIds", 0, cfg.vocab_size);
  const auto dev = model_->shared->weight.device();
  const int64_t m = b.demo_ids.size(1), Ld = b.demo_ids.size(2), d = cfg.d_model;
  at::Tensor ids = b.demo_ids.to(at::kLong).to(dev);
  at::Tensor mask = b.demo_mask.defined() ? (b.demo_mask.to(dev) != 0) : at::ones_like(ids, at::kBool);
  if (!mask.sizes().equals(ids.sizes())) throw ArgumentError("dio batch.demoMask: must match demoIds' shape");
  at::Tensor task = b.demo_task_ids.defined() ? b.demo_task_ids.to(at::kLong).to(dev) : at::full({B}, -1, ids.options());
  if (task.dim() != 1 || task.size(0) != B)
    throw ArgumentError("dio batch.demoTaskIds: expected shape [" + std::to_string(B) + "]");
  // Checked batches skip the host synchronisation: rows of -1 then go through the masked path (same values).
  const bool any_learnt = checked ? demo_logits_.defined() : (task >= 0).any().item<bool>();
  if (any_learnt && !checked) {
    if (!demo_logits_.defined())
      throw ArgumentError("dio batch.demoTaskIds: the trainer has no demonstration logits (options.numDemonstrations = 0)");
    check_ids(task, "dio batch.demoTaskIds", -1, options_.num_tasks);
    if (m != options_.num_demonstrations)
      throw ArgumentError("dio batch.demoIds: expected " + std::to_string(options_.num_demonstrations) +
                          " candidates per example (options.numDemonstrations), got " + std::to_string(m));
  }
  const auto wopts = model_->shared->weight.options();
  at::Tensor first = at::zeros({B, m}, wopts);
  first.select(1, 0).fill_(1.0);  // rows without logits: candidate 0
  at::Tensor y;
  if (any_learnt) {
    at::Tensor valid = task >= 0;
    at::Tensor a = demo_logits_.index_select(0, task.clamp_min(0));  // [B, m]
    at::Tensor hard, soft;
    if (b.demo_gumbel.defined()) {
      if (!b.demo_gumbel.sizes().equals({B, m})) throw ArgumentError("dio batch.demoGumbel: expected shape [B, m]");
      at::Tensor z = a + b.demo_gumbel.to(wopts);
      hard = at::one_hot(z.detach().argmax(1), m).to(wopts);
      soft = at::softmax(z / options_.gumbel_tau, 1);
      y = hard + (soft - soft.detach());  // exactly `hard` in the forward, d y / d a = d soft / d a
    } else {
      y = at::one_hot(a.detach().argmax(1), m).to(wopts);
    }
    y = at::where(valid.unsqueeze(1), y, first);
  } else {
    y = first;
  }
  at::Tensor E = model_->shared->weight.index_select(0, ids.reshape({-1})).view({B, m, Ld * d});
  out.weights = y;
  out.embeds = at::bmm(y.unsqueeze(1), E).view({B, Ld, d});
  out.index = y.detach().argmax(1);
  out.mask = mask.gather(1, out.index.view({B, 1, 1}).expand({B, 1, Ld})).squeeze(1);
  return out;
}

void DioTrainer::sample_demonstrations(DioBatch& b) {
  if (!b.demo_ids.defined() || !demo_logits_.defined()) return;
  const int64_t B = b.demo_ids.size(0), m = b.demo_ids.size(1);
  // Gumbel(0, 1) = -log(-log U), U uniform in (0, 1) (float64, clamped away from 0 and 1).
  at::Tensor u = at::rand({B * options_.shard_world, m}, gumbel_gen_, at::kDouble).clamp(1e-12, 1.0 - 1e-12);
  b.demo_gumbel = -at::log(-at::log(u.narrow(0, B * options_.shard_rank, B)));
}

at::Tensor DioTrainer::loss(const DioBatch& b, bool checked) {
  t5::T5Inputs in;
  in.input_ids = b.batch.input_ids;
  in.attention_mask = b.batch.attention_mask;
  in.labels = b.batch.labels;
  if (!in.labels.defined()) throw ArgumentError("dio batch.labels: required for the loss");
  set_prefix(b, in, checked);
  at::Tensor l = model_->forward(in).loss;
  return b.loss_scale == 1.0 ? l : l * b.loss_scale;
}

void DioTrainer::set_prefix(const DioBatch& b, t5::T5Inputs& in, bool checked) const {
  at::Tensor soft = soft_tokens(b, checked);
  auto demo = demonstrations(b, checked);
  if (!demo.embeds.defined()) {
    in.prefix_embeds = soft;
    return;
  }
  if (!soft.defined()) {
    in.prefix_embeds = demo.embeds;
    in.prefix_mask = demo.mask;
    return;
  }
  in.prefix_embeds = at::cat({soft, demo.embeds.to(soft.scalar_type())}, 1);
  in.prefix_mask = at::cat({at::ones({soft.size(0), soft.size(1)}, demo.mask.options()), demo.mask}, 1);
}

hypergrad::BilevelProblem DioTrainer::problem(const DioBatch& train, const DioBatch& meta) {
  hypergrad::BilevelProblem pb;
  pb.inner_params = theta();
  pb.outer_params = phi();
  // Each closure validates its batch on its first call only: later calls (every HVP's forward) skip the id checks
  // and their host synchronisations.
  auto checked = std::make_shared<std::pair<bool, bool>>(false, false);
  pb.inner_loss = [this, &train, checked] {
    at::Tensor l = loss(train, checked->first);
    checked->first = true;
    return l;
  };
  pb.outer_loss = [this, &meta, checked] {
    at::Tensor l = loss(meta, checked->second);
    checked->second = true;
    return l;
  };
  pb.reduce = options_.reduce;  // data parallelism: every gradient / HVP / mixed product averaged over ranks
  return pb;
}

std::vector<at::Tensor> DioTrainer::precondition(const std::vector<at::Tensor>& grads,
                                                 const std::vector<at::Tensor>& v) const {
  const auto& c = inner_opt_->config();
  const double lr = inner_opt_->current_lr();
  std::vector<at::Tensor> out;
  out.reserve(v.size());
  torch::NoGradGuard ng;
  for (size_t i = 0; i < v.size(); ++i) {
    if (c.name != "adamw") {
      out.push_back(v[i] * lr);
      continue;
    }
    const auto& st = inner_opt_->buffers(i);
    const at::Tensor g = grads[i].detach();
    const double t = 1.0 + (st.empty() ? 0.0 : static_cast<double>(st.at("step").item<int64_t>()));
    const double b1 = c.beta1, b2 = c.beta2;
    const double bc1 = 1 - std::pow(b1, t), sbc2 = std::sqrt(1 - std::pow(b2, t));
    at::Tensor m = (st.empty() ? at::zeros_like(g) : st.at("exp_avg") * b1).add_(g, 1 - b1);
    at::Tensor vv = (st.empty() ? at::zeros_like(g) : st.at("exp_avg_sq") * b2).addcmul_(g, g, 1 - b2);
    at::Tensor s = vv.sqrt();
    at::Tensor D = s / sbc2 + c.eps;
    // d/dg [m / D] = (1 - b1) / D - m * (dD/dg) / D^2, dD/dg = (1 - b2) g / (s * sqrt(bc2)) (0 where s = 0)
    at::Tensor dD = at::where(s > 0, g * (1 - b2) / (s * sbc2), at::zeros_like(s));
    at::Tensor P = ((1 - b1) / D - m * dD / (D * D)) * (lr / bc1);
    out.push_back(v[i] * P);
  }
  return out;
}

DioStepStats DioTrainer::step(const DioBatch& train, const DioBatch* meta) {
  DioStepStats st;
  const double t0 = now_s();
  torch::AutoGradMode grad_on(true);
  model_->train();
  auto th = theta();
  DioBatch tb = train;  // this step's sample of demonstrations, shared by the inner and the outer update
  sample_demonstrations(tb);
  inner_opt_->zero_grad();
  const bool outer = meta && options_.meta_every > 0 && (steps_ + 1) % options_.meta_every == 0;
  std::vector<at::Tensor> g;
  hypergrad::BilevelProblem pb;
  hypergrad::HypergradResult res;
  if (outer) {
    // The hypergradient at theta_t on the inner step's own gradient (and dropout masks), then the inner update.
    pb = problem(tb, *meta);
    hypergrad::HypergradOptions ho = options_.hypergrad_options;
    if (options_.hypergrad_lr_from_inner && inner_opt_->current_lr() > 0) ho.inner_lr = inner_opt_->current_lr();
    const double t1 = now_s();
    at::Tensor l = hypergrad::inner_gradient(options_.hypergrad, pb, ho);
    std::vector<at::Tensor> g_all;  // sama: the gradient the optimizer will see (the mean over ranks)
    if (spec_.method == "sama")
      pb.precondition = [this, &pb, &g_all](const std::vector<at::Tensor>& v) {
        if (g_all.empty()) {
          for (const auto& f : pb.inner_grad) g_all.push_back(f.detach().clone());
          if (options_.reduce) options_.reduce(g_all);
        }
        return precondition(g_all, v);
      };
    res = hypergrad::compute_hypergradient(options_.hypergrad, pb, ho);
    st.hypergrad_seconds = now_s() - t1;
    st.hvp_count = res.stats.hvp_count;
    st.grad_count = res.stats.grad_count;
    for (const auto& f : pb.inner_grad) g.push_back(f.detach());
    pb.inner_grad.clear();  // frees the double-backward graph before theta changes in place
    pb.precondition = nullptr;
    st.train_loss = l.item<double>();
    st.meta_loss = res.outer_loss.item<double>();
  } else {
    at::Tensor l = loss(tb);
    g = torch::autograd::grad({l}, th, {}, false, false, /*allow_unused=*/true);
    st.train_loss = l.item<double>();
  }
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < th.size(); ++i)
      if (g[i].defined()) th[i].mutable_grad() = g[i];
  }
  g.clear();
  if (options_.grad_sync) options_.grad_sync(th);  // mean over ranks before clipping
  st.inner_grad_norm = train::clip_grad_norm(th, options_.inner.clip_norm);
  inner_opt_->apply();
  inner_opt_->zero_grad();
  ++steps_;
  if (outer) {
    outer_opt_->zero_grad();
    hypergrad::apply_to_grad(pb, res);
    st.hypergrad_norm = train::clip_grad_norm(pb.outer_params, options_.outer.clip_norm);
    outer_opt_->apply();
    outer_opt_->zero_grad();
    st.outer_updated = true;
  }
  st.seconds = now_s() - t0;
  return st;
}

namespace {
// Eval mode (no dropout) for the scope, then the module's previous mode, also when the body throws.
struct EvalModeScope {
  torch::nn::Module& m;
  const bool was_training;
  explicit EvalModeScope(torch::nn::Module& module) : m(module), was_training(module.is_training()) { m.eval(); }
  ~EvalModeScope() { m.train(was_training); }
};
}  // namespace

t5::T5Inputs DioTrainer::prefixed_inputs(const DioBatch& b) const {
  t5::T5Inputs in;
  in.input_ids = b.batch.input_ids;
  in.attention_mask = b.batch.attention_mask;
  set_prefix(b, in);
  return in;
}

at::Tensor DioTrainer::score_options(const DioBatch& b, const at::Tensor& options) {
  torch::NoGradGuard ng;
  EvalModeScope eval_mode(*model_);
  const t5::T5Inputs in = prefixed_inputs(b);
  return t5::score_options(*model_, in, options.to(model_->device())).sum.to(at::kCPU, at::kDouble).contiguous();
}

at::Tensor DioTrainer::generate(const DioBatch& b, int64_t max_new_tokens, int64_t num_beams) {
  torch::NoGradGuard ng;
  EvalModeScope eval_mode(*model_);
  const t5::T5Inputs in = prefixed_inputs(b);
  t5::GenerateOptions go;
  go.max_new_tokens = max_new_tokens;
  go.num_beams = num_beams;
  return t5::generate(*model_, in, go);
}

void DioTrainer::save_phi(const std::string& path) const {
  io::NamedTensors t;
  for (const auto& kv : named_phi()) t.emplace_back(kv.first, kv.second.detach().cpu().contiguous());
  io::write_safetensors(path, t,
                        {{"format", "instill-dio"},
                         {"variant", options_.variant},
                         {"prompt_length", std::to_string(options_.prompt_length)},
                         {"instruction_encoding", options_.instruction_encoding},
                         {"num_demonstrations", std::to_string(options_.num_demonstrations)}});
}

void DioTrainer::load_phi(const std::string& path) {
  auto f = io::read_safetensors(path);
  std::map<std::string, at::Tensor> got;
  for (auto& kv : f.tensors) got[kv.first] = kv.second;
  auto v = f.metadata.find("variant");
  if (v != f.metadata.end() && v->second != options_.variant)
    throw FileError(path, "holds DIO instructions of variant \"" + v->second + "\", expected \"" + options_.variant +
                              "\"");
  auto e = f.metadata.find("instruction_encoding");
  if (options_.variant == "embedder" && e != f.metadata.end() && e->second != options_.instruction_encoding)
    throw FileError(path, "holds an embedder reading instruction " + e->second + ", expected " +
                              options_.instruction_encoding);
  torch::NoGradGuard ng;
  for (auto& kv : named_phi()) {
    auto it = got.find(kv.first);
    if (it == got.end()) throw FileError(path, "missing tensor \"" + kv.first + "\"");
    if (!it->second.sizes().equals(kv.second.sizes()))
      throw FileError(path, "tensor \"" + kv.first + "\" has shape " + c10::str(it->second.sizes()) + ", expected " +
                                c10::str(kv.second.sizes()));
    kv.second.copy_(it->second.to(kv.second.options()));
  }
}

void DioTrainer::save_state(const std::string& path) const {
  io::NamedTensors t;
  for (auto& kv : inner_opt_->state_dict()) t.emplace_back("inner/" + kv.first, kv.second);
  for (auto& kv : outer_opt_->state_dict()) t.emplace_back("outer/" + kv.first, kv.second);
  for (auto& kv : train::rng_state()) t.emplace_back(kv.first, kv.second);
  {
    at::Generator g = gumbel_gen_;  // shares the generator (get_state is not const)
    std::lock_guard<std::mutex> lock(g.mutex());
    t.emplace_back("dio/gumbel_rng", g.get_state().clone());
  }
  t.emplace_back("dio/steps", torch::tensor({steps_}, at::kLong));
  io::write_safetensors(path, t,
                        {{"format", "instill-dio-training-state"},
                         {"version", "1"},
                         {"variant", options_.variant},
                         {"inner", train::optim_config_to_json(inner_opt_->config())},
                         {"outer", train::optim_config_to_json(outer_opt_->config())}});
}

void DioTrainer::load_state(const std::string& path) {
  io::SafetensorsFile f = io::read_safetensors(path);
  auto fmt = f.metadata.find("format");
  if (fmt == f.metadata.end() || fmt->second != "instill-dio-training-state")
    throw FileError(path, "not a DIO training state (metadata 'format' is missing or different)");
  auto v = f.metadata.find("variant");
  if (v == f.metadata.end() || v->second != options_.variant)
    throw FileError(path, "training state of variant \"" + (v == f.metadata.end() ? "?" : v->second) +
                              "\", expected \"" + options_.variant + "\"");
  std::map<std::string, at::Tensor> inner, outer, rng;
  at::Tensor gumbel, steps;
  for (auto& [name, t] : f.tensors) {
    if (name.rfind("inner/", 0) == 0) inner[name.substr(6)] = t;
    else if (name.rfind("outer/", 0) == 0) outer[name.substr(6)] = t;
    else if (name.rfind("rng/", 0) == 0) rng[name] = t;
    else if (name == "dio/gumbel_rng") gumbel = t;
    else if (name == "dio/steps") steps = t;
    else throw FileError(path, "unknown tensor \"" + name + "\" in a DIO training state");
  }
  if (!steps.defined() || steps.numel() != 1 || steps.scalar_type() != at::kLong)
    throw FileError(path, "missing or malformed \"dio/steps\"");
  if (!gumbel.defined() || gumbel.scalar_type() != at::kByte || gumbel.dim() != 1)
    throw FileError(path, "missing or malformed \"dio/gumbel_rng\"");
  // Load into scratch optimizers first, so that a file that does not fit changes nothing.
  train::Optimizer in2(inner_opt_->params(), inner_opt_->config());
  train::Optimizer out2(outer_opt_->params(), outer_opt_->config());
  try {
    in2.load_state_dict(inner);
    out2.load_state_dict(outer);
  } catch (const ArgumentError& e) {
    throw ArgumentError(path + ": " + e.what());
  } catch (const RangeError& e) {
    throw ArgumentError(path + ": " + e.what());
  }
  inner_opt_->load_state_dict(inner);
  outer_opt_->load_state_dict(outer);
  try {
    train::set_rng_state(rng);
    std::lock_guard<std::mutex> lock(gumbel_gen_.mutex());
    gumbel_gen_.set_state(gumbel.contiguous());
  } catch (const c10::Error& e) {
    throw FileError(path, std::string("\"dio/gumbel_rng\" is not a valid generator state (") + e.what_without_backtrace() + ")");
  }
  steps_ = steps.item<int64_t>();
}

void DioTrainer::save(const std::string& dir) const {
  t5::save_pretrained(*model_, dir);
  save_phi(dir + "/dio_instructions.safetensors");
}

std::vector<double> DioTrainer::eval_loss(const std::vector<DioBatch>& batches) {
  const bool was_training = model_->is_training();
  model_->eval();
  std::vector<double> out;
  for (const auto& b : batches) out.push_back(loss(b).item<double>());
  if (was_training) model_->train();
  return out;
}

std::shared_ptr<DioTrainer> load_trainer(const std::string& dir, const DioOptions& options,
                                         const std::vector<std::vector<int64_t>>& init_ids) {
  torch::manual_seed(options.seed);
  auto model = t5::from_pretrained(dir, at::kFloat);
  for (auto& p : model->parameters(true)) p.set_requires_grad(true);
  return std::make_shared<DioTrainer>(model, options, init_ids);
}

}  // namespace instill::dio
