// Instruction embedders for INSTA task selection: pooled T5 encoder states, InfoNCE, and the small sentence
// encoder trained contrastively by instill (see embed.h).
#include "select/embed.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "common/errors.h"
#include "io/file_util.h"
#include "io/safetensors.h"
#include "t5/config.h"
#include "t5/pretrained.h"

namespace instill::select {

Pool pool_from_name(const std::string& name, const std::string& arg) {
  if (name == "mean") return Pool::Mean;
  if (name == "firstlast") return Pool::FirstLast;
  throw ArgumentError(arg + ": expected \"mean\" or \"firstlast\", got \"" + name + "\"");
}

std::string pool_name(Pool p) { return p == Pool::Mean ? "mean" : "firstlast"; }

at::Tensor pool_hidden(const at::Tensor& hidden, const at::Tensor& mask, Pool pool) {
  if (hidden.dim() != 3) throw ArgumentError("pool_hidden: hidden must be [B,S,d]");
  if (mask.dim() != 2 || mask.size(0) != hidden.size(0) || mask.size(1) != hidden.size(1))
    throw ArgumentError("pool_hidden: mask must be [B,S] matching hidden");
  at::Tensor m = mask.ne(0);
  if (pool == Pool::Mean) {
    at::Tensor mf = m.to(hidden.scalar_type()).unsqueeze(-1);
    at::Tensor count = mf.sum(1).clamp_min(1);
    return (hidden * mf).sum(1) / count;
  }
  if (hidden.size(1) == 0) return at::zeros({hidden.size(0), hidden.size(2)}, hidden.options());
  // Last nonzero position per row: max over (position + 1) * mask, minus one; 0 for an empty row.
  at::Tensor positions = at::arange(1, m.size(1) + 1, at::TensorOptions().dtype(at::kLong).device(m.device()));
  at::Tensor last = (positions.unsqueeze(0) * m.to(at::kLong)).amax(1).sub(1).clamp_min(0);
  at::Tensor rows = at::arange(hidden.size(0), last.options());
  at::Tensor first_h = hidden.select(1, 0);
  at::Tensor last_h = hidden.index({rows, last});
  return (first_h + last_h) / 2;
}

at::Tensor info_nce(const at::Tensor& a, const at::Tensor& b, double temperature, bool symmetric) {
  if (a.dim() != 2 || b.dim() != 2 || a.sizes() != b.sizes())
    throw ArgumentError("info_nce: a and b must both be [N,d] with the same shape");
  if (a.size(0) < 1) throw ArgumentError("info_nce: need at least one pair");
  if (!(temperature > 0) || !std::isfinite(temperature)) throw RangeError("info_nce: temperature must be > 0");
  namespace F = torch::nn::functional;
  at::Tensor an = F::normalize(a, F::NormalizeFuncOptions().dim(1).eps(1e-12));
  at::Tensor bn = F::normalize(b, F::NormalizeFuncOptions().dim(1).eps(1e-12));
  at::Tensor logits = at::matmul(an, bn.t()) / temperature;
  at::Tensor labels = at::arange(a.size(0), at::TensorOptions().dtype(at::kLong).device(a.device()));
  at::Tensor loss = at::cross_entropy_loss(logits, labels);
  if (symmetric) loss = (loss + at::cross_entropy_loss(logits.t(), labels)) / 2;
  return loss;
}

std::pair<at::Tensor, at::Tensor> check_ids_mask(const at::Tensor& ids, const at::Tensor& mask, int64_t vocab_size) {
  if (!ids.defined() || ids.dim() != 2) throw ArgumentError("ids: expected a [B,S] integer tensor");
  if (at::isFloatingType(ids.scalar_type()) || ids.scalar_type() == at::kBool)
    throw ArgumentError("ids: expected an integer dtype (int32 or int64)");
  if (ids.size(1) < 1) throw RangeError("ids: sequences must hold at least one token");
  at::Tensor m;
  if (mask.defined()) {
    if (mask.sizes() != ids.sizes()) throw ArgumentError("mask: expected the shape of ids [B,S]");
    m = mask.ne(0);
  } else {
    m = at::ones(ids.sizes(), at::TensorOptions().dtype(at::kBool));
  }
  at::Tensor i64 = ids.to(at::kLong);
  if (i64.numel() > 0) {
    int64_t lo = i64.min().item<int64_t>(), hi = i64.max().item<int64_t>();
    if (lo < 0 || hi >= vocab_size)
      throw RangeError("ids: token ids must lie in [0, " + std::to_string(vocab_size) + "), got " +
                       std::to_string(lo < 0 ? lo : hi));
  }
  return {i64, m};
}

// ---------------------------------------------------------------------------------------------------------
// EncoderEmbedder

EncoderEmbedder::EncoderEmbedder(const std::string& dir, Pool pool) : pool_(pool) {
  model_ = t5::from_pretrained(dir, at::kFloat);
  model_->eval();
  for (auto& p : model_->parameters()) p.set_requires_grad(false);
}

at::Tensor EncoderEmbedder::embed(const at::Tensor& ids, const at::Tensor& mask) {
  auto [i64, m] = check_ids_mask(ids, mask, vocab_size());
  torch::NoGradGuard ng;
  t5::T5Inputs in;
  in.input_ids = i64;
  in.attention_mask = m.to(at::kLong);
  t5::EncoderOutput enc = model_->encode(in);
  return pool_hidden(enc.hidden.to(at::kFloat), m, pool_).contiguous();
}

// ---------------------------------------------------------------------------------------------------------
// SentenceEncoder

void SentenceEncoderConfig::validate() const {
  if (kind != "words" && kind != "t5") throw ArgumentError("kind: expected \"words\" or \"t5\", got \"" + kind + "\"");
  if (!(temperature > 0) || !std::isfinite(temperature)) throw RangeError("temperature: must be > 0");
  if (kind == "t5") return;
  if (vocab_size < 2) throw RangeError("vocab_size: must be >= 2 (pad + at least one token)");
  if (dim < 1 || dim > 65536) throw RangeError("dim: must be in [1, 65536]");
  if (layers < 0 || layers > 64) throw RangeError("layers: must be in [0, 64]");
  if (heads < 1 || dim % heads != 0) throw RangeError("heads: must be >= 1 and divide dim");
  if (ff < 1) throw RangeError("ff: must be >= 1");
  if (max_len < 1 || max_len > 1 << 20) throw RangeError("max_len: must be in [1, 1048576]");
  if (!(dropout >= 0 && dropout < 1)) throw RangeError("dropout: must be in [0, 1)");
}

std::string SentenceEncoderConfig::to_json() const {
  nlohmann::json j;
  j["format"] = "instill-sentence-encoder";
  j["version"] = 1;
  j["kind"] = kind;
  j["vocab_size"] = vocab_size;
  j["dim"] = dim;
  j["layers"] = layers;
  j["heads"] = heads;
  j["ff"] = ff;
  j["max_len"] = max_len;
  j["dropout"] = dropout;
  j["pool"] = pool_name(pool);
  j["temperature"] = temperature;
  return j.dump(1);
}

SentenceEncoderConfig SentenceEncoderConfig::from_json(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw FileError(source, std::string("not JSON (") + e.what() + ")");
  }
  if (!j.is_object()) throw FileError(source, "expected a JSON object");
  SentenceEncoderConfig c;
  auto get_int = [&](const char* k, int64_t& out) {
    if (!j.contains(k)) return;
    if (!j[k].is_number_integer()) throw FileError(source, std::string("\"") + k + "\" must be an integer");
    out = j[k].get<int64_t>();
  };
  auto get_num = [&](const char* k, double& out) {
    if (!j.contains(k)) return;
    if (!j[k].is_number()) throw FileError(source, std::string("\"") + k + "\" must be a number");
    out = j[k].get<double>();
  };
  if (j.contains("kind")) {
    if (!j["kind"].is_string()) throw FileError(source, "\"kind\" must be a string");
    c.kind = j["kind"].get<std::string>();
  }
  get_int("vocab_size", c.vocab_size);
  get_int("dim", c.dim);
  get_int("layers", c.layers);
  get_int("heads", c.heads);
  get_int("ff", c.ff);
  get_int("max_len", c.max_len);
  get_num("dropout", c.dropout);
  get_num("temperature", c.temperature);
  if (j.contains("pool")) {
    if (!j["pool"].is_string()) throw FileError(source, "\"pool\" must be a string");
    try {
      c.pool = pool_from_name(j["pool"].get<std::string>(), "pool");
    } catch (const std::exception& e) {
      throw FileError(source, e.what());
    }
  }
  try {
    c.validate();
  } catch (const std::exception& e) {
    throw FileError(source, e.what());
  }
  return c;
}

