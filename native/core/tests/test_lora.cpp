// LoRA: registered adapters (PEFT names, init, freeze, merge, save/load) and per-example functional adapters.
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <unistd.h>

#include "lora/lora.h"
#include "t5/generate.h"
#include "t5/model.h"
#include "tests/check.h"
#include "tests/test_t5_common.h"

using namespace instill;
using t5test::max_diff;
using t5test::micro_config;

namespace {

t5::T5ForConditionalGeneration copy_model(t5::T5ForConditionalGenerationImpl& src) {
  t5::T5ForConditionalGeneration m(src.config());
  m->to(src.dtype());
  t5::load_hf_weights(*m, t5::hf_state(src), "copy");
  m->eval();
  return m;
}

}  // namespace

TEST(sites_follow_targets_and_scopes) {
  t5::T5ForConditionalGeneration m(micro_config(true, false));
  lora::LoraConfig lc;
  lc.target_modules = {"q", "v"};
  REQUIRE(lora::lora_sites(*m, lc).size() == (2 + 2 * 2) * 2u);  // enc self; dec self + cross; x q,v
  lc.target_modules = {"wi"};
  auto s = lora::lora_sites(*m, lc);
  REQUIRE(s.size() == 8u);  // wi_0 and wi_1 in 4 blocks
  lc.encoder = false;
  REQUIRE(lora::lora_sites(*m, lc).size() == 4u);
  lc.target_modules = {"q", "k", "v", "o", "wi", "wo"};
  lc.encoder = true;
  lc.self_attention = false;
  lc.feed_forward = false;
  for (auto& site : lora::lora_sites(*m, lc)) REQUIRE(site.path.find("EncDecAttention") != std::string::npos);
  lc.target_modules = {"qq"};
  REQUIRE_THROWS(lora::lora_sites(*m, lc));
  lc.target_modules = {"q"};
  lc.cross_attention = false;
  lc.decoder = false;
  lc.encoder = false;
  REQUIRE_THROWS(lora::lora_sites(*m, lc));
}

TEST(registered_adapters_have_peft_names_init_and_freeze) {
  auto cfg = micro_config(true, false);
  t5::T5ForConditionalGeneration m(cfg);
  m->init_weights(1);
  m->eval();
  at::Tensor ids, mask;
  t5test::random_batch(2, 5, cfg.vocab_size, 1, ids, mask);
  t5::T5Inputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.decoder_input_ids = at::tensor({0, 3, 4, 0, 5, 6}, at::kLong).view({2, 3});
  at::Tensor before = m->forward(in).logits.detach();
  lora::LoraConfig lc;
  lc.r = 4;
  lc.alpha = 8;
  lc.target_modules = {"q", "k", "v", "o", "wi", "wo"};
  lora::add_lora(*m, lc, 3);
  std::set<std::string> names;
  for (auto& kv : m->named_parameters(true)) names.insert(kv.key());
  REQUIRE(names.count("encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"));
  REQUIRE(names.count("decoder.block.1.layer.1.EncDecAttention.o.lora_B.weight"));
  REQUIRE(names.count("decoder.block.0.layer.2.DenseReluDense.wi_1.lora_A.weight"));
  auto& q = *m->linears().at("encoder.block.0.layer.0.SelfAttention.q");
  REQUIRE(q.lora_A->weight.sizes() == at::IntArrayRef({4, cfg.d_model}));
  REQUIRE(q.lora_B->weight.sizes() == at::IntArrayRef({cfg.inner_dim(), 4}));
  double bound = 1.0 / std::sqrt(static_cast<double>(cfg.d_model));
  REQUIRE(q.lora_A->weight.abs().max().item<double>() <= bound);
  REQUIRE(q.lora_A->weight.abs().max().item<double>() > 0.5 * bound);
  REQUIRE(q.lora_B->weight.abs().max().item<double>() == 0.0);
  REQUIRE(std::fabs(q.lora_scaling - 2.0) < 1e-12);
  REQUIRE(max_diff(m->forward(in).logits, before) == 0.0);  // B = 0: the function is unchanged
  REQUIRE(t5::hf_state(*m).size() + lora::lora_state(*m).size() == m->parameters().size());
  lora::freeze_base(*m);
  for (auto& kv : m->named_parameters(true))
    REQUIRE(kv.value().requires_grad() == (kv.key().find(".lora_") != std::string::npos));
  // Gradients reach both A and B once B is non-zero.
  {
    torch::NoGradGuard ng;
    for (auto& kv : lora::lora_state(*m)) kv.second.normal_(0, 0.1);
  }
  in.labels = in.decoder_input_ids;
  m->forward(in).loss.backward();
  for (auto& p : lora::lora_parameters(*m)) REQUIRE(p.grad().defined() && p.grad().abs().sum().item<double>() > 0);
  for (auto& kv : t5::hf_state(*m)) REQUIRE(!kv.second.grad().defined());
}

