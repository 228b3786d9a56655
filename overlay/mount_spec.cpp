#include "overlay/mount_spec.h"

#include "oci/base/error.h"

namespace cbuild::overlay {
namespace {

void check_path(const std::string& p, const char* what) {
  if (p.empty() || p[0] != '/')
    throw Error(ErrorKind::InvalidArgument, std::string("overlay ") + what + " " + quote(p) + " must be an absolute path");
}

bool legacy_safe(const std::string& p) noexcept {
  return p.find_first_of(",:\\\n") == std::string::npos;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> MountSpec::base_options(bool userxattr) {
  // With userxattr the kernel refuses redirect_dir=off; nofollow (neither made nor followed)
  // is the one mode it takes there, and is as strict.
  return {{"index", "off"}, {"redirect_dir", userxattr ? "nofollow" : "off"}, {"metacopy", "off"}};
}

void MountSpec::validate() const {
  if (lowers.empty()) throw Error(ErrorKind::InvalidArgument, "overlay mount needs at least one lower directory");
  for (const auto& l : lowers) check_path(l, "lower directory");
  if (!upper.empty()) {
    check_path(upper, "upper directory");
    if (work.empty()) throw Error(ErrorKind::InvalidArgument, "overlay upper directory " + quote(upper) + " needs a work directory");
    check_path(work, "work directory");
  } else if (!work.empty()) {
    throw Error(ErrorKind::InvalidArgument, "overlay work directory " + quote(work) + " given without an upper directory");
  }
}

std::string MountSpec::legacy_data() const {
  validate();
  std::string s = "lowerdir=";
  for (std::size_t i = 0; i < lowers.size(); ++i) {
    if (!legacy_safe(lowers[i]))
      throw Error(ErrorKind::InvalidArgument, "overlay lower directory " + quote(lowers[i]) + " contains ',', ':', '\\' or a newline");
    if (i) s += ':';
    s += lowers[i];
  }
  if (!upper.empty()) {
    if (!legacy_safe(upper) || !legacy_safe(work))
      throw Error(ErrorKind::InvalidArgument, "overlay upper or work directory " + quote(upper) + " contains ',', ':', '\\' or a newline");
    s += ",upperdir=" + upper + ",workdir=" + work;
  }
  for (const auto& [k, v] : base_options(userxattr)) s += "," + k + "=" + v;
  if (userxattr) s += ",userxattr";
  for (const auto& o : extra_options) s += "," + o;
  if (s.size() > kMountDataMax)
    throw Error(ErrorKind::InvalidArgument, "overlay options for " + std::to_string(lowers.size()) +
                                                " layers are " + std::to_string(s.size()) + " bytes, more than a page");
  return s;
}

bool MountSpec::fits_legacy() const noexcept {
  try {
    legacy_data();  // only whether it throws: the string is built again at mount time
    return true;
  } catch (...) {
    return false;
  }
}

std::vector<std::pair<std::string, std::string>> MountSpec::fsconfig_params() const {
  validate();
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& l : lowers) out.emplace_back("lowerdir+", l);
  if (!upper.empty()) {
    out.emplace_back("upperdir", upper);
    out.emplace_back("workdir", work);
  }
  for (auto& kv : base_options(userxattr)) out.push_back(std::move(kv));
  if (userxattr) out.emplace_back("userxattr", "");
  for (const auto& o : extra_options) {
    auto eq = o.find('=');
    if (eq == std::string::npos) out.emplace_back(o, "");
    else out.emplace_back(o.substr(0, eq), o.substr(eq + 1));
  }
  return out;
}

}  // namespace cbuild::overlay
