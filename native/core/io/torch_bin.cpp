#include "io/torch_bin.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

#include "common/errors.h"
#include "io/file_util.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "instill's torch checkpoint reader assumes a little-endian host"
#endif

namespace instill::io {
namespace {

constexpr uint64_t kMaxZipEntries = 1u << 20;
constexpr uint64_t kMaxPickleBytes = 1ull << 31;  // a state dict's pickle is kilobytes to a few megabytes
constexpr size_t kMaxStack = 1u << 22;
constexpr size_t kMaxMemo = 1u << 22;
constexpr int kMaxDepth = 64;
constexpr int kMaxDims = 64;

[[noreturn]] void fail(const std::string& path, const std::string& msg) { throw FileError(path, msg); }

// ---- byte sources ------------------------------------------------------------------------------------------------

struct Source {
  std::string path;
  virtual ~Source() = default;
  virtual uint64_t size() const = 0;
  virtual void read_raw(void* out, size_t n, uint64_t off) const = 0;
  void read(void* out, size_t n, uint64_t off) const {
    if (off > size() || n > size() - off)
      fail(path, "read of " + std::to_string(n) + " bytes at offset " + std::to_string(off) + " is past the end of the file (" +
                     std::to_string(size()) + " bytes)");
    if (n) read_raw(out, n, off);
  }
};

struct FdSource : Source {
  int fd = -1;
  uint64_t bytes = 0;
  explicit FdSource(const std::string& p) {
    path = p;
    fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      fail(p, err == ENOENT ? "file not found" : std::string("cannot open: ") + std::strerror(err));
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      fail(p, std::string("cannot stat: ") + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      fail(p, "not a regular file");
    }
    bytes = static_cast<uint64_t>(st.st_size);
  }
  ~FdSource() override {
    if (fd >= 0) ::close(fd);
  }
  uint64_t size() const override { return bytes; }
  void read_raw(void* out, size_t n, uint64_t off) const override { read_exact(fd, out, n, off, path); }
};

struct MemSource : Source {
  const unsigned char* p;
  size_t n;
  MemSource(const std::string& path_, const void* data, size_t size) : p(static_cast<const unsigned char*>(data)), n(size) {
    path = path_;
  }
  uint64_t size() const override { return n; }
  void read_raw(void* out, size_t len, uint64_t off) const override { std::memcpy(out, p + off, len); }
};

uint64_t le(const unsigned char* b, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

// ---- zip (stored entries, zip64) -------------------------------------------------------------------------------

struct ZipEntry {
  std::string name;
  uint64_t data = 0;  // offset of the entry's bytes in the file
  uint64_t size = 0;
};

std::vector<ZipEntry> read_zip(const Source& src) {
  const std::string& path = src.path;
  const uint64_t size = src.size();
  if (size < 22) fail(path, "too short to be a torch.save zip archive (" + std::to_string(size) + " bytes)");
  const uint64_t tail_len = std::min<uint64_t>(size, 22 + 65535);
  std::vector<unsigned char> tail(tail_len);
  src.read(tail.data(), tail_len, size - tail_len);
  int64_t at = -1;
  for (int64_t i = static_cast<int64_t>(tail_len) - 22; i >= 0; --i)
    if (le(&tail[i], 4) == 0x06054b50 && le(&tail[i + 20], 2) == tail_len - i - 22) {
      at = i;
      break;
    }
  if (at < 0) fail(path, "not a zip archive (no end-of-central-directory record): truncated, or not a torch.save file");
  const unsigned char* e = &tail[at];
  const uint64_t eocd = size - tail_len + static_cast<uint64_t>(at);
  uint64_t disk = le(e + 4, 2), cd_disk = le(e + 6, 2), count = le(e + 10, 2), cd_size = le(e + 12, 4), cd_off = le(e + 16, 4);
  if (count == 0xffff || cd_size == 0xffffffff || cd_off == 0xffffffff) {
    if (eocd < 20) fail(path, "zip64 archive without its end-of-central-directory locator");
    unsigned char loc[20];
    src.read(loc, 20, eocd - 20);
    if (le(loc, 4) != 0x07064b50) fail(path, "zip64 archive without its end-of-central-directory locator");
    const uint64_t z = le(loc + 8, 8);
    unsigned char rec[56];
    if (z > size || size - z < 56) fail(path, "zip64 end-of-central-directory record is outside the file");
    src.read(rec, 56, z);
    if (le(rec, 4) != 0x06064b50) fail(path, "bad zip64 end-of-central-directory record");
    disk = le(rec + 16, 4);
    cd_disk = le(rec + 20, 4);
    count = le(rec + 32, 8);
    cd_size = le(rec + 40, 8);
    cd_off = le(rec + 48, 8);
  }
  if (disk != 0 || cd_disk != 0) fail(path, "multi-part zip archives are not supported");
  if (count > kMaxZipEntries) fail(path, "zip archive lists " + std::to_string(count) + " entries (limit " + std::to_string(kMaxZipEntries) + ")");
  if (cd_off > size || cd_size > size - cd_off) fail(path, "zip central directory lies outside the file");
  if (count * 46 > cd_size) fail(path, "zip central directory is too small for its " + std::to_string(count) + " entries");
  std::vector<unsigned char> cd(cd_size);
  src.read(cd.data(), cd_size, cd_off);
  std::vector<ZipEntry> out;
  std::set<std::string> names;
  size_t p = 0;
  for (uint64_t i = 0; i < count; ++i) {
    if (cd_size - p < 46) fail(path, "zip central directory entry " + std::to_string(i) + " is truncated");
    const unsigned char* c = &cd[p];
    if (le(c, 4) != 0x02014b50) fail(path, "zip central directory entry " + std::to_string(i) + " has a bad signature");
    const uint64_t flags = le(c + 8, 2), method = le(c + 10, 2);
    uint64_t csize = le(c + 20, 4), usize = le(c + 24, 4), lho = le(c + 42, 4);
    const uint64_t nlen = le(c + 28, 2), xlen = le(c + 30, 2), clen = le(c + 32, 2);
    if (46 + nlen + xlen + clen > cd_size - p) fail(path, "zip central directory entry " + std::to_string(i) + " is truncated");
    ZipEntry z;
    z.name.assign(reinterpret_cast<const char*>(c + 46), nlen);
    // zip64 extended information: the 0xffffffff fields, in order, as 8-byte values.
    const unsigned char* x = c + 46 + nlen;
    for (uint64_t q = 0; q + 4 <= xlen;) {
      const uint64_t id = le(x + q, 2), len = le(x + q + 2, 2);
      if (q + 4 + len > xlen) fail(path, "zip entry '" + printable(z.name) + "' has a truncated extra field");
      if (id == 1) {
        uint64_t r = q + 4;
        auto take = [&](uint64_t& v) {
          if (v != 0xffffffff) return;
          if (r + 8 > q + 4 + len) fail(path, "zip entry '" + printable(z.name) + "' has a truncated zip64 field");
          v = le(x + r, 8);
          r += 8;
        };
        take(usize);
        take(csize);
        take(lho);
      }
      q += 4 + len;
    }
    if (flags & 1) fail(path, "zip entry '" + printable(z.name) + "' is encrypted");
    if (method != 0)
      fail(path, "zip entry '" + printable(z.name) + "' is compressed (method " + std::to_string(method) +
                     "); torch.save writes stored entries, so this is not a torch.save file");
    if (csize != usize) fail(path, "zip entry '" + printable(z.name) + "' has different stored and original sizes");
    if (lho > size || size - lho < 30) fail(path, "zip entry '" + printable(z.name) + "' has its local header outside the file");
    unsigned char lh[30];
    src.read(lh, 30, lho);
    if (le(lh, 4) != 0x04034b50) fail(path, "zip entry '" + printable(z.name) + "' has a bad local header");
    z.data = lho + 30 + le(lh + 26, 2) + le(lh + 28, 2);
    z.size = usize;
    if (z.data > size || z.size > size - z.data)
      fail(path, "zip entry '" + printable(z.name) + "' (" + std::to_string(z.size) + " bytes) runs past the end of the file");
    if (!names.insert(z.name).second) fail(path, "zip archive holds entry '" + printable(z.name) + "' twice");
    out.push_back(std::move(z));
    p += 46 + nlen + xlen + clen;
  }
  return out;
}

// ---- the restricted unpickler ------------------------------------------------------------------------------------

enum class Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

struct Value;
using VP = std::shared_ptr<Value>;

struct Value {
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s, s2;        // Str; Global: module, name; Storage: key
  std::vector<VP> items;    // Tuple, List; Dict: key, value, key, value...
  at::ScalarType dtype = at::kFloat;  // Storage, Tensor
  int64_t numel = 0;                  // Storage
  const ZipEntry* entry = nullptr;    // Storage
  VP storage;                         // Tensor
  int64_t offset = 0;                 // Tensor (elements)
  std::vector<int64_t> sizes, strides;
  int depth = 1;
  bool contained = false;  // inside a container: no longer mutable (keeps depth exact, makes cycles impossible)
};

VP make(Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  return v;
}

struct StorageType {
  const char* name;
  at::ScalarType dtype;
};
const StorageType kStorages[] = {
    {"FloatStorage", at::kFloat}, {"DoubleStorage", at::kDouble}, {"HalfStorage", at::kHalf},
    {"BFloat16Storage", at::kBFloat16}, {"LongStorage", at::kLong}, {"IntStorage", at::kInt},
    {"ShortStorage", at::kShort}, {"CharStorage", at::kChar}, {"ByteStorage", at::kByte},
    {"BoolStorage", at::kBool},
};

bool allowed_global(const std::string& module, const std::string& name) {
  if (module == "collections" && name == "OrderedDict") return true;
  if (module == "torch._utils" &&
      (name == "_rebuild_tensor_v2" || name == "_rebuild_parameter" || name == "_rebuild_parameter_with_state"))
    return true;
  if (module == "torch")
    for (const auto& s : kStorages)
      if (name == s.name) return true;
  return false;
}

class Unpickler {
 public:
  Unpickler(const std::string& path, const std::string& pk, const std::map<std::string, const ZipEntry*>& storages)
      : path_(path), pk_(pk), storages_(storages) {}

  VP run() {
    while (true) {
      if (pos_ >= pk_.size()) fail(path_, "pickle data.pkl ends without a STOP opcode (truncated)");
      op_at_ = pos_;
      const unsigned char op = static_cast<unsigned char>(pk_[pos_++]);
      switch (op) {
        case 0x80: {  // PROTO
          unsigned proto = u(1);
          if (proto > 5) bad("unsupported pickle protocol " + std::to_string(proto));
          break;
        }
        case 0x95: u(8); break;  // FRAME (the length is only a hint)
        case '.': {              // STOP
          VP v = pop();
          return v;
        }
        case '(': marks_.push_back(stack_.size()); break;
        case ')': push(make(Kind::Tuple)); break;
        case ']': push(make(Kind::List)); break;
        case '}': push(make(Kind::Dict)); break;
        case 't': push(container(Kind::Tuple, pop_mark())); break;
        case 'l': push(container(Kind::List, pop_mark())); break;
        case 'd': {
          auto items = pop_mark();
          if (items.size() % 2) bad("DICT with an odd number of items");
          push(container(Kind::Dict, std::move(items)));
          break;
        }
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
          size_t n = op - 0x84;
          if (stack_.size() < n + base()) bad("stack underflow");
          std::vector<VP> items(stack_.end() - static_cast<long>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(container(Kind::Tuple, std::move(items)));
          break;
        }
        case 'a': {  // APPEND
          VP v = pop();
          add_items(top(), Kind::List, {v});
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_mark();
          add_items(top(), Kind::List, std::move(items));
          break;
        }
        case 's': {  // SETITEM
          VP v = pop();
          VP k = pop();
          add_items(top(), Kind::Dict, {k, v});
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_mark();
          if (items.size() % 2) bad("SETITEMS with an odd number of items");
          add_items(top(), Kind::Dict, std::move(items));
          break;
        }
        case 'N': push(make(Kind::None)); break;
        case 0x88: case 0x89: {
          VP v = make(Kind::Bool);
          v->b = op == 0x88;
          push(v);
          break;
        }
        case 'J': push(int_value(static_cast<int32_t>(static_cast<uint32_t>(u(4))))); break;
        case 'K': push(int_value(u(1))); break;
        case 'M': push(int_value(u(2))); break;
        case 0x8a: {  // LONG1
          unsigned n = u(1);
          if (n > 8) bad("integer of " + std::to_string(n) + " bytes is too large");
          const unsigned char* b = bytes(n);
          uint64_t v = le(b, static_cast<int>(n));
          if (n > 0 && n < 8 && (b[n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
          push(int_value(static_cast<int64_t>(v)));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          const unsigned char* b = bytes(8);
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | b[k];
          VP v = make(Kind::Float);
          std::memcpy(&v->f, &bits, 8);
          push(v);
          break;
        }
        case 'X': push(str_value(u(4))); break;     // BINUNICODE
        case 0x8c: push(str_value(u(1))); break;   // SHORT_BINUNICODE
        case 0x8d: push(str_value(u(8))); break;   // BINUNICODE8
        case 'T': push(str_value(u(4))); break;    // BINSTRING
        case 'U': push(str_value(u(1))); break;    // SHORT_BINSTRING
        case 'B': push(str_value(u(4))); break;    // BINBYTES
        case 'C': push(str_value(u(1))); break;    // SHORT_BINBYTES
        case 'c': {                                // GLOBAL module\nname\n
          std::string module = line(), name = line();
          push(global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          VP name = pop(), module = pop();
          if (name->kind != Kind::Str || module->kind != Kind::Str) bad("STACK_GLOBAL needs two strings");
          push(global(module->s, name->s));
          break;
        }
        case 'R': {  // REDUCE
          VP args = pop(), fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 'b': {  // BUILD: only the attribute dict of an OrderedDict (state_dict()._metadata) is accepted, and ignored
          VP state = pop();
          VP obj = top();
          if (!(obj->kind == Kind::Dict && (state->kind == Kind::Dict || state->kind == Kind::None)) &&
              !(obj->kind == Kind::Tensor && state->kind == Kind::None))
            bad(std::string("BUILD on a ") + kind_name(obj->kind) + " is not allowed in a weights-only load");
          break;
        }
        case 'Q': {  // BINPERSID
          VP pid = pop();
          push(persistent(pid));
          break;
        }
        case 'q': memo_put(u(1)); break;
        case 'r': memo_put(u(4)); break;
        case 0x94: memo_put(memo_.size()); break;
        case 'h': push(memo_get(u(1))); break;
        case 'j': push(memo_get(u(4))); break;
        case '0': pop(); break;
        case '1': pop_mark(); break;
        case '2': push(top()); break;
        default: {
          char b[8];
          std::snprintf(b, sizeof b, "0x%02x", op);
          bad(std::string("pickle opcode ") + b + (op >= 0x20 && op < 0x7f ? std::string(" ('") + char(op) + "')" : "") +
              " is not allowed in a weights-only load (torch.save state dicts use a small subset of pickle)");
        }
      }
    }
  }

 private:
  [[noreturn]] void bad(const std::string& msg) {
    fail(path_, "data.pkl byte " + std::to_string(op_at_) + ": " + msg + "; nothing from the file was executed");
  }
  const unsigned char* bytes(uint64_t n) {
    if (n > pk_.size() - pos_) bad("truncated pickle (needs " + std::to_string(n) + " more bytes)");
    const unsigned char* b = reinterpret_cast<const unsigned char*>(pk_.data() + pos_);
    pos_ += n;
    return b;
  }
  uint64_t u(int n) { return le(bytes(static_cast<uint64_t>(n)), n); }
  std::string line() {
    size_t nl = pk_.find('\n', pos_);
    if (nl == std::string::npos) bad("truncated pickle (a GLOBAL name without its newline)");
    if (nl - pos_ > 256) bad("GLOBAL name is longer than 256 bytes");
    std::string s = pk_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    return s;
  }
  size_t base() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(VP v) {
    if (stack_.size() >= kMaxStack) bad("pickle stack exceeds " + std::to_string(kMaxStack) + " items");
    stack_.push_back(std::move(v));
  }
  VP pop() {
    if (stack_.size() <= base()) bad("stack underflow");
    VP v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  VP top() {
    if (stack_.size() <= base()) bad("stack underflow");
    return stack_.back();
  }
  std::vector<VP> pop_mark() {
    if (marks_.empty()) bad("no MARK on the stack");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<VP> items(stack_.begin() + static_cast<long>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  VP int_value(int64_t x) {
    VP v = make(Kind::Int);
    v->i = x;
    return v;
  }
  VP str_value(uint64_t n) {
    VP v = make(Kind::Str);
    const unsigned char* b = bytes(n);
    v->s.assign(reinterpret_cast<const char*>(b), n);
    return v;
  }
  void adopt(Value& parent, const VP& child) {
    child->contained = true;
    parent.depth = std::max(parent.depth, child->depth + 1);
    if (parent.depth > kMaxDepth) bad("containers nested deeper than " + std::to_string(kMaxDepth));
  }
  VP container(Kind k, std::vector<VP> items) {
    VP v = make(k);
    for (const auto& c : items) adopt(*v, c);
    v->items = std::move(items);
    return v;
  }
  void add_items(const VP& target, Kind want, std::vector<VP> items) {
    if (target->kind != want)
      bad(std::string(want == Kind::List ? "APPEND" : "SETITEM") + " on a " + kind_name(target->kind));
    if (target->contained) bad("a container is changed after being put inside another one");
    for (const auto& c : items) {
      adopt(*target, c);
      target->items.push_back(c);
    }
  }
  void memo_put(uint64_t idx) {
    if (idx >= kMaxMemo) bad("memo index " + std::to_string(idx) + " is too large");
    memo_[idx] = top();
  }
  VP memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) bad("memo index " + std::to_string(idx) + " was never stored");
    return it->second;
  }
  VP global(const std::string& module, const std::string& name) {
    if (!allowed_global(module, name))
      bad("pickle refers to " + printable(module) + "." + printable(name) +
          ", which a weights-only load does not allow (allowed: collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
          "torch._utils._rebuild_parameter, torch.*Storage) - the file may be malicious");
    VP v = make(Kind::Global);
    v->s = module;
    v->s2 = name;
    return v;
  }
  int64_t as_int(const VP& v, const char* what) {
    if (v->kind != Kind::Int) bad(std::string(what) + " must be an int, got " + kind_name(v->kind));
    return v->i;
  }
  std::vector<int64_t> as_ints(const VP& v, const char* what) {
    if (v->kind != Kind::Tuple && v->kind != Kind::List) bad(std::string(what) + " must be a tuple of ints");
    if (v->items.size() > kMaxDims) bad(std::string(what) + " has more than " + std::to_string(kMaxDims) + " dimensions");
    std::vector<int64_t> out;
    for (const auto& x : v->items) out.push_back(as_int(x, what));
    return out;
  }
  VP persistent(const VP& pid) {
    if (pid->kind != Kind::Tuple || pid->items.size() != 5 || pid->items[0]->kind != Kind::Str || pid->items[0]->s != "storage")
      bad("persistent id is not ('storage', type, key, location, numel)");
    const VP& type = pid->items[1];
    if (type->kind != Kind::Global || type->s != "torch") bad("persistent id storage type is not a torch.*Storage");
    at::ScalarType dtype = at::kFloat;
    bool found = false;
    for (const auto& s : kStorages)
      if (type->s2 == s.name) dtype = s.dtype, found = true;
    if (!found) bad("unknown storage type torch." + printable(type->s2));
    const VP& key = pid->items[2];
    if (key->kind != Kind::Str) bad("storage key is not a string");
    if (pid->items[3]->kind != Kind::Str) bad("storage location is not a string");
    const int64_t numel = as_int(pid->items[4], "storage numel");
    if (numel < 0) bad("negative storage size");
    auto it = storages_.find(key->s);
    if (it == storages_.end()) bad("storage '" + printable(key->s) + "' has no data/" + printable(key->s) + " entry in the archive");
    const uint64_t es = c10::elementSize(dtype);
    if (static_cast<uint64_t>(numel) > it->second->size / es)
      bad("storage '" + printable(key->s) + "' claims " + std::to_string(numel) + " elements but its entry holds " +
          std::to_string(it->second->size) + " bytes");
    auto cached = storage_values_.find(key->s);
    if (cached != storage_values_.end()) {
      if (cached->second->dtype != dtype || cached->second->numel != numel) bad("storage '" + printable(key->s) + "' is loaded with two types or sizes");
      return cached->second;
    }
    VP v = make(Kind::Storage);
    v->s = key->s;
    v->dtype = dtype;
    v->numel = numel;
    v->entry = it->second;
    storage_values_[key->s] = v;
    return v;
  }
  VP reduce(const VP& fn, const VP& args) {
    if (fn->kind != Kind::Global) bad(std::string("REDUCE calls a ") + kind_name(fn->kind) + ", not an allowed global");
    if (args->kind != Kind::Tuple) bad("REDUCE arguments are not a tuple");
    const auto& a = args->items;
    const std::string name = fn->s + "." + fn->s2;
    if (name == "collections.OrderedDict") {
      if (!a.empty()) bad("collections.OrderedDict is only admitted without arguments");
      return make(Kind::Dict);
    }
    if (name == "torch._utils._rebuild_tensor_v2") {
      if (a.size() < 6 || a.size() > 7) bad("_rebuild_tensor_v2 takes 6 or 7 arguments, got " + std::to_string(a.size()));
      if (a[0]->kind != Kind::Storage) bad("_rebuild_tensor_v2's first argument is not a storage");
      VP t = make(Kind::Tensor);
      t->storage = a[0];
      t->dtype = a[0]->dtype;
      t->offset = as_int(a[1], "storage offset");
      t->sizes = as_ints(a[2], "size");
      t->strides = as_ints(a[3], "stride");
      if (a[4]->kind != Kind::Bool) bad("requires_grad is not a bool");
      if (!(a[5]->kind == Kind::Dict && a[5]->items.empty())) bad("backward hooks must be an empty OrderedDict");
      if (t->sizes.size() != t->strides.size()) bad("size and stride have different lengths");
      check_extent(*t);
      return t;
    }
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
      if (a.size() < 3 || a[0]->kind != Kind::Tensor) bad(name + " needs (tensor, requires_grad, hooks)");
      return a[0];
    }
    bad(name + " cannot be called");
  }
  void check_extent(const Value& t) {
    if (t.offset < 0) bad("negative storage offset");
    int64_t numel = 1, last = t.offset;
    for (size_t d = 0; d < t.sizes.size(); ++d) {
      if (t.sizes[d] < 0 || t.strides[d] < 0) bad("negative size or stride");
      if (__builtin_mul_overflow(numel, t.sizes[d], &numel)) bad("tensor size overflows");
    }
    if (numel == 0) return;
    for (size_t d = 0; d < t.sizes.size(); ++d) {
      int64_t span = 0;
      if (__builtin_mul_overflow(t.sizes[d] - 1, t.strides[d], &span) || __builtin_add_overflow(last, span, &last))
        bad("tensor extent overflows");
    }
    if (last >= t.storage->numel)
      bad("tensor (offset " + std::to_string(t.offset) + ", extent to element " + std::to_string(last) +
          ") reaches past its storage of " + std::to_string(t.storage->numel) + " elements");
  }

  const std::string& path_;
  const std::string& pk_;
  const std::map<std::string, const ZipEntry*>& storages_;
  size_t pos_ = 0, op_at_ = 0;
  std::vector<VP> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, VP> memo_;
  std::map<std::string, VP> storage_values_;
};

struct Parsed {
  std::vector<ZipEntry> zip;
  std::vector<std::pair<std::string, VP>> tensors;
};

Parsed parse(const Source& src) {
  const std::string& path = src.path;
  unsigned char magic[4] = {0, 0, 0, 0};
  if (src.size() >= 4) src.read(magic, 4, 0);
  if (src.size() >= 2 && magic[0] == 0x80 && magic[1] <= 5)
    fail(path, "legacy torch.save format (before torch 1.6, not a zip archive) is not supported; re-save it with a newer torch "
               "(torch.save(torch.load(f, weights_only=True), out)) or convert it to safetensors");
  if (!(magic[0] == 'P' && magic[1] == 'K')) fail(path, "not a torch.save zip archive (it does not start with 'PK')");
  Parsed out;
  out.zip = read_zip(src);
  // The record prefix: the directory of the shortest "<prefix>/data.pkl".
  const ZipEntry* pkl = nullptr;
  for (const auto& e : out.zip) {
    const std::string& n = e.name;
    if (n.size() >= 9 && n.compare(n.size() - 9, 9, "/data.pkl") == 0 && n.find('/') == n.size() - 9 &&
        (!pkl || n.size() < pkl->name.size()))
      pkl = &e;
  }
  if (!pkl) fail(path, "zip archive without <name>/data.pkl: not a torch.save file");
  const std::string prefix = pkl->name.substr(0, pkl->name.size() - 8);  // "<name>/"
  std::map<std::string, const ZipEntry*> storages;
  for (const auto& e : out.zip) {
    if (e.name == prefix + "constants.pkl" || e.name.rfind(prefix + "code/", 0) == 0)
      fail(path, "a TorchScript archive (torch.jit.save), not a torch.save state dict");
    if (e.name == prefix + "byteorder") {
      std::string bo(static_cast<size_t>(std::min<uint64_t>(e.size, 16)), '\0');
      src.read(bo.data(), bo.size(), e.data);
      if (bo != "little") fail(path, "byteorder '" + printable(bo) + "' is not supported (only little-endian files)");
    }
    if (e.name.rfind(prefix + "data/", 0) == 0) storages[e.name.substr(prefix.size() + 5)] = &e;
  }
  if (pkl->size > kMaxPickleBytes) fail(path, "data.pkl is " + std::to_string(pkl->size) + " bytes (limit " + std::to_string(kMaxPickleBytes) + ")");
  std::string pk(static_cast<size_t>(pkl->size), '\0');
  src.read(pk.data(), pk.size(), pkl->data);
  Unpickler up(path, pk, storages);
  VP root = up.run();
  auto tensors_of = [](const VP& d) {
    size_t n = 0;
    for (size_t k = 1; k < d->items.size(); k += 2) n += d->items[k]->kind == Kind::Tensor;
    return n;
  };
  if (root->kind != Kind::Dict) fail(path, std::string("the pickled object is a ") + kind_name(root->kind) + ", not a state dict");
  if (tensors_of(root) == 0)
    for (size_t k = 0; k + 1 < root->items.size(); k += 2) {
      const VP& key = root->items[k];
      const VP& val = root->items[k + 1];
      if (key->kind == Kind::Str && (key->s == "state_dict" || key->s == "model" || key->s == "module") && val->kind == Kind::Dict &&
          tensors_of(val) > 0) {
        root = val;
        break;
      }
    }
  std::set<std::string> seen;
  for (size_t k = 0; k + 1 < root->items.size(); k += 2) {
    const VP& key = root->items[k];
    const VP& val = root->items[k + 1];
    if (val->kind != Kind::Tensor) continue;  // e.g. an epoch counter beside the weights
    if (key->kind != Kind::Str) fail(path, "state dict key is a " + std::string(kind_name(key->kind)) + ", not a string");
    if (!seen.insert(key->s).second) fail(path, "tensor '" + printable(key->s) + "' appears twice");
    out.tensors.emplace_back(key->s, val);
  }
  if (out.tensors.empty()) fail(path, "the state dict holds no tensors");
  return out;
}

std::vector<SafetensorsEntry> header_of(const Parsed& p) {
  std::vector<SafetensorsEntry> out;
  for (const auto& [name, t] : p.tensors) {
    SafetensorsEntry e;
    e.name = name;
    e.dtype = t->dtype;
    e.dtype_name = safetensors_dtype_name(t->dtype);
    e.shape = t->sizes;
    out.push_back(std::move(e));
  }
  return out;
}

NamedTensors materialize(const Source& src, const Parsed& p) {
  std::map<const Value*, at::Tensor> bases;
  NamedTensors out;
  for (const auto& [name, t] : p.tensors) {
    const Value* st = t->storage.get();
    auto it = bases.find(st);
    if (it == bases.end()) {
      const size_t nbytes = static_cast<size_t>(st->numel) * c10::elementSize(st->dtype);
      at::Tensor base = at::empty({st->numel}, at::TensorOptions().dtype(st->dtype).device(at::kCPU));
      if (nbytes) src.read(base.data_ptr(), nbytes, st->entry->data);
      if (st->dtype == at::kBool) {
        const unsigned char* b = static_cast<const unsigned char*>(base.data_ptr());
        for (size_t i = 0; i < nbytes; ++i)
          if (b[i] > 1) fail(src.path, "tensor '" + printable(name) + "': bool storage holds a byte other than 0 or 1");
      }
      it = bases.emplace(st, base).first;
    }
    out.emplace_back(name, it->second.as_strided(t->sizes, t->strides, t->offset));
  }
  return out;
}

}  // namespace

NamedTensors read_torch_bin(const std::string& path) {
  FdSource src(path);
  Parsed p = parse(src);
  return materialize(src, p);
}

std::vector<SafetensorsEntry> read_torch_bin_header(const std::string& path) {
  FdSource src(path);
  return header_of(parse(src));
}

NamedTensors parse_torch_bin(const std::string& path, const void* data, size_t size) {
  MemSource src(path, data, size);
  Parsed p = parse(src);
  return materialize(src, p);
}

std::vector<SafetensorsEntry> parse_torch_bin_header(const std::string& path, const void* data, size_t size) {
  MemSource src(path, data, size);
  return header_of(parse(src));
}

bool looks_like_zip(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  FdCloser c(fd);
  unsigned char b[4];
  return ::pread(fd, b, 4, 0) == 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4;
}

}  // namespace instill::io
