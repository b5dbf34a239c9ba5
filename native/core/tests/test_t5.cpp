// T5 model core: config, names, init, gradients (finite differences), save/load, KV cache, beam search, scoring.
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

#include "common/errors.h"
#include "io/checkpoint.h"
#include "io/file_util.h"
#include "lora/lora.h"
#include "t5/config.h"
#include "t5/generate.h"
#include "t5/model.h"
#include "t5/pretrained.h"
#include "tests/check.h"
#include "tests/test_t5_common.h"

using namespace instill;
using t5test::max_diff;
using t5test::micro_config;

namespace {

std::string make_tmp_dir() {
  char tmpl[] = "/tmp/instill-t5-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

void remove_dir(const std::string& dir) {
  for (const char* f : {"model.safetensors", "config.json", "adapter_model.safetensors", "adapter_config.json"})
    std::remove((dir + "/" + f).c_str());
  rmdir(dir.c_str());
}

bool message_has(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
  } catch (const std::exception& e) {
    if (std::string(e.what()).find(needle) != std::string::npos) return true;
    std::printf("  message was: %s\n", e.what());
    return false;
  }
  return false;
}

}  // namespace

TEST(config_parses_hf_json_with_defaults) {
  auto c = t5::T5Config::from_json(R"({"d_model": 32, "d_kv": 8, "d_ff": 64, "num_heads": 4, "num_layers": 3,
      "vocab_size": 100, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false,
      "relative_attention_num_buckets": 32, "layer_norm_epsilon": 1e-6, "dropout_rate": 0.1,
      "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0, "model_type": "t5"})",
                                   "x/config.json");
  REQUIRE(c.num_decoder_layers == 3);  // defaults to num_layers
  REQUIRE(c.relative_attention_max_distance == 128);
  REQUIRE(c.is_gated() && c.act() == "gelu_new");
  REQUIRE(!c.tie_word_embeddings);
  auto d = t5::T5Config::from_json(c.to_json());
  REQUIRE(d.to_json() == c.to_json());
  REQUIRE(c.to_json().find("T5ForConditionalGeneration") != std::string::npos);
  auto e = t5::T5Config::from_json(R"({"vocab_size": 50, "feed_forward_proj": "relu"})");
  REQUIRE(e.tie_word_embeddings && e.act() == "relu" && !e.is_gated());
}

TEST(config_rejects_bad_fields_naming_field_and_source) {
  REQUIRE(message_has([] { t5::T5Config::from_json(R"({"d_model": "x"})", "a/config.json"); }, "a/config.json: field \"d_model\""));
  REQUIRE(message_has([] { t5::T5Config::from_json(R"({"feed_forward_proj": "swish"})", "b.json"); }, "feed_forward_proj"));
  REQUIRE(message_has([] { t5::T5Config::from_json(R"({"num_heads": 0})", "c.json"); }, "num_heads"));
  REQUIRE(message_has([] { t5::T5Config::from_json(R"({"tie_word_embeddings": 1})", "d.json"); }, "tie_word_embeddings"));
  REQUIRE(message_has([] { t5::T5Config::from_json(R"({"vocab_size": 10, "eos_token_id": 10})", "e.json"); }, "eos_token_id"));
  REQUIRE(message_has([] { t5::T5Config::from_json("{not json", "f.json"); }, "f.json"));
  bool typed = false;
  try { t5::T5Config::from_json(R"({"d_kv": 1.5})"); } catch (const ArgumentError&) { typed = true; }
  REQUIRE(typed);
  REQUIRE_THROWS(t5::preset("huge"));
}

TEST(presets_have_expected_shapes) {
  auto small = t5::preset("small", 32128);
  t5::T5ForConditionalGeneration m(small);
  int64_t n = 0;
  for (auto& p : m->parameters()) n += p.numel();
  REQUIRE_MSG(n == 60506624, "t5-small should have 60,506,624 parameters, got " << n);
  auto tiny = t5::preset("tiny", 100);
  REQUIRE(tiny.d_model == 64 && tiny.d_kv == 16 && tiny.d_ff == 128 && tiny.num_heads == 4 && tiny.num_layers == 2 &&
          tiny.num_decoder_layers == 2 && tiny.is_gated());
  auto base = t5::preset("base", 32128);
  REQUIRE(base.d_model == 768 && base.num_heads == 12 && base.num_layers == 12 && base.act() == "gelu_new");
}

