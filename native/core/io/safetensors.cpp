#include "io/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/errors.h"
#include "io/file_util.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "instill's safetensors code assumes a little-endian host"
#endif

namespace instill::io {
namespace {

using ojson = nlohmann::ordered_json;

struct DtypeRow {
  const char* name;
  at::ScalarType type;
};
const DtypeRow kDtypes[] = {
    {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16},
    {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
    {"U8", at::kByte},    {"BOOL", at::kBool},
};

// Names in messages: printable, bounded, quoted.
std::string quote(const std::string& s) { return "'" + printable(s, 200) + "'"; }

[[noreturn]] void fail(const std::string& path, const std::string& msg) { throw FileError(path, msg); }
[[noreturn]] void fail_tensor(const std::string& path, const std::string& name, const std::string& msg) {
  throw FileError(path, "tensor " + quote(name) + ": " + msg);
}

uint64_t read_le_u64(const unsigned char* b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

// Duplicate-key and depth detection while nlohmann parses (nlohmann silently keeps one of duplicate keys).
struct HeaderScan {
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::vector<bool> is_object;              // open containers
  std::string current_top;                  // the top-level key being parsed
  std::string duplicate;                    // first duplicate found
  std::string duplicate_in;                 // its top-level entry ("" when top level)
  bool too_deep = false;
};

}  // namespace

std::string safetensors_dtype_name(at::ScalarType t) {
  for (const auto& r : kDtypes)
    if (r.type == t) return r.name;
  throw ArgumentError(std::string("dtype ") + c10::toString(t) + " cannot be stored in safetensors by instill "
                      "(supported: float64, float32, float16, bfloat16, int64, int32, int16, int8, uint8, bool)");
}

bool safetensors_dtype_from_name(const std::string& name, at::ScalarType* out) {
  for (const auto& r : kDtypes)
    if (name == r.name) {
      *out = r.type;
      return true;
    }
  return false;
}

SafetensorsHeader parse_safetensors_header(const std::string& path, const char* json, size_t json_bytes,
                                           uint64_t data_bytes) {
  SafetensorsHeader h;
  h.header_bytes = json_bytes;
  h.data_bytes = data_bytes;
  // The reference requires the header to start with '{'.
  if (json_bytes == 0 || json[0] != '{') fail(path, "header is not a JSON object (it must start with '{')");

  HeaderScan scan;
  constexpr int kMaxDepth = 6;  // top object 0, entry 1, shape/offsets 2: anything much deeper is hostile
  ojson::parser_callback_t cb = [&scan](int depth, nlohmann::json::parse_event_t ev, ojson& parsed) -> bool {
    using E = nlohmann::json::parse_event_t;
    if (depth > kMaxDepth) {
      scan.too_deep = true;
      return false;
    }
    switch (ev) {
      case E::object_start:
        scan.keys.emplace_back();
        scan.is_object.push_back(true);
        break;
      case E::array_start:
        scan.is_object.push_back(false);
        break;
      case E::object_end:
        if (!scan.keys.empty()) scan.keys.pop_back();
        if (!scan.is_object.empty()) scan.is_object.pop_back();
        break;
      case E::array_end:
        if (!scan.is_object.empty()) scan.is_object.pop_back();
        break;
      case E::key: {
        if (scan.keys.empty() || !parsed.is_string()) break;
        const std::string& k = parsed.get_ref<const std::string&>();
        if (scan.keys.size() == 1) scan.current_top = k;
        if (!scan.keys.back().insert(k).second && scan.duplicate.empty()) {
          scan.duplicate = k;
          scan.duplicate_in = scan.keys.size() == 1 ? "" : scan.current_top;
        }
        break;
      }
      default:
        break;
    }
    return true;
  };

  ojson doc;
  try {
    doc = ojson::parse(json, json + json_bytes, cb, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (scan.too_deep) fail(path, "header JSON is nested too deeply");
  if (!scan.duplicate.empty()) {
    if (scan.duplicate_in.empty()) fail(path, "duplicate tensor name " + quote(scan.duplicate) + " in header");
    fail(path, "duplicate key " + quote(scan.duplicate) + " in header entry " + quote(scan.duplicate_in));
  }
  if (!doc.is_object()) fail(path, "header is not a JSON object");

  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string& name = it.key();
    const ojson& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "__metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail(path, "__metadata__ value for " + quote(m.key()) + " is not a string");
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (name.empty()) fail(path, "empty tensor name in header");
    if (!v.is_object()) fail_tensor(path, name, "header entry is not an object");
    for (auto f = v.begin(); f != v.end(); ++f)
      if (f.key() != "dtype" && f.key() != "shape" && f.key() != "data_offsets")
        fail_tensor(path, name, "unknown field " + quote(f.key()));
    SafetensorsEntry e;
    e.name = name;
    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) fail_tensor(path, name, "missing or non-string dtype");
    e.dtype_name = dt->get<std::string>();
    if (!safetensors_dtype_from_name(e.dtype_name, &e.dtype))
      fail_tensor(path, name, "unsupported dtype " + quote(e.dtype_name) +
                                  " (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) fail_tensor(path, name, "missing or non-list shape");
    uint64_t numel = 1;
    for (const auto& d : *sh) {
      if (d.is_number_integer() && !d.is_number_unsigned()) fail_tensor(path, name, "negative dimension in shape");
      if (!d.is_number_unsigned()) fail_tensor(path, name, "shape entries must be non-negative integers");
      uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail_tensor(path, name, "dimension too large");
      if (__builtin_mul_overflow(numel, dim, &numel)) fail_tensor(path, name, "shape overflows (numel > 2^64)");
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    if (numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail_tensor(path, name, "shape overflows (numel > 2^63)");
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(c10::elementSize(e.dtype)), &nbytes))
      fail_tensor(path, name, "byte size overflows");
    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2) fail_tensor(path, name, "data_offsets must be [begin, end]");
    if (!(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
      fail_tensor(path, name, "data_offsets must be non-negative integers");
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.end < e.begin) fail_tensor(path, name, "data_offsets end < begin");
    if (e.end > data_bytes)
      fail_tensor(path, name, "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                                  "] are beyond the data section (" + std::to_string(data_bytes) + " bytes)");
    if (e.end - e.begin != nbytes)
      fail_tensor(path, name, "data_offsets span " + std::to_string(e.end - e.begin) + " bytes but dtype " +
                                  e.dtype_name + " and shape need " + std::to_string(nbytes));
    h.entries.push_back(std::move(e));
  }

  // Like the reference implementation: the tensors cover the data section exactly, without overlap or holes.
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : h.entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t expected = 0;
  const SafetensorsEntry* prev = nullptr;
  for (const auto* e : by_offset) {
    if (e->begin < expected)
      fail_tensor(path, e->name, "data overlaps tensor " + quote(prev ? prev->name : std::string()));
    if (e->begin > expected)
      fail_tensor(path, e->name, "hole in the data section before this tensor (bytes " + std::to_string(expected) +
                                     ".." + std::to_string(e->begin) + " belong to no tensor)");
    expected = e->end;
    if (e->end > e->begin) prev = e;
  }
  if (expected != data_bytes)
    fail(path, "data section has " + std::to_string(data_bytes - expected) +
                   " trailing bytes that belong to no tensor (or the file was extended)");
  return h;
}

namespace {

struct OpenedHeader {
  SafetensorsHeader header;
  uint64_t data_start = 0;
};

OpenedHeader read_header_fd(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) fail(path, std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) fail(path, "too short to be a safetensors file (" + std::to_string(size) + " bytes)");
  unsigned char lenbuf[8];
  read_exact(fd, lenbuf, 8, 0, path);
  const uint64_t n = read_le_u64(lenbuf);
  if (n > kMaxSafetensorsHeaderBytes)
    fail(path, "header length " + std::to_string(n) + " exceeds the limit of " +
                   std::to_string(kMaxSafetensorsHeaderBytes) + " bytes (not a safetensors file?)");
  if (n > size - 8)
    fail(path, "header length " + std::to_string(n) + " exceeds the file size (" + std::to_string(size) +
                   " bytes): truncated or not a safetensors file");
  std::string json(static_cast<size_t>(n), '\0');
  read_exact(fd, json.data(), json.size(), 8, path);
  OpenedHeader out;
  out.data_start = 8 + n;
  out.header = parse_safetensors_header(path, json.data(), json.size(), size - out.data_start);
  return out;
}

int open_for_read(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) fail(path, "file not found");
    fail(path, std::string("cannot open: ") + std::strerror(err));
  }
  return fd;
}

}  // namespace

SafetensorsHeader read_safetensors_header(const std::string& path) {
  FdCloser fd(open_for_read(path));
  return read_header_fd(fd.fd, path).header;
}

SafetensorsFile read_safetensors(const std::string& path) {
  FdCloser fd(open_for_read(path));
  OpenedHeader oh = read_header_fd(fd.fd, path);
  const uint64_t data_bytes = oh.header.data_bytes;
  if (data_bytes > static_cast<uint64_t>(std::numeric_limits<size_t>::max() / 2)) fail(path, "file too large");

  std::shared_ptr<void> buffer;
  if (data_bytes > 0) {
    void* p = nullptr;
    size_t alloc = static_cast<size_t>((data_bytes + 63) / 64 * 64);
    if (::posix_memalign(&p, 64, alloc) != 0 || p == nullptr)
      fail(path, "out of memory allocating " + std::to_string(data_bytes) + " bytes");
    buffer = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
    read_exact(fd.fd, p, static_cast<size_t>(data_bytes), oh.data_start, path);
  }
  const char* base = static_cast<const char*>(buffer.get());

  SafetensorsFile out;
  out.metadata = std::move(oh.header.metadata);
  out.tensors.reserve(oh.header.entries.size());
  for (const auto& e : oh.header.entries) {
    const size_t nbytes = static_cast<size_t>(e.end - e.begin);
    const char* src = base ? base + e.begin : nullptr;
    if (e.dtype == at::kBool) {
      for (size_t i = 0; i < nbytes; ++i)
        if (static_cast<unsigned char>(src[i]) > 1) fail_tensor(path, e.name, "BOOL tensor holds a byte other than 0 or 1");
    }
    auto opts = at::TensorOptions().dtype(e.dtype).device(at::kCPU);
    at::Tensor t;
    const size_t esize = c10::elementSize(e.dtype);
    if (nbytes == 0) {
      t = at::empty(e.shape, opts);
    } else if (reinterpret_cast<uintptr_t>(src) % esize == 0) {
      std::shared_ptr<void> keep = buffer;
      t = at::from_blob(const_cast<char*>(src), e.shape, [keep](void*) mutable { keep.reset(); }, opts);
    } else {
      t = at::empty(e.shape, opts);
      std::memcpy(t.data_ptr(), src, nbytes);
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

namespace {

struct Prepared {
  std::string header;  // padded
  std::vector<std::pair<std::string, at::Tensor>> ordered;  // contiguous CPU tensors in data order
};

Prepared prepare(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata,
                 const std::string& path_for_messages) {
  std::set<std::string> seen;
  Prepared p;
  p.ordered.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    if (name.empty()) throw ArgumentError(path_for_messages + ": empty tensor name");
    if (name == "__metadata__") throw ArgumentError(path_for_messages + ": '__metadata__' is not a valid tensor name");
    if (!seen.insert(name).second) throw ArgumentError(path_for_messages + ": duplicate tensor name " + quote(name));
    if (!t.defined()) throw ArgumentError(path_for_messages + ": tensor " + quote(name) + " is undefined");
    (void)safetensors_dtype_name(t.scalar_type());  // throws for unsupported types
    if (t.is_sparse() || t.is_quantized())
      throw ArgumentError(path_for_messages + ": tensor " + quote(name) + " is sparse or quantized");
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    if (c.is_conj() || c.is_neg()) c = c.resolve_conj().resolve_neg();
    p.ordered.emplace_back(name, std::move(c));
  }
  std::stable_sort(p.ordered.begin(), p.ordered.end(), [](const auto& a, const auto& b) {
    size_t ea = c10::elementSize(a.second.scalar_type()), eb = c10::elementSize(b.second.scalar_type());
    return ea != eb ? ea > eb : a.first < b.first;
  });
  ojson h = ojson::object();
  if (!metadata.empty()) {
    ojson m = ojson::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : p.ordered) {
    uint64_t nbytes = static_cast<uint64_t>(t.numel()) * c10::elementSize(t.scalar_type());
    ojson e = ojson::object();
    e["dtype"] = safetensors_dtype_name(t.scalar_type());
    ojson shape = ojson::array();
    for (auto d : t.sizes()) shape.push_back(static_cast<uint64_t>(d));
    e["shape"] = std::move(shape);
    e["data_offsets"] = ojson::array({offset, offset + nbytes});
    h[name] = std::move(e);
    offset += nbytes;
  }
  try {
    p.header = h.dump();
  } catch (const nlohmann::json::exception& e) {
    throw ArgumentError(path_for_messages + ": cannot encode header (tensor names and metadata must be UTF-8): " +
                        e.what());
  }
  if (p.header.size() % 8) p.header.append(8 - p.header.size() % 8, ' ');
  if (p.header.size() > kMaxSafetensorsHeaderBytes)
    throw ArgumentError(path_for_messages + ": header would exceed " + std::to_string(kMaxSafetensorsHeaderBytes) +
                        " bytes");
  return p;
}

void le_u64(uint64_t v, char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

}  // namespace

std::string serialize_safetensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  Prepared p = prepare(tensors, metadata, "<memory>");
  std::string out(8, '\0');
  le_u64(p.header.size(), out.data());
  out += p.header;
  for (const auto& [name, t] : p.ordered)
    out.append(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.nbytes()));
  return out;
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  Prepared p = prepare(tensors, metadata, path);
  write_file_atomic(path, [&](int fd) {
    char len[8];
    le_u64(p.header.size(), len);
    write_all(fd, len, 8, path);
    write_all(fd, p.header.data(), p.header.size(), path);
    for (const auto& [name, t] : p.ordered)
      if (t.nbytes() > 0) write_all(fd, t.data_ptr(), static_cast<size_t>(t.nbytes()), path);
  });
}

}  // namespace instill::io
