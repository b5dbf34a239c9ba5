// T5ForConditionalGeneration in LibTorch, computing exactly what Hugging Face's
// `T5ForConditionalGeneration` computes (checked against HF outputs in tests/test_t5_parity.cpp).
//
// Public API (namespace instill::t5; include "t5/model.h"):
//
//   T5Config cfg = T5Config::from_json(text, path) | preset("tiny"|"small"|"base", vocab);  (t5/config.h)
//   T5ForConditionalGeneration model(cfg);        // a ModuleHolder (TORCH_MODULE); float32, uninitialized
//   model->init_weights(seed);                    // HF _init_weights (initializer_factor from cfg)
//   model->to(torch::kBFloat16);                  // any float dtype; norms and softmax run in >= float32
//   model->train() / model->eval();               // dropout only in train mode
//
//   Parameters are registered under HF names: shared.weight,
//   encoder.block.{i}.layer.0.SelfAttention.{q,k,v,o}.weight,
//   encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight, encoder.block.{i}.layer.0.layer_norm.weight,
//   encoder.block.{i}.layer.1.DenseReluDense.{wi | wi_0,wi_1, wo}.weight, encoder.final_layer_norm.weight,
//   decoder.block.{i}.layer.{0 SelfAttention, 1 EncDecAttention, 2 DenseReluDense}..., decoder.final_layer_norm.weight,
//   lm_head.weight (untied only). LoRA parameters (lora/lora.h) appear as <linear path>.lora_{A,B}.weight.
//
//   T5Inputs in;  in.input_ids [B,S] int64; in.attention_mask [B,S] (nonzero = token; undefined = all ones);
//     in.decoder_input_ids [B,T] and/or in.labels [B,T] (-100 = ignored; decoder inputs default to
//     shift_right(labels) with decoder_start_token_id, -100 -> pad, as HF);
//     in.prefix_embeds [B,P,d_model] + in.prefix_mask [B,P]: soft prompt prepended to the embedded input (DIO);
//     in.extra_encoder_states [B,E,d_model] + in.extra_encoder_mask [B,E]: appended to the encoder output
//       for cross-attention only (TAGI instruction fusion);
//     in.adapters: const lora::AdapterBatch* with one LoRA adapter per example (lora/linear.h).
//   T5Output out = model->forward(in);   // out.logits [B,T,V], out.loss (scalar, mean CE over labels != -100;
//                                        // undefined without labels), out.encoder_hidden [B,P+S+E,d], out.encoder_mask
//   EncoderOutput enc = model->encode(in);                         // once per batch
//   at::Tensor logits = model->decode(dec_ids, enc, adapters, &cache);  // incremental with a DecoderCache
//
//   Weights: load_hf_weights(model, named, source), hf_state(model), save_pretrained(model, dir),
//   from_pretrained(dir, dtype) (t5/pretrained.h). Generation and option scoring: t5/generate.h.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lora/linear.h"
#include "t5/config.h"

