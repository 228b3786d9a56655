// overlay/isolation.h: which level a request gets for what the process may do, and the one
// message when it cannot work.
#include <doctest/doctest.h>

#include <unistd.h>

#include "oci/base/error.h"
#include "overlay/isolation.h"

using namespace cbuild;
using overlay::Isolation;
using overlay::IsolationProbe;
using overlay::IsolationRequest;

namespace {

IsolationProbe privileged_root() { return {.uid = 0, .cap_sys_admin = true, .cap_sys_chroot = true, .cap_chown = true, .userns = true}; }
// Root in a container with docker's default capabilities and seccomp profile.
IsolationProbe docker_default() {
  return {.uid = 0, .cap_sys_admin = false, .cap_sys_chroot = true, .cap_chown = true, .userns = false,
          .userns_error = "unshare(CLONE_NEWUSER): Operation not permitted"};
}
IsolationProbe plain_user(bool userns) {
  IsolationProbe p{.uid = 1000, .userns = userns};
  if (!userns) p.userns_error = "unshare(CLONE_NEWUSER): Operation not permitted";
  return p;
}

std::string failure(IsolationRequest r, const IsolationProbe& p) {
  try {
    overlay::choose_isolation(r, p);
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::FailedPrecondition);
    return e.message();
  }
  FAIL("no error");
  return "";
}

}  // namespace

TEST_CASE("isolation: parse_isolation knows auto, userns and chroot and names the flag otherwise") {
  CHECK(overlay::parse_isolation("auto") == IsolationRequest::Auto);
  CHECK(overlay::parse_isolation("userns") == IsolationRequest::Userns);
  CHECK(overlay::parse_isolation("chroot") == IsolationRequest::Chroot);
  try {
    overlay::parse_isolation("rootless");
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::InvalidArgument);
    CHECK(e.message() == "--isolation: unknown isolation \"rootless\" (expected auto, userns or chroot)");
  }
}

TEST_CASE("isolation: auto picks userns for privileged root, without entering a user namespace, silently") {
  auto c = overlay::choose_isolation(IsolationRequest::Auto, privileged_root());
  CHECK(c.level == Isolation::Userns);
  CHECK_FALSE(c.enter_userns);
}

TEST_CASE("isolation: auto picks userns through a user namespace for a user who may create one") {
  auto c = overlay::choose_isolation(IsolationRequest::Auto, plain_user(true));
  CHECK(c.level == Isolation::Userns);
  CHECK(c.enter_userns);
  CHECK(c.reason.find("not root") != std::string::npos);
}

TEST_CASE("isolation: auto picks chroot in a container with docker's defaults and says why") {
  auto c = overlay::choose_isolation(IsolationRequest::Auto, docker_default());
  CHECK(c.level == Isolation::Chroot);
  CHECK(c.reason.rfind("chroot: this process may not create user namespaces (unshare(CLONE_NEWUSER): Operation not "
                       "permitted)", 0) == 0);
}

TEST_CASE("isolation: userns asked for where no user namespace can be made says what is missing") {
  std::string m = failure(IsolationRequest::Userns, docker_default());
  CHECK(m.find("--isolation=userns: this process may not create a user namespace (unshare(CLONE_NEWUSER): "
               "Operation not permitted)") == 0);
  CHECK(m.find("seccomp=unconfined") != std::string::npos);
  CHECK(m.find("--isolation=chroot") != std::string::npos);
}

TEST_CASE("isolation: chroot asked for by a plain user says it needs root") {
  std::string m = failure(IsolationRequest::Chroot, plain_user(true));
  CHECK(m.find("--isolation=chroot: needs root with CAP_SYS_CHROOT and CAP_CHOWN, but it runs as uid 1000, not root") == 0);
}

TEST_CASE("isolation: when neither level can work, one message names both and the settings") {
  std::string m = failure(IsolationRequest::Auto, plain_user(false));
  CHECK(m.find("cannot isolate RUN steps: this process may not create user namespaces") == 0);
  CHECK(m.find("it runs as uid 1000, not root") != std::string::npos);
  CHECK(m.find("hostUsers: false") != std::string::npos);
  IsolationProbe no_chroot = docker_default();
  no_chroot.cap_sys_chroot = false;
  CHECK(failure(IsolationRequest::Auto, no_chroot).find("it lacks CAP_SYS_CHROOT") != std::string::npos);
}

TEST_CASE("isolation: the probe reports this process's uid; root with CAP_SYS_ADMIN is not probed") {
  IsolationProbe p = overlay::probe_isolation();
  CHECK(p.uid == ::geteuid());
  if (p.uid == 0 && p.cap_sys_admin) {
    // Its level is userns whatever the probe would say: no child is forked for it.
    CHECK_FALSE(p.userns);
    CHECK(p.userns_error.empty());
    CHECK(overlay::choose_isolation(IsolationRequest::Auto, p).level == Isolation::Userns);
  } else {
    CHECK(p.userns == p.userns_error.empty());
  }
}

TEST_CASE("isolation: a level CBUILD_ISOLATION asks for is named by the variable, not the flag") {
  auto c = overlay::choose_isolation(IsolationRequest::Chroot, docker_default(), "CBUILD_ISOLATION");
  CHECK(c.reason.rfind("chroot: asked for with CBUILD_ISOLATION=chroot", 0) == 0);
  try {
    overlay::choose_isolation(IsolationRequest::Userns, docker_default(), "CBUILD_ISOLATION");
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK(e.message().rfind("CBUILD_ISOLATION=userns: this process may not create a user namespace", 0) == 0);
  }
  try {
    overlay::parse_isolation("rootless", "CBUILD_ISOLATION");
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK(e.message() == "CBUILD_ISOLATION: unknown isolation \"rootless\" (expected auto, userns or chroot)");
  }
}
