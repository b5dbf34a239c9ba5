// Fuzz harness: instill::io::read_safetensors (and read_safetensors_header) on hostile files.
// Accepted files must read back whole (every byte touched), agree with the header-only reader, and survive a
// write/read round trip bit for bit; rejections must be instill::FileError naming the file. See fuzz/driver.h.
#include "fuzz/common.h"
#include "io/safetensors.h"

namespace instill_fuzz {

const char* kName = "safetensors";

std::vector<std::string> seeds() {
  using instill::io::serialize_safetensors;
  torch::manual_seed(3);
  std::vector<std::string> out;
  out.push_back(serialize_safetensors({{"a", torch::randn({2, 3})},
                                       {"b", torch::arange(4, torch::kLong)},
                                       {"c", torch::tensor({true, false, true})},
                                       {"d", torch::randn({2, 2}).to(torch::kBFloat16)},
                                       {"e", torch::zeros({0}, torch::kHalf)},
                                       {"f", torch::tensor(7, torch::kByte)},
                                       {"g", torch::arange(5, torch::kChar)},
                                       {"h", torch::randn({1}, torch::kDouble)},
                                       {"i", torch::arange(3, torch::kInt)},
                                       {"j", torch::arange(2, torch::kShort)}},
                                      {{"format", "pt"}}));
  out.push_back(serialize_safetensors({{"encoder.block.0.layer.0.SelfAttention.q.weight", torch::randn({4, 4})}}));
  out.push_back(serialize_safetensors({}));
  out.push_back(serialize_safetensors({{"x", torch::randn({3}).to(torch::kHalf)}, {"y", torch::tensor({1}, torch::kByte)}}));
  return out;
}

std::vector<std::string> dictionary() { return safetensors_dictionary(); }

void fixup(std::string& s, Rng&) { fix_safetensors_length(s); }

Outcome one(const uint8_t* data, size_t size) {
  static const std::string path = scratch_path("safetensors", ".safetensors");
  static const std::string path2 = scratch_path("safetensors", "-roundtrip.safetensors");
  write_whole(path, reinterpret_cast<const char*>(data), size);
  instill::io::SafetensorsFile f;
  try {
    f = instill::io::read_safetensors(path);
  } catch (const instill::FileError& e) {
    return file_rejection(e, path);
  }
  touch_all(f.tensors);
  instill::io::SafetensorsHeader h;
  try {
    h = instill::io::read_safetensors_header(path);
  } catch (const std::exception& e) {
    throw Violation(std::string("read_safetensors accepted a file the header reader rejects: ") + e.what());
  }
  if (h.entries.size() != f.tensors.size()) throw Violation("header reader and full reader disagree on the tensor count");
  // Round trip: what we write reads back to the same names, dtypes, shapes, bytes and metadata.
  instill::io::write_safetensors(path2, f.tensors, f.metadata);
  auto g = instill::io::read_safetensors(path2);
  if (g.metadata != f.metadata) throw Violation("metadata differs after a round trip");
  if (g.tensors.size() != f.tensors.size()) throw Violation("tensor count differs after a round trip");
  std::map<std::string, at::Tensor> by_name(g.tensors.begin(), g.tensors.end());
  for (const auto& [name, t] : f.tensors) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw Violation("tensor '" + name + "' lost in a round trip");
    const at::Tensor& u = it->second;
    if (u.scalar_type() != t.scalar_type() || u.sizes() != t.sizes()) throw Violation("tensor '" + name + "' changed dtype or shape");
    auto a = t.contiguous(), b = u.contiguous();
    if (a.nbytes() != b.nbytes() || (a.nbytes() > 0 && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) != 0))
      throw Violation("tensor '" + name + "' bytes differ after a round trip");
  }
  return Outcome{};
}

}  // namespace instill_fuzz

INSTILL_FUZZ_MAIN()
