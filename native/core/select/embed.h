// Instruction embedders for INSTA task selection, pure LibTorch.
//
//   pool_hidden(hidden [B,S,d], mask [B,S], Pool::Mean | Pool::FirstLast) -> [B,d]
//       Mean: sum over positions with mask != 0 divided by their count (a row without tokens gives zeros).
//       FirstLast: (h[b,0] + h[b,last_b]) / 2 with last_b the last position whose mask is nonzero, as TAGI's code
//       pools instruction states (last_b = 0 for a row without tokens).
//
//   EncoderEmbedder emb(checkpoint_dir, Pool::Mean);   // from_pretrained once, eval mode, float32
//   at::Tensor v = emb.embed(ids [B,S] int, mask [B,S]);  // pooled final-normed T5 encoder states, float32 [B,d_model]
//
//   info_nce(a [N,d], b [N,d], temperature, symmetric) -> scalar: InfoNCE with in-batch negatives on cosine
//       similarities: rows are L2-normalized, logits = a_n b_n^T / temperature, the positive of row i is column i;
//       symmetric averages the a->b and b->a cross-entropies (CLIP / SimCSE style).
//
//   SentenceEncoder: a small sentence encoder trained by instill itself for the `trained` embedder.
//       kind "words": token embeddings + learned positions + `layers` post-LN transformer encoder layers, final
//                     LayerNorm, mean/first-last pooling, a linear projection to `dim`. Vocabulary and tokenization
//                     live in TypeScript (ids arrive here); pad id 0.
//       kind "t5":    the encoder of a T5 checkpoint (initialized from it), pooled; the whole model is kept so
//                     the folder stays a valid T5 checkpoint (its decoder is untouched by training).
//   train_contrastive(enc, ids [N,S], mask [N,S], groups [N], options): AdamW on InfoNCE; each step draws
//       `batch` distinct groups having >= 2 views and two distinct views of each (positives: views of one group,
//       negatives: the other groups in the batch).
//   save_sentence_encoder(enc, dir) / load_sentence_encoder(dir): embedder.json (config) + embedder.safetensors
//       (kind "words") or config.json + model.safetensors (kind "t5", an HF T5 checkpoint).
#pragma once
#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "t5/model.h"

namespace instill::select {

enum class Pool { Mean, FirstLast };
Pool pool_from_name(const std::string& name, const std::string& arg = "pool");
std::string pool_name(Pool p);

at::Tensor pool_hidden(const at::Tensor& hidden, const at::Tensor& mask, Pool pool);

at::Tensor info_nce(const at::Tensor& a, const at::Tensor& b, double temperature, bool symmetric = true);

// Checks ids [B,S] (integer) and mask [B,S] (same shape, or undefined = all ones); returns {ids int64, mask bool}.
std::pair<at::Tensor, at::Tensor> check_ids_mask(const at::Tensor& ids, const at::Tensor& mask, int64_t vocab_size);

class EncoderEmbedder {
 public:
  EncoderEmbedder(const std::string& dir, Pool pool);
  at::Tensor embed(const at::Tensor& ids, const at::Tensor& mask);
  int64_t d_model() const { return model_->config().d_model; }
  int64_t vocab_size() const { return model_->config().vocab_size; }
  Pool pool() const { return pool_; }

 private:
  t5::T5ForConditionalGeneration model_{nullptr};
  Pool pool_;
};

struct SentenceEncoderConfig {
  std::string kind = "words";  // "words" | "t5"
  int64_t vocab_size = 0;      // words: vocabulary size (ids 0 = pad); t5: from the checkpoint
  int64_t dim = 128;           // words: output (and model) width; t5: d_model
  int64_t layers = 1;
  int64_t heads = 4;
  int64_t ff = 256;
  int64_t max_len = 128;       // words: learned positions; longer inputs are refused
  double dropout = 0.1;        // words: in the transformer layers (training only)
  Pool pool = Pool::Mean;
  double temperature = 0.05;
  void validate() const;
  std::string to_json() const;
  static SentenceEncoderConfig from_json(const std::string& text, const std::string& source);
};

struct SentenceEncoderImpl : torch::nn::Module {
  // kind "words": a fresh model initialized from `seed`; kind "t5": `t5_dir` is loaded (cfg dims are filled in).
  SentenceEncoderImpl(SentenceEncoderConfig cfg, uint64_t seed, const std::string& t5_dir = "");
  // Unnormalized sentence vectors [B, dim] (float32 or the model dtype).
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& mask);
  const SentenceEncoderConfig& config() const { return cfg_; }

  SentenceEncoderConfig cfg_;
  torch::nn::Embedding tok{nullptr}, pos{nullptr};
  std::vector<torch::nn::TransformerEncoderLayer> blocks;
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear proj{nullptr};
  t5::T5ForConditionalGeneration t5{nullptr};
};
TORCH_MODULE(SentenceEncoder);

struct ContrastiveOptions {
  int64_t steps = 200;
  int64_t batch = 32;
  double lr = 1e-3;
  double weight_decay = 0.01;
  uint64_t seed = 0;
  std::function<void(int64_t step, double loss)> progress;  // after each step
  const std::atomic<bool>* cancel = nullptr;
};

struct ContrastiveResult {
  std::vector<double> losses;
  int64_t steps = 0;
  double seconds = 0;
  bool cancelled = false;
};

ContrastiveResult train_contrastive(SentenceEncoder& enc, const at::Tensor& ids, const at::Tensor& mask,
                                    const at::Tensor& groups, const ContrastiveOptions& opts);

// Embeddings in eval mode without grad, float32 [B, dim], in chunks of `chunk` rows.
at::Tensor embed_sentences(SentenceEncoder& enc, const at::Tensor& ids, const at::Tensor& mask, int64_t chunk = 256);

void save_sentence_encoder(SentenceEncoder& enc, const std::string& dir);
SentenceEncoder load_sentence_encoder(const std::string& dir);

}  // namespace instill::select
