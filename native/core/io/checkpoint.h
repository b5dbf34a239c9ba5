// Hugging Face checkpoint folders: config.json + model.safetensors, or model.safetensors.index.json + shards.
// Pickle formats (pytorch_model.bin, *.pt, *.ckpt) are refused: loading them would execute code from the file.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace instill::io {

// Reads the weights of a checkpoint. `dir` is a checkpoint folder holding model.safetensors or
// model.safetensors.index.json (+ the shards it names), or directly a *.safetensors file.
// Sharded: the index's "weight_map" (tensor -> shard file name) must be string -> string, shard names must be plain
// file names in `dir` (no '/', no ".."), every mapped tensor must be in its shard, and no shard may hold a tensor the
// index maps elsewhere or not at all. Order: shards in file-name order, tensors in each shard's header order.
// FileError for pickle formats ("pickle formats are not loaded; convert to safetensors"), for a folder with no
// weights, and for every error of read_safetensors.
NamedTensors read_checkpoint_weights(const std::string& dir);

// The files read_checkpoint_weights would read (one model.safetensors or the shards), without reading them.
std::vector<std::string> checkpoint_weight_files(const std::string& dir);

// Writes weights into `dir` (created if missing): one model.safetensors, or, when max_shard_bytes > 0 and the
// tensors exceed it, shards "model-0000k-of-0000n.safetensors" plus model.safetensors.index.json
// ({"metadata": {"total_size": bytes}, "weight_map": {...}}) as transformers' save_pretrained writes them.
// Every file is written atomically. metadata defaults to {"format": "pt"} like save_pretrained.
void write_checkpoint_weights(const std::string& dir, const NamedTensors& tensors, uint64_t max_shard_bytes = 0,
                              const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

std::string read_text_file(const std::string& path);  // FileError when missing or unreadable
void write_text_file_atomic(const std::string& path, const std::string& text);

// mkdir -p; FileError on failure (or when a component exists and is not a folder).
void make_directories(const std::string& dir);

}  // namespace instill::io