namespace instill::t5 {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct T5Inputs {
  at::Tensor input_ids;       // [B, S] int64
  at::Tensor attention_mask;  // [B, S], nonzero = attend; undefined = all ones
  at::Tensor decoder_input_ids;  // [B, T] int64 (optional when labels are given)
  at::Tensor labels;             // [B, T] int64, -100 = ignore (optional)
  at::Tensor prefix_embeds;      // [B, P, d_model] soft prompt (optional)
  at::Tensor prefix_mask;        // [B, P] (optional; all ones)
  at::Tensor extra_encoder_states;  // [B, E, d_model] appended to the encoder output (optional)
  at::Tensor extra_encoder_mask;    // [B, E] (optional; all ones)
  const lora::AdapterBatch* adapters = nullptr;  // per-example LoRA (optional)
};

struct EncoderOutput {
  at::Tensor hidden;  // [B, P+S+E, d_model]: final-normed encoder states (+ extra states)
  at::Tensor mask;    // [B, P+S+E] bool
  EncoderOutput index_select(const at::Tensor& batch_index) const;
};

struct T5Output {
  at::Tensor logits;  // [B, T, V]
  at::Tensor loss;    // scalar (labels given) or undefined
  at::Tensor encoder_hidden;
  at::Tensor encoder_mask;
};

// Incremental decoding state: per decoder layer self-attention K/V [B,H,t,d_kv] (grows) and
// cross-attention K/V (computed on the first step, then reused).
struct DecoderCache {
  std::vector<at::Tensor> self_k, self_v, cross_k, cross_v;
  int64_t length = 0;  // decoder positions already processed
  // Reorders the batch (beam search): self and cross K/V rows.
  void reorder(const at::Tensor& batch_index);
};

// Inverted dropout (kept units scaled by 1 / (1 - p)); identity unless train and p > 0. On CPU the mask comes from a
// counter-based generator seeded by one draw of LibTorch's default generator (see model.cpp).
at::Tensor apply_dropout(const at::Tensor& x, double p, bool train);

// HF's shift_right: [start, labels[:, :-1]] with -100 replaced by pad.
at::Tensor shift_right(const at::Tensor& labels, int64_t decoder_start_token_id, int64_t pad_token_id);
// HF's _relative_position_bucket (exposed for tests).
at::Tensor relative_position_bucket(const at::Tensor& relative_position, bool bidirectional, int64_t num_buckets,
                                    int64_t max_distance);

struct LayerNormImpl : torch::nn::Module {
  LayerNormImpl(int64_t d, double eps);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;
  double eps;
};
TORCH_MODULE(LayerNorm);

struct AttentionImpl : torch::nn::Module {
  AttentionImpl(const T5Config& cfg, bool has_relative_bias, bool bidirectional);
  // Position bias [1, H, q_len, k_len] for queries at q_offset.. and keys at 0..k_len-1.
  at::Tensor compute_bias(int64_t q_len, int64_t k_len, int64_t q_offset) const;
  // x [B,T,d]; kv_src: encoder states for cross-attention (undefined: self-attention);
  // bias: additive [B or 1, H or 1, T, K]; cache_k/cache_v: optional incremental cache slots.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& kv_src, const at::Tensor& bias,
                     const lora::AdapterBatch* adapters, at::Tensor* cache_k = nullptr, at::Tensor* cache_v = nullptr);
  lora::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  torch::nn::Embedding relative_attention_bias{nullptr};
  int64_t n_heads, d_kv, num_buckets, max_distance;
  bool bidirectional;
  double dropout;
};
TORCH_MODULE(Attention);

struct LayerSelfAttentionImpl : torch::nn::Module {
  LayerSelfAttentionImpl(const T5Config& cfg, bool has_relative_bias, bool bidirectional);
  at::Tensor forward(const at::Tensor& h, const at::Tensor& bias, const lora::AdapterBatch* a, at::Tensor* ck,
                     at::Tensor* cv);
  Attention SelfAttention{nullptr};
  LayerNorm layer_norm{nullptr};
  double dropout;
};
TORCH_MODULE(LayerSelfAttention);

struct LayerCrossAttentionImpl : torch::nn::Module {
  explicit LayerCrossAttentionImpl(const T5Config& cfg);
  at::Tensor forward(const at::Tensor& h, const at::Tensor& enc, const at::Tensor& bias, const lora::AdapterBatch* a,
                     at::Tensor* ck, at::Tensor* cv);
  Attention EncDecAttention{nullptr};
  LayerNorm layer_norm{nullptr};
  double dropout;
};
TORCH_MODULE(LayerCrossAttention);

struct DenseActDenseImpl : torch::nn::Module {
  explicit DenseActDenseImpl(const T5Config& cfg);
  at::Tensor forward(const at::Tensor& x, const lora::AdapterBatch* a);
  lora::Linear wi{nullptr}, wi_0{nullptr}, wi_1{nullptr}, wo{nullptr};
  std::string act;
  bool gated;
  double dropout;
};
TORCH_MODULE(DenseActDense);

struct LayerFFImpl : torch::nn::Module {
  explicit LayerFFImpl(const T5Config& cfg);
  at::Tensor forward(const at::Tensor& h, const lora::AdapterBatch* a);
  DenseActDense DenseReluDense{nullptr};
  LayerNorm layer_norm{nullptr};
  double dropout;
};
TORCH_MODULE(LayerFF);

