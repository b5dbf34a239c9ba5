#include "t5/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <set>

#include "common/errors.h"

namespace instill::t5 {

namespace {

bool low_precision(at::ScalarType t) { return t == at::kHalf || t == at::kBFloat16; }

double lowest(at::ScalarType t) {
  switch (t) {
    case at::kHalf: return -65504.0;
    case at::kBFloat16: return -3.3895313892515355e38;
    case at::kDouble: return std::numeric_limits<double>::lowest();
    default: return std::numeric_limits<float>::lowest();
  }
}

// [B, K] bool -> additive [B, 1, 1, K] in dtype (0 where attended, finfo.min where masked), as HF.
at::Tensor additive_mask(const at::Tensor& mask, at::ScalarType dtype) {
  auto m = at::zeros(mask.sizes(), mask.options().dtype(dtype));
  m.masked_fill_(mask.logical_not(), lowest(dtype));
  return m.unsqueeze(1).unsqueeze(1);
}

at::Tensor to_bool_mask(const at::Tensor& mask, int64_t B, int64_t L, const char* name, at::Device dev) {
  if (!mask.defined()) return at::ones({B, L}, at::TensorOptions().dtype(at::kBool).device(dev));
  if (mask.dim() != 2 || mask.size(0) != B || mask.size(1) != L)
    throw ArgumentError(std::string(name) + ": expected shape [" + std::to_string(B) + ", " + std::to_string(L) +
                        "], got " + c10::str(mask.sizes()));
  return mask.to(dev).ne(0);
}

at::Tensor check_ids(const at::Tensor& ids, const char* name, int64_t vocab) {
  if (!ids.defined() || ids.dim() != 2) throw ArgumentError(std::string(name) + ": expected a [B, L] tensor");
  if (ids.scalar_type() != at::kLong && ids.scalar_type() != at::kInt)
    throw ArgumentError(std::string(name) + ": expected integer token ids");
  if (ids.numel() > 0) {
    auto mn = ids.min().item<int64_t>(), mx = ids.max().item<int64_t>();
    if (mn < 0 || mx >= vocab)
      throw RangeError(std::string(name) + ": token ids must be in [0, " + std::to_string(vocab) + "), got " +
                       std::to_string(mn < 0 ? mn : mx));
  }
  return ids.to(at::kLong);
}

at::Tensor drop(const at::Tensor& x, double p, bool train) { return apply_dropout(x, p, train); }

}  // namespace

// Dropout as torch::dropout computes it (inverted: a kept unit is scaled by 1 / (1 - p)), with the mask drawn by a
// counter-based generator: splitmix64 of (a 64-bit seed drawn from LibTorch's default CPU generator, the element's
// index). The seed draw advances the default generator, so torch::manual_seed and saved generator states (resume,
// the hypergradients' RngState, per-rank reseeding) reproduce the masks, and the mask does not depend on the
// thread count. LibTorch 1.13's CPU bernoulli_ is a serial mt19937 loop that made dropout 0.1 cost the demo's tiny
// T5 about a fifth of its training time; other devices keep torch::dropout.
at::Tensor apply_dropout(const at::Tensor& x, double p, bool train) {
  if (!(p > 0 && train)) return x;
  if (!x.device().is_cpu() || p >= 1 || !at::isFloatingType(x.scalar_type())) return torch::dropout(x, p, true);
  uint64_t seed = 0;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    seed = at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
  }
  const auto mdt = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor mask = at::empty(x.sizes(), x.options().dtype(mdt).memory_format(at::MemoryFormat::Contiguous));
  const int64_t n = mask.numel();
  AT_DISPATCH_FLOATING_TYPES(mdt, "t5_dropout_mask", [&] {
    scalar_t* m = mask.data_ptr<scalar_t>();
    const auto scale = static_cast<scalar_t>(1.0 / (1.0 - p));
    at::parallel_for(0, n, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        uint64_t z = seed + static_cast<uint64_t>(i + 1) * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        m[i] = static_cast<double>(z >> 11) * 0x1.0p-53 >= p ? scale : scalar_t(0);
      }
    });
  });
  return x * (mdt == x.scalar_type() ? mask : mask.to(x.scalar_type()));
}

