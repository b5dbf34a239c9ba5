#include "io/checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/errors.h"
#include "io/file_util.h"
#include "io/torch_bin.h"

namespace instill::io {
namespace {

const char* kSingle = "model.safetensors";
const char* kIndex = "model.safetensors.index.json";
const char* kBinSingle = "pytorch_model.bin";
const char* kBinIndex = "pytorch_model.bin.index.json";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// torch.save files: read by the restricted unpickler of io/torch_bin (nothing is executed).
bool is_torch_name(const std::string& name) {
  return ends_with(name, ".bin") || ends_with(name, ".pt") || ends_with(name, ".pth") || ends_with(name, ".ckpt");
}

std::string base_name(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

struct ShardPlan {
  std::vector<std::string> files;                   // full paths, sorted by file name
  std::map<std::string, std::string> weight_map;    // tensor -> shard file name (empty for a single file)
  std::string index_path;
};

ShardPlan plan(const std::string& dir) {
  ShardPlan p;
  if (path_is_regular_file(dir)) {
    std::string base = base_name(dir);
    if (ends_with(base, ".pkl") || ends_with(base, ".pickle"))
      throw FileError(dir, "plain pickle files are not loaded (only torch.save archives and safetensors)");
    p.files.push_back(dir);
    return p;
  }
  if (!path_exists(dir)) throw FileError(dir, "checkpoint not found");
  if (!path_is_directory(dir)) throw FileError(dir, "not a checkpoint folder or weights file");
  // As transformers: safetensors first, then pytorch_model.bin; single file before an index.
  std::string index;
  bool torch_index = false;
  if (path_is_regular_file(path_join(dir, kSingle))) {
    p.files.push_back(path_join(dir, kSingle));
    return p;
  }
  if (path_is_regular_file(path_join(dir, kIndex))) {
    index = path_join(dir, kIndex);
  } else if (path_is_regular_file(path_join(dir, kBinSingle))) {
    p.files.push_back(path_join(dir, kBinSingle));
    return p;
  } else if (path_is_regular_file(path_join(dir, kBinIndex))) {
    index = path_join(dir, kBinIndex);
    torch_index = true;
  } else {
    throw FileError(dir, std::string("no ") + kSingle + ", " + kIndex + ", " + kBinSingle + " or " + kBinIndex +
                             " in the checkpoint folder");
  }
  p.index_path = index;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(index));
  } catch (const nlohmann::json::exception& e) {
    throw FileError(index, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw FileError(index, "not a JSON object");
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object() || wm->empty()) throw FileError(index, "missing or empty \"weight_map\" object");
  std::set<std::string> shards;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string())
      throw FileError(index, "weight_map entry for '" + it.key() + "' is not a file name string");
    std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos ||
        shard == "." || shard == ".." || shard.find('\0') != std::string::npos)
      throw FileError(index, "weight_map entry for '" + it.key() + "' names '" + shard +
                                 "', which is not a plain file name in the checkpoint folder");
    if (torch_index ? !is_torch_name(shard) : !ends_with(shard, ".safetensors"))
      throw FileError(index, "weight_map entry for '" + it.key() + "' names '" + shard + "', not a " +
                                 (torch_index ? "torch .bin" : ".safetensors") + " file");
    p.weight_map[it.key()] = shard;
    shards.insert(shard);
  }
  for (const auto& s : shards) p.files.push_back(path_join(dir, s));
  return p;
}

}  // namespace

std::vector<std::string> checkpoint_weight_files(const std::string& dir) { return plan(dir).files; }

bool is_safetensors_file(const std::string& path) { return ends_with(path, ".safetensors"); }

NamedTensors read_weight_file(const std::string& path) {
  if (is_safetensors_file(path)) return read_safetensors(path).tensors;
  return read_torch_bin(path);
}

std::vector<SafetensorsEntry> read_weight_file_header(const std::string& path) {
  if (is_safetensors_file(path)) return read_safetensors_header(path).entries;
  return read_torch_bin_header(path);
}

NamedTensors read_checkpoint_weights(const std::string& dir) {
  ShardPlan p = plan(dir);
  if (p.weight_map.empty()) return read_weight_file(p.files.at(0));

  for (const auto& file : p.files)
    if (!path_is_regular_file(file))
      throw FileError(p.index_path, "shard '" + file.substr(file.find_last_of('/') + 1) + "' is missing");
  NamedTensors out;
  std::set<std::string> seen;
  for (const auto& file : p.files) {
    const std::string shard = file.substr(file.find_last_of('/') + 1);
    NamedTensors f = read_weight_file(file);
    for (auto& [name, t] : f) {
      auto it = p.weight_map.find(name);
      if (it == p.weight_map.end())
        throw FileError(file, "tensor '" + name + "' is not in the index " + base_name(p.index_path));
      if (it->second != shard)
        throw FileError(file, "tensor '" + name + "' is mapped to shard '" + it->second + "' by the index");
      seen.insert(name);
      out.emplace_back(std::move(name), std::move(t));
    }
  }
  for (const auto& [name, shard] : p.weight_map)
    if (!seen.count(name))
      throw FileError(path_join(dir, shard), "tensor '" + name + "' listed in " + base_name(p.index_path) + " is missing from the shard");
  return out;
}