TEST(parameter_names_are_hf_names) {
  t5::T5ForConditionalGeneration gated(micro_config(true, false));
  std::set<std::string> names;
  for (auto& kv : t5::hf_state(*gated)) names.insert(kv.first);
  for (const char* n :
       {"shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight",
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "encoder.block.1.layer.0.layer_norm.weight",
        "encoder.block.0.layer.1.DenseReluDense.wi_0.weight", "encoder.block.0.layer.1.DenseReluDense.wi_1.weight",
        "encoder.block.1.layer.1.DenseReluDense.wo.weight", "encoder.final_layer_norm.weight",
        "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
        "decoder.block.1.layer.1.EncDecAttention.o.weight", "decoder.block.1.layer.2.DenseReluDense.wi_1.weight",
        "decoder.final_layer_norm.weight", "lm_head.weight"})
    REQUIRE_MSG(names.count(n), "missing parameter " << n);
  REQUIRE(!names.count("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"));
  t5::T5ForConditionalGeneration relu(micro_config(false, true));
  std::set<std::string> rn;
  for (auto& kv : t5::hf_state(*relu)) rn.insert(kv.first);
  REQUIRE(rn.count("decoder.block.0.layer.2.DenseReluDense.wi.weight") && !rn.count("lm_head.weight"));
}

TEST(relative_position_bucket_matches_scalar_formula) {
  auto bucket = [](int64_t rel, bool bidir, int64_t nb, int64_t maxd) {
    int64_t ret = 0;
    if (bidir) {
      nb /= 2;
      if (rel > 0) ret += nb;
      rel = std::llabs(rel);
    } else {
      rel = -std::min<int64_t>(rel, 0);
    }
    int64_t max_exact = nb / 2;
    if (rel < max_exact) return ret + rel;
    int64_t large = max_exact + static_cast<int64_t>(std::log(static_cast<float>(rel) / max_exact) /
                                                     std::log(static_cast<float>(maxd) / max_exact) * (nb - max_exact));
    return ret + std::min(large, nb - 1);
  };
  at::Tensor rel = at::arange(-300, 301, at::kLong);
  for (bool bidir : {true, false}) {
    at::Tensor b = t5::relative_position_bucket(rel, bidir, 32, 128);
    for (int64_t i = 0; i < rel.size(0); ++i)
      REQUIRE_MSG(b[i].item<int64_t>() == bucket(rel[i].item<int64_t>(), bidir, 32, 128),
                  "bucket of " << rel[i].item<int64_t>() << " bidir " << bidir);
  }
}

TEST(init_weights_follows_hf_scales_and_is_deterministic) {
  auto cfg = t5::preset("tiny", 300);
  t5::T5ForConditionalGeneration a(cfg), b(cfg);
  a->init_weights(7);
  b->init_weights(7);
  auto sa = t5::hf_state(*a), sb = t5::hf_state(*b);
  for (size_t i = 0; i < sa.size(); ++i) REQUIRE(at::equal(sa[i].second, sb[i].second));
  auto sd = [&](const std::string& n) {
    for (auto& kv : sa)
      if (kv.first == n) return kv.second.std().item<double>();
    throw std::runtime_error("no " + n);
  };
  auto near = [](double got, double want) { return std::fabs(got / want - 1) < 0.1; };
  REQUIRE(near(sd("shared.weight"), 1.0));
  REQUIRE(near(sd("lm_head.weight"), 1.0));
  REQUIRE(near(sd("encoder.block.0.layer.0.SelfAttention.q.weight"), std::pow(64.0 * 16, -0.5)));
  REQUIRE(near(sd("encoder.block.0.layer.0.SelfAttention.k.weight"), std::pow(64.0, -0.5)));
  REQUIRE(near(sd("decoder.block.1.layer.1.EncDecAttention.o.weight"), std::pow(64.0, -0.5)));
  REQUIRE(near(sd("decoder.block.1.layer.2.DenseReluDense.wo.weight"), std::pow(128.0, -0.5)));
  REQUIRE(near(sd("encoder.block.0.layer.1.DenseReluDense.wi_0.weight"), std::pow(64.0, -0.5)));
  for (auto& kv : sa)
    if (kv.first.find("layer_norm") != std::string::npos) REQUIRE(at::equal(kv.second, at::ones_like(kv.second)));
}