EncoderOutput EncoderOutput::index_select(const at::Tensor& idx) const {
  return {hidden.index_select(0, idx), mask.index_select(0, idx)};
}

void DecoderCache::reorder(const at::Tensor& idx) {
  for (auto* v : {&self_k, &self_v, &cross_k, &cross_v})
    for (auto& t : *v)
      if (t.defined()) t = t.index_select(0, idx);
}

at::Tensor shift_right(const at::Tensor& labels, int64_t start, int64_t pad) {
  auto out = at::empty_like(labels);
  out.select(1, 0).fill_(start);
  if (labels.size(1) > 1) out.narrow(1, 1, labels.size(1) - 1).copy_(labels.narrow(1, 0, labels.size(1) - 1));
  out.masked_fill_(out.eq(-100), pad);
  return out;
}

at::Tensor relative_position_bucket(const at::Tensor& rel, bool bidirectional, int64_t num_buckets,
                                    int64_t max_distance) {
  at::Tensor buckets = at::zeros_like(rel);
  at::Tensor rp = rel;
  if (bidirectional) {
    num_buckets /= 2;
    buckets = buckets + rp.gt(0).to(at::kLong) * num_buckets;
    rp = rp.abs();
  } else {
    rp = -at::minimum(rp, at::zeros_like(rp));
  }
  int64_t max_exact = num_buckets / 2;
  at::Tensor is_small = rp.lt(max_exact);
  // float32 as HF (relative_position.float()); the division by max_exact and the log run in float32.
  at::Tensor large = (at::log(rp.to(at::kFloat) / static_cast<float>(max_exact)) /
                      static_cast<float>(std::log(static_cast<double>(max_distance) / max_exact)) *
                      static_cast<float>(num_buckets - max_exact))
                         .to(at::kLong) +
                     max_exact;
  large = at::minimum(large, at::full_like(large, num_buckets - 1));
  return buckets + at::where(is_small, rp, large);
}

// ---------------------------------------------------------------- LayerNorm
LayerNormImpl::LayerNormImpl(int64_t d, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({d}));
}

at::Tensor LayerNormImpl::forward(const at::Tensor& x) {
  at::Tensor xf = low_precision(x.scalar_type()) ? x.to(at::kFloat) : x;
  at::Tensor var = xf.pow(2).mean(-1, true);
  at::Tensor y = xf * at::rsqrt(var + eps);
  if (low_precision(weight.scalar_type())) y = y.to(weight.scalar_type());
  return weight * y;
}

// ---------------------------------------------------------------- Attention
AttentionImpl::AttentionImpl(const T5Config& cfg, bool has_bias, bool bidir)
    : n_heads(cfg.num_heads),
      d_kv(cfg.d_kv),
      num_buckets(cfg.relative_attention_num_buckets),
      max_distance(cfg.relative_attention_max_distance),
      bidirectional(bidir),
      dropout(cfg.dropout_rate) {
  int64_t inner = cfg.inner_dim();
  q = register_module("q", lora::Linear(cfg.d_model, inner));
  k = register_module("k", lora::Linear(cfg.d_model, inner));
  v = register_module("v", lora::Linear(cfg.d_model, inner));
  o = register_module("o", lora::Linear(inner, cfg.d_model));
  if (has_bias)
    relative_attention_bias =
        register_module("relative_attention_bias", torch::nn::Embedding(cfg.relative_attention_num_buckets, n_heads));
}

