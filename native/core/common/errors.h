// Error types thrown by native/core. The addon maps them onto JavaScript errors:
// ArgumentError -> TypeError, RangeError -> RangeError, everything else -> Error.
#pragma once
#include <stdexcept>
#include <string>

namespace instill {

struct ArgumentError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct RangeError : std::out_of_range {
  using std::out_of_range::out_of_range;
};

// An error about a file: the message always starts with the path.
struct FileError : std::runtime_error {
  FileError(const std::string& path, const std::string& what)
      : std::runtime_error(path + ": " + what), path(path) {}
  std::string path;
};

}  // namespace instill