// Gradients of the loss w.r.t. parameters, soft-prompt embeddings, extra encoder states, registered LoRA and
// per-example adapters, against central finite differences in float64.
TEST(gradients_match_finite_differences_float64) {
  for (bool gated : {true, false}) {
    auto cfg = micro_config(gated, !gated);
    t5::T5ForConditionalGeneration m(cfg);
    m->init_weights(3);
    lora::LoraConfig lc;
    lc.r = 2;
    lc.alpha = 4;
    lc.target_modules = {"q", "v", "wo"};
    lora::add_lora(*m, lc, 5);
    m->to(at::kDouble);
    {
      torch::NoGradGuard ng;
      for (auto& kv : lora::lora_state(*m))
        if (kv.first.find("lora_B") != std::string::npos) kv.second.normal_(0, 0.3);
    }
    m->train();  // dropout 0: train mode must still be deterministic
    const int64_t B = 2, S = 5, T = 4, P = 2, E = 2;
    at::Tensor ids, mask;
    t5test::random_batch(B, S, cfg.vocab_size, 11, ids, mask);
    auto gen = at::detail::createCPUGenerator(13);
    auto dopt = at::TensorOptions().dtype(at::kDouble);
    at::Tensor labels = at::randint(2, cfg.vocab_size, {B, T}, gen, at::kLong);
    labels[1][3] = -100;
    at::Tensor prefix = at::randn({B, P, cfg.d_model}, gen, dopt).requires_grad_(true);
    at::Tensor prefix_mask = at::ones({B, P}, at::kLong);
    prefix_mask[1][0] = 0;
    at::Tensor extra = at::randn({B, E, cfg.d_model}, gen, dopt).requires_grad_(true);
    lora::AdapterBatch ad;
    ad.scaling = 1.5;
    std::vector<std::pair<std::string, at::Tensor>> checked;
    for (const char* path : {"encoder.block.1.layer.0.SelfAttention.k", "decoder.block.0.layer.1.EncDecAttention.v",
                             "decoder.block.1.layer.2.DenseReluDense.wo"}) {
      auto& lin = *m->linears().at(path);
      at::Tensor A = (at::randn({B, 3, lin.in_features}, gen, dopt) * 0.3).requires_grad_(true);
      at::Tensor Bm = (at::randn({B, lin.out_features, 3}, gen, dopt) * 0.3).requires_grad_(true);
      ad.adapters[path] = {A, Bm};
      checked.emplace_back(std::string("A ") + path, A);
      checked.emplace_back(std::string("B ") + path, Bm);
    }
    checked.emplace_back("prefix_embeds", prefix);
    checked.emplace_back("extra_encoder_states", extra);
    for (auto& kv : m->named_parameters(true)) checked.emplace_back(kv.key(), kv.value());

    t5::T5Inputs in;
    in.input_ids = ids;
    in.attention_mask = mask;
    in.labels = labels;
    in.prefix_embeds = prefix;
    in.prefix_mask = prefix_mask;
    in.extra_encoder_states = extra;
    in.adapters = &ad;
    auto loss_value = [&] { return m->forward(in).loss.item<double>(); };
    m->zero_grad();
    at::Tensor loss = m->forward(in).loss;
    loss.backward();
    int checked_coords = 0;
    const double h = 1e-5;
    auto pick = at::detail::createCPUGenerator(17);
    for (auto& kv : checked) {
      at::Tensor t = kv.second;
      REQUIRE_MSG(t.grad().defined(), "no gradient for " << kv.first);
      at::Tensor g = t.grad().reshape({-1});
      int64_t n = t.numel();
      for (int rep = 0; rep < 2; ++rep) {
        int64_t i = at::randint(0, n, {1}, pick, at::kLong).item<int64_t>();
        double fp, fm;
        {
          torch::NoGradGuard ng;
          at::Tensor flat = t.view({-1});
          double orig = flat[i].item<double>();
          flat[i].fill_(orig + h);
          fp = loss_value();
          flat[i].fill_(orig - h);
          fm = loss_value();
          flat[i].fill_(orig);
        }
        double num = (fp - fm) / (2 * h), ana = g[i].item<double>();
        REQUIRE_MSG(std::fabs(num - ana) <= 1e-7 + 1e-5 * std::max(std::fabs(num), std::fabs(ana)),
                    (gated ? "gated " : "relu ") << kv.first << "[" << i << "]: autograd " << ana << " vs FD " << num);
        ++checked_coords;
      }
    }
    std::printf("  %s: %d coordinates checked, loss %.6f\n", gated ? "gated-gelu untied" : "relu tied", checked_coords,
                loss.item<double>());
  }
}

