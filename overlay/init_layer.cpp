#include "overlay/init_layer.h"

#include <sstream>

#include "oci/base/error.h"
#include "oci/base/fs.h"

namespace cbuild::overlay {
namespace {

bool is_loopback(std::string_view addr) {
  if (auto pct = addr.find('%'); pct != std::string_view::npos) addr = addr.substr(0, pct);
  return addr.rfind("127.", 0) == 0 || addr == "::1" || addr == "0:0:0:0:0:0:0:1";
}

}  // namespace

std::vector<std::string> init_file_paths() { return {"etc/hosts", "etc/resolv.conf", "etc/hostname"}; }

std::string hosts_file(std::string_view hostname) {
  std::string out = "127.0.0.1\tlocalhost";
  if (!hostname.empty() && hostname != "localhost") out += " " + std::string(hostname);
  out += "\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  return out;
}

std::string container_resolv_conf(std::string_view host_text, NetworkMode network) {
  if (network == NetworkMode::Host && !host_text.empty()) {
    std::string out(host_text);
    if (out.back() != '\n') out += '\n';
    return out;
  }
  std::istringstream in{std::string(host_text)};
  std::string line, out;
  bool any_nameserver = false;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key, value;
    ls >> key >> value;
    if (key == "nameserver") {
      if (is_loopback(value)) continue;
      any_nameserver = true;
    }
    out += line + "\n";
  }
  if (!any_nameserver) out += "nameserver 8.8.8.8\nnameserver 8.8.4.4\n";
  return out;
}

void write_init_files(const std::filesystem::path& dir, const InitFilesOptions& o) {
  make_dirs(dir / "etc");
  std::string host_resolv = read_file_if_exists(o.host_resolv_conf, 1 << 20).value_or("");
  // The init files live in a build's private temp dir for one RUN: nothing to make durable.
  write_new_file(dir / "etc/hosts", hosts_file(o.hostname));
  write_new_file(dir / "etc/resolv.conf", container_resolv_conf(host_resolv, o.network));
  write_new_file(dir / "etc/hostname", o.hostname + "\n");
}

}  // namespace cbuild::overlay
