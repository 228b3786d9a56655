#include "overlay/init_layer.h"

#include <doctest/doctest.h>

#include "oci/base/fs.h"
#include "tests/overlay/overlay_test_util.h"

using namespace cbuild::overlay;
using cbuild::test::read_text;
using cbuild::test::write_text;

TEST_CASE("init layer: hosts and hostname") {
  CHECK(hosts_file("box") == "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n");
  CHECK(hosts_file("").find("localhost\n") != std::string::npos);
  CHECK(init_file_paths() == std::vector<std::string>{"etc/hosts", "etc/resolv.conf", "etc/hostname"});
}

TEST_CASE("init layer: resolv.conf keeps the host's, drops loopback resolvers in a private network") {
  const char* resolved = "# systemd\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
  CHECK(container_resolv_conf(resolved, NetworkMode::Host) == resolved);
  CHECK(container_resolv_conf(resolved, NetworkMode::None) ==
        "# systemd\noptions edns0 trust-ad\nsearch lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  CHECK(container_resolv_conf("nameserver ::1\nnameserver 10.0.0.1", NetworkMode::None) == "nameserver 10.0.0.1\n");
  CHECK(container_resolv_conf("", NetworkMode::Host) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
}

TEST_CASE("init layer: files written into a directory") {
  cbuild::TempDir tmp;
  write_text(tmp.path() / "resolv", "nameserver 192.0.2.1\n");
  InitFilesOptions o;
  o.hostname = "h1";
  o.host_resolv_conf = tmp.path() / "resolv";
  write_init_files(tmp.path() / "init", o);
  CHECK(read_text(tmp.path() / "init/etc/hostname") == "h1\n");
  CHECK(read_text(tmp.path() / "init/etc/resolv.conf") == "nameserver 192.0.2.1\n");
  CHECK(read_text(tmp.path() / "init/etc/hosts").find("h1") != std::string::npos);
}
