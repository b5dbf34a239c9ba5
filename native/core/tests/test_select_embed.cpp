// Instruction embedders (native/core/select/embed.h): pooling against direct loops, the T5 encoder embedder
// against the model's own encode(), InfoNCE against a direct float64 formula and finite differences, and the
// contrastive sentence encoder (training lowers the loss, save/load round trips, argument errors).
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include "common/errors.h"
#include "select/embed.h"
#include "t5/config.h"
#include "t5/model.h"
#include "t5/pretrained.h"
#include "tests/check.h"

using namespace instill;
using namespace instill::select;

namespace {

std::string temp_dir(const std::string& tag) {
  auto d = std::filesystem::temp_directory_path() / ("instill-embed-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

const std::string& tiny_checkpoint() {
  static std::string dir = [] {
    std::string d = temp_dir("t5");
    t5::T5Config cfg = t5::preset("tiny", 64);
    t5::T5ForConditionalGeneration model(cfg);
    model->init_weights(7);
    t5::save_pretrained(*model, d);
    return d;
  }();
  return dir;
}

// Direct pooling by loops in float64.
at::Tensor pool_loops(const at::Tensor& h, const at::Tensor& mask, bool mean) {
  int64_t B = h.size(0), S = h.size(1), D = h.size(2);
  at::Tensor hd = h.to(at::kDouble);
  at::Tensor out = at::zeros({B, D}, at::kDouble);
  for (int64_t b = 0; b < B; ++b) {
    if (mean) {
      int64_t n = 0;
      for (int64_t s = 0; s < S; ++s)
        if (mask[b][s].item<int64_t>() != 0) {
          out[b] += hd[b][s];
          ++n;
        }
      if (n) out[b] /= static_cast<double>(n);
    } else {
      int64_t last = 0;
      for (int64_t s = 0; s < S; ++s)
        if (mask[b][s].item<int64_t>() != 0) last = s;
      out[b] = (hd[b][0] + hd[b][last]) / 2;
    }
  }
  return out;
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// -log softmax_ii, averaged, both directions: the InfoNCE formula written out.
double info_nce_direct(const at::Tensor& a, const at::Tensor& b, double tau) {
  int64_t N = a.size(0), D = a.size(1);
  auto an = a.accessor<double, 2>();
  auto bn = b.accessor<double, 2>();
  std::vector<double> na(N), nb(N);
  for (int64_t i = 0; i < N; ++i) {
    double sa = 0, sb = 0;
    for (int64_t k = 0; k < D; ++k) {
      sa += an[i][k] * an[i][k];
      sb += bn[i][k] * bn[i][k];
    }
    na[i] = std::sqrt(sa);
    nb[i] = std::sqrt(sb);
  }
  std::vector<std::vector<double>> s(N, std::vector<double>(N));
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double d = 0;
      for (int64_t k = 0; k < D; ++k) d += an[i][k] * bn[j][k];
      s[i][j] = d / (na[i] * nb[j]) / tau;
    }
  double row = 0, col = 0;
  for (int64_t i = 0; i < N; ++i) {
    double zr = 0, zc = 0;
    for (int64_t j = 0; j < N; ++j) {
      zr += std::exp(s[i][j]);
      zc += std::exp(s[j][i]);
    }
    row += -(s[i][i] - std::log(zr));
    col += -(s[i][i] - std::log(zc));
  }
  return (row / N + col / N) / 2;
}

}  // namespace

TEST(pool_hidden_matches_loops) {
  torch::manual_seed(3);
  at::Tensor h = torch::randn({4, 6, 5});
  at::Tensor mask = torch::tensor({1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}).view({4, 6});
  REQUIRE(max_abs(pool_hidden(h, mask, Pool::Mean), pool_loops(h, mask, true)) < 1e-6);
  REQUIRE(max_abs(pool_hidden(h, mask, Pool::FirstLast), pool_loops(h, mask, false)) < 1e-6);
  // A row without tokens pools to zero (mean) and to h[0] (first-last).
  REQUIRE(pool_hidden(h, mask, Pool::Mean)[3].abs().max().item<double>() == 0.0);
  REQUIRE(pool_from_name("mean") == Pool::Mean);
  REQUIRE(pool_from_name("firstlast") == Pool::FirstLast);
  REQUIRE_THROWS(pool_from_name("max"));
}

TEST(encoder_embedder_matches_direct_encode) {
  const std::string& dir = tiny_checkpoint();
  at::Tensor ids = torch::tensor({5, 9, 13, 1, 0, 0, 7, 7, 3, 8, 2, 1, 4, 1, 0, 0, 0, 0}, at::kInt).view({3, 6});
  at::Tensor mask = ids.ne(0).to(at::kInt);
  auto model = t5::from_pretrained(dir, at::kFloat);
  model->eval();
  torch::NoGradGuard ng;
  t5::T5Inputs in;
  in.input_ids = ids.to(at::kLong);
  in.attention_mask = mask.to(at::kLong);
  at::Tensor hidden = model->encode(in).hidden;
  for (bool mean : {true, false}) {
    EncoderEmbedder emb(dir, mean ? Pool::Mean : Pool::FirstLast);
    REQUIRE(emb.d_model() == 64);
    at::Tensor v = emb.embed(ids, mask);
    REQUIRE(v.scalar_type() == at::kFloat);
    REQUIRE(v.size(0) == 3 && v.size(1) == 64);
    REQUIRE(torch::isfinite(v).all().item<bool>());
    REQUIRE_MSG(max_abs(v, pool_loops(hidden, mask, mean)) < 1e-5, "pooled states differ from the direct computation");
    // Identical texts give identical vectors; padding does not change them (attention masks the pads).
    at::Tensor same = emb.embed(ids.narrow(0, 0, 1).repeat({2, 1}), mask.narrow(0, 0, 1).repeat({2, 1}));
    REQUIRE(max_abs(same[0], same[1]) < 1e-6);  // rows of one batch: equal up to BLAS blocking
    REQUIRE(max_abs(emb.embed(ids, mask), v) == 0.0);  // the same call twice: bit for bit
    at::Tensor short_ids = ids.narrow(0, 0, 1).narrow(1, 0, 4);
    at::Tensor unpadded = emb.embed(short_ids, at::Tensor());
    REQUIRE_MSG(max_abs(unpadded[0], v[0]) < 1e-5, "right padding changed the embedding");
  }
  EncoderEmbedder emb(dir, Pool::Mean);
  REQUIRE_THROWS(emb.embed(torch::tensor({1, 64}, at::kInt).view({1, 2}), at::Tensor()));  // id out of range
  REQUIRE_THROWS(emb.embed(torch::tensor({1.0, 2.0}).view({1, 2}), at::Tensor()));       // float ids
  REQUIRE_THROWS(emb.embed(ids, mask.narrow(1, 0, 3)));                                  // mask shape
  REQUIRE_THROWS(EncoderEmbedder("/nonexistent/instill-ckpt", Pool::Mean));
}

TEST(info_nce_matches_direct_formula_and_finite_differences) {
  torch::manual_seed(11);
  for (int64_t N : {1, 2, 5}) {
    at::Tensor a = torch::randn({N, 4}, at::kDouble);
    at::Tensor b = torch::randn({N, 4}, at::kDouble);
    for (double tau : {0.05, 0.5, 1.0}) {
      double got = info_nce(a, b, tau, true).item<double>();
      REQUIRE_CLOSE(got, info_nce_direct(a, b, tau), 1e-10);
    }
  }
  // Gradient against central differences (float64).
  at::Tensor a = torch::randn({4, 3}, at::kDouble).requires_grad_(true);
  at::Tensor b = torch::randn({4, 3}, at::kDouble).requires_grad_(true);
  double tau = 0.3;
  at::Tensor loss = info_nce(a, b, tau, true);
  auto grads = torch::autograd::grad({loss}, {a, b});
  const double eps = 1e-6;
  for (int which = 0; which < 2; ++which) {
    at::Tensor base = (which == 0 ? a : b).detach().clone();
    for (int64_t i = 0; i < base.numel(); ++i) {
      at::Tensor p = base.clone(), m = base.clone();
      p.view(-1)[i] += eps;
      m.view(-1)[i] -= eps;
      double lp = which == 0 ? info_nce_direct(p, b.detach(), tau) : info_nce_direct(a.detach(), p, tau);
      double lm = which == 0 ? info_nce_direct(m, b.detach(), tau) : info_nce_direct(a.detach(), m, tau);
      double fd = (lp - lm) / (2 * eps);
      REQUIRE_CLOSE(grads[which].view(-1)[i].item<double>(), fd, 1e-6);
    }
  }
  // One-directional: rows only.
  at::Tensor x = torch::randn({3, 2}, at::kDouble), y = torch::randn({3, 2}, at::kDouble);
  at::Tensor s = at::matmul(torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(1)),
                            torch::nn::functional::normalize(y, torch::nn::functional::NormalizeFuncOptions().dim(1)).t());
  double ref = 0;
  for (int64_t i = 0; i < 3; ++i) ref += -(s[i][i].item<double>() - std::log(s[i].exp().sum().item<double>()));
  REQUIRE_CLOSE(info_nce(x, y, 1.0, false).item<double>(), ref / 3, 1e-10);
  REQUIRE_THROWS(info_nce(x, y, 0.0, true));
  REQUIRE_THROWS(info_nce(x, y.narrow(0, 0, 2), 1.0, true));
}

// Synthetic groups: each group owns 4 "synonym" tokens; a view is 3 random template tokens (shared by all
// groups) plus one of the group's synonyms. Pairing two synonyms of a group needs training.
struct Synthetic {
  at::Tensor ids, mask, groups;
};

Synthetic synthetic(int64_t G, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const int64_t templ = 10, per = 4, S = 5;
  std::vector<int64_t> ids, mask, groups;
  for (int64_t g = 0; g < G; ++g)
    for (int64_t v = 0; v < per; ++v) {
      int64_t n = 4;
      for (int64_t t = 0; t < S; ++t) {
        if (t < 3) ids.push_back(1 + at::randint(templ, {1}, gen).item<int64_t>());
        else if (t == 3) ids.push_back(1 + templ + g * per + v);
        else ids.push_back(0);
        mask.push_back(t < n ? 1 : 0);
      }
      groups.push_back(g);
    }
  int64_t N = G * per;
  return {torch::tensor(ids).view({N, S}), torch::tensor(mask).view({N, S}), torch::tensor(groups)};
}

TEST(sentence_encoder_training_lowers_loss_and_round_trips) {
  const int64_t G = 12;
  Synthetic d = synthetic(G, 5);
  SentenceEncoderConfig cfg;
  cfg.vocab_size = 1 + 10 + G * 4;
  cfg.dim = 32;
  cfg.heads = 4;
  cfg.ff = 64;
  cfg.layers = 1;
  cfg.max_len = 8;
  cfg.temperature = 0.1;
  SentenceEncoder enc(cfg, 1);
  // Training sees views 0..2 of each group.
  at::Tensor keep = at::arange(G * 4).remainder(4).ne(3);
  at::Tensor sel = keep.nonzero().view(-1);
  ContrastiveOptions o;
  o.steps = 150;
  o.batch = 12;
  o.lr = 3e-3;
  o.seed = 2;
  int64_t calls = 0;
  o.progress = [&](int64_t, double) { ++calls; };
  ContrastiveResult r = train_contrastive(enc, d.ids.index_select(0, sel), d.mask.index_select(0, sel),
                                          d.groups.index_select(0, sel), o);
  REQUIRE(r.steps == 150 && calls == 150 && !r.cancelled);
  double first = 0, last = 0;
  for (int i = 0; i < 10; ++i) {
    first += r.losses[i] / 10;
    last += r.losses[r.losses.size() - 1 - i] / 10;
  }
  std::printf("  contrastive loss %.3f -> %.3f\n", first, last);
  REQUIRE_MSG(last < first * 0.5, "training did not halve the contrastive loss");

  std::string dir = temp_dir("words");
  save_sentence_encoder(enc, dir);
  SentenceEncoder back = load_sentence_encoder(dir);
  REQUIRE(back->config().dim == 32 && back->config().vocab_size == cfg.vocab_size);
  at::Tensor z1 = embed_sentences(enc, d.ids, d.mask), z2 = embed_sentences(back, d.ids, d.mask);
  REQUIRE(z1.size(1) == 32);
  REQUIRE(max_abs(z1, z2) == 0.0);
  // Same seed, same initialization; eval mode is deterministic.
  SentenceEncoder a(cfg, 9), b(cfg, 9);
  REQUIRE(max_abs(embed_sentences(a, d.ids, d.mask), embed_sentences(b, d.ids, d.mask)) == 0.0);
  // Errors.
  REQUIRE_THROWS(embed_sentences(enc, d.ids + 1000, d.mask));
  REQUIRE_THROWS(embed_sentences(enc, torch::ones({1, 9}, at::kLong), at::Tensor()));  // > max_len
  ContrastiveOptions bad;
  bad.batch = 1;
  REQUIRE_THROWS(train_contrastive(enc, d.ids, d.mask, d.groups, bad));
  REQUIRE_THROWS(train_contrastive(enc, d.ids, d.mask, at::arange(G * 4), ContrastiveOptions()));  // no positives
  std::filesystem::remove(std::filesystem::path(dir) / "embedder.safetensors");
  REQUIRE_THROWS(load_sentence_encoder(dir));
  REQUIRE_THROWS(load_sentence_encoder("/nonexistent/instill-embedder"));
  std::filesystem::remove_all(dir);
}

TEST(sentence_encoder_from_t5_trains_and_round_trips) {
  const std::string& ck = tiny_checkpoint();
  SentenceEncoderConfig cfg;
  cfg.kind = "t5";
  SentenceEncoder enc(cfg, 0, ck);
  REQUIRE(enc->config().dim == 64 && enc->config().vocab_size == 64);
  Synthetic d = synthetic(6, 4);
  ContrastiveOptions o;
  o.steps = 3;
  o.batch = 4;
  ContrastiveResult r = train_contrastive(enc, d.ids, d.mask, d.groups, o);
  REQUIRE(r.steps == 3);
  for (double l : r.losses) REQUIRE(std::isfinite(l));
  std::string dir = temp_dir("t5enc");
  save_sentence_encoder(enc, dir);
  REQUIRE(std::filesystem::exists(std::filesystem::path(dir) / "config.json"));
  SentenceEncoder back = load_sentence_encoder(dir);
  REQUIRE(max_abs(embed_sentences(enc, d.ids, d.mask), embed_sentences(back, d.ids, d.mask)) < 1e-6);
  // The saved folder is a T5 checkpoint: the encoder embedder reads it and agrees (mean pooling).
  EncoderEmbedder emb(dir, Pool::Mean);
  REQUIRE(max_abs(emb.embed(d.ids, d.mask), embed_sentences(back, d.ids, d.mask)) < 1e-5);
  std::filesystem::remove_all(dir);
}

int main() {
  int rc = instill_test::run_all();
  std::filesystem::remove_all(tiny_checkpoint());
  return rc;
}