at::Tensor AttentionImpl::compute_bias(int64_t q_len, int64_t k_len, int64_t q_offset) const {
  auto lopt = at::TensorOptions().dtype(at::kLong).device(relative_attention_bias->weight.device());
  at::Tensor ctx = at::arange(q_offset, q_offset + q_len, lopt).unsqueeze(1);
  at::Tensor mem = at::arange(0, k_len, lopt).unsqueeze(0);
  at::Tensor buckets = relative_position_bucket(mem - ctx, bidirectional, num_buckets, max_distance);
  at::Tensor values = at::embedding(relative_attention_bias->weight, buckets);  // [q, k, H]
  return values.permute({2, 0, 1}).unsqueeze(0);                                // [1, H, q, k]
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& kv_src, const at::Tensor& bias,
                                  const lora::AdapterBatch* ad, at::Tensor* ck, at::Tensor* cv) {
  const int64_t B = x.size(0), T = x.size(1);
  auto heads = [&](const at::Tensor& t) { return t.view({B, -1, n_heads, d_kv}).transpose(1, 2); };
  at::Tensor qh = heads(q->forward(x, ad));
  at::Tensor kh, vh;
  if (kv_src.defined()) {
    if (ck && ck->defined()) {
      kh = *ck;
      vh = *cv;
    } else {
      kh = heads(k->forward(kv_src, ad));
      vh = heads(v->forward(kv_src, ad));
      if (ck) { *ck = kh; *cv = vh; }
    }
  } else {
    kh = heads(k->forward(x, ad));
    vh = heads(v->forward(x, ad));
    if (ck) {
      if (ck->defined()) {
        kh = at::cat({*ck, kh}, 2);
        vh = at::cat({*cv, vh}, 2);
      }
      *ck = kh;
      *cv = vh;
    }
  }
  at::Tensor scores = at::matmul(qh, kh.transpose(-1, -2));  // [B, H, T, K]; T5: no 1/sqrt(d) scaling
  if (bias.defined()) {
    if (bias.scalar_type() == scores.scalar_type()) scores.add_(bias);
    else scores = scores.to(bias.scalar_type()) + bias;  // bf16 autocast: float32 bias and mask, float32 softmax
  }
  at::Tensor w = low_precision(scores.scalar_type()) ? at::softmax(scores, -1, at::kFloat).to(scores.scalar_type())
                                                     : at::softmax(scores, -1);
  w = drop(w, dropout, is_training());
  at::Tensor out = at::matmul(w, vh).transpose(1, 2).reshape({B, T, n_heads * d_kv});
  return o->forward(out, ad);
}

// ---------------------------------------------------------------- layers
LayerSelfAttentionImpl::LayerSelfAttentionImpl(const T5Config& cfg, bool has_bias, bool bidir)
    : dropout(cfg.dropout_rate) {
  SelfAttention = register_module("SelfAttention", Attention(cfg, has_bias, bidir));
  layer_norm = register_module("layer_norm", LayerNorm(cfg.d_model, cfg.layer_norm_epsilon));
}

at::Tensor LayerSelfAttentionImpl::forward(const at::Tensor& h, const at::Tensor& bias, const lora::AdapterBatch* a,
                                           at::Tensor* ck, at::Tensor* cv) {
  at::Tensor y = SelfAttention->forward(layer_norm->forward(h), at::Tensor(), bias, a, ck, cv);
  return h + drop(y, dropout, is_training());
}

LayerCrossAttentionImpl::LayerCrossAttentionImpl(const T5Config& cfg) : dropout(cfg.dropout_rate) {
  EncDecAttention = register_module("EncDecAttention", Attention(cfg, false, true));
  layer_norm = register_module("layer_norm", LayerNorm(cfg.d_model, cfg.layer_norm_epsilon));
}

at::Tensor LayerCrossAttentionImpl::forward(const at::Tensor& h, const at::Tensor& enc, const at::Tensor& bias,
                                            const lora::AdapterBatch* a, at::Tensor* ck, at::Tensor* cv) {
  at::Tensor y = EncDecAttention->forward(layer_norm->forward(h), enc, bias, a, ck, cv);
  return h + drop(y, dropout, is_training());
}

