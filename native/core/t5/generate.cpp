#include "t5/generate.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/errors.h"

namespace instill::t5 {

namespace {

at::Tensor log_probs(const at::Tensor& logits) {
  auto t = logits.scalar_type();
  return at::log_softmax(logits, -1, t == at::kDouble ? at::kDouble : at::kFloat);
}

at::Tensor pad_rows(const std::vector<std::vector<int64_t>>& rows, int64_t pad) {
  size_t L = 0;
  for (auto& r : rows) L = std::max(L, r.size());
  at::Tensor out = at::full({static_cast<int64_t>(rows.size()), static_cast<int64_t>(L)}, pad, at::kLong);
  auto a = out.accessor<int64_t, 2>();
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i].size(); ++j) a[i][j] = rows[i][j];
  return out;
}

struct Hypotheses {
  struct Hyp { double score; std::vector<int64_t> tokens; bool eos; };
  int64_t num_beams;
  double length_penalty;
  bool early_stopping;
  std::vector<Hyp> beams;
  double worst = 1e9;

  void add(std::vector<int64_t> tokens, double sum_logprobs, int64_t generated_len, bool eos) {
    double score = sum_logprobs / std::pow(static_cast<double>(generated_len), length_penalty);
    if (static_cast<int64_t>(beams.size()) < num_beams || score > worst) {
      beams.push_back({score, std::move(tokens), eos});
      if (static_cast<int64_t>(beams.size()) > num_beams) {
        size_t wi = 0;
        for (size_t i = 1; i < beams.size(); ++i)
          if (beams[i].score < beams[wi].score) wi = i;
        beams.erase(beams.begin() + static_cast<long>(wi));
        worst = beams[0].score;
        for (auto& b : beams) worst = std::min(worst, b.score);
      } else {
        worst = std::min(score, worst);
      }
    }
  }
  bool is_done(double best_sum_logprobs, int64_t cur_len) const {
    if (static_cast<int64_t>(beams.size()) < num_beams) return false;
    if (early_stopping) return true;
    return worst >= best_sum_logprobs / std::pow(static_cast<double>(cur_len), length_penalty);
  }
};

}  // namespace

at::Tensor greedy_search(T5ForConditionalGenerationImpl& model, const EncoderOutput& enc,
                         const lora::AdapterBatch* adapters, int64_t max_new_tokens) {
  torch::NoGradGuard ng;
  const auto& cfg = model.config();
  const int64_t B = enc.hidden.size(0);
  auto lopt = at::TensorOptions().dtype(at::kLong).device(model.device());
  at::Tensor cur = at::full({B, 1}, cfg.decoder_start_token_id, lopt);
  at::Tensor unfinished = at::ones({B}, lopt.dtype(at::kBool));
  std::vector<at::Tensor> steps;
  DecoderCache cache;
  for (int64_t t = 0; t < max_new_tokens; ++t) {
    at::Tensor logits = model.decode(cur, enc, adapters, &cache).select(1, -1);  // [B, V]
    at::Tensor next = logits.argmax(-1);
    next = at::where(unfinished, next, at::full_like(next, cfg.pad_token_id));
    steps.push_back(next);
    unfinished = unfinished.logical_and(next.ne(cfg.eos_token_id));
    if (!unfinished.any().item<bool>()) break;
    cur = next.unsqueeze(1);
  }
  if (steps.empty()) return at::empty({B, 0}, at::kLong);
  return at::stack(steps, 1).to(at::kCPU);
}

