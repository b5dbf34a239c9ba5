// PyTorch checkpoints (pytorch_model.bin, *.pt, *.pth, *.ckpt written by torch.save) read without executing the file.
//
// torch.save (torch >= 1.6) writes a zip archive of stored (uncompressed) entries: <prefix>/data.pkl, a pickle of
// the state dict in which every tensor is a call to torch._utils._rebuild_tensor_v2 on a persistent id
// ('storage', torch.<Type>Storage, key, location, numel) whose bytes are the entry <prefix>/data/<key>.
//
// The reader is a restricted unpickler, as torch.load(weights_only=True): the pickle is interpreted by a small stack
// machine that never calls anything; the only globals it admits are collections.OrderedDict,
// torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter(_with_state) and torch.<Type>Storage. Any other
// global (os.system, builtins.eval, ...), opcode or call is refused with an instill::FileError naming the file, the
// byte offset and the global; nothing from the file is executed. Everything is bounded: zip and pickle lengths are
// checked against the file size, the stack, memo and container nesting (depth <= 64) have limits, and a tensor's
// extent (offset + sum((size - 1) * stride)) must lie inside its storage. The legacy (pre-1.6, non-zip) format,
// compressed or encrypted entries, big-endian files and TorchScript archives are refused with a message saying so.
#pragma once
#include <ATen/ATen.h>

#include <cstddef>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace instill::io {

// The tensors of a torch.save file, in the state dict's order, as CPU tensors in their stored dtype (views into one
// buffer per storage; tensors sharing a storage, like T5's tied embeddings, share it here too). A file whose top-level
// object is not a dict of tensors, or a dict holding one ("state_dict", "model", "module"), is refused.
NamedTensors read_torch_bin(const std::string& path);

// Names, dtypes and shapes (data_offsets left 0) from the pickle, without reading the storages.
std::vector<SafetensorsEntry> read_torch_bin_header(const std::string& path);

// Both from bytes in memory (fuzzing and tests); `path` is used in messages only.
NamedTensors parse_torch_bin(const std::string& path, const void* data, size_t size);
std::vector<SafetensorsEntry> parse_torch_bin_header(const std::string& path, const void* data, size_t size);

// True when the first bytes look like a zip archive ("PK\3\4").
bool looks_like_zip(const std::string& path);

}  // namespace instill::io
