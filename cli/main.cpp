// cbuild entry point: global flags, subcommand dispatch ("build" when the first word is not a
// subcommand), signal handling, and the one-line error report.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/command.h"
#include "cli/exit_codes.h"
#include "cli/rootless.h"
#include "oci/base/cancel.h"
#include "oci/base/error.h"

namespace cbuild::cli {

namespace {
std::vector<CommandDef>& registry() {
  static std::vector<CommandDef> r;
  return r;
}

extern "C" void on_signal(int signo) {
  // A second Ctrl-C while cleaning up falls back to the default action. (Only the signal
  // flag counts: a build cancelling its own stages after a failure is no first Ctrl-C.)
  if (interrupted()) {
    ::signal(signo, SIG_DFL);
    ::raise(signo);
  }
  request_cancel(signo);
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

bool is_command_word(std::string_view w) {
  if (w == "help") return true;
  for (const auto& c : registry()) {
    if (c.name == w) return true;
    for (const auto& a : c.aliases)
      if (a == w) return true;
  }
  return false;
}

// docker's wording for a flag nobody declared ("unknown flag: --foo", "unknown shorthand flag:
// 'x' in -x"), or nullopt when `extras` holds only surplus arguments.
std::optional<std::string> unknown_flag_message(const std::vector<std::string>& extras) {
  for (const auto& a : extras) {
    if (a.size() < 2 || a[0] != '-') continue;
    if (a[1] == '-') return "unknown flag: " + a.substr(0, a.find('='));
    return "unknown shorthand flag: '" + a.substr(1, 1) + "' in " + a;
  }
  return std::nullopt;
}
}  // namespace

CommandRegistration::CommandRegistration(CommandDef def) { registry().push_back(std::move(def)); }
const std::vector<CommandDef>& registered_commands() { return registry(); }

std::string GlobalOptions::resolved_root() const {
  // Absolute, because the store's paths end up in overlay mount options (which refuse relative
  // lower dirs) and in sandbox children that run elsewhere.
  auto absolute = [](const std::string& p) { return std::filesystem::absolute(p).lexically_normal().string(); };
  if (!root.empty()) return absolute(root);
  if (const char* e = std::getenv("CBUILD_ROOT"); e && *e) return absolute(e);
  // Root of a namespace cbuild entered itself is still the user who started it.
  const auto& mapping = overlay::current_id_mapping();
  if (::geteuid() == 0 && (!mapping || mapping->outer_uid == 0)) return "/var/lib/cbuild";
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return std::string(x) + "/cbuild";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/share/cbuild";
  throw Error(ErrorKind::FailedPrecondition, "cannot choose a store root: set --root or CBUILD_ROOT");
}

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // First of all, while cbuild has one thread: the kernel refuses a user namespace to more.
  if (needs_user_namespace(args)) {
    try {
      enter_rootless_mode();
    } catch (const Error& e) {
      std::fprintf(stderr, "cbuild: error: %s\n", e.what());
      return exit_code_for(e.kind());
    }
  }
  install_signal_handlers();

  // `cbuild -f Dockerfile -t x .` means `cbuild build …`: find the first word that is not a
  // global flag (or its value); if it is not a subcommand, insert "build" before it.
  {
    std::size_t i = 0;
    while (i < args.size()) {
      const std::string& a = args[i];
      if (a == "--root") { i += 2; continue; }
      if (a.rfind("--root=", 0) == 0 || a.rfind("--tls-verify", 0) == 0) { ++i; continue; }
      break;
    }
    bool top_level_flag = i < args.size() && (args[i] == "--help" || args[i] == "-h" || args[i] == "--version");
    if (i < args.size() && !top_level_flag && !is_command_word(args[i]) && is_command_word("build"))
      args.insert(args.begin() + static_cast<std::ptrdiff_t>(i), "build");
  }

  CLI::App app{"cbuild — a daemonless container image builder (Dockerfile → OCI image)", "cbuild"};
  app.set_version_flag("--version", std::string("cbuild version ") + CBUILD_VERSION);
  app.require_subcommand(0, 1);
  app.fallthrough();

  GlobalOptions g;
  auto add_globals = [&g](CLI::App& a) {
    a.add_option("--root", g.root, "Store root (default /var/lib/cbuild as root, else $XDG_DATA_HOME/cbuild or "
                  "~/.local/share/cbuild; env CBUILD_ROOT)");
    a.add_option_function<std::string>(
         "--tls-verify",
         [&g](const std::string& v) {
           g.tls_verify_set = true;
           g.tls_verify = !(v == "false" || v == "0" || v == "no");
         },
         "Require HTTPS and verify certificates (--tls-verify=false allows plain HTTP)")
        ->expected(0, 1)
        ->default_str("true");
  };
  add_globals(app);

  std::function<int()> action;
  for (const auto& def : registry()) {
    CLI::App* sub = app.add_subcommand(def.name, def.help);
    for (const auto& a : def.aliases) sub->alias(a);
    auto fn = def.setup(*sub, g);
    sub->callback([&action, fn] { action = fn; });
  }

  try {
    std::vector<std::string> rev(args.rbegin(), args.rend());
    app.parse(rev);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ExtrasError& e) {
    // The parser keeps what it could not place; every app on the way down has a share of it.
    std::vector<std::string> extras = app.remaining(true);
    for (const CLI::App* sub : app.get_subcommands())
      for (const auto& a : sub->remaining(true)) extras.push_back(a);
    std::fprintf(stderr, "cbuild: error: %s\n", unknown_flag_message(extras).value_or(e.what()).c_str());
    std::fprintf(stderr, "Run 'cbuild --help' for usage.\n");
    return kExitUsage;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "cbuild: error: %s\n", e.what());
    std::fprintf(stderr, "Run 'cbuild --help' for usage.\n");
    return kExitUsage;
  } catch (const Error& e) {
    std::fprintf(stderr, "cbuild: error: %s\n", e.what());
    return exit_code_for(e.kind());
  }

  if (!action) {
    std::cout << app.help();
    return args.empty() ? kExitUsage : kExitOk;
  }
  try {
    return action();
  } catch (const std::exception& e) {
    // After Ctrl-C whatever failed on the way out is a consequence of the interrupt: report
    // that, once, with the shell's status for SIGINT (docker build also exits 130).
    if (interrupted()) {
      std::fprintf(stderr, "cbuild: error: interrupted\n");
      return kExitInterrupted;
    }
    if (const auto* usage = dynamic_cast<const UsageError*>(&e)) {
      std::fprintf(stderr, "cbuild: error: %s\n", usage->what());
      return kExitUsage;
    }
    if (const auto* err = dynamic_cast<const Error*>(&e)) {
      std::fprintf(stderr, "cbuild: error: %s\n", err->what());
      return exit_code_for(err->kind());
    }
    std::fprintf(stderr, "cbuild: error: internal: %s\n", e.what());
    return kExitFailure;
  }
}

}  // namespace cbuild::cli

int main(int argc, char** argv) { return cbuild::cli::main(argc, argv); }