TEST(merge_equals_unmerged_and_functional_equals_registered) {
  auto cfg = micro_config(true, false);
  t5::T5ForConditionalGeneration m(cfg);
  m->init_weights(2);
  m->eval();
  torch::NoGradGuard ng;
  lora::LoraConfig lc;
  lc.r = 3;
  lc.alpha = 5;
  lc.target_modules = {"q", "k", "v", "o", "wi", "wo"};
  auto sites = lora::add_lora(*m, lc, 4);
  auto gen = at::detail::createCPUGenerator(6);
  for (auto& kv : lora::lora_state(*m)) kv.second.copy_(at::randn(kv.second.sizes(), gen) * 0.2);
  at::Tensor ids, mask;
  t5test::random_batch(3, 6, cfg.vocab_size, 2, ids, mask);
  t5::T5Inputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.decoder_input_ids = at::randint(0, cfg.vocab_size, {3, 4}, gen, at::kLong);
  at::Tensor with_lora = m->forward(in).logits;

  // The same adapters given functionally (broadcast to every example) on a copy without registered LoRA.
  auto plain = copy_model(*m);
  lora::AdapterBatch ad;
  ad.scaling = lc.alpha / lc.r;
  for (auto& s : sites) {
    auto& lin = *m->linears().at(s.path);
    ad.adapters[s.path] = {lin.lora_A->weight.unsqueeze(0).expand({3, -1, -1}).contiguous(),
                           lin.lora_B->weight.unsqueeze(0).expand({3, -1, -1}).contiguous()};
  }
  t5::T5Inputs fin = in;
  fin.adapters = &ad;
  double d_func = max_diff(plain->forward(fin).logits, with_lora);
  lora::merge_lora(*m);
  REQUIRE(lora::lora_state(*m).empty());
  double d_merge = max_diff(m->forward(in).logits, with_lora);
  std::printf("  |functional - registered| = %.3g, |merged - unmerged| = %.3g\n", d_func, d_merge);
  const double tol = 1e-5 * std::max(1.0, with_lora.abs().max().item<double>());  // float32, other summation order
  REQUIRE(d_func < tol);
  REQUIRE(d_merge < tol);
  REQUIRE(max_diff(plain->forward(in).logits, with_lora) > 1e-3);  // the adapters do something
}

