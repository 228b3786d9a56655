// probe — a tiny static program with many subcommands, copied into test rootfs images so RUN
// and sandbox tests need no base image and no network (after crun's tests/init.c).
//   probe true | false | exit N | echo ARGS… | cat FILE | write FILE TEXT | id | cwd | env NAME
//   probe hostname | sleep SECS | kill-self SIG | ls DIR | pid | mkdir DIR | rm PATH
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

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
