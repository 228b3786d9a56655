// The runner of every test binary: doctest's, plus what ctest needs to list and run each test
// case on its own (tests/CMakeLists.txt):
//   --cbuild-ctest-file=FILE --cbuild-ctest-properties=VAR
//       writes FILE, a CTest script with one add_test per case, named as the case, whose
//       properties are the CMake variable VAR (set by the script including FILE);
//   --cbuild-case=NAME
//       runs the case named exactly NAME: doctest's --test-case takes wildcards, commas and
//       any letter case, and the names hold '*', ',' and '?';
//   --cbuild-docker-peer=start|stop
//       the ctest fixture around the cases sharing the docker peer (docker_peer.h).
// Every other argument is doctest's.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/docker_peer.h"
#include "tests/support/root.h"

namespace {

// A CMake bracket argument holding `text` verbatim, whatever characters it has.
std::string bracket(const std::string& text) {
  std::string eq;
  while ((text + "]").find("]" + eq + "]") != std::string::npos) eq += '=';  // a trailing ']' counts too
  return "[" + eq + "[" + text + "]" + eq + "]";
}

int write_ctest_file(const std::string& file, const std::string& properties_var) {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) {
    std::fprintf(stderr, "cannot read /proc/self/exe: %s\n", ec.message().c_str());
    return 2;
  }
  std::map<std::string, std::string> where;  // name -> file:line, to refuse a name used twice
  std::string script = "# Written by " + self.string() + " --cbuild-ctest-file; rebuilt with it.\n";
  for (const auto& tc : doctest::detail::getRegisteredTests()) {
    std::string name = tc.m_name, at = std::string(tc.m_file.c_str()) + ":" + std::to_string(tc.m_line);
    if (auto [it, fresh] = where.emplace(name, at); !fresh) {
      std::fprintf(stderr, "two test cases are named \"%s\" (%s and %s): ctest needs one name per case\n",
                   name.c_str(), it->second.c_str(), at.c_str());
      return 2;
    }
    script += "add_test(" + bracket(name) + " " + bracket(self.string()) + " " + bracket("--cbuild-case=" + name) + ")\n";
    script += "set_tests_properties(" + bracket(name) + " PROPERTIES ${" + properties_var + "})\n";
  }
  std::string tmp = file + ".tmp";
  std::ofstream(tmp, std::ios::binary | std::ios::trunc) << script;
  std::filesystem::rename(tmp, file, ec);
  if (ec) {
    std::fprintf(stderr, "cannot write %s: %s\n", file.c_str(), ec.message().c_str());
    return 2;
  }
  return 0;
}

// Leaves the registry holding only the case named `name`; false when there is none.
bool keep_only(const std::string& name) {
  auto& tests = doctest::detail::getRegisteredTests();
  bool found = false;
  for (auto it = tests.begin(); it != tests.end();) {
    if (name == it->m_name) {
      found = true;
      ++it;
    } else {
      it = tests.erase(it);
    }
  }
  return found;
}

// The value of `arg` when it is `flag` (which ends in '=').
std::optional<std::string_view> value_of(std::string_view arg, std::string_view flag) {
  if (arg.substr(0, flag.size()) != flag) return std::nullopt;
  return arg.substr(flag.size());
}

int docker_peer(std::string_view what) {
  std::string why;
  if (what == "start") {
    why = cbuild::test::start_shared_dockerd();
  } else if (what == "stop") {
    why = cbuild::test::stop_shared_dockerd();
  } else {
    std::fprintf(stderr, "--cbuild-docker-peer takes start or stop\n");
    return 2;
  }
  if (why.empty()) return 0;
  // As for a root-only test: skipped with a visible note on a developer's machine, failed in CI.
  std::fprintf(stderr, "docker peer: %s\n", why.c_str());
  return cbuild::test::in_ci() ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<const char*> rest;
  std::string ctest_file, properties_var, only;
  for (int i = 0; i < argc; ++i) {
    std::string_view a = argv[i];
    if (i == 0) {
      rest.push_back(argv[i]);
    } else if (auto v = value_of(a, "--cbuild-ctest-file=")) {
      ctest_file = *v;
    } else if (auto v = value_of(a, "--cbuild-ctest-properties=")) {
      properties_var = *v;
    } else if (auto v = value_of(a, "--cbuild-case=")) {
      only = *v;
    } else if (auto v = value_of(a, "--cbuild-docker-peer=")) {
      return docker_peer(*v);
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (!ctest_file.empty()) {
    if (properties_var.empty()) {
      std::fprintf(stderr, "--cbuild-ctest-file needs --cbuild-ctest-properties\n");
      return 2;
    }
    return write_ctest_file(ctest_file, properties_var);
  }
  if (!only.empty() && !keep_only(only)) {
    std::fprintf(stderr, "no test case is named \"%s\" in %s (ctest's list is rewritten when this binary is built)\n",
                 only.c_str(), argv[0]);
    return 2;
  }
  doctest::Context context;
  context.applyCommandLine(static_cast<int>(rest.size()), rest.data());
  return context.run();
}
