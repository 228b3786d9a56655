#include "overlay/mount_spec.h"

#include <doctest/doctest.h>

#include "oci/base/error.h"

using cbuild::Error;
using cbuild::overlay::MountSpec;

TEST_CASE("mount_spec: legacy data string carries order and the fixed options") {
  MountSpec s{.lowers = {"/s/3/fs", "/s/2/fs", "/s/1/fs"}, .upper = "/u/fs", .work = "/u/work"};
  CHECK(s.legacy_data() ==
        "lowerdir=/s/3/fs:/s/2/fs:/s/1/fs,upperdir=/u/fs,workdir=/u/work,index=off,redirect_dir=off,metacopy=off");
  s.userxattr = true;
  // The kernel refuses redirect_dir=off beside userxattr.
  CHECK(s.legacy_data().ends_with(",redirect_dir=nofollow,metacopy=off,userxattr"));
  MountSpec ro{.lowers = {"/a", "/b"}};
  CHECK(ro.legacy_data() == "lowerdir=/a:/b,index=off,redirect_dir=off,metacopy=off");
}

TEST_CASE("mount_spec: invalid specs are refused") {
  CHECK_THROWS_AS(MountSpec{}.validate(), Error);
  CHECK_THROWS_AS((MountSpec{.lowers = {"rel"}}.validate()), Error);
  CHECK_THROWS_AS((MountSpec{.lowers = {"/a"}, .upper = "/u"}.validate()), Error);
  CHECK_THROWS_AS((MountSpec{.lowers = {"/a"}, .work = "/w"}.validate()), Error);
  MountSpec colon{.lowers = {"/a:b"}};
  CHECK_FALSE(colon.fits_legacy());
  CHECK_THROWS_AS(colon.legacy_data(), Error);
  // The new API takes the path as is.
  CHECK(colon.fsconfig_params().front() == std::pair<std::string, std::string>{"lowerdir+", "/a:b"});
}

TEST_CASE("mount_spec: 200 layers overflow a page, fsconfig has one lowerdir+ each") {
  MountSpec s{.upper = "/root/snapshots/tmp/fs", .work = "/root/snapshots/tmp/work"};
  for (int i = 0; i < 200; ++i)
    s.lowers.push_back("/var/lib/cbuild/snapshots/sha256-" + std::string(64, 'a' + i % 6) + "/fs");
  CHECK_FALSE(s.fits_legacy());
  auto p = s.fsconfig_params();
  REQUIRE(p.size() == 200 + 2 + 3);
  CHECK(p[0].first == "lowerdir+");
  CHECK(p[0].second == s.lowers[0]);
  CHECK(p[199].second == s.lowers[199]);
  CHECK(p[200] == std::pair<std::string, std::string>{"upperdir", s.upper});
  CHECK(p[202] == std::pair<std::string, std::string>{"index", "off"});
  CHECK(p[204] == std::pair<std::string, std::string>{"metacopy", "off"});
}