SentenceEncoderImpl::SentenceEncoderImpl(SentenceEncoderConfig cfg, uint64_t seed, const std::string& t5_dir)
    : cfg_(std::move(cfg)) {
  if (cfg_.kind == "t5") {
    if (t5_dir.empty()) throw ArgumentError("a t5 sentence encoder needs a T5 checkpoint folder");
    t5 = register_module("t5", t5::from_pretrained(t5_dir, at::kFloat));
    cfg_.vocab_size = t5->config().vocab_size;
    cfg_.dim = t5->config().d_model;
    cfg_.validate();
    return;
  }
  cfg_.validate();
  tok = register_module("tok", torch::nn::Embedding(torch::nn::EmbeddingOptions(cfg_.vocab_size, cfg_.dim)));
  pos = register_module("pos", torch::nn::Embedding(torch::nn::EmbeddingOptions(cfg_.max_len, cfg_.dim)));
  for (int64_t i = 0; i < cfg_.layers; ++i) {
    auto opts = torch::nn::TransformerEncoderLayerOptions(cfg_.dim, cfg_.heads)
                    .dim_feedforward(cfg_.ff)
                    .dropout(cfg_.dropout)
                    .activation(torch::kGELU);
    blocks.push_back(register_module("block" + std::to_string(i), torch::nn::TransformerEncoderLayer(opts)));
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg_.dim})));
  proj = register_module("proj", torch::nn::Linear(cfg_.dim, cfg_.dim));
  // Deterministic initialization from a private generator (LibTorch's default one is process-global).
  at::Generator gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard ng;
  for (auto& kv : named_parameters()) {
    const std::string& name = kv.key();
    at::Tensor p = kv.value();
    bool is_norm = name.find("norm") != std::string::npos;
    if (name.rfind("tok.", 0) == 0 || name.rfind("pos.", 0) == 0) {
      p.normal_(0.0, name[0] == 't' ? 1.0 : 0.1, gen);
    } else if (p.dim() >= 2) {
      double bound = 1.0 / std::sqrt(static_cast<double>(p.size(1)));
      p.uniform_(-bound, bound, gen);
    } else {
      p.fill_(is_norm && name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0 ? 1.0 : 0.0);
    }
  }
  tok->weight[0].zero_();  // pad
}

