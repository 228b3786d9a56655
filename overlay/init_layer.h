// Init layer — the files every RUN sees but no layer ever contains: /etc/hosts (localhost and
// the build hostname), /etc/resolv.conf and /etc/hostname, like docker build.
//
// write_init_files() writes them into a host directory (DIR/etc/…) that RunSpec::init_files
// names; the sandbox bind-mounts each over the rootfs' file, so a RUN that edits them edits
// the host copy, never the upper dir, and the differ additionally excludes init_file_paths()
// (Sandbox::stub_paths includes them). resolv.conf: the host's, except that loopback
// nameservers (127.0.0.0/8, ::1 — systemd-resolved, dnsmasq) are dropped when the sandbox
// has its own network namespace, where they cannot answer; if none remain the default
// (docker's: 8.8.8.8, 8.8.4.4) is used. Pure text functions are unit-tested. Thread-safe.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "overlay/sandbox.h"

namespace cbuild::overlay {

struct InitFilesOptions {
  std::string hostname = "cbuild";
  NetworkMode network = NetworkMode::Host;
  std::filesystem::path host_resolv_conf = "/etc/resolv.conf";
};

// "etc/hosts", "etc/resolv.conf", "etc/hostname"
std::vector<std::string> init_file_paths();

std::string hosts_file(std::string_view hostname);
// The container's resolv.conf from the host's text (see above).
std::string container_resolv_conf(std::string_view host_text, NetworkMode network);

// Creates DIR/etc/{hosts,resolv.conf,hostname} (new files, not fsynced: they serve one RUN from
// a temp dir). Throws cbuild::Error naming the file (AlreadyExists-like errors if present).
void write_init_files(const std::filesystem::path& dir, const InitFilesOptions& options);

}  // namespace cbuild::overlay