DenseActDenseImpl::DenseActDenseImpl(const T5Config& cfg)
    : act(cfg.act()), gated(cfg.is_gated()), dropout(cfg.dropout_rate) {
  if (gated) {
    wi_0 = register_module("wi_0", lora::Linear(cfg.d_model, cfg.d_ff));
    wi_1 = register_module("wi_1", lora::Linear(cfg.d_model, cfg.d_ff));
  } else {
    wi = register_module("wi", lora::Linear(cfg.d_model, cfg.d_ff));
  }
  wo = register_module("wo", lora::Linear(cfg.d_ff, cfg.d_model));
}

at::Tensor DenseActDenseImpl::forward(const at::Tensor& x, const lora::AdapterBatch* a) {
  auto activate = [&](const at::Tensor& t) {
    if (act == "relu") return at::relu(t);
    if (act == "gelu_new") return at::gelu(t, "tanh");
    if (act == "gelu") return at::gelu(t);
    return at::silu(t);
  };
  at::Tensor h = gated ? activate(wi_0->forward(x, a)) * wi_1->forward(x, a) : activate(wi->forward(x, a));
  return wo->forward(drop(h, dropout, is_training()), a);
}

LayerFFImpl::LayerFFImpl(const T5Config& cfg) : dropout(cfg.dropout_rate) {
  DenseReluDense = register_module("DenseReluDense", DenseActDense(cfg));
  layer_norm = register_module("layer_norm", LayerNorm(cfg.d_model, cfg.layer_norm_epsilon));
}

at::Tensor LayerFFImpl::forward(const at::Tensor& h, const lora::AdapterBatch* a) {
  return h + drop(DenseReluDense->forward(layer_norm->forward(h), a), dropout, is_training());
}

BlockImpl::BlockImpl(const T5Config& cfg, bool is_decoder, bool has_bias) {
  layer = register_module("layer", torch::nn::ModuleList());
  self_attention = LayerSelfAttention(cfg, has_bias, !is_decoder);
  layer->push_back(self_attention);
  if (is_decoder) {
    cross_attention = LayerCrossAttention(cfg);
    layer->push_back(cross_attention);
  }
  ff = LayerFF(cfg);
  layer->push_back(ff);
}

at::Tensor BlockImpl::forward(const at::Tensor& h, const at::Tensor& self_bias, const at::Tensor& enc,
                              const at::Tensor& cross_bias, const lora::AdapterBatch* a, DecoderCache* cache,
                              size_t i) {
  at::Tensor x = self_attention->forward(h, self_bias, a, cache ? &cache->self_k[i] : nullptr,
                                         cache ? &cache->self_v[i] : nullptr);
  if (cross_attention)
    x = cross_attention->forward(x, enc, cross_bias, a, cache ? &cache->cross_k[i] : nullptr,
                                 cache ? &cache->cross_v[i] : nullptr);
  return ff->forward(x, a);
}

StackImpl::StackImpl(const T5Config& cfg, bool dec) : is_decoder(dec), dropout(cfg.dropout_rate) {
  block = register_module("block", torch::nn::ModuleList());
  int64_t n = dec ? cfg.num_decoder_layers : cfg.num_layers;
  for (int64_t i = 0; i < n; ++i) {
    blocks.push_back(Block(cfg, dec, i == 0));
    block->push_back(blocks.back());
  }
  final_layer_norm = register_module("final_layer_norm", LayerNorm(cfg.d_model, cfg.layer_norm_epsilon));
}