// One adapter per example equals running each example alone with its adapter merged into the weights:
// forward logits, greedy and beam generation, and option scores.
TEST(per_example_adapters_equal_each_example_merged_alone) {
  auto cfg = micro_config(true, false, 30);
  t5::T5ForConditionalGeneration m(cfg);
  m->init_weights(9);
  m->eval();
  torch::NoGradGuard ng;
  const int64_t B = 3, r = 2;
  const double scaling = 0.75;
  lora::LoraConfig lc;
  lc.target_modules = {"q", "k", "v", "o", "wi", "wo"};
  auto sites = lora::lora_sites(*m, lc);
  auto gen = at::detail::createCPUGenerator(10);
  lora::AdapterBatch ad;
  ad.scaling = scaling;
  for (auto& s : sites)
    ad.adapters[s.path] = {at::randn({B, r, s.in_features}, gen) * 0.5, at::randn({B, s.out_features, r}, gen) * 0.5};
  at::Tensor ids, mask;
  t5test::random_batch(B, 7, cfg.vocab_size, 5, ids, mask);
  t5::T5Inputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.decoder_input_ids = at::randint(0, cfg.vocab_size, {B, 5}, gen, at::kLong);
  in.adapters = &ad;
  at::Tensor batched = m->forward(in).logits;
  t5::GenerateOptions greedy;
  greedy.max_new_tokens = 6;
  t5::GenerateOptions beam = greedy;
  beam.num_beams = 3;
  t5::T5Inputs gin = in;
  gin.decoder_input_ids = at::Tensor();
  at::Tensor g_batched = t5::generate(*m, gin, greedy);
  at::Tensor b_batched = t5::generate(*m, gin, beam);
  at::Tensor opts = at::randint(2, cfg.vocab_size, {B, 2, 3}, gen, at::kLong);
  auto sc = t5::score_options(*m, gin, opts);
  double worst = 0;
  for (int64_t b = 0; b < B; ++b) {
    auto alone = copy_model(*m);
    lora::LoraConfig one = lc;
    one.r = r;
    one.alpha = scaling * r;
    lora::add_lora(*alone, one, 0);
    for (auto& s : sites) {
      auto& lin = *alone->linears().at(s.path);
      lin.lora_A->weight.copy_(ad.adapters[s.path].first[b]);
      lin.lora_B->weight.copy_(ad.adapters[s.path].second[b]);
    }
    lora::merge_lora(*alone);
    t5::T5Inputs a;
    a.input_ids = ids.narrow(0, b, 1);
    a.attention_mask = mask.narrow(0, b, 1);
    a.decoder_input_ids = in.decoder_input_ids.narrow(0, b, 1);
    worst = std::max(worst, max_diff(alone->forward(a).logits[0], batched[b]));
    a.decoder_input_ids = at::Tensor();
    at::Tensor g = t5::generate(*alone, a, greedy), bm = t5::generate(*alone, a, beam);
    REQUIRE_MSG(at::equal(g[0], g_batched[b].narrow(0, 0, g.size(1))), "greedy differs for example " << b);
    REQUIRE_MSG(at::equal(bm[0], b_batched[b].narrow(0, 0, bm.size(1))), "beam differs for example " << b);
    auto s1 = t5::score_options(*alone, a, opts.narrow(0, b, 1));
    REQUIRE(max_diff(s1.sum[0], sc.sum[b]) < 1e-4);
  }
  std::printf("  max |per-example batched - merged alone| logits = %.3g\n", worst);
  REQUIRE(worst < 1e-4);
  // Shape errors name the module.
  lora::AdapterBatch bad = ad;
  bad.adapters.begin()->second.first = at::randn({B, r, 3});
  bool named = false;
  try {
    m->forward(t5::T5Inputs{in.input_ids, in.attention_mask, in.decoder_input_ids, {}, {}, {}, {}, {}, &bad});
  } catch (const std::exception& e) {
    named = std::string(e.what()).find(bad.adapters.begin()->first) != std::string::npos;
  }
  REQUIRE(named);
  lora::AdapterBatch unknown;
  unknown.adapters["encoder.block.0.layer.0.SelfAttention.x"] = ad.adapters.begin()->second;
  REQUIRE_THROWS(m->forward(t5::T5Inputs{in.input_ids, in.attention_mask, in.decoder_input_ids, {}, {}, {}, {}, {}, &unknown}));
}

TEST(adapter_save_load_round_trip_peft_layout) {
  auto cfg = micro_config(false, true);
  t5::T5ForConditionalGeneration m(cfg);
  m->init_weights(4);
  lora::LoraConfig lc;
  lc.r = 4;
  lc.alpha = 8;
  lc.target_modules = {"q", "v", "wi"};
  lora::add_lora(*m, lc, 8);
  {
    torch::NoGradGuard ng;
    for (auto& kv : lora::lora_state(*m)) kv.second.normal_(0, 0.2);
  }
  char tmpl[] = "/tmp/instill-lora-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  std::string dir = tmpl;
  lora::save_adapter(*m, dir, lc, "t5-micro");
  auto other = copy_model(*m);
  lora::load_adapter(*other, dir);
  auto a = lora::lora_state(*m), b = lora::lora_state(*other);
  REQUIRE(a.size() == b.size() && !a.empty());
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(a[i].first == b[i].first && at::equal(a[i].second, b[i].second));
  REQUIRE(std::fabs(other->linears().at("encoder.block.0.layer.0.SelfAttention.q")->lora_scaling - 2.0) < 1e-12);
  std::remove((dir + "/adapter_model.safetensors").c_str());
  std::remove((dir + "/adapter_config.json").c_str());
  rmdir(dir.c_str());
}

int main() { return instill_test::run_all(); }
