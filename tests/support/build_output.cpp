#include "tests/support/build_output.h"

namespace cbuild::test {

namespace {

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

int cached_steps(const std::string& err) { return count(err, " CACHED\n"); }

int done_steps(const std::string& err) { return count(err, " DONE "); }

std::vector<std::string> warnings(const std::string& err) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < err.size()) {
    std::size_t nl = err.find('\n', at);
    if (nl == std::string::npos) nl = err.size();
    if (err.compare(at, 9, "WARNING: ") == 0) out.push_back(err.substr(at, nl - at));
    at = nl + 1;
  }
  return out;
}

std::string image_id(const CommandResult& r) {
  auto nl = r.out.rfind('\n', r.out.size() - 2);
  return r.out.substr(nl == std::string::npos ? 0 : nl + 1);
}

}  // namespace cbuild::test