at::Tensor beam_search(T5ForConditionalGenerationImpl& model, const EncoderOutput& enc0,
                       const lora::AdapterBatch* adapters0, const GenerateOptions& opt) {
  torch::NoGradGuard ng;
  const auto& cfg = model.config();
  const int64_t B = enc0.hidden.size(0), nb = opt.num_beams, V = cfg.vocab_size;
  const auto dev = model.device();
  auto lopt = at::TensorOptions().dtype(at::kLong).device(dev);
  at::Tensor expand = at::arange(B, lopt).repeat_interleave(nb);
  EncoderOutput enc = enc0.index_select(expand);
  lora::AdapterBatch ad_storage;
  const lora::AdapterBatch* ad = nullptr;
  if (adapters0 && !adapters0->adapters.empty()) {
    ad_storage = adapters0->index_select(expand);
    ad = &ad_storage;
  }
  std::vector<Hypotheses> hyps(B, Hypotheses{nb, opt.length_penalty, opt.early_stopping, {}, 1e9});
  std::vector<bool> done(B, false);
  std::vector<std::vector<int64_t>> rows(B * nb);  // generated tokens per beam (no start id)
  std::vector<double> beam_scores(B * nb, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 1; j < nb; ++j) beam_scores[b * nb + j] = -1e9;
  at::Tensor cur = at::full({B * nb, 1}, cfg.decoder_start_token_id, lopt);
  DecoderCache cache;
  int64_t n_prev = 0;
  while (n_prev < opt.max_new_tokens) {
    at::Tensor lp = log_probs(model.decode(cur, enc, ad, &cache).select(1, -1));  // [B*nb, V]
    at::Tensor bs = at::tensor(beam_scores, at::TensorOptions().dtype(at::kDouble)).to(dev, lp.scalar_type());
    at::Tensor scores = (lp + bs.unsqueeze(1)).view({B, nb * V});
    auto top = at::topk(scores, 2 * nb, 1, true, true);
    at::Tensor tv = std::get<0>(top).to(at::kCPU, at::kDouble), ti = std::get<1>(top).to(at::kCPU);
    auto tva = tv.accessor<double, 2>();
    auto tia = ti.accessor<int64_t, 2>();
    std::vector<double> next_scores(B * nb, 0.0);
    std::vector<int64_t> next_tokens(B * nb, cfg.pad_token_id), next_index(B * nb, 0);
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) {
        for (int64_t j = 0; j < nb; ++j) next_index[b * nb + j] = b * nb;
        continue;
      }
      int64_t k = 0;
      for (int64_t rank = 0; rank < 2 * nb && k < nb; ++rank) {
        int64_t idx = tia[b][rank];
        int64_t token = idx % V, bbi = b * nb + idx / V;
        double s = tva[b][rank];
        if (token == cfg.eos_token_id) {
          if (rank >= nb) continue;
          hyps[b].add(rows[bbi], s, n_prev + 1, true);
        } else {
          next_scores[b * nb + k] = s;
          next_tokens[b * nb + k] = token;
          next_index[b * nb + k] = bbi;
          ++k;
        }
      }
      done[b] = done[b] || hyps[b].is_done(tva[b][0], n_prev + 1);
    }
    std::vector<std::vector<int64_t>> new_rows(B * nb);
    for (int64_t i = 0; i < B * nb; ++i) {
      new_rows[i] = rows[next_index[i]];
      new_rows[i].push_back(next_tokens[i]);
    }
    rows.swap(new_rows);
    beam_scores = next_scores;
    ++n_prev;
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    cache.reorder(at::tensor(next_index, at::kLong).to(dev));
    cur = at::tensor(next_tokens, at::kLong).to(dev).unsqueeze(1);
  }
  std::vector<std::vector<int64_t>> out(B);
  for (int64_t b = 0; b < B; ++b) {
    if (!done[b])
      for (int64_t j = 0; j < nb; ++j) {
        int64_t i = b * nb + j;
        hyps[b].add(rows[i], beam_scores[i], static_cast<int64_t>(rows[i].size()), false);
      }
    const auto& hs = hyps[b].beams;
    size_t best = 0;
    for (size_t i = 1; i < hs.size(); ++i)
      if (hs[i].score >= hs[best].score) best = i;  // last of equals, as HF (stable sort, pop())
    out[b] = hs[best].tokens;
    if (hs[best].eos) out[b].push_back(cfg.eos_token_id);
  }
  return pad_rows(out, cfg.pad_token_id);
}

at::Tensor generate(T5ForConditionalGenerationImpl& model, const T5Inputs& inputs, const GenerateOptions& opt) {
  if (opt.max_new_tokens < 0) throw RangeError("max_new_tokens must be >= 0");
  if (opt.num_beams < 1) throw RangeError("num_beams must be >= 1");
  torch::NoGradGuard ng;
  EncoderOutput enc = model.encode(inputs);
  if (opt.num_beams == 1) return greedy_search(model, enc, inputs.adapters, opt.max_new_tokens);
  return beam_search(model, enc, inputs.adapters, opt);
}

OptionScores score_options(T5ForConditionalGenerationImpl& model, const T5Inputs& inputs, const at::Tensor& options,
                           int64_t chunk_rows) {
  const auto& cfg = model.config();
  if (!options.defined() || options.dim() != 3)
    throw ArgumentError("options: expected a [B, K, T] tensor of token ids (-100 = padding)");
  const int64_t B = options.size(0), K = options.size(1), T = options.size(2);
  EncoderOutput enc = model.encode(inputs);
  if (enc.hidden.size(0) != B)
    throw ArgumentError("options: batch " + std::to_string(B) + " differs from input_ids batch " +
                        std::to_string(enc.hidden.size(0)));
  const auto dev = model.device();
  at::Tensor labels = options.reshape({B * K, T}).to(dev, at::kLong);
  at::Tensor row_example = at::arange(B, at::TensorOptions().dtype(at::kLong).device(dev)).repeat_interleave(K);
  const int64_t R = B * K;
  const int64_t chunk = chunk_rows > 0 ? chunk_rows : std::max<int64_t>(R, 1);
  std::vector<at::Tensor> sums, counts;
  for (int64_t start = 0; start < R; start += chunk) {
    int64_t n = std::min(chunk, R - start);
    at::Tensor ex = row_example.narrow(0, start, n);
    at::Tensor lab = labels.narrow(0, start, n);
    EncoderOutput e = enc.index_select(ex);
    lora::AdapterBatch ad_storage;
    const lora::AdapterBatch* ad = nullptr;
    if (inputs.adapters && !inputs.adapters->adapters.empty()) {
      ad_storage = inputs.adapters->index_select(ex);
      ad = &ad_storage;
    }
    at::Tensor dec = shift_right(lab, cfg.decoder_start_token_id, cfg.pad_token_id);
    at::Tensor lp = log_probs(model.decode(dec, e, ad, nullptr));  // [n, T, V]
    at::Tensor valid = lab.ne(-100);
    at::Tensor tok = lab.clamp_min(0);
    at::Tensor per_tok = lp.gather(-1, tok.unsqueeze(-1)).squeeze(-1) * valid.to(lp.scalar_type());
    sums.push_back(per_tok.sum(-1).to(at::kDouble));
    counts.push_back(valid.sum(-1));
  }
  OptionScores s;
  if (R == 0) {
    s.sum = at::zeros({B, K}, at::kDouble);
    s.count = at::zeros({B, K}, at::kLong);
  } else {
    s.sum = at::cat(sums).view({B, K});
    s.count = at::cat(counts).view({B, K}).to(at::kLong);
  }
  s.mean = s.sum / s.count.clamp_min(1).to(at::kDouble);
  return s;
}

}  // namespace instill::t5
