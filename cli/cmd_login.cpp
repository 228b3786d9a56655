// `cbuild login [-u USER] [-p PASS | --password-stdin] [REGISTRY]` and `cbuild logout
// [REGISTRY]` — check credentials against the registry and store them in the docker config
// (credsStore/credHelpers helper when configured), or remove them. REGISTRY defaults to
// docker.io. Without a password on the command line or stdin, a TTY is prompted (no echo).
#include <iostream>
#include <memory>

#include <termios.h>
#include <unistd.h>

#include "cli/command.h"
#include "oci/base/error.h"
#include "registry-client/connect.h"
#include "registry-client/credentials.h"
#include "registry-client/reference.h"

namespace cbuild::cli {
namespace {

struct LoginOptions {
  std::string registry;
  std::string user;
  std::string password;
  bool password_stdin = false;
};

registry::Reference registry_ref(const std::string& arg, std::string_view op) {
  std::string host = arg.empty() ? std::string(registry::kDockerHub) : arg;
  // Accept docker's spellings: "https://host/", "host/v1/".
  for (std::string_view pre : {"https://", "http://"})
    if (host.rfind(pre, 0) == 0) host = host.substr(pre.size());
  host = host.substr(0, host.find('/'));
  if (host == "index.docker.io" || host == "registry-1.docker.io") host = "docker.io";
  auto r = registry::Reference::try_parse(host + "/x/probe:latest");
  if (!r || r->registry() != host)
    throw Error(ErrorKind::InvalidArgument, std::string(op) + ": " + quote(arg) + " is not a registry host[:port]");
  return *r;
}

std::string prompt(const std::string& text, bool echo) {
  std::cerr << text << std::flush;
  termios old{};
  bool restore = false;
  if (!echo && ::tcgetattr(STDIN_FILENO, &old) == 0) {
    termios t = old;
    t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    restore = ::tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
  }
  std::string line;
  std::getline(std::cin, line);
  if (restore) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::cerr << "\n";
  }
  return line;
}

int run_login(LoginOptions o, const GlobalOptions& g) {
  auto ref = registry_ref(o.registry, "login");
  const std::string name = ref.registry();
  const bool tty = ::isatty(STDIN_FILENO);
  if (o.password_stdin) {
    if (!o.password.empty()) throw Error(ErrorKind::InvalidArgument, "login: --password and --password-stdin are exclusive");
    if (o.user.empty()) throw Error(ErrorKind::InvalidArgument, "login " + quote(name) + ": --password-stdin needs --username");
    std::string all((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    while (!all.empty() && (all.back() == '\n' || all.back() == '\r')) all.pop_back();
    o.password = all;
  }
  if (o.user.empty()) {
    if (!tty) throw Error(ErrorKind::InvalidArgument, "login " + quote(name) + ": no username given (use -u) and stdin is not a terminal");
    o.user = prompt("Username: ", true);
  }
  if (o.password.empty()) {
    if (!tty)
      throw Error(ErrorKind::InvalidArgument, "login " + quote(name) + ": no password given (use --password-stdin) and stdin is not a terminal");
    o.password = prompt("Password: ", false);
  }
  if (o.user.empty() || o.password.empty())
    throw Error(ErrorKind::InvalidArgument, "login " + quote(name) + ": empty username or password");
  registry::Credentials creds{o.user, o.password, ""};
  auto t = registry::connect(ref, g.tls_verify, creds);
  t->check_login({});
  registry::CredentialStore store;
  store.store(ref.credential_key(), creds);
  std::cout << "Login Succeeded\n";
  return 0;
}

int run_logout(const std::string& arg) {
  auto ref = registry_ref(arg, "logout");
  registry::CredentialStore store;
  if (!store.erase(ref.credential_key())) {
    std::cout << "Not logged in to " << ref.registry() << "\n";
    return 0;
  }
  std::cout << "Removing login credentials for " << ref.registry() << "\n";
  return 0;
}

CommandRegistration login_reg{{
    .name = "login",
    .help = "Log in to a registry (stores the credentials in the docker config)",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<LoginOptions>();
      app.add_option("-u,--username", o->user, "User name");
      app.add_option("-p,--password", o->password, "Password (prefer --password-stdin)");
      app.add_flag("--password-stdin", o->password_stdin, "Read the password from stdin");
      app.add_option("REGISTRY", o->registry, "Registry host[:port] (default docker.io)");
      return [o, &g] { return run_login(*o, g); };
    }}};

CommandRegistration logout_reg{{
    .name = "logout",
    .help = "Log out of a registry (removes the credentials from the docker config)",
    .setup = [](CLI::App& app, GlobalOptions&) -> std::function<int()> {
      auto reg = std::make_shared<std::string>();
      app.add_option("REGISTRY", *reg, "Registry host[:port] (default docker.io)");
      return [reg] { return run_logout(*reg); };
    }}};

}  // namespace
}  // namespace cbuild::cli
