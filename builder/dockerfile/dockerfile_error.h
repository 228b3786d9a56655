// DockerfileError — a problem in the user's Dockerfile, located at FILE:LINE.
//
// The front end throws this (a cbuild::Error of kind InvalidArgument) for every parse, typing
// and planning error; what() is the one-line "FILE:LINE: message" that the CLI prints.
// Warnings are not exceptions: they are collected as DockerfileWarning values.
#pragma once

#include <string>
#include <string_view>

#include "oci/base/error.h"

namespace cbuild::builder::dockerfile {

// Formats "FILE:LINE: message" (or "FILE: message" when line <= 0).
std::string located_message(std::string_view file, int line, std::string_view message);

class DockerfileError : public cbuild::Error {
 public:
  DockerfileError(std::string file, int line, std::string message)
      : cbuild::Error(ErrorKind::InvalidArgument, located_message(file, line, message)),
        file_(std::move(file)),
        line_(line),
        detail_(std::move(message)) {}

  const std::string& file() const noexcept { return file_; }
  int line() const noexcept { return line_; }
  // The message without its location.
  const std::string& detail() const noexcept { return detail_; }

 private:
  std::string file_;
  int line_;
  std::string detail_;
};

// A non-fatal finding (deprecated MAINTAINER, empty continuation line, …).
struct DockerfileWarning {
  std::string file;
  int line = 0;
  std::string message;
  // "FILE:LINE: message", the form printed on stderr.
  std::string to_string() const { return located_message(file, line, message); }
};

inline std::string located_message(std::string_view file, int line, std::string_view message) {
  std::string out(file);
  if (line > 0) {
    out += ':';
    out += std::to_string(line);
  }
  out += ": ";
  out += message;
  return out;
}

}  // namespace cbuild::builder::dockerfile