struct BlockImpl : torch::nn::Module {
  BlockImpl(const T5Config& cfg, bool is_decoder, bool has_relative_bias);
  at::Tensor forward(const at::Tensor& h, const at::Tensor& self_bias, const at::Tensor& enc,
                     const at::Tensor& cross_bias, const lora::AdapterBatch* a, DecoderCache* cache, size_t index);
  torch::nn::ModuleList layer{nullptr};
  LayerSelfAttention self_attention{nullptr};
  LayerCrossAttention cross_attention{nullptr};  // decoder only
  LayerFF ff{nullptr};
};
TORCH_MODULE(Block);

struct StackImpl : torch::nn::Module {
  StackImpl(const T5Config& cfg, bool is_decoder);
  torch::nn::ModuleList block{nullptr};
  std::vector<Block> blocks;
  LayerNorm final_layer_norm{nullptr};
  bool is_decoder;
  double dropout;
};
TORCH_MODULE(Stack);

struct T5ForConditionalGenerationImpl : torch::nn::Module {
  explicit T5ForConditionalGenerationImpl(const T5Config& cfg);

  T5Output forward(const T5Inputs& in);
  EncoderOutput encode(const T5Inputs& in);
  // Decoder logits [B,T,V]. With a cache, decoder_input_ids holds only the new positions.
  at::Tensor decode(const at::Tensor& decoder_input_ids, const EncoderOutput& enc,
                    const lora::AdapterBatch* adapters = nullptr, DecoderCache* cache = nullptr);
  // Decoder final hidden states [B,T,d] (before the tied-embedding scaling), and the LM head.
  at::Tensor decode_hidden(const at::Tensor& decoder_input_ids, const EncoderOutput& enc,
                           const lora::AdapterBatch* adapters = nullptr, DecoderCache* cache = nullptr);
  at::Tensor lm_logits(const at::Tensor& decoder_hidden);
  // Mean cross-entropy of logits [B,T,V] against labels [B,T], ignoring -100 (computed in >= float32).
  static at::Tensor loss_from_logits(const at::Tensor& logits, const at::Tensor& labels);

  // HF _init_weights with cfg.initializer_factor, from a private generator seeded with `seed`.
  void init_weights(uint64_t seed);

  const T5Config& config() const { return cfg_; }
  at::ScalarType dtype() const { return shared->weight.scalar_type(); }
  at::Device device() const { return shared->weight.device(); }
  // Every projection by full path ("encoder.block.0.layer.0.SelfAttention.q", ...).
  const std::map<std::string, lora::Linear>& linears() const { return linears_; }
  std::map<std::string, lora::Linear>& linears() { return linears_; }
  // Throws ArgumentError when a path is unknown or a batch size differs from `batch`.
  void check_adapters(const lora::AdapterBatch* a, int64_t batch) const;

  torch::nn::Embedding shared{nullptr};
  Stack encoder{nullptr}, decoder{nullptr};
  torch::nn::Linear lm_head{nullptr};  // untied only

 private:
  T5Config cfg_;
  std::map<std::string, lora::Linear> linears_;
};
TORCH_MODULE(T5ForConditionalGeneration);
using T5Model = T5ForConditionalGeneration;

// Base-model parameters in HF naming (no LoRA, no duplicated embedding keys, no lm_head when tied).
NamedTensors hf_state(const T5ForConditionalGenerationImpl& model);
// Loads HF-named tensors by name (float16/bfloat16/float32/float64 converted to the model dtype).
// Accepts the optional duplicates encoder.embed_tokens.weight / decoder.embed_tokens.weight (and lm_head.weight
// when tied) if equal to shared.weight, and ignores decoder.block.0.layer.1.EncDecAttention.relative_attention_bias
// (an unused tensor in the original t5 checkpoints, which HF ignores too). Unknown or missing keys and shape
// mismatches throw ArgumentError naming the tensor and `source`.
void load_hf_weights(T5ForConditionalGenerationImpl& model, const NamedTensors& tensors,
                     const std::string& source = "weights");

}  // namespace instill::t5