// ---------------------------------------------------------------- model
T5ForConditionalGenerationImpl::T5ForConditionalGenerationImpl(const T5Config& cfg) : cfg_(cfg) {
  cfg_.validate();
  shared = register_module("shared", torch::nn::Embedding(cfg.vocab_size, cfg.d_model));
  encoder = register_module("encoder", Stack(cfg, false));
  decoder = register_module("decoder", Stack(cfg, true));
  if (!cfg.tie_word_embeddings)
    lm_head = register_module("lm_head",
                              torch::nn::Linear(torch::nn::LinearOptions(cfg.d_model, cfg.vocab_size).bias(false)));
  for (auto& item : named_modules("", false)) {
    if (auto lin = std::dynamic_pointer_cast<lora::LinearImpl>(item.value())) {
      lin->path = item.key();
      linears_.emplace(item.key(), lora::Linear(lin));
    }
  }
}

void T5ForConditionalGenerationImpl::check_adapters(const lora::AdapterBatch* a, int64_t batch) const {
  if (!a) return;
  for (const auto& kv : a->adapters) {
    auto it = linears_.find(kv.first);
    if (it == linears_.end())
      throw ArgumentError("adapters: unknown module path \"" + kv.first +
                          "\" (expected e.g. encoder.block.0.layer.0.SelfAttention.q)");
    const auto& A = kv.second.first;
    const auto& Bm = kv.second.second;
    const auto& lin = *it->second;
    if (!A.defined() || !Bm.defined() || A.dim() != 3 || Bm.dim() != 3 || A.size(0) != batch ||
        Bm.size(0) != batch || A.size(2) != lin.in_features || Bm.size(1) != lin.out_features ||
        Bm.size(2) != A.size(1))
      throw ArgumentError("adapters[" + kv.first + "]: expected A [" + std::to_string(batch) + ", r, " +
                          std::to_string(lin.in_features) + "] and B [" + std::to_string(batch) + ", " +
                          std::to_string(lin.out_features) + ", r], got A " +
                          (A.defined() ? c10::str(A.sizes()) : std::string("undefined")) + ", B " +
                          (Bm.defined() ? c10::str(Bm.sizes()) : std::string("undefined")));
  }
}

