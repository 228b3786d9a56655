// CurlHttp — HttpClient over libcurl. Owns a small pool of easy handles so connections are
// reused across requests (and across threads: each send() borrows one handle). Ctrl-C is
// honoured through cbuild::cancel_requested() in the progress callback.
// Thread-safe. Throws as described in http.h.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "registry-client/http.h"

namespace cbuild::registry {

class CurlHttp : public HttpClient {
 public:
  CurlHttp();
  ~CurlHttp() override;
  CurlHttp(const CurlHttp&) = delete;
  CurlHttp& operator=(const CurlHttp&) = delete;

  HttpResponse send(const HttpRequest& req) override;

 private:
  struct Handle;
  std::unique_ptr<Handle> acquire();
  void release(std::unique_ptr<Handle> h);

  std::mutex mu_;
  std::vector<std::unique_ptr<Handle>> idle_;
};

}  // namespace cbuild::registry
