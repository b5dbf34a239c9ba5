// T5 training/evaluation helpers: see t5_task.h.
#include "train/t5_task.h"

#include <torch/torch.h>

#include <sstream>

#include "common/errors.h"

namespace instill::train {

namespace {

std::string shape_str(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

void require_int(const at::Tensor& t, const std::string& name) {
  if (!at::isIntegralType(t.scalar_type(), /*includeBool=*/false))
    throw ArgumentError(name + ": expected an integer tensor (int32), got " + std::string(c10::toString(t.scalar_type())));
}

}  // namespace

Batch check_batch(const t5::T5Config& cfg, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                  const at::Tensor& labels, const std::string& arg, bool labels_required, at::Device device) {
  if (!input_ids.defined()) throw ArgumentError(arg + ".inputIds: missing");
  if (!attention_mask.defined()) throw ArgumentError(arg + ".attentionMask: missing");
  require_int(input_ids, arg + ".inputIds");
  require_int(attention_mask, arg + ".attentionMask");
  if (input_ids.dim() != 2 || input_ids.size(0) < 1 || input_ids.size(1) < 1)
    throw RangeError(arg + ".inputIds: expected shape [B, S] with B, S >= 1, got " + shape_str(input_ids));
  if (!attention_mask.sizes().equals(input_ids.sizes()))
    throw RangeError(arg + ".attentionMask: shape " + shape_str(attention_mask) + " differs from inputIds " +
                     shape_str(input_ids));
  at::Tensor ids = input_ids.to(at::kLong);
  at::Tensor mask = attention_mask.to(at::kLong);
  const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= cfg.vocab_size)
    throw RangeError(arg + ".inputIds: id " + std::to_string(lo < 0 ? lo : hi) + " is outside the vocabulary [0, " +
                     std::to_string(cfg.vocab_size) + ")");
  if (mask.min().item<int64_t>() < 0 || mask.max().item<int64_t>() > 1)
    throw RangeError(arg + ".attentionMask: values must be 0 or 1");
  Batch b;
  b.input_ids = ids.to(device);
  b.attention_mask = mask.to(device);
  if (labels.defined()) {
    require_int(labels, arg + ".labels");
    if (labels.dim() != 2 || labels.size(0) != input_ids.size(0) || labels.size(1) < 1)
      throw RangeError(arg + ".labels: expected shape [" + std::to_string(input_ids.size(0)) + ", T] with T >= 1, got " +
                       shape_str(labels));
    at::Tensor l = labels.to(at::kLong);
    at::Tensor bad = l.ne(-100).logical_and(l.lt(0).logical_or(l.ge(cfg.vocab_size)));
    if (bad.any().item<bool>()) {
      const int64_t v = l.masked_select(bad).select(0, 0).item<int64_t>();
      throw RangeError(arg + ".labels: id " + std::to_string(v) + " is neither -100 nor inside the vocabulary [0, " +
                       std::to_string(cfg.vocab_size) + ")");
    }
    b.labels = l.to(device);
  } else if (labels_required) {
    throw ArgumentError(arg + ".labels: required here");
  }
  return b;
}

LossFn t5_loss_fn(t5::T5ForConditionalGenerationImpl& model) {
  return [&model](const Batch& b) {
    t5::T5Inputs in;
    in.input_ids = b.input_ids;
    in.attention_mask = b.attention_mask;
    in.labels = b.labels;
    at::Tensor loss = model.forward(in).loss;
    return b.loss_scale == 1.0 ? loss : loss * b.loss_scale;
  };
}

std::vector<double> t5_eval_loss(t5::T5ForConditionalGenerationImpl& model, const std::vector<Batch>& batches) {
  torch::NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  std::vector<double> out;
  try {
    auto fn = t5_loss_fn(model);
    for (const auto& b : batches) {
      if (!b.labels.defined()) throw ArgumentError("evalLoss: every batch needs labels");
      out.push_back(fn(b).item<double>());
    }
  } catch (...) {
    model.train(was_training);
    throw;
  }
  model.train(was_training);
  return out;
}

at::Tensor greedy_generate_uncached(t5::T5ForConditionalGenerationImpl& model, const t5::T5Inputs& inputs,
                                    int64_t max_new_tokens) {
  torch::NoGradGuard ng;
  const auto& cfg = model.config();
  t5::EncoderOutput enc = model.encode(inputs);
  const int64_t B = enc.hidden.size(0);
  auto lopt = at::TensorOptions().dtype(at::kLong).device(model.device());
  at::Tensor prefix = at::full({B, 1}, cfg.decoder_start_token_id, lopt);
  at::Tensor unfinished = at::ones({B}, lopt.dtype(at::kBool));
  std::vector<at::Tensor> steps;
  for (int64_t t = 0; t < max_new_tokens; ++t) {
    at::Tensor logits = model.decode(prefix, enc, inputs.adapters, nullptr).select(1, -1);  // whole prefix again
    at::Tensor next = logits.argmax(-1);
    next = at::where(unfinished, next, at::full_like(next, cfg.pad_token_id));
    steps.push_back(next);
    unfinished = unfinished.logical_and(next.ne(cfg.eos_token_id));
    if (!unfinished.any().item<bool>()) break;
    prefix = at::cat({prefix, next.unsqueeze(1)}, 1);
  }
  if (steps.empty()) return at::empty({B, 0}, at::kLong);
  return at::stack(steps, 1).to(at::kCPU);
}

std::vector<std::vector<int64_t>> strip_generated(const at::Tensor& ids, int64_t eos_token_id) {
  at::Tensor c = ids.to(at::kCPU, at::kLong).contiguous();
  const int64_t B = c.size(0), L = c.size(1);
  const int64_t* p = c.data_ptr<int64_t>();
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < L; ++j) {
      const int64_t v = p[b * L + j];
      if (v == eos_token_id) break;
      out[static_cast<size_t>(b)].push_back(v);
    }
  return out;
}

}  // namespace instill::train
