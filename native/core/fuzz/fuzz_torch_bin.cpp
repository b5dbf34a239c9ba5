// Fuzz harness: instill::io::parse_torch_bin / parse_torch_bin_header (the restricted unpickler for torch.save
// files) on hostile bytes. Seeds: the .bin fixtures in test/fixtures/torch-bin (valid tiny T5 checkpoints, views,
// a wrapped state dict, a legacy file, an os.system payload). Accepted files must agree with the header reader and
// have every tensor readable (ASan checks each view stays inside its storage); rejections must be
// instill::FileError naming the file.
#include <filesystem>

#include "fuzz/common.h"
#include "io/torch_bin.h"

#ifndef INSTILL_FUZZ_FIXTURES
#define INSTILL_FUZZ_FIXTURES ""
#endif

namespace instill_fuzz {

const char* kName = "torch_bin";

std::vector<std::string> seeds() {
  std::vector<std::string> out;
  const std::filesystem::path dir = INSTILL_FUZZ_FIXTURES;
  std::error_code ec;
  if (!dir.empty() && std::filesystem::is_directory(dir, ec))
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec))
      if (e.is_regular_file() && e.path().extension() == ".bin") out.push_back(read_whole(e.path().string()));
  if (out.empty()) {
    std::fprintf(stderr, "fuzz_torch_bin: no seed files under '%s'; starting from a bare zip header\n", INSTILL_FUZZ_FIXTURES);
    out.push_back(std::string("PK\x03\x04", 4));
  }
  return out;
}

std::vector<std::string> dictionary() {
  return {std::string("PK\x03\x04", 4), std::string("PK\x01\x02", 4), std::string("PK\x05\x06", 4), "archive/data.pkl",
          "archive/data/0", "data.pkl", "\x80\x02", "}", "]", "(", "t", "q", "h", "X", "K", "M", "J", "R", "b", "u", "s",
          "e", ".", "Q", "N", "\x8a\x08", "\x94", "\x95", "ctorch._utils\n_rebuild_tensor_v2\n",
          "ctorch._utils\n_rebuild_parameter\n", "ccollections\nOrderedDict\n", "cos\nsystem\n", "cbuiltins\neval\n",
          "ctorch\nFloatStorage\n", "ctorch\nBFloat16Storage\n", "ctorch\nLongStorage\n", "storage", "cpu", "cuda:0",
          std::string("\xff\xff\xff\xff", 4), std::string("\x00\x00\x00\x00", 4)};
}

void fixup(std::string&, Rng&) {}

Outcome one(const uint8_t* data, size_t size) {
  static const std::string path = "/fuzz/pytorch_model.bin";
  instill::io::NamedTensors t;
  try {
    t = instill::io::parse_torch_bin(path, data, size);
  } catch (const instill::FileError& e) {
    return file_rejection(e, path);
  }
  touch_all(t);
  std::vector<instill::io::SafetensorsEntry> h;
  try {
    h = instill::io::parse_torch_bin_header(path, data, size);
  } catch (const std::exception& e) {
    throw Violation(std::string("parse_torch_bin accepted a file the header reader rejects: ") + e.what());
  }
  if (h.size() != t.size()) throw Violation("header reader and full reader disagree on the tensor count");
  for (size_t i = 0; i < t.size(); ++i)
    if (h[i].name != t[i].first || std::vector<int64_t>(t[i].second.sizes().begin(), t[i].second.sizes().end()) != h[i].shape)
      throw Violation("header reader and full reader disagree on '" + t[i].first + "'");
  return Outcome{};
}

}  // namespace instill_fuzz

INSTILL_FUZZ_MAIN()