void make_directories(const std::string& dir) {
  if (dir.empty()) return;
  std::string cur;
  size_t pos = 0;
  while (pos <= dir.size()) {
    size_t next = dir.find('/', pos);
    if (next == std::string::npos) next = dir.size();
    cur = dir.substr(0, next);
    pos = next + 1;
    if (cur.empty()) continue;  // leading '/'
    if (::mkdir(cur.c_str(), 0777) != 0) {
      int err = errno;
      if (err != EEXIST) throw FileError(cur, std::string("cannot create folder: ") + std::strerror(err));
      if (!path_is_directory(cur)) throw FileError(cur, "exists and is not a folder");
    }
  }
}

void write_checkpoint_weights(const std::string& dir, const NamedTensors& tensors, uint64_t max_shard_bytes,
                              const std::map<std::string, std::string>& metadata) {
  make_directories(dir);
  uint64_t total = 0;
  std::vector<std::vector<size_t>> groups(1);
  uint64_t cur = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i].second;
    if (!t.defined()) throw ArgumentError(dir + ": tensor '" + tensors[i].first + "' is undefined");
    uint64_t nb = static_cast<uint64_t>(t.numel()) * t.element_size();
    if (max_shard_bytes > 0 && cur > 0 && cur + nb > max_shard_bytes) {
      groups.emplace_back();
      cur = 0;
    }
    groups.back().push_back(i);
    cur += nb;
    total += nb;
  }
  const std::string single = path_join(dir, kSingle), index = path_join(dir, kIndex);
  if (groups.size() == 1) {
    write_safetensors(single, tensors, metadata);
    if (path_exists(index)) ::unlink(index.c_str());  // a stale index would describe other weights
    return;
  }
  nlohmann::json wm = nlohmann::json::object();
  const size_t n = groups.size();
  for (size_t g = 0; g < n; ++g) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", g + 1, n);
    NamedTensors part;
    for (size_t i : groups[g]) {
      part.push_back(tensors[i]);
      wm[tensors[i].first] = name;
    }
    write_safetensors(path_join(dir, name), part, metadata);
  }
  nlohmann::json idx = {{"metadata", {{"total_size", total}}}, {"weight_map", wm}};
  write_text_file_atomic(index, idx.dump(2) + "\n");
  if (path_exists(single)) ::unlink(single.c_str());  // it would take precedence over the new shards
}

ConvertResult convert_checkpoint(const std::string& src, const std::string& out_dir, at::ScalarType dtype,
                                 uint64_t max_shard_bytes) {
  if (dtype != at::ScalarType::Undefined && !at::isFloatingType(dtype))
    throw ArgumentError("convert_checkpoint: dtype must be a floating type");
  NamedTensors in = read_checkpoint_weights(src);
  ConvertResult r;
  NamedTensors out;
  std::vector<const at::Tensor*> kept;
  for (auto& [name, t] : in) {
    bool alias = false;
    for (const at::Tensor* k : kept)
      if (k->is_alias_of(t) && k->storage_offset() == t.storage_offset() && k->sizes().equals(t.sizes()) &&
          k->strides().equals(t.strides()) && k->scalar_type() == t.scalar_type()) {
        alias = true;
        break;
      }
    if (alias) {
      r.dropped.push_back(name);
      continue;
    }
    kept.push_back(&t);
    at::Tensor c = dtype != at::ScalarType::Undefined && at::isFloatingType(t.scalar_type()) ? t.to(dtype) : t;
    r.bytes += static_cast<uint64_t>(c.numel()) * c.element_size();
    out.emplace_back(name, std::move(c));
  }
  r.tensors = out.size();
  write_checkpoint_weights(out_dir, out, max_shard_bytes);
  r.files = checkpoint_weight_files(out_dir);
  return r;
}

std::string read_text_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) throw FileError(path, "file not found");
    throw FileError(path, std::string("cannot open: ") + std::strerror(err));
  }
  FdCloser closer(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) throw FileError(path, std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw FileError(path, "not a regular file");
  std::string text(static_cast<size_t>(st.st_size), '\0');
  if (!text.empty()) read_exact(fd, text.data(), text.size(), 0, path);
  return text;
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, [&](int fd) { write_all(fd, text.data(), text.size(), path); });
}

}  // namespace instill::io
