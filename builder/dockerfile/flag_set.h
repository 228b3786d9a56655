// --flag parsing for typed instructions (internal), after BuildKit's BFlags: each flag is
// "--name=value" or, for booleans, "--name" / "--name=true|false". Unknown flags, repeated
// single-valued flags and missing values are errors (FlagError, message without location).
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace cbuild::builder::dockerfile {

enum class FlagKind { Bool, String, StringList };

struct FlagSpec {
  std::string name;
  FlagKind kind;
};

struct FlagError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class FlagSet {
 public:
  static FlagSet parse(const std::vector<std::string>& raw, const std::vector<FlagSpec>& specs);

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  // Last value of a string flag, "" when absent.
  std::string string(const std::string& name) const;
  bool boolean(const std::string& name) const;
  std::vector<std::string> list(const std::string& name) const;

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace cbuild::builder::dockerfile
