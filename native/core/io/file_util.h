// Small POSIX file helpers shared by native/core/io: crash-safe (atomic) writes and checked reads.
// Every failure is an instill::FileError naming the path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace instill::io {

// Writes a file atomically: `body(fd)` writes into "<path>.tmp-<pid>-<n>" (created 0666 & ~umask), which is then
// fsync'ed, closed and renamed over `path`; finally the containing directory is fsync'ed so the rename itself is
// durable. On any error (including an exception thrown by `body`) the temporary file is removed and the original
// `path` is left untouched.
void write_file_atomic(const std::string& path, const std::function<void(int fd)>& body);

// write(2) in a loop until `n` bytes are written; FileError(path, ...) on failure.
void write_all(int fd, const void* data, size_t n, const std::string& path);

// pread(2) in a loop: exactly `n` bytes at `offset`; FileError(path, ...) on failure or short file.
void read_exact(int fd, void* data, size_t n, uint64_t offset, const std::string& path);

// A name or text from a file, for error messages: control bytes as \xNN, at most `limit` bytes, "..." when cut.
std::string printable(const std::string& s, size_t limit = 120);

bool path_is_regular_file(const std::string& path);
bool path_is_directory(const std::string& path);
bool path_exists(const std::string& path);
std::string path_join(const std::string& dir, const std::string& name);

// Closes a file descriptor on scope exit.
struct FdCloser {
  int fd = -1;
  explicit FdCloser(int f) : fd(f) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser();
};

}  // namespace instill::io
