// Decoding and rank classification for T5ForConditionalGeneration, with an incremental KV cache
// (decoder self-attention K/V grow by one position per step; cross-attention K/V are computed once).
//
//   GenerateOptions opt; opt.max_new_tokens = 64; opt.num_beams = 4;
//   at::Tensor ids = generate(*model, inputs, opt);  // [B, L] int64, no decoder start id, pad after EOS
//   OptionScores s = score_options(*model, inputs, options);  // options [B, K, T], -100 after each option
//
// Both accept everything T5Inputs carries (attention mask, soft prompt, extra encoder states, per-example
// adapters). generate() runs without autograd; score_options() follows the caller's grad mode (use
// torch::NoGradGuard for evaluation).
#pragma once
#include <torch/torch.h>

#include "t5/model.h"

namespace instill::t5 {

struct GenerateOptions {
  int64_t max_new_tokens = 20;
  int64_t num_beams = 1;        // 1: greedy; > 1: beam search
  double length_penalty = 1.0;  // beam score = sum log p / generated_length ** length_penalty
  bool early_stopping = false;  // HF default: stop an example when no open beam can beat its worst kept hypothesis
};

// Greedy or beam search (as transformers' generate with do_sample=False and BeamSearchScorer): for each example
// the best sequence, EOS included when it ended with one; rows are right-padded with pad_token_id; L is the longest
// row (at most max_new_tokens).
at::Tensor generate(T5ForConditionalGenerationImpl& model, const T5Inputs& inputs, const GenerateOptions& opt = {});

at::Tensor greedy_search(T5ForConditionalGenerationImpl& model, const EncoderOutput& enc,
                         const lora::AdapterBatch* adapters, int64_t max_new_tokens);
at::Tensor beam_search(T5ForConditionalGenerationImpl& model, const EncoderOutput& enc,
                       const lora::AdapterBatch* adapters, const GenerateOptions& opt);

struct OptionScores {
  at::Tensor sum;     // [B, K] float64: sum of log p(token) over the option's tokens
  at::Tensor mean;    // [B, K] float64: sum / count (0 for empty options)
  at::Tensor count;   // [B, K] int64: tokens scored
};
// Rank classification: the encoder runs once per example; option k of example b is scored as labels
// options[b, k, :] (entries -100 ignored; include EOS in the option when it should count).
// chunk_rows > 0 bounds how many (example, option) rows one decoder pass holds.
OptionScores score_options(T5ForConditionalGenerationImpl& model, const T5Inputs& inputs, const at::Tensor& options,
                           int64_t chunk_rows = 0);

}  // namespace instill::t5
