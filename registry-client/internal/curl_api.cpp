#include "registry-client/internal/curl_api.h"

#include <dlfcn.h>

#include <string>

#include "oci/base/error.h"

namespace cbuild::registry::curl {
namespace {

// The SONAME of libcurl's ABI (unchanged since 2006); the unversioned name is the dev symlink.
constexpr const char* kNames[] = {"libcurl.so.4", "libcurl.so"};

template <class Fn>
void resolve(void* lib, const char* name, Fn& out) {
  void* sym = ::dlsym(lib, name);
  if (!sym) throw Error(ErrorKind::FailedPrecondition, std::string("libcurl: symbol ") + name + " not found");
  out = reinterpret_cast<Fn>(sym);
}

Api load() {
  void* lib = nullptr;
  std::string why;
  for (const char* n : kNames) {
    // Never closed: easy handles and libcurl's global state live until exit.
    lib = ::dlopen(n, RTLD_NOW | RTLD_LOCAL);
    if (lib) break;
    if (const char* e = ::dlerror(); e && why.empty()) why = e;
  }
  if (!lib) throw Error(ErrorKind::FailedPrecondition, "cannot load libcurl (needed for network access): " + why);
  Api a{};
  resolve(lib, "curl_global_init", a.global_init);
  resolve(lib, "curl_easy_init", a.easy_init);
  resolve(lib, "curl_easy_cleanup", a.easy_cleanup);
  resolve(lib, "curl_easy_reset", a.easy_reset);
  resolve(lib, "curl_easy_setopt", a.easy_setopt);
  resolve(lib, "curl_easy_perform", a.easy_perform);
  resolve(lib, "curl_easy_getinfo", a.easy_getinfo);
  resolve(lib, "curl_easy_strerror", a.easy_strerror);
  resolve(lib, "curl_slist_append", a.slist_append);
  resolve(lib, "curl_slist_free_all", a.slist_free_all);
  return a;
}

}  // namespace

const Api& api() {
  // A failed load throws out of the initializer, so the next call tries again.
  static const Api a = load();
  return a;
}

}  // namespace cbuild::registry::curl