TEST(save_load_round_trip_is_bitwise) {
  for (auto dt : {at::kFloat, at::kBFloat16}) {
    auto cfg = micro_config(true, false);
    t5::T5ForConditionalGeneration m(cfg);
    m->init_weights(21);
    m->to(dt);
    std::string dir = make_tmp_dir();
    t5::save_pretrained(*m, dir);
    auto back = t5::from_pretrained(dir, dt);
    auto a = t5::hf_state(*m), b = t5::hf_state(*back);
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      REQUIRE(a[i].first == b[i].first);
      REQUIRE(a[i].second.scalar_type() == b[i].second.scalar_type());
      REQUIRE_MSG(at::equal(a[i].second, b[i].second), "differs after round trip: " << a[i].first);
    }
    REQUIRE(back->config().to_json() == cfg.to_json());
    // Reading back in another dtype converts.
    auto f64 = t5::from_pretrained(dir, at::kDouble);
    REQUIRE(f64->dtype() == at::kDouble);
    REQUIRE(at::equal(t5::hf_state(*f64)[0].second.to(dt), a[0].second));
    remove_dir(dir);
  }
}

TEST(load_hf_weights_rejects_unknown_missing_and_misshapen) {
  auto cfg = micro_config(true, false);
  t5::T5ForConditionalGeneration m(cfg);
  auto state = t5::hf_state(*m);
  auto extra = state;
  extra.emplace_back("encoder.block.9.layer.0.SelfAttention.q.weight", at::zeros({16, 8}));
  REQUIRE(message_has([&] { t5::load_hf_weights(*m, extra, "ckpt"); }, "encoder.block.9.layer.0.SelfAttention.q.weight"));
  auto missing = state;
  missing.erase(missing.begin() + 3);
  REQUIRE(message_has([&] { t5::load_hf_weights(*m, missing, "ckpt"); }, state[3].first));
  auto bad = state;
  bad[2].second = at::zeros({3, 3});
  REQUIRE(message_has([&] { t5::load_hf_weights(*m, bad, "ckpt"); }, state[2].first));
  auto half = state;
  for (auto& kv : half) kv.second = kv.second.detach().to(at::kHalf);
  t5::load_hf_weights(*m, half, "ckpt");  // float16 converted
  REQUIRE(m->dtype() == at::kFloat);
}