// ---------------------------------------------------------------- model: encode / decode with the token
// embeddings already looked up (undefined: look them up here). forward() embeds encoder and decoder ids in one
// lookup when training, so the `shared` weight gets one dense embedding gradient instead of two (each is a
// zero-filled [vocab, d_model] tensor plus an add).
namespace {

EncoderOutput encode_embedded(T5ForConditionalGenerationImpl& m, const T5Inputs& in, const at::Tensor& ids,
                              const at::Tensor& embedded) {
  const auto dev = m.device();
  const auto dt = m.dtype();
  const int64_t B = ids.size(0), S = ids.size(1);
  m.check_adapters(in.adapters, B);
  at::Tensor mask = to_bool_mask(in.attention_mask, B, S, "attention_mask", dev);
  at::Tensor x = embedded.defined() ? embedded : at::embedding(m.shared->weight, ids);
  if (in.prefix_embeds.defined()) {
    const auto& p = in.prefix_embeds;
    if (p.dim() != 3 || p.size(0) != B || p.size(2) != m.config().d_model)
      throw ArgumentError("prefix_embeds: expected [" + std::to_string(B) + ", P, " + std::to_string(m.config().d_model) +
                          "], got " + c10::str(p.sizes()));
    at::Tensor pm = to_bool_mask(in.prefix_mask, B, p.size(1), "prefix_mask", dev);
    x = at::cat({p.to(dev, dt), x}, 1);
    mask = at::cat({pm, mask}, 1);
  }
  x = drop(x, m.config().dropout_rate, m.is_training());
  const int64_t L = x.size(1);
  at::Tensor bias = m.encoder->blocks[0]->self_attention->SelfAttention->compute_bias(L, L, 0) + additive_mask(mask, dt);
  for (size_t i = 0; i < m.encoder->blocks.size(); ++i)
    x = m.encoder->blocks[i]->forward(x, bias, at::Tensor(), at::Tensor(), in.adapters, nullptr, i);
  x = drop(m.encoder->final_layer_norm->forward(x), m.config().dropout_rate, m.is_training());
  if (in.extra_encoder_states.defined()) {
    const auto& e = in.extra_encoder_states;
    if (e.dim() != 3 || e.size(0) != B || e.size(2) != m.config().d_model)
      throw ArgumentError("extra_encoder_states: expected [" + std::to_string(B) + ", E, " +
                          std::to_string(m.config().d_model) + "], got " + c10::str(e.sizes()));
    at::Tensor em = to_bool_mask(in.extra_encoder_mask, B, e.size(1), "extra_encoder_mask", dev);
    x = at::cat({x, e.to(dev, dt)}, 1);
    mask = at::cat({mask, em}, 1);
  }
  return {x, mask};
}

at::Tensor decode_hidden_embedded(T5ForConditionalGenerationImpl& m, const at::Tensor& ids, const EncoderOutput& enc,
                                  const lora::AdapterBatch* ad, DecoderCache* cache, const at::Tensor& embedded) {
  const auto dt = m.dtype();
  const int64_t B = ids.size(0), T = ids.size(1);
  if (enc.hidden.size(0) != B)
    throw ArgumentError("decoder_input_ids: batch " + std::to_string(B) + " differs from the encoder batch " +
                        std::to_string(enc.hidden.size(0)));
  m.check_adapters(ad, B);
  const size_t n = m.decoder->blocks.size();
  int64_t past = 0;
  if (cache) {
    if (cache->self_k.size() != n) {
      cache->self_k.assign(n, at::Tensor());
      cache->self_v.assign(n, at::Tensor());
      cache->cross_k.assign(n, at::Tensor());
      cache->cross_v.assign(n, at::Tensor());
      cache->length = 0;
    }
    past = cache->length;
  }
  const int64_t K = past + T;
  at::Tensor x = drop(embedded.defined() ? embedded : at::embedding(m.shared->weight, ids), m.config().dropout_rate,
                      m.is_training());
  at::Tensor self_bias = m.decoder->blocks[0]->self_attention->SelfAttention->compute_bias(T, K, past);
  if (T > 1) {  // causal: query past+i sees keys 0..past+i
    auto lopt = at::TensorOptions().dtype(at::kLong).device(m.device());
    at::Tensor allowed = at::arange(0, K, lopt).unsqueeze(0).le(at::arange(past, K, lopt).unsqueeze(1));
    at::Tensor cm = at::zeros({T, K}, self_bias.options());
    cm.masked_fill_(allowed.logical_not(), lowest(dt));
    self_bias = self_bias + cm;
  }
  at::Tensor cross_bias = additive_mask(enc.mask, dt);
  for (size_t i = 0; i < n; ++i) x = m.decoder->blocks[i]->forward(x, self_bias, enc.hidden, cross_bias, ad, cache, i);
  if (cache) cache->length = K;
  return drop(m.decoder->final_layer_norm->forward(x), m.config().dropout_rate, m.is_training());
}

}  // namespace

EncoderOutput T5ForConditionalGenerationImpl::encode(const T5Inputs& in) {
  return encode_embedded(*this, in, check_ids(in.input_ids, "input_ids", cfg_.vocab_size).to(device()), at::Tensor());
}

at::Tensor T5ForConditionalGenerationImpl::decode_hidden(const at::Tensor& dec_ids, const EncoderOutput& enc,
                                                         const lora::AdapterBatch* ad, DecoderCache* cache) {
  return decode_hidden_embedded(*this, check_ids(dec_ids, "decoder_input_ids", cfg_.vocab_size).to(device()), enc, ad,
                                cache, at::Tensor());
}

at::Tensor T5ForConditionalGenerationImpl::lm_logits(const at::Tensor& h) {
  if (cfg_.tie_word_embeddings) return torch::linear(h * std::pow(static_cast<double>(cfg_.d_model), -0.5), shared->weight);
  return torch::linear(h, lm_head->weight);
}

