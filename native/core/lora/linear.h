// A bias-free Linear (as every T5 projection) that can carry LoRA, in two modes:
//  1. a trainable adapter registered on the module (PEFT layout: submodules `lora_A` [r, in] and
//     `lora_B` [out, r], so the parameters are named `<path>.lora_A.weight` / `<path>.lora_B.weight`),
//     y = x W^T + scaling * dropout(x) A^T B^T, scaling = alpha / r; merge() folds it into W;
//  2. functional per-example adapters supplied with each batch (AdapterBatch): for example b,
//     y_b = x_b W^T + scaling * dropout(x_b) A_b^T B_b^T with A [B, r, in], B [B, out, r] (batched
//     matmuls), differentiable w.r.t. the supplied A and B (TAGI's hypernetwork generates them).
// Both modes can be active at once; they add.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>

namespace instill::lora {

// Functional adapters, one per example: module path (e.g. "encoder.block.0.layer.0.SelfAttention.q")
// -> (A [B, r, in], B [B, out, r]). Ranks may differ between paths.
struct AdapterBatch {
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> adapters;
  double scaling = 1.0;  // alpha / r
  double dropout = 0.0;  // on the adapter input, in training mode only
  // Rows index_select'ed along the batch dimension (for beams or answer options).
  AdapterBatch index_select(const at::Tensor& batch_index) const;
  int64_t batch_size() const;  // -1 when empty
};

struct LinearImpl : torch::nn::Module {
  LinearImpl(int64_t in_features, int64_t out_features);
  // x: [..., in]; with functional adapters for this path, x must be [B, L, in].
  at::Tensor forward(const at::Tensor& x, const AdapterBatch* batch = nullptr);

  // Registers lora_A (Kaiming-uniform a=sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in))) and lora_B (zeros).
  void add_lora(int64_t r, double alpha, double dropout, at::Generator* gen = nullptr);
  bool has_lora() const { return static_cast<bool>(lora_A); }
  // W += scaling * B A, then removes the adapter.
  void merge_lora();
  // Removes the adapter without merging.
  void remove_lora();

  int64_t in_features, out_features;
  torch::Tensor weight;  // [out, in]
  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};
  int64_t lora_r = 0;
  double lora_alpha = 0, lora_scaling = 0, lora_dropout = 0;
  std::string path;  // full module path, set by the owning model
};
TORCH_MODULE(Linear);

}  // namespace instill::lora