TEST(kv_cache_decoding_equals_full_recomputation) {
  auto cfg = micro_config(true, false, 40);
  t5::T5ForConditionalGeneration m(cfg);
  m->init_weights(5);
  m->eval();
  torch::NoGradGuard ng;
  at::Tensor ids, mask;
  t5test::random_batch(3, 9, cfg.vocab_size, 4, ids, mask);
  t5::T5Inputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  auto enc = m->encode(in);
  auto gen = at::detail::createCPUGenerator(9);
  const int64_t T = 16;  // beyond max_distance 12: far buckets too
  at::Tensor dec = at::randint(0, cfg.vocab_size, {3, T}, gen, at::kLong);
  dec.select(1, 0).fill_(cfg.decoder_start_token_id);
  at::Tensor full = m->decode(dec, enc);
  t5::DecoderCache cache;
  double worst = 0;
  for (int64_t t = 0; t < T; ++t) {
    at::Tensor step = m->decode(dec.narrow(1, t, 1), enc, nullptr, &cache);
    worst = std::max(worst, max_diff(step.select(1, 0), full.select(1, t)));
  }
  // Two new positions at once on top of a cache also match.
  t5::DecoderCache c2;
  m->decode(dec.narrow(1, 0, 5), enc, nullptr, &c2);
  at::Tensor two = m->decode(dec.narrow(1, 5, 2), enc, nullptr, &c2);
  worst = std::max(worst, max_diff(two, full.narrow(1, 5, 2)));
  std::printf("  max |cached - full| logits = %.3g\n", worst);
  REQUIRE(worst < 1e-5);

  // Greedy with the cache equals a naive greedy loop recomputing everything.
  at::Tensor got = t5::generate(*m, in, {12, 1, 1.0, false});
  at::Tensor cur = at::full({3, 1}, cfg.decoder_start_token_id, at::kLong);
  std::vector<bool> finished(3, false);
  std::vector<std::vector<int64_t>> rows(3);
  for (int step = 0; step < 12; ++step) {
    at::Tensor next = m->decode(cur, enc).select(1, -1).argmax(-1);
    bool all = true;
    for (int b = 0; b < 3; ++b) {
      int64_t tok = finished[b] ? cfg.pad_token_id : next[b].item<int64_t>();
      next[b] = tok;
      rows[b].push_back(tok);
      if (tok == cfg.eos_token_id) finished[b] = true;
      all = all && finished[b];
    }
    cur = at::cat({cur, next.unsqueeze(1)}, 1);
    if (all) break;
  }
  REQUIRE(got.size(0) == 3 && got.size(1) == static_cast<int64_t>(rows[0].size()));
  for (int b = 0; b < 3; ++b)
    for (size_t j = 0; j < rows[b].size(); ++j) REQUIRE(got[b][j].item<int64_t>() == rows[b][j]);
}

TEST(score_options_equals_forward_loss) {
  auto cfg = micro_config(false, true, 30);
  t5::T5ForConditionalGeneration m(cfg);
  m->init_weights(8);
  m->eval();
  torch::NoGradGuard ng;
  at::Tensor ids, mask;
  t5test::random_batch(2, 7, cfg.vocab_size, 6, ids, mask);
  auto gen = at::detail::createCPUGenerator(2);
  at::Tensor opts = at::randint(2, cfg.vocab_size, {2, 3, 5}, gen, at::kLong);
  opts[0][1].narrow(0, 2, 3).fill_(-100);
  opts[1][2].narrow(0, 4, 1).fill_(-100);
  t5::T5Inputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  auto s = t5::score_options(*m, in, opts);
  auto s_chunked = t5::score_options(*m, in, opts, 4);
  REQUIRE(max_diff(s.sum, s_chunked.sum) < 1e-4);  // float32 sums over other batch shapes
  for (int b = 0; b < 2; ++b)
    for (int k = 0; k < 3; ++k) {
      t5::T5Inputs one;
      one.input_ids = ids.narrow(0, b, 1);
      one.attention_mask = mask.narrow(0, b, 1);
      one.labels = opts[b][k].unsqueeze(0);
      double loss = m->forward(one).loss.item<double>();
      int64_t n = opts[b][k].ne(-100).sum().item<int64_t>();
      REQUIRE(s.count[b][k].item<int64_t>() == n);
      REQUIRE_CLOSE(s.sum[b][k].item<double>(), -loss * n, 1e-4);
      REQUIRE_CLOSE(s.mean[b][k].item<double>(), -loss, 1e-5);
    }
}

