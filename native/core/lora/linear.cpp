#include "lora/linear.h"

#include <cmath>

#include "common/errors.h"

namespace instill::lora {

AdapterBatch AdapterBatch::index_select(const at::Tensor& batch_index) const {
  AdapterBatch out;
  out.scaling = scaling;
  out.dropout = dropout;
  for (const auto& kv : adapters)
    out.adapters.emplace(kv.first, std::make_pair(kv.second.first.index_select(0, batch_index),
                                                  kv.second.second.index_select(0, batch_index)));
  return out;
}

int64_t AdapterBatch::batch_size() const {
  if (adapters.empty()) return -1;
  return adapters.begin()->second.first.size(0);
}

LinearImpl::LinearImpl(int64_t in, int64_t out) : in_features(in), out_features(out) {
  weight = register_parameter("weight", torch::empty({out, in}));
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
}

at::Tensor LinearImpl::forward(const at::Tensor& x, const AdapterBatch* batch) {
  at::Tensor y = torch::linear(x, weight);
  if (lora_A) {
    at::Tensor xin = lora_dropout > 0 ? torch::dropout(x, lora_dropout, is_training()) : x;
    y = y + torch::linear(torch::linear(xin, lora_A->weight), lora_B->weight) * lora_scaling;
  }
  if (batch && !batch->adapters.empty()) {
    auto it = batch->adapters.find(path);
    if (it != batch->adapters.end()) {
      const at::Tensor& A = it->second.first;   // [B, r, in]
      const at::Tensor& Bm = it->second.second;  // [B, out, r]
      if (x.dim() != 3 || A.dim() != 3 || Bm.dim() != 3 || A.size(0) != x.size(0) ||
          Bm.size(0) != x.size(0) || A.size(2) != in_features || Bm.size(1) != out_features ||
          Bm.size(2) != A.size(1))
        throw ArgumentError("adapter for " + path + ": expected A [" + std::to_string(x.size(0)) + ", r, " +
                            std::to_string(in_features) + "] and B [" + std::to_string(x.size(0)) + ", " +
                            std::to_string(out_features) + ", r], got A " + c10::str(A.sizes()) + ", B " +
                            c10::str(Bm.sizes()) + " for input " + c10::str(x.sizes()));
      at::Tensor xin = batch->dropout > 0 ? torch::dropout(x, batch->dropout, is_training()) : x;
      at::Tensor h = at::bmm(xin, A.transpose(1, 2));  // [B, L, r]
      if (batch->scaling != 1.0) h = h * batch->scaling;
      y = y + at::bmm(h, Bm.transpose(1, 2));  // [B, L, out]
    }
  }
  return y;
}

void LinearImpl::add_lora(int64_t r, double alpha, double dropout, at::Generator* gen) {
  if (r <= 0) throw RangeError("LoRA rank must be positive, got " + std::to_string(r));
  if (!(dropout >= 0 && dropout < 1)) throw RangeError("LoRA dropout must be in [0, 1)");
  if (lora_A) throw ArgumentError(path + " already has a LoRA adapter");
  auto opts = weight.options().requires_grad(false);
  lora_A = register_module("lora_A", torch::nn::Linear(torch::nn::LinearOptions(in_features, r).bias(false)));
  lora_B = register_module("lora_B", torch::nn::Linear(torch::nn::LinearOptions(r, out_features).bias(false)));
  {
    torch::NoGradGuard ng;
    double bound = 1.0 / std::sqrt(static_cast<double>(in_features));  // kaiming_uniform(a=sqrt(5))
    at::Tensor a = at::empty({r, in_features}, at::kFloat);
    if (gen) a.uniform_(-bound, bound, *gen); else a.uniform_(-bound, bound);
    lora_A->weight.set_data(a.to(opts.dtype()));
    lora_B->weight.set_data(at::zeros({out_features, r}, opts));
  }
  lora_r = r;
  lora_alpha = alpha;
  lora_scaling = alpha / static_cast<double>(r);
  lora_dropout = dropout;
}

void LinearImpl::merge_lora() {
  if (!lora_A) return;
  {
    torch::NoGradGuard ng;
    weight.add_(at::matmul(lora_B->weight, lora_A->weight).to(weight.dtype()) * lora_scaling);
  }
  remove_lora();
}

void LinearImpl::remove_lora() {
  if (!lora_A) return;
  unregister_module("lora_A");
  unregister_module("lora_B");
  lora_A = nullptr;
  lora_B = nullptr;
  lora_r = 0;
  lora_alpha = lora_scaling = lora_dropout = 0;
}

}  // namespace instill::lora
