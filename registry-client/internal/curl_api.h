// The libcurl calls CurlHttp makes, resolved from libcurl.so.4 with dlopen on first use.
//
// Why not link libcurl: loading it pulls in ~30 more shared libraries (GnuTLS, Kerberos, LDAP,
// libssh2, ICU…) whose relocations and constructors cost ~30 ms of CPU at every start of
// every command — more than a whole cached rebuild should take — while most commands (a
// build from local images, images, inspect, …) never touch the network. So the library is
// loaded only when the first HTTP request is made.
//
// api() loads it once (thread-safe) and throws Error{FailedPrecondition} naming the library
// when it or a symbol is missing. Types and constants still come from <curl/curl.h>.
#pragma once

#include <curl/curl.h>

namespace cbuild::registry::curl {

struct Api {
  CURLcode (*global_init)(long flags);
  CURL* (*easy_init)();
  void (*easy_cleanup)(CURL*);
  void (*easy_reset)(CURL*);
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_perform)(CURL*);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  const char* (*easy_strerror)(CURLcode);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
};

const Api& api();

}  // namespace cbuild::registry::curl
