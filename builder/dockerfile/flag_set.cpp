#include "builder/dockerfile/flag_set.h"

namespace cbuild::builder::dockerfile {

FlagSet FlagSet::parse(const std::vector<std::string>& raw, const std::vector<FlagSpec>& specs) {
  FlagSet out;
  for (const std::string& arg : raw) {
    if (arg.rfind("--", 0) != 0) throw FlagError("arguments must start with '--': " + arg);
    std::string body = arg.substr(2);
    auto eq = body.find('=');
    std::string name = body.substr(0, eq);
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs)
      if (s.name == name) spec = &s;
    if (!spec) {
      std::string msg = "unknown flag: --" + name;
      if (!specs.empty()) {
        msg += " (expected one of";
        for (const FlagSpec& s : specs) msg += " --" + s.name;
        msg += ")";
      }
      throw FlagError(msg);
    }
    if (spec->kind != FlagKind::StringList && out.values_.count(name))
      throw FlagError("duplicate flag specified: --" + name);
    std::string value;
    if (spec->kind == FlagKind::Bool) {
      value = "true";
      if (eq != std::string::npos) {
        value = body.substr(eq + 1);
        for (char& c : value)
          if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (value != "true" && value != "false")
          throw FlagError("expecting boolean value for flag --" + name + ", not: " + body.substr(eq + 1));
      }
    } else {
      if (eq == std::string::npos) throw FlagError("missing a value on flag: --" + name);
      value = body.substr(eq + 1);
    }
    out.values_[name].push_back(value);
  }
  return out;
}

std::string FlagSet::string(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() || it->second.empty() ? std::string() : it->second.back();
}

bool FlagSet::boolean(const std::string& name) const { return string(name) == "true"; }

std::vector<std::string> FlagSet::list(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

}  // namespace cbuild::builder::dockerfile
