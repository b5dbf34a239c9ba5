// safetensors read/write (https://github.com/huggingface/safetensors format), hardened against hostile files.
//
// Layout: 8-byte little-endian u64 N, N bytes of JSON header, then the data section. The header maps tensor names to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data section) plus an optional
// "__metadata__" string -> string object.
//
// The reader rejects, with an instill::FileError naming the file (and the tensor where there is one): a file shorter
// than 8 bytes, N > 100 MB or beyond the end of the file, a header that is not one JSON object, duplicate keys (at any
// level), a `__metadata__` that is not string -> string, an unknown dtype, a shape that is not a list of
// non-negative integers, a byte count whose product overflows, data_offsets outside the data section or not
// matching numel * element size, and tensors that overlap or leave holes (like the reference implementation, the
// data section must be covered exactly), and BOOL tensors holding bytes other than 0/1.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace instill::io {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;  // file order preserved

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  NamedTensors tensors;
};

// One header entry, validated.
struct SafetensorsEntry {
  std::string name;
  std::string dtype_name;       // "F32", "BF16", ...
  at::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // offsets inside the data section
};

struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;
  std::vector<SafetensorsEntry> entries;  // header order
  uint64_t header_bytes = 0;              // N
  uint64_t data_bytes = 0;                // size of the data section
};

constexpr uint64_t kMaxSafetensorsHeaderBytes = 100000000;  // the reference implementation's limit

// Reads the whole file: CPU tensors in the file's dtype (F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL), in header
// order. The data section is read once into one 64-byte-aligned buffer; tensors are views into it (no further copy;
// the buffer is freed with the last tensor). A tensor whose offset is not a multiple of its element size is copied.
SafetensorsFile read_safetensors(const std::string& path);

// Reads and validates the header only (cheap: does not read the data section).
SafetensorsHeader read_safetensors_header(const std::string& path);

// Validates a header given as bytes; `path` is used in messages only. Exposed for tests and tools.
SafetensorsHeader parse_safetensors_header(const std::string& path, const char* json, size_t json_bytes,
                                           uint64_t data_bytes);

// Writes atomically ("<path>.tmp-<pid>-<n>", fsync, rename, fsync of the directory). Tensors may live on any
// device and need not be contiguous. Deterministic layout, as the reference writer: tensors ordered by element size
// (largest first, so every tensor is aligned to its element size) then by name; "__metadata__" first in the header;
// the header padded with spaces to a multiple of 8 bytes. Names must be unique, non-empty, not "__metadata__".
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The serialized bytes write_safetensors would write (for tests and in-memory use).
std::string serialize_safetensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata = {});

// "F32" <-> at::kFloat etc. safetensors_dtype_name throws ArgumentError for unsupported types (complex, quantized...).
std::string safetensors_dtype_name(at::ScalarType t);
bool safetensors_dtype_from_name(const std::string& name, at::ScalarType* out);

}  // namespace instill::io