// With length_penalty 0 (score = sum of log-probs) and enough beams, beam search is exhaustive: it must return the
// best of all sequences (ended by EOS, or reaching max_new_tokens), which score_options finds by brute force.
TEST(beam_search_is_exhaustive_with_enough_beams) {
  const int64_t V = 6, N = 3;
  auto cfg = micro_config(true, false, V);
  t5::T5ForConditionalGeneration m(cfg);
  m->init_weights(31);
  m->eval();
  torch::NoGradGuard ng;
  at::Tensor ids, mask;
  t5test::random_batch(2, 6, V, 3, ids, mask);
  t5::T5Inputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  std::vector<std::vector<int64_t>> cands;
  std::vector<int64_t> toks;
  for (int64_t t = 0; t < V; ++t)
    if (t != cfg.eos_token_id) toks.push_back(t);
  cands.push_back({cfg.eos_token_id});
  for (auto a : toks) cands.push_back({a, cfg.eos_token_id});
  for (auto a : toks)
    for (auto b : toks) cands.push_back({a, b, cfg.eos_token_id});
  for (auto a : toks)
    for (auto b : toks)
      for (int64_t c = 0; c < V; ++c)
        if (c != cfg.eos_token_id) cands.push_back({a, b, c});
  const int64_t K = static_cast<int64_t>(cands.size());
  at::Tensor opts = at::full({2, K, N}, -100, at::kLong);
  for (int b = 0; b < 2; ++b)
    for (int64_t k = 0; k < K; ++k)
      for (size_t j = 0; j < cands[k].size(); ++j) opts[b][k][j] = cands[k][j];
  auto s = t5::score_options(*m, in, opts);
  t5::GenerateOptions go;
  go.max_new_tokens = N;
  go.num_beams = 36;
  go.length_penalty = 0.0;
  at::Tensor got = t5::generate(*m, in, go);
  for (int b = 0; b < 2; ++b) {
    int64_t best = s.sum[b].argmax().item<int64_t>();
    std::vector<int64_t> row;
    for (int64_t j = 0; j < got.size(1); ++j) row.push_back(got[b][j].item<int64_t>());
    while (row.size() > cands[best].size() && row.back() == cfg.pad_token_id) row.pop_back();
    REQUIRE_MSG(row == cands[best], "example " << b << ": beam search differs from the brute-force best (score "
                                               << s.sum[b][best].item<double>() << ")");
  }
  // A batch decodes like its examples one at a time, with HF's default length penalty too.
  go.num_beams = 3;
  go.length_penalty = 1.0;
  go.max_new_tokens = 8;
  at::Tensor batch = t5::generate(*m, in, go);
  for (int b = 0; b < 2; ++b) {
    t5::T5Inputs one;
    one.input_ids = ids.narrow(0, b, 1);
    one.attention_mask = mask.narrow(0, b, 1);
    at::Tensor alone = t5::generate(*m, one, go);
    at::Tensor row = batch[b].narrow(0, 0, alone.size(1));
    REQUIRE(at::equal(row, alone[0]));
    if (batch.size(1) > alone.size(1)) REQUIRE(batch[b].narrow(0, alone.size(1), batch.size(1) - alone.size(1)).eq(cfg.pad_token_id).all().item<bool>());
  }
}

