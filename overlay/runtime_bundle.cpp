#include "overlay/runtime_bundle.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "overlay/applier.h"

namespace cbuild::overlay {
namespace {

using nlohmann::json;

// Docker's default capabilities (moby oci/caps/defaults.go), as runtime-spec names.
const std::vector<std::string> kCaps = {
    "CAP_CHOWN",      "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW",    "CAP_SETGID",       "CAP_SETUID",           "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",         "CAP_AUDIT_WRITE"};

json mount(const char* dest, const char* type, const char* source, std::vector<std::string> options) {
  return json{{"destination", dest}, {"type", type}, {"source", source}, {"options", std::move(options)}};
}

bool has_env(const std::vector<std::string>& env, std::string_view key) {
  for (const auto& kv : env)
    if (kv.size() > key.size() && kv.compare(0, key.size(), key) == 0 && kv[key.size()] == '=') return true;
  return false;
}

}  // namespace

std::string runtime_config_json(const ImageRuntimeInfo& info, const ExecUser& user,
                                const std::vector<std::string>& args) {
  std::vector<std::string> argv = info.entrypoint;
  const auto& cmd = args.empty() ? info.cmd : args;
  argv.insert(argv.end(), cmd.begin(), cmd.end());
  if (argv.empty()) throw Error(ErrorKind::InvalidArgument, "runtime bundle: the image has no command (no Entrypoint or Cmd) and none was given");
  std::vector<std::string> env = info.env;
  if (!has_env(env, "PATH")) env.insert(env.begin(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  if (!has_env(env, "HOME")) env.push_back("HOME=" + user.home);

  json process = {
      {"terminal", false},
      {"user", {{"uid", user.uid}, {"gid", user.gid}}},
      {"args", argv},
      {"env", env},
      {"cwd", info.working_dir.empty() ? "/" : info.working_dir},
      {"capabilities", {{"bounding", kCaps}, {"effective", kCaps}, {"permitted", kCaps}}},
      {"rlimits", json::array({{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}})},
      {"noNewPrivileges", false},
  };
  if (!user.groups.empty()) process["user"]["additionalGids"] = user.groups;

  json mounts = json::array({
      mount("/proc", "proc", "proc", {}),
      mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mount("/dev/pts", "devpts", "devpts", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
  });
  json linux = {
      {"namespaces", json::array({{{"type", "pid"}}, {{"type", "network"}}, {{"type", "ipc"}},
                                  {{"type", "uts"}}, {{"type", "mount"}}})},
      {"maskedPaths", {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                       "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                       "/proc/scsi"}},
      {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
      {"resources", {{"devices", json::array({{{"allow", false}, {"access", "rwm"}}})}}},
  };
  json config = {
      {"ociVersion", "1.0.2"},
      {"process", process},
      {"root", {{"path", "rootfs"}, {"readonly", false}}},
      {"hostname", info.hostname},
      {"mounts", mounts},
      {"linux", linux},
  };
  if (!info.labels.empty()) config["annotations"] = info.labels;
  return config.dump(2) + "\n";
}

void write_bundle(const std::filesystem::path& dir, const ImageRuntimeInfo& info,
                  const std::function<std::unique_ptr<oci::TarReader>()>& next_layer,
                  const std::vector<std::string>& args) {
  std::error_code ec;
  const bool existed = std::filesystem::exists(dir, ec);
  if (existed && !std::filesystem::is_empty(dir, ec))
    throw Error(ErrorKind::AlreadyExists, "unpack: " + quote(dir.string()) + " exists and is not empty");
  std::filesystem::path rootfs = dir / "rootfs";
  make_dirs(rootfs);
  ::chmod(rootfs.c_str(), 0755);
  try {
    ApplyOptions opt;
    opt.mode = ApplyMode::Flatten;
    int n = 0;
    while (auto reader = next_layer()) {
      try {
        apply_layer(*reader, rootfs, opt);
      } catch (Error& e) {
        throw e.with_context("unpack: layer " + std::to_string(n));
      }
      ++n;
    }
    ExecUser user = resolve_user_in_rootfs(info.user, rootfs);
    write_file_atomic(dir / "config.json", runtime_config_json(info, user, args));
  } catch (...) {
    // A refused or broken layer leaves no half-made bundle behind (DIR was empty or absent).
    try {
      remove_tree(existed ? rootfs : dir);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cbuild: warning: removing %s: %s\n", dir.c_str(), e.what());
    }
    throw;
  }
}

}  // namespace cbuild::overlay