at::Tensor T5ForConditionalGenerationImpl::decode(const at::Tensor& dec_ids, const EncoderOutput& enc,
                                                  const lora::AdapterBatch* ad, DecoderCache* cache) {
  return lm_logits(decode_hidden(dec_ids, enc, ad, cache));
}

at::Tensor T5ForConditionalGenerationImpl::loss_from_logits(const at::Tensor& logits, const at::Tensor& labels) {
  if (labels.dim() != 2 || logits.dim() != 3 || labels.size(0) != logits.size(0) || labels.size(1) != logits.size(1))
    throw ArgumentError("labels: expected [" + std::to_string(logits.size(0)) + ", " + std::to_string(logits.size(1)) +
                        "], got " + c10::str(labels.sizes()));
  at::Tensor lf = low_precision(logits.scalar_type()) ? logits.to(at::kFloat) : logits;
  return at::cross_entropy_loss(lf.reshape({-1, lf.size(-1)}), labels.reshape({-1}).to(logits.device(), at::kLong),
                                {}, at::Reduction::Mean, -100);
}

T5Output T5ForConditionalGenerationImpl::forward(const T5Inputs& in) {
  at::Tensor dec = in.decoder_input_ids;
  if (!dec.defined()) {
    if (!in.labels.defined()) throw ArgumentError("forward: give decoder_input_ids or labels");
    if (in.labels.dim() != 2) throw ArgumentError("labels: expected a [B, T] tensor");
    dec = shift_right(in.labels.to(at::kLong), cfg_.decoder_start_token_id, cfg_.pad_token_id);
  }
  at::Tensor enc_ids = check_ids(in.input_ids, "input_ids", cfg_.vocab_size).to(device());
  at::Tensor dec_ids = check_ids(dec, "decoder_input_ids", cfg_.vocab_size).to(device());
  at::Tensor enc_emb, dec_emb;
  if (at::GradMode::is_enabled() && shared->weight.requires_grad()) {
    // One lookup for both id tensors: one dense gradient for the shared embedding (see model.h).
    at::Tensor both = at::embedding(shared->weight, at::cat({enc_ids.reshape({-1}), dec_ids.reshape({-1})}));
    enc_emb = both.narrow(0, 0, enc_ids.numel()).view({enc_ids.size(0), enc_ids.size(1), -1});
    dec_emb = both.narrow(0, enc_ids.numel(), dec_ids.numel()).view({dec_ids.size(0), dec_ids.size(1), -1});
  }
  EncoderOutput enc = encode_embedded(*this, in, enc_ids, enc_emb);
  T5Output out;
  out.logits = lm_logits(decode_hidden_embedded(*this, dec_ids, enc, in.adapters, nullptr, dec_emb));
  if (in.labels.defined()) out.loss = loss_from_logits(out.logits, in.labels);
  out.encoder_hidden = enc.hidden;
  out.encoder_mask = enc.mask;
  return out;
}

void T5ForConditionalGenerationImpl::init_weights(uint64_t seed) {
  torch::NoGradGuard ng;
  auto gen = at::detail::createCPUGenerator(seed);
  const double f = cfg_.initializer_factor;
  const double dm = static_cast<double>(cfg_.d_model);
  auto ends = [](const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
  };
  for (auto& p : named_parameters(true)) {
    const std::string& name = p.key();
    at::Tensor& t = p.value();
    if (name.find(".lora_") != std::string::npos) continue;
    double sd = -1;
    if (ends(name, "layer_norm.weight")) {
      t.fill_(f);
      continue;
    } else if (name == "shared.weight" || name == "lm_head.weight") {
      sd = f;
    } else if (ends(name, ".q.weight")) {
      sd = f * std::pow(dm * cfg_.d_kv, -0.5);
    } else if (ends(name, ".k.weight") || ends(name, ".v.weight")) {
      sd = f * std::pow(dm, -0.5);
    } else if (ends(name, ".o.weight")) {
      sd = f * std::pow(static_cast<double>(cfg_.num_heads * cfg_.d_kv), -0.5);
    } else if (ends(name, "relative_attention_bias.weight")) {
      sd = f * std::pow(dm, -0.5);
    } else if (ends(name, ".wi.weight") || ends(name, ".wi_0.weight") || ends(name, ".wi_1.weight")) {
      sd = f * std::pow(dm, -0.5);
    } else if (ends(name, ".wo.weight")) {
      sd = f * std::pow(static_cast<double>(cfg_.d_ff), -0.5);
    } else {
      throw std::logic_error("init_weights: no rule for " + name);
    }
    at::Tensor tmp = at::empty(t.sizes(), at::kFloat);
    tmp.normal_(0.0, sd, gen);
    t.copy_(tmp);
  }
}