at::Tensor SentenceEncoderImpl::forward(const at::Tensor& ids, const at::Tensor& mask) {
  auto [i64, m] = check_ids_mask(ids, mask, cfg_.vocab_size);
  if (cfg_.kind == "t5") {
    t5::T5Inputs in;
    in.input_ids = i64;
    in.attention_mask = m.to(at::kLong);
    t5::EncoderOutput enc = t5->encode(in);
    return pool_hidden(enc.hidden, m, cfg_.pool);
  }
  int64_t S = i64.size(1);
  if (S > cfg_.max_len)
    throw RangeError("ids: sequences of " + std::to_string(S) + " tokens exceed max_len " + std::to_string(cfg_.max_len));
  at::Tensor x = tok(i64) + pos(at::arange(S, at::TensorOptions().dtype(at::kLong))).unsqueeze(0);
  // Rows without any token would make attention produce NaN; let such rows attend to position 0 (pooled to zero).
  at::Tensor pad_mask = m.logical_not();
  at::Tensor empty = m.any(1).logical_not();
  if (empty.any().item<bool>()) pad_mask.index_put_({empty, 0}, false);
  at::Tensor h = x.transpose(0, 1);  // [S,B,d]
  for (auto& b : blocks) h = b->forward(h, at::Tensor(), pad_mask);
  h = norm(h.transpose(0, 1));
  return proj(pool_hidden(h, m, cfg_.pool));
}

