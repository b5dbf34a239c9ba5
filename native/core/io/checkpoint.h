// Hugging Face checkpoint folders: config.json + model.safetensors, or model.safetensors.index.json + shards; or,
// as many hub T5s ship only that, pytorch_model.bin (or pytorch_model.bin.index.json + shards), read by the
// restricted unpickler of io/torch_bin.h (tensor rebuilding only; nothing from the file is executed).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace instill::io {

// Reads the weights of a checkpoint. `dir` is a checkpoint folder holding model.safetensors,
// model.safetensors.index.json (+ the shards it names), pytorch_model.bin or pytorch_model.bin.index.json (+ shards),
// in that order of preference (as transformers), or directly a weights file (*.safetensors, else a torch.save file).
// Sharded: the index's "weight_map" (tensor -> shard file name) must be string -> string, shard names must be plain
// file names in `dir` (no '/', no ".."), every mapped tensor must be in its shard, and no shard may hold a tensor the
// index maps elsewhere or not at all. Order: shards in file-name order, tensors in each shard's header order.
// FileError for a folder with no weights, for shards of the other format than their index, and for every error of
// read_safetensors / read_torch_bin.
NamedTensors read_checkpoint_weights(const std::string& dir);

// The files read_checkpoint_weights would read (one weights file or the shards), without reading them.
std::vector<std::string> checkpoint_weight_files(const std::string& dir);

// One weights file by its name: *.safetensors, else torch.save. The header gives names, dtypes and shapes only.
NamedTensors read_weight_file(const std::string& path);
std::vector<SafetensorsEntry> read_weight_file_header(const std::string& path);

// Writes weights into `dir` (created if missing): one model.safetensors, or, when max_shard_bytes > 0 and the
// tensors exceed it, shards "model-0000k-of-0000n.safetensors" plus model.safetensors.index.json
// ({"metadata": {"total_size": bytes}, "weight_map": {...}}) as transformers' save_pretrained writes them.
// Every file is written atomically. metadata defaults to {"format": "pt"} like save_pretrained.
void write_checkpoint_weights(const std::string& dir, const NamedTensors& tensors, uint64_t max_shard_bytes = 0,
                              const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Converts the weights of a checkpoint (any format read_checkpoint_weights reads) to safetensors in `out_dir`
// (model.safetensors, or shards + index when max_shard_bytes > 0 and exceeded). `dtype` Undefined keeps each tensor's
// stored dtype, else floating tensors are cast to it. Tensors that alias an earlier one exactly (same storage, offset,
// sizes, strides), as T5's tied encoder/decoder.embed_tokens and lm_head do with shared.weight in a torch.save state
// dict, are written once, under the first name (as transformers' save_pretrained does); `dropped` receives the
// others' names. Returns the tensors written.
struct ConvertResult {
  size_t tensors = 0;
  uint64_t bytes = 0;
  std::vector<std::string> dropped;
  std::vector<std::string> files;
};
ConvertResult convert_checkpoint(const std::string& src, const std::string& out_dir,
                                 at::ScalarType dtype = at::ScalarType::Undefined, uint64_t max_shard_bytes = 0);

std::string read_text_file(const std::string& path);  // FileError when missing or unreadable
void write_text_file_atomic(const std::string& path, const std::string& text);

// mkdir -p; FileError on failure (or when a component exists and is not a folder).
void make_directories(const std::string& dir);

}  // namespace instill::io
