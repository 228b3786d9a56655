// probe — a tiny static program with many subcommands, copied into test rootfs images so RUN
// and sandbox tests need no base image and no network (after crun's tests/init.c).
//   probe true | false | exit N | echo ARGS… | cat FILE | write FILE TEXT | id | cwd | env NAME
//   probe hostname | sleep SECS | kill-self SIG | ls DIR | pid | mkdir DIR | rm PATH
//   probe creds | syscall CLASS…
// `syscall` tries one system call per CLASS (see try_syscall) with arguments chosen so that,
// without a seccomp filter, root gets another answer than EPERM (ok, EFAULT, EBADF…), and
// prints "CLASS=ok" or "CLASS=<errno name>" per line.
#include <dirent.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
constexpr long kFchmodat2 = 452;  // the same number on every architecture

// Returns 0 when the call succeeded, else errno; -1 for an unknown class.
int try_syscall(const std::string& c) {
  long r = -1;
  errno = 0;
  if (c == "unshare-user") r = unshare(CLONE_NEWUSER);
  else if (c == "clone-newuser" || c == "clone-plain") {
    unsigned long flags = SIGCHLD | (c == "clone-newuser" ? CLONE_NEWUSER : 0);
    r = syscall(SYS_clone, flags, nullptr, nullptr, nullptr, nullptr);
    if (r == 0) _exit(0);
    if (r > 0) waitpid(static_cast<pid_t>(r), nullptr, 0), r = 0;
  } else if (c == "clone3") r = syscall(SYS_clone3, nullptr, 0);  // EINVAL unfiltered
  // A bad type pointer: EFAULT before any capability check when unfiltered.
  else if (c == "mount") r = syscall(SYS_mount, nullptr, "/tmp", reinterpret_cast<const char*>(1), 0, nullptr);
  else if (c == "setns") r = syscall(SYS_setns, -1, 0);  // EBADF unfiltered
  else if (c == "keyctl") r = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
  else if (c == "add_key") r = syscall(SYS_add_key, "user", "cbuild-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING);
  else if (c == "bpf") r = syscall(SYS_bpf, 0, reinterpret_cast<void*>(1), 8);  // EFAULT unfiltered
  else if (c == "perf_event_open")
    r = syscall(SYS_perf_event_open, reinterpret_cast<void*>(1), 0, -1, -1, 0);  // EFAULT unfiltered
  else if (c == "kexec_load") r = syscall(SYS_kexec_load, 0, 0, nullptr, 0);
  else if (c == "init_module") r = syscall(SYS_init_module, nullptr, 0, "");
  else if (c == "personality-odd") r = personality(ADDR_NO_RANDOMIZE);
  else if (c == "personality-query") r = personality(0xffffffff);
  else if (c == "socket-vsock" || c == "socket-inet") {
    r = socket(c == "socket-vsock" ? AF_VSOCK : AF_INET, SOCK_STREAM, 0);
    if (r >= 0) close(static_cast<int>(r)), r = 0;
  } else if (c == "fchmodat2") r = syscall(kFchmodat2, AT_FDCWD, "/no-such-file", 0, 0);  // ENOENT unfiltered
  else if (c == "nosys") r = syscall(1000);
  else if (c == "chroot") r = chroot("/");
  else return -1;
  return r < 0 ? errno : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string self = argv[0];
  const char* base = std::strrchr(argv[0], '/');
  std::string name = base ? base + 1 : argv[0];
  int i = 1;
  // Invoked as "probe CMD …" or through a symlink named after the command.
  std::string cmd = (name == "probe" || name == "cbuild_probe") ? (argc > 1 ? argv[i++] : "true") : name;
  if (cmd == "true") return 0;
  if (cmd == "false") return 1;
  if (cmd == "exit") return i < argc ? std::atoi(argv[i]) : 0;
  if (cmd == "echo") {
    for (int k = i; k < argc; ++k) std::printf("%s%s", k > i ? " " : "", argv[k]);
    std::printf("\n");
    return 0;
  }
  if (cmd == "cat") {
    for (int k = i; k < argc; ++k) {
      FILE* f = std::fopen(argv[k], "rb");
      if (!f) { std::perror(argv[k]); return 1; }
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) std::fwrite(buf, 1, n, stdout);
      std::fclose(f);
    }
    return 0;
  }
  if (cmd == "write" && i + 1 < argc) {
    FILE* f = std::fopen(argv[i], "wb");
    if (!f) { std::perror(argv[i]); return 1; }
    std::fputs(argv[i + 1], f);
    std::fclose(f);
    return 0;
  }
  if (cmd == "id") {
    std::printf("uid=%d gid=%d groups=", getuid(), getgid());
    gid_t groups[64];
    int n = getgroups(64, groups);
    for (int k = 0; k < n; ++k) std::printf("%s%d", k ? "," : "", groups[k]);
    std::printf("\n");
    return 0;
  }
  if (cmd == "creds") {
    std::printf("uid=%d euid=%d\n", getuid(), geteuid());
    return 0;
  }
  if (cmd == "syscall") {
    std::fflush(stdout);
    for (int k = i; k < argc; ++k) {
      // Each class in its own process: a call that succeeds (unshare, personality) must not
      // change what the next one sees.
      pid_t pid = fork();
      if (pid == 0) {
        int e = try_syscall(argv[k]);
        _exit(e < 0 ? 255 : e);
      }
      int status = 0;
      if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return 126;
      int e = WEXITSTATUS(status);
      if (e == 255) { std::fprintf(stderr, "probe: unknown syscall class %s\n", argv[k]); return 127; }
      const char* name = e == 0 ? "ok" : strerrorname_np(e);
      std::printf("%s=%s\n", argv[k], name ? name : "?");
    }
    return 0;
  }
  if (cmd == "cwd") {
    char buf[4096];
    if (!getcwd(buf, sizeof buf)) return 1;
    std::printf("%s\n", buf);
    return 0;
  }
  if (cmd == "env") {
    if (i < argc) {
      const char* v = std::getenv(argv[i]);
      if (!v) return 1;
      std::printf("%s\n", v);
    } else {
      for (char** e = environ; *e; ++e) std::printf("%s\n", *e);
    }
    return 0;
  }
  if (cmd == "hostname") {
    char buf[256] = {};
    gethostname(buf, sizeof buf - 1);
    std::printf("%s\n", buf);
    return 0;
  }
  if (cmd == "sleep") { sleep(i < argc ? std::atoi(argv[i]) : 1); return 0; }
  if (cmd == "kill-self") { raise(i < argc ? std::atoi(argv[i]) : SIGKILL); return 99; }
  if (cmd == "pid") { std::printf("%d\n", getpid()); return 0; }
  if (cmd == "umask") { mode_t m = umask(0); std::printf("%04o\n", m); return 0; }
  if (cmd == "mkdir" && i < argc) return mkdir(argv[i], 0755) == 0 ? 0 : 1;
  if (cmd == "rm" && i < argc) return remove(argv[i]) == 0 ? 0 : 1;
  if (cmd == "ls" && i < argc) {
    DIR* d = opendir(argv[i]);
    if (!d) { std::perror(argv[i]); return 1; }
    while (dirent* e = readdir(d))
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) std::printf("%s\n", e->d_name);
    closedir(d);
    return 0;
  }
  std::fprintf(stderr, "probe: unknown command %s\n", cmd.c_str());
  return 127;
}
