// The T5 side of training and evaluation that the addon (napi/t5_wrap.cc) calls: batch validation, the loss
// function handed to train_steps, per-batch evaluation loss, and a greedy decoder WITHOUT the KV cache (every step
// re-runs the decoder over the whole prefix), used by the benchmark to measure what the cache buys and by the tests
// as an independent check of the cached decoder.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "t5/model.h"
#include "train/trainer.h"

namespace instill::train {

// Validates one batch for `cfg` and converts ids to int64 on `device`:
//   input_ids [B, S] and attention_mask [B, S] (same shape, B, S >= 1), labels [B, T] (T >= 1) when present or
//   required; integer dtypes only (ArgumentError otherwise); ids in [0, vocab_size), mask in {0, 1}, labels in
//   [0, vocab_size) or -100 (RangeError otherwise, naming `arg` and the offending value).
Batch check_batch(const t5::T5Config& cfg, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                  const at::Tensor& labels, const std::string& arg, bool labels_required, at::Device device);

// Mean token loss of the model on a batch (the model's mode decides dropout).
LossFn t5_loss_fn(t5::T5ForConditionalGenerationImpl& model);

// Mean token loss per batch in eval mode, without gradients (the model's previous mode is restored).
std::vector<double> t5_eval_loss(t5::T5ForConditionalGenerationImpl& model, const std::vector<Batch>& batches);

// Greedy decoding that recomputes the decoder over the full prefix at every step (no DecoderCache). Same output
// format as t5::greedy_search: [B, L] int64, EOS included when produced, pad after it.
at::Tensor greedy_generate_uncached(t5::T5ForConditionalGenerationImpl& model, const t5::T5Inputs& inputs,
                                    int64_t max_new_tokens);

// Rows of generate() output cut at the first EOS (EOS excluded), as plain id lists.
std::vector<std::vector<int64_t>> strip_generated(const at::Tensor& ids, int64_t eos_token_id);

}  // namespace instill::train
