// Shared pieces of the fuzz harnesses: a private scratch path per process, whole-file writes, the safetensors
// dictionary, and the check that a rejection names the file.
#pragma once
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "common/errors.h"
#include "fuzz/driver.h"

namespace instill_fuzz {

// <TMPDIR or /tmp>/instill-fuzz-<name>-<pid><suffix>
inline std::string scratch_path(const std::string& name, const std::string& suffix) {
  const char* t = std::getenv("TMPDIR");
  return std::string(t && *t ? t : "/tmp") + "/instill-fuzz-" + name + "-" + std::to_string(::getpid()) + suffix;
}

inline void write_whole(const std::string& path, const char* data, size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data, static_cast<std::streamsize>(size));
  if (!f) throw std::runtime_error("fuzz: cannot write scratch file " + path);
}

inline std::string read_whole(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// A FileError must start with the path of the file it rejects (or of the folder holding it).
inline Outcome file_rejection(const instill::FileError& e, const std::string& path_prefix) {
  const std::string msg = e.what();
  if (msg.rfind(path_prefix, 0) != 0) throw Violation("FileError does not start with '" + path_prefix + "': " + msg);
  return rejected("FileError");
}

// Every byte of every tensor is read (ASan sees any view past the buffer) and the values are summed.
inline void touch_all(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  for (const auto& [name, t] : tensors) {
    if (t.numel() == 0) continue;
    volatile double s = t.to(at::kDouble).sum().item<double>();
    (void)s;
  }
}

inline std::vector<std::string> safetensors_dictionary() {
  return {"\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "\"F32\"", "\"F16\"", "\"BF16\"",
          "\"F64\"", "\"I64\"", "\"I32\"", "\"I16\"", "\"I8\"", "\"U8\"", "\"BOOL\"", "\"F8_E4M3\"", "\"U64\"",
          "\"C64\"", "[", "]", "{", "}", ",", ":", "[]", "{}", "null", "true", "false", "\"\"", "[0,0]", "[0]",
          "[-1]", "[1,2,3]", "{\"format\":\"pt\"}", "\\u0000", "\\ud800", "\"a\"", "\"a\":", " ", "\x00", "\xff",
          "\"format\"", "1.5", "1e2"};
}

}  // namespace instill_fuzz
