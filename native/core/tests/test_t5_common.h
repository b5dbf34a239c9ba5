// Helpers shared by the T5 / LoRA tests.
#pragma once
#include <torch/torch.h>

#include <string>

#include "t5/config.h"
#include "t5/model.h"

namespace t5test {

// A very small config so float64 finite differences and exhaustive searches stay fast.
inline instill::t5::T5Config micro_config(bool gated = true, bool tied = false, int64_t vocab = 23) {
  instill::t5::T5Config c;
  c.vocab_size = vocab;
  c.d_model = 16;
  c.d_kv = 4;
  c.d_ff = 24;
  c.num_heads = 2;
  c.num_layers = 2;
  c.num_decoder_layers = 2;
  c.relative_attention_num_buckets = 8;
  c.relative_attention_max_distance = 12;
  c.dropout_rate = 0.0;
  c.feed_forward_proj = gated ? "gated-gelu" : "relu";
  c.tie_word_embeddings = tied;
  return c;
}

// Random ids in [2, vocab) with right padding: row b has length len[b]; mask accordingly.
inline void random_batch(int64_t B, int64_t S, int64_t vocab, uint64_t seed, at::Tensor& ids, at::Tensor& mask) {
  auto gen = at::detail::createCPUGenerator(seed);
  ids = at::randint(2, vocab, {B, S}, gen, at::kLong);
  mask = at::ones({B, S}, at::kLong);
  for (int64_t b = 1; b < B; ++b) {
    int64_t len = std::max<int64_t>(1, S - 2 * b);
    mask[b].narrow(0, len, S - len).zero_();
    ids[b].narrow(0, len, S - len).zero_();
  }
}

inline double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace t5test