// ---------------------------------------------------------------- HF weights
NamedTensors hf_state(const T5ForConditionalGenerationImpl& model) {
  NamedTensors out;
  for (const auto& p : model.named_parameters(true)) {
    if (p.key().find(".lora_A.") != std::string::npos || p.key().find(".lora_B.") != std::string::npos) continue;
    out.emplace_back(p.key(), p.value());
  }
  return out;
}

void load_hf_weights(T5ForConditionalGenerationImpl& model, const NamedTensors& tensors, const std::string& source) {
  std::map<std::string, at::Tensor> params;
  for (auto& kv : hf_state(model)) params.emplace(kv.first, kv.second);
  std::map<std::string, const at::Tensor*> given;
  for (const auto& kv : tensors) {
    if (!given.emplace(kv.first, &kv.second).second)
      throw ArgumentError(source + ": tensor " + kv.first + " appears twice");
  }
  const at::Tensor* shared_src = given.count("shared.weight") ? given["shared.weight"] : nullptr;
  auto check_float = [&](const std::string& name, const at::Tensor& t) {
    if (!at::isFloatingType(t.scalar_type()))
      throw ArgumentError(source + ": tensor " + name + " has dtype " + std::string(c10::toString(t.scalar_type())) +
                          ", expected a floating type");
  };
  torch::NoGradGuard ng;
  std::set<std::string> loaded;
  for (const auto& kv : tensors) {
    const std::string& name = kv.first;
    const at::Tensor& t = kv.second;
    check_float(name, t);
    bool duplicate = name == "encoder.embed_tokens.weight" || name == "decoder.embed_tokens.weight" ||
                     (name == "lm_head.weight" && model.config().tie_word_embeddings);
    if (duplicate) {
      if (!shared_src) throw ArgumentError(source + ": tensor " + name + " present but shared.weight is missing");
      if (!t.sizes().equals(shared_src->sizes()) || !at::equal(t.to(at::kFloat), shared_src->to(at::kFloat)))
        throw ArgumentError(source + ": tensor " + name + " differs from shared.weight" +
                            (name == "lm_head.weight" ? " but the config ties word embeddings" : ""));
      continue;
    }
    if (name == "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight") continue;
    auto it = params.find(name);
    if (it == params.end()) throw ArgumentError(source + ": unexpected tensor " + name + " (not a parameter of this T5)");
    if (!t.sizes().equals(it->second.sizes()))
      throw ArgumentError(source + ": tensor " + name + " has shape " + c10::str(t.sizes()) + ", expected " +
                          c10::str(it->second.sizes()));
    it->second.copy_(t);
    loaded.insert(name);
  }
  std::string missing;
  int nmiss = 0;
  for (const auto& kv : params)
    if (!loaded.count(kv.first)) {
      if (nmiss < 5) missing += (nmiss ? ", " : "") + kv.first;
      ++nmiss;
    }
  if (nmiss)
    throw ArgumentError(source + ": missing " + std::to_string(nmiss) + " tensor(s): " + missing +
                        (nmiss > 5 ? ", ..." : ""));
}

}  // namespace instill::t5