TEST(prefix_embeds_equal_prepended_tokens_and_masked_extras_change_nothing) {
  auto cfg = micro_config(true, false, 30);
  t5::T5ForConditionalGeneration m(cfg);
  m->init_weights(12);
  m->eval();
  torch::NoGradGuard ng;
  at::Tensor ids, mask;
  t5test::random_batch(2, 6, cfg.vocab_size, 8, ids, mask);
  at::Tensor pre_ids = at::tensor({5, 7, 9, 11}, at::kLong).view({2, 2});
  t5::T5Inputs a;
  a.input_ids = ids;
  a.attention_mask = mask;
  a.prefix_embeds = at::embedding(m->shared->weight, pre_ids);
  a.decoder_input_ids = at::tensor({0, 4, 5, 0, 6, 7}, at::kLong).view({2, 3});
  t5::T5Inputs b = a;
  b.prefix_embeds = at::Tensor();
  b.input_ids = at::cat({pre_ids, ids}, 1);
  b.attention_mask = at::cat({at::ones({2, 2}, at::kLong), mask}, 1);
  auto oa = m->forward(a), ob = m->forward(b);
  REQUIRE(max_diff(oa.logits, ob.logits) < 1e-5);
  REQUIRE(max_diff(oa.encoder_hidden, ob.encoder_hidden) < 1e-5);
  // Masked extra encoder states change nothing; unmasked ones change the logits.
  t5::T5Inputs c = b;
  c.extra_encoder_states = at::randn({2, 3, cfg.d_model});
  c.extra_encoder_mask = at::zeros({2, 3}, at::kLong);
  auto oc = m->forward(c);
  REQUIRE_MSG(max_diff(oc.logits, ob.logits) < 1e-5, "masked extras changed logits by " << max_diff(oc.logits, ob.logits));
  REQUIRE(oc.encoder_hidden.size(1) == 8 + 3);
  c.extra_encoder_mask = at::ones({2, 3}, at::kLong);
  REQUIRE(max_diff(m->forward(c).logits, ob.logits) > 1e-3);
  // Bad shapes are argument errors.
  c.extra_encoder_states = at::randn({2, 3, 5});
  REQUIRE(message_has([&] { m->forward(c); }, "extra_encoder_states"));
  t5::T5Inputs d = b;
  d.input_ids = d.input_ids.clone();
  d.input_ids[0][0] = cfg.vocab_size;
  REQUIRE(message_has([&] { m->forward(d); }, "input_ids"));
}

// The CPU dropout mask: keeps 1 - p of the units, scales them by 1 / (1 - p), is reproduced by manual_seed at any
// thread count, moves on with the generator, and its gradient is the mask.
TEST(dropout_keeps_one_minus_p_scaled_reproducible_at_any_thread_count) {
  auto x = torch::randn({1000, 1000});
  torch::manual_seed(3);
  auto a = t5::apply_dropout(x, 0.1, true);
  auto kept = a.ne(0);
  const double frac = kept.to(at::kDouble).mean().item<double>();
  REQUIRE(std::abs(frac - 0.9) < 0.002);  // the fraction's sd is 3e-4
  // neighbours independent: both kept with probability 0.81
  const double pair = (kept.flatten().slice(0, 1).logical_and(kept.flatten().slice(0, 0, -1))).to(at::kDouble).mean().item<double>();
  REQUIRE(std::abs(pair - 0.81) < 0.003);
  REQUIRE(max_diff(a.masked_select(kept), (x / 0.9).masked_select(kept)) < 1e-5);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  torch::manual_seed(3);
  auto b = t5::apply_dropout(x, 0.1, true);
  at::set_num_threads(threads);
  REQUIRE(torch::equal(a, b));
  REQUIRE(!torch::equal(a, t5::apply_dropout(x, 0.1, true)));
  REQUIRE(torch::equal(t5::apply_dropout(x, 0.1, false), x));
  REQUIRE(torch::equal(t5::apply_dropout(x, 0.0, true), x));
  auto xr = x.clone().requires_grad_(true);
  torch::manual_seed(3);
  t5::apply_dropout(xr, 0.1, true).sum().backward();
  REQUIRE(max_diff(xr.grad(), kept.to(at::kFloat) / 0.9) < 1e-6);
  auto xd = torch::randn({4096}, at::kDouble);
  auto d = t5::apply_dropout(xd, 0.5, true);
  REQUIRE(d.scalar_type() == at::kDouble);
  REQUIRE(max_diff(d.masked_select(d.ne(0)), (xd * 2).masked_select(d.ne(0))) < 1e-12);
}

int main() { return instill_test::run_all(); }