ContrastiveResult train_contrastive(SentenceEncoder& enc, const at::Tensor& ids, const at::Tensor& mask,
                                    const at::Tensor& groups, const ContrastiveOptions& o) {
  if (o.steps < 0) throw RangeError("steps: must be >= 0");
  if (o.batch < 2) throw RangeError("batch: must be >= 2 (in-batch negatives)");
  if (!(o.lr > 0)) throw RangeError("lr: must be > 0");
  if (!(o.weight_decay >= 0)) throw RangeError("weight_decay: must be >= 0");
  auto [i64, m] = check_ids_mask(ids, mask, enc->config().vocab_size);
  if (!groups.defined() || groups.dim() != 1 || groups.size(0) != i64.size(0))
    throw ArgumentError("groups: expected a [N] integer tensor, one group (task) index per view");
  at::Tensor g = groups.to(at::kLong).contiguous();
  std::map<int64_t, std::vector<int64_t>> by_group;
  const int64_t* gp = g.data_ptr<int64_t>();
  for (int64_t i = 0; i < g.size(0); ++i) by_group[gp[i]].push_back(i);
  std::vector<std::vector<int64_t>> usable;
  for (auto& kv : by_group)
    if (kv.second.size() >= 2) usable.push_back(kv.second);
  if (usable.size() < 2)
    throw RangeError("groups: contrastive training needs at least 2 groups with >= 2 views each, got " +
                     std::to_string(usable.size()));
  int64_t B = std::min<int64_t>(o.batch, static_cast<int64_t>(usable.size()));
  torch::optim::AdamW opt(enc->parameters(), torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ULL + 1);
  std::vector<int64_t> order(usable.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  ContrastiveResult r;
  auto t0 = std::chrono::steady_clock::now();
  enc->train();
  torch::AutoGradMode grad(true);
  for (int64_t step = 0; step < o.steps; ++step) {
    if (o.cancel && o.cancel->load()) {
      r.cancelled = true;
      break;
    }
    // Partial Fisher-Yates: B distinct groups.
    for (int64_t i = 0; i < B; ++i) {
      std::uniform_int_distribution<int64_t> d(i, static_cast<int64_t>(order.size()) - 1);
      std::swap(order[i], order[d(rng)]);
    }
    std::vector<int64_t> ia, ib;
    for (int64_t i = 0; i < B; ++i) {
      const auto& views = usable[order[i]];
      std::uniform_int_distribution<size_t> d1(0, views.size() - 1), d2(0, views.size() - 2);
      size_t x = d1(rng), y = d2(rng);
      if (y >= x) ++y;
      ia.push_back(views[x]);
      ib.push_back(views[y]);
    }
    at::Tensor sel_a = at::tensor(ia, at::kLong), sel_b = at::tensor(ib, at::kLong);
    at::Tensor both = at::cat({sel_a, sel_b});
    at::Tensor bi = i64.index_select(0, both), bm = m.index_select(0, both);
    // Trim to the longest row in the batch.
    int64_t len = std::max<int64_t>(1, (at::arange(1, bm.size(1) + 1).unsqueeze(0) * bm.to(at::kLong)).max().item<int64_t>());
    bi = bi.narrow(1, 0, len);
    bm = bm.narrow(1, 0, len);
    at::Tensor z = enc->forward(bi, bm);
    at::Tensor loss = info_nce(z.narrow(0, 0, B), z.narrow(0, B, B), enc->config().temperature, true);
    opt.zero_grad();
    loss.backward();
    opt.step();
    double lv = loss.item<double>();
    if (!std::isfinite(lv)) throw RangeError("train: the loss became non-finite at step " + std::to_string(step + 1));
    r.losses.push_back(lv);
    r.steps = step + 1;
    if (o.progress) o.progress(step + 1, lv);
  }
  enc->eval();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

at::Tensor embed_sentences(SentenceEncoder& enc, const at::Tensor& ids, const at::Tensor& mask, int64_t chunk) {
  auto [i64, m] = check_ids_mask(ids, mask, enc->config().vocab_size);
  if (chunk < 1) throw RangeError("chunk: must be >= 1");
  torch::NoGradGuard ng;
  enc->eval();
  std::vector<at::Tensor> parts;
  for (int64_t s = 0; s < i64.size(0); s += chunk) {
    int64_t n = std::min(chunk, i64.size(0) - s);
    parts.push_back(enc->forward(i64.narrow(0, s, n), m.narrow(0, s, n)).to(at::kFloat));
  }
  if (parts.empty()) return at::zeros({0, enc->config().dim}, at::kFloat);
  return at::cat(parts).contiguous();
}

namespace {
void write_text_file(const std::string& path, const std::string& text) {
  io::write_file_atomic(path, [&](int fd) { io::write_all(fd, text.data(), text.size(), path); });
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FileError(path, "cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
}  // namespace

void save_sentence_encoder(SentenceEncoder& enc, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw FileError(dir, "cannot create the folder (" + ec.message() + ")");
  if (enc->config().kind == "t5") {
    t5::save_pretrained(*enc->t5, dir);
  } else {
    io::NamedTensors named;
    for (auto& kv : enc->named_parameters()) named.emplace_back(kv.key(), kv.value().detach().to(at::kFloat).contiguous());
    io::write_safetensors(io::path_join(dir, "embedder.safetensors"), named, {{"format", "instill-sentence-encoder"}});
  }
  write_text_file(io::path_join(dir, "embedder.json"), enc->config().to_json() + "\n");
}

SentenceEncoder load_sentence_encoder(const std::string& dir) {
  std::string cfg_path = io::path_join(dir, "embedder.json");
  if (!io::path_is_regular_file(cfg_path)) throw FileError(cfg_path, "missing (not a sentence encoder folder)");
  SentenceEncoderConfig cfg = SentenceEncoderConfig::from_json(read_text_file(cfg_path), cfg_path);
  if (cfg.kind == "t5") {
    SentenceEncoder enc(cfg, 0, dir);
    enc->eval();
    return enc;
  }
  SentenceEncoder enc(cfg, 0);
  std::string wpath = io::path_join(dir, "embedder.safetensors");
  io::SafetensorsFile f = io::read_safetensors(wpath);
  std::map<std::string, at::Tensor> byname(f.tensors.begin(), f.tensors.end());
  torch::NoGradGuard ng;
  for (auto& kv : enc->named_parameters()) {
    auto it = byname.find(kv.key());
    if (it == byname.end()) throw FileError(wpath, "tensor \"" + kv.key() + "\" is missing");
    if (it->second.sizes() != kv.value().sizes()) {
      std::ostringstream os;
      os << "tensor \"" << kv.key() << "\" has shape " << it->second.sizes() << ", expected " << kv.value().sizes()
         << " from embedder.json";
      throw FileError(wpath, os.str());
    }
    kv.value().copy_(it->second);
    byname.erase(it);
  }
  if (!byname.empty()) throw FileError(wpath, "unexpected tensor \"" + byname.begin()->first + "\"");
  enc->eval();
  return enc;
}

}  // namespace instill::select
