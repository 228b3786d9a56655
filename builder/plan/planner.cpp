// Planner (see planner.h / plan.h). One pass over the stages in Dockerfile order expands
// words and records dependencies; a second pass picks the stages the target needs.
#include "builder/plan/planner.h"

#include <arpa/inet.h>
#include <sys/utsname.h>

#include <algorithm>
#include <set>

#include "builder/dockerfile/parser.h"
#include "builder/dockerfile/shell_words.h"
#include "builder/dockerfile/valid_utf8.h"
#include "oci/descriptor.h"
#include "registry-client/reference.h"

namespace cbuild::builder {

namespace df = dockerfile;

namespace {

struct Fail {
  std::string message;
};

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string upper_ascii(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

bool is_proxy_arg(const std::string& n) {
  static const std::set<std::string> k = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                                          "FTP_PROXY",  "ftp_proxy",  "NO_PROXY",    "no_proxy",
                                          "ALL_PROXY",  "all_proxy"};
  return k.count(n) != 0;
}

void set_var(EnvList& list, const std::string& k, const std::string& v) {
  for (auto& [name, value] : list)
    if (name == k) {
      value = v;
      return;
    }
  list.emplace_back(k, v);
}

std::size_t byte_size(const EnvList& list) {
  std::size_t n = 0;
  for (const auto& [k, v] : list) n += k.size() + v.size() + 1;
  return n;
}

const std::string* get_var(const EnvList& list, std::string_view k) {
  for (const auto& [name, value] : list)
    if (name == k) return &value;
  return nullptr;
}

struct PlatformParts {
  std::string os, arch, variant;
  std::string str() const { return os + "/" + arch + (variant.empty() ? "" : "/" + variant); }
};

// Normalized as containerd does (linux/x86_64 is linux/amd64). A list ("linux/amd64,linux/arm64")
// is not one platform: cbuild makes single-platform images only.
PlatformParts split_platform(const std::string& p) {
  if (p.find(',') != std::string::npos)
    throw Fail{"platform " + quote(p) + ": multi-platform builds are not supported (give one platform)"};
  oci::Platform parsed;
  try {
    parsed = oci::Platform::parse(p);
  } catch (const Error&) {
    throw Fail{"invalid platform " + quote(p) + " (expected os/arch[/variant])"};
  }
  return PlatformParts{.os = parsed.os, .arch = parsed.architecture, .variant = parsed.variant};
}

// BuildKit's "|N K=V … " prefix of RUN's history: every ARG the stage declared, in order and
// repeats included, each with the value it has now ("" when it has none).
std::string history_args(const std::vector<std::string>& names, const EnvList& env) {
  if (names.empty()) return "";
  std::string out = "|" + std::to_string(names.size());
  for (const auto& n : names) {
    const std::string* v = get_var(env, n);
    out += " " + n + "=" + (v ? *v : std::string());
  }
  return out + " ";
}

// Canonical, unambiguous rendering of a step for cache keys and progress.
std::string q(const std::string& s) { return df::go_quote(s); }

std::string render_list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + q(v[i]);
  return out + "]";
}

std::string render_command(const std::vector<std::string>& cmd, bool json) {
  if (json) return render_list(cmd);
  return cmd.empty() ? std::string() : cmd[0];
}

std::string render_mount(const df::RunMount& m) {
  static const char* types[] = {"bind", "cache", "tmpfs", "secret"};
  std::string s = std::string("--mount=type=") + types[static_cast<int>(m.type)];
  if (!m.target.empty()) s += ",target=" + m.target;
  if (!m.source.empty()) s += ",source=" + m.source;
  if (!m.from.empty()) s += ",from=" + m.from;
  if (!m.id.empty()) s += ",id=" + m.id;
  if (m.type == df::RunMount::Type::Cache) s += ",sharing=" + m.sharing;
  s += m.readonly ? ",ro" : ",rw";
  if (m.required) s += ",required";
  if (!m.env.empty()) s += ",env=" + m.env;
  if (m.mode) s += ",mode=" + std::to_string(*m.mode);
  if (m.uid) s += ",uid=" + std::to_string(*m.uid);
  if (m.gid) s += ",gid=" + std::to_string(*m.gid);
  if (m.size) s += ",size=" + std::to_string(*m.size);
  return s;
}

// One port number as Go's strconv.ParseUint(s, 10, 16) reads it (digits only, <= 65535).
std::optional<unsigned> port_number(const std::string& n) {
  if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  unsigned long v = 0;
  for (char c : n) {
    v = v * 10 + static_cast<unsigned long>(c - '0');
    if (v > 65535) return std::nullopt;
  }
  return static_cast<unsigned>(v);
}

// "A" or "A-B" (go-connections' ParsePortRange: text after a second '-' is ignored).
std::optional<std::pair<unsigned, unsigned>> port_range(const std::string& r) {
  auto dash = r.find('-');
  if (dash == std::string::npos) {
    auto p = port_number(r);
    if (!p) return std::nullopt;
    return std::pair{*p, *p};
  }
  auto second = r.find('-', dash + 1);
  auto a = port_number(r.substr(0, dash));
  auto b = port_number(r.substr(dash + 1, second == std::string::npos ? std::string::npos : second - dash - 1));
  if (!a || !b || *b < *a) return std::nullopt;
  return std::pair{*a, *b};
}

bool valid_ip(std::string ip) {
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  unsigned char buf[16];
  return ::inet_pton(AF_INET, ip.c_str(), buf) == 1 || ::inet_pton(AF_INET6, ip.c_str(), buf) == 1;
}

// The ExposedPorts keys one EXPOSE word gives, as docker's nat.ParsePortSpec reads
// `[[ip:]hostport:]port[-port][/proto]`: a range is expanded to one key per port, numbers are
// written without leading zeros and the protocol is lower-cased ("9000-9001/UDP" gives
// "9000/udp", "9001/udp"). What docker refuses throws, with docker's reason.
std::vector<std::string> exposed_ports(const std::string& word) {
  std::vector<std::string> parts;
  for (std::size_t at = 0;;) {
    auto colon = word.find(':', at);
    parts.push_back(word.substr(at, colon == std::string::npos ? std::string::npos : colon - at));
    if (colon == std::string::npos) break;
    at = colon + 1;
  }
  std::string container = parts.back(), host, ip;
  if (parts.size() >= 2) host = parts[parts.size() - 2];
  for (std::size_t k = 0; k + 2 < parts.size(); ++k) ip += (k ? ":" : "") + parts[k];
  std::string proto = "tcp";
  auto slash = container.find('/');
  if (slash != std::string::npos && slash > 0) {
    auto end = container.find('/', slash + 1);
    std::string p = container.substr(slash + 1, end == std::string::npos ? std::string::npos : end - slash - 1);
    if (!p.empty()) proto = p;
    container = container.substr(0, slash);
  } else if (slash == 0) {
    container.clear();
  }
  auto bad = [&](const std::string& why) {
    return Fail{"EXPOSE: " + why + " in " + quote(word) + " (expected [[IP:]HOSTPORT:]PORT[-PORT][/tcp|udp|sctp])"};
  };
  if (!ip.empty() && !valid_ip(ip)) throw bad("invalid ip address " + quote(ip));
  if (container.empty()) throw bad("no port specified");
  auto range = port_range(container);
  if (!range) throw bad("invalid containerPort " + quote(container));
  if (!host.empty()) {
    auto h = port_range(host);
    if (!h) throw bad("invalid hostPort " + quote(host));
    if (h->second - h->first != range->second - range->first && range->first != range->second)
      throw bad("invalid ranges specified for container and host ports " + quote(container) + " and " + quote(host));
  }
  proto = lower(proto);
  if (proto != "tcp" && proto != "udp" && proto != "sctp") throw bad("invalid proto " + quote(proto));
  std::vector<std::string> out;
  for (unsigned p = range->first; p <= range->second; ++p) out.push_back(std::to_string(p) + "/" + proto);
  return out;
}

class Planner {
 public:
  // Every instruction is typed before any is planned, so a typing error anywhere wins over
  // planning errors and image_env is never called for a Dockerfile that does not type. Each
  // syntax node is freed once typed, and run() consumes the typed instructions: what a big
  // Dockerfile keeps alive is then mostly the Plan itself.
  Planner(std::string_view text, std::string_view file, const PlanOptions& o) : opt_(o) {
    df::ParsedDockerfile tree = df::parse(text, file);
    plan_.file = tree.file;
    plan_.directives = tree.directives;
    plan_.warnings = std::move(tree.warnings);
    typed_.reserve(tree.instructions.size());
    for (df::Node& n : tree.instructions) {
      typed_.push_back(df::type_instruction(n, plan_.file, plan_.warnings));
      n = df::Node{};
    }
    df::ShellWordsOptions swo;
    swo.escape = plan_.directives.escape;
    swo.budget = &budget_;
    sw_ = df::ShellWords(swo);
  }

  Plan run() {
    setup_platforms();
    std::size_t i = 0;
    // Global scope: only ARG before the first FROM.
    for (; i < typed_.size(); ++i) {
      const auto& t = typed_[i];
      if (std::holds_alternative<df::FromInstr>(t.instr)) break;
      const auto* a = std::get_if<df::ArgInstr>(&t.instr);
      if (!a) throw df::DockerfileError(plan_.file, t.range.start_line,
                                        t.keyword + " is not allowed before the first FROM (only ARG is)");
      at(t, [&] { global_arg(*a); });
    }
    if (i == typed_.size()) throw df::DockerfileError(plan_.file, 0, "no build stage in the Dockerfile (FROM missing)");
    // Stage names first, so COPY --from can name a later stage (a cycle is reported later);
    // and each stage's step count, so its steps are allocated once.
    std::vector<std::size_t> step_counts;
    for (std::size_t j = i; j < typed_.size(); ++j) {
      if (const auto* f = std::get_if<df::FromInstr>(&typed_[j].instr)) {
        names_.push_back(f->name);
        step_counts.push_back(0);
      } else {
        ++step_counts.back();
      }
    }
    errors_.resize(names_.size());
    for (; i < typed_.size(); ++i) {
      auto& t = typed_[i];
      if (const auto* f = std::get_if<df::FromInstr>(&t.instr)) {
        begin_stage(t, *f);
        plan_.stages.back().steps.reserve(step_counts[plan_.stages.size() - 1]);
        continue;
      }
      int s = static_cast<int>(plan_.stages.size()) - 1;
      if (errors_[s]) continue;  // the rest of a failed stage is not planned
      try {
        at(t, [&] { step(t); });
      } catch (const df::DockerfileError& e) {
        errors_[s] = e;
      }
      t = df::TypedInstruction{};  // consumed: its strings now belong to the step (or are dropped)
    }
    typed_ = {};
    finish();
    return std::move(plan_);
  }

 private:
  template <class F>
  void at(const df::TypedInstruction& t, F&& f) {
    try {
      f();
    } catch (const Fail& e) {
      throw df::DockerfileError(plan_.file, t.range.start_line, e.message);
    } catch (const df::DockerfileError&) {
      throw;
    } catch (const Error& e) {
      throw df::DockerfileError(plan_.file, t.range.start_line, t.keyword + ": " + e.message());
    }
  }

  void setup_platforms() {
    PlatformParts b, tp;
    try {
      b = split_platform(opt_.build_platform.empty() ? host_platform() : opt_.build_platform);
      tp = opt_.target_platform.empty() ? b : split_platform(opt_.target_platform);
    } catch (const Fail& f) {
      throw Error(ErrorKind::InvalidArgument, "--platform: " + f.message);
    }
    predefined_ = {{"TARGETPLATFORM", tp.str()}, {"TARGETOS", tp.os},       {"TARGETARCH", tp.arch},
                   {"TARGETVARIANT", tp.variant}, {"BUILDPLATFORM", b.str()}, {"BUILDOS", b.os},
                   {"BUILDARCH", b.arch},         {"BUILDVARIANT", b.variant}};
    plan_.global_args = predefined_;
  }

  df::EnvLookup global_lookup() const { return df::env_lookup(plan_.global_args); }

  // Charges a copy (or a rendering) of a scope: see step().
  void charge_scope(std::size_t bytes, const std::string& keyword) {
    scope_bytes_ += bytes;
    if (scope_bytes_ > kMaxScopeBytes)
      throw Fail{keyword + ": Dockerfile too large to plan (the ENV/ARG scopes of its steps exceed " +
                 std::to_string(kMaxScopeBytes >> 20) + " MiB in total)"};
  }

  void global_arg(const df::ArgInstr& a) {
    charge_scope(byte_size(plan_.global_args), "ARG");
    EnvList before = plan_.global_args;
    auto lookup = df::env_lookup(before);
    for (const auto& arg : a.args) {
      std::string name = sw_.process_word(arg.name, lookup);
      declared_.insert(name);
      global_declared_.insert(name);
      auto ba = opt_.build_args.find(name);
      if (ba != opt_.build_args.end()) {
        set_var(plan_.global_args, name, ba->second);
      } else if (arg.default_value) {
        set_var(plan_.global_args, name, sw_.process_word(*arg.default_value, lookup));
      }
    }
  }

  // --- stages ---------------------------------------------------------------------------

  struct Scope {
    // What words expand against and RUN gets, as BuildKit's build state holds it: the base's
    // Env, then ENV and ARG (with a value) in the order they come, so a later ARG beats an
    // earlier ENV of the same name (`ENV W=a`, `ARG W=b`: $W is b) and the reverse.
    EnvList env;
    EnvList config_env;  // what the image's Env holds: the base's Env and ENV only, never ARG
    EnvList args;        // declared ARGs with a value
    std::vector<std::string> onbuild;  // ONBUILD triggers this stage records, in order
    std::vector<std::string> arg_names;  // every ARG name this stage declared, in order, repeats kept
    // The snapshots steps share; reset whenever env or args change.
    std::shared_ptr<const EnvList> env_snapshot, args_snapshot;
    std::size_t env_bytes = 0, args_bytes = 0;  // byte_size() of the snapshots
    EnvSnapshot env_now() {
      if (!env_snapshot) {
        env_snapshot = std::make_shared<const EnvList>(env);
        env_bytes = byte_size(env);
      }
      return EnvSnapshot(env_snapshot);
    }
    EnvSnapshot args_now() {
      if (!args_snapshot) {
        args_snapshot = std::make_shared<const EnvList>(args);
        args_bytes = byte_size(args);
      }
      return EnvSnapshot(args_snapshot);
    }
  };

  void begin_stage(const df::TypedInstruction& t, const df::FromInstr& f) {
    Stage st;
    std::vector<std::string> triggers;  // the base's ONBUILD triggers
    st.index = static_cast<int>(plan_.stages.size());
    st.name = f.name;
    st.range = t.range;
    st.from_original = t.original;
    Scope scope;
    try {
      at(t, [&] {
        auto lookup = global_lookup();
        std::string image = sw_.process_word(f.image, lookup);
        st.platform = f.platform.empty() ? std::string() : sw_.process_word(f.platform, lookup);
        if (!st.platform.empty()) st.platform = split_platform(st.platform).str();
        if (image.empty()) throw Fail{"FROM: base name (" + f.image + ") should not be blank"};
        // Stage names are lower-cased when declared, but FROM matches them exactly, as docker
        // does: `FROM BUILDER` is an image reference, and an invalid one (upper case).
        for (int k = 0; k < st.index; ++k)
          if (!names_[k].empty() && names_[k] == image) st.base_stage = k;
        if (st.base_stage >= 0) {
          st.base = Stage::Base::Stage;
          st.stage_deps.push_back(st.base_stage);
          const Scope& base = scopes_[st.base_stage];
          charge_scope(byte_size(base.env) + byte_size(base.config_env), "FROM");
          // BuildKit starts from the base stage's build state and then sets the base image's
          // Env over it: an ARG of the base stage stays visible unless an Env entry names it.
          scope.env = base.env;
          for (const auto& [k, v] : base.config_env) set_var(scope.env, k, v);
          scope.config_env = base.config_env;
          scope.env_snapshot.reset();
          triggers = base.onbuild;
        } else if (image == "scratch") {
          st.base = Stage::Base::Scratch;
        } else {
          try {
            registry::Reference::parse(image);  // only whether it parses: the builder resolves it later
          } catch (const Error& e) {
            throw Fail{"FROM: failed to parse stage name " + q(image) + ": " + e.message()};
          }
          st.base = Stage::Base::Image;
          st.base_image = image;
          if (opt_.image_env) {
            // Empty when nobody asked for one, as the executor loads it: the base's own platform.
            std::string platform = st.platform.empty() ? opt_.target_platform : st.platform;
            if (auto env = opt_.image_env(image, platform)) {
              scope.env = *env;
              scope.config_env = *env;
              scope.env_snapshot.reset();
            }
          }
          if (opt_.image_onbuild) {
            std::string platform = st.platform.empty() ? *get_var(predefined_, "TARGETPLATFORM") : st.platform;
            st.image_onbuild = opt_.image_onbuild(image, platform);
            if (st.image_onbuild) triggers = *st.image_onbuild;
          }
        }
        // The executor gives such a stage the default PATH (apply_from_defaults); words must
        // expand against the same Env (`ENV PATH $PATH:/x`).
        if (st.base != Stage::Base::Stage &&
            std::none_of(scope.env.begin(), scope.env.end(), [](const auto& kv) { return kv.first == "PATH"; })) {
          scope.env.insert(scope.env.begin(), {"PATH", kDefaultPath});
          scope.env_snapshot.reset();
        }
        for (int k = 0; k < st.index; ++k)
          if (!st.name.empty() && names_[k] == st.name)
            throw Fail{"FROM: duplicate stage name " + quote(st.name) + " (also used on an earlier FROM)"};
      });
    } catch (const df::DockerfileError& e) {
      errors_[st.index] = e;
    }
    plan_.stages.push_back(std::move(st));
    scopes_.push_back(std::move(scope));
    // The base's ONBUILD triggers run first, in order, as steps of this stage (docker's
    // dispatchOnBuildTriggers): in this stage's scope, reading this build's context.
    for (const std::string& trigger : triggers) {
      if (errors_[plan_.stages.back().index]) break;
      try {
        at(t, [&] { fire_trigger(t, trigger); });
      } catch (const df::DockerfileError& e) {
        errors_[plan_.stages.back().index] = e;
      }
    }
  }

  // One ONBUILD trigger of the base, parsed as a Dockerfile line of its own (with the default
  // escape character, as BuildKit parses it) and planned as a step. Problems are reported at
  // the FROM line, naming the trigger.
  void fire_trigger(const df::TypedInstruction& from, const std::string& trigger) {
    auto fail = [&](const std::string& why) { return Fail{"ONBUILD trigger " + q(trigger) + " of the base: " + why}; };
    // Every stage built on a stage plans its triggers again: a short Dockerfile could make
    // millions of steps. Each is charged about what a planned step holds.
    charge_scope(kTriggerStepBytes + 2 * trigger.size(), "FROM");
    df::TypedInstruction t;
    try {
      df::ParsedDockerfile tree = df::parse(trigger, plan_.file);
      if (tree.instructions.size() != 1) throw fail("onbuild trigger should be a single expression");
      std::string k = tree.instructions[0].lower_keyword();
      if (k == "onbuild") throw fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
      if (k == "from" || k == "maintainer") throw fail(upper_ascii(k) + " isn't allowed as an ONBUILD trigger");
      std::vector<df::DockerfileWarning> ignored;  // the base's own build reported them
      t = df::type_instruction(tree.instructions[0], plan_.file, ignored);
    } catch (const df::DockerfileError& e) {
      throw fail(e.detail());
    }
    t.range = from.range;
    t.original = "ONBUILD " + trigger;
    std::string keyword = t.keyword;
    try {
      step(t);
    } catch (const Fail& e) {
      throw fail(e.message);
    } catch (const df::DockerfileError& e) {
      throw fail(e.detail());
    } catch (const Error& e) {
      throw fail(keyword + ": " + e.message());
    }
  }

  int resolve_from(Stage& st, const std::string& from, const char* what) {
    std::optional<int> idx;
    if (!from.empty() && from.find_first_not_of("0123456789") == std::string::npos) {
      if (from.size() > 6 || std::stoi(from) >= static_cast<int>(names_.size()))
        throw Fail{std::string(what) + ": no stage with index " + from + " (the Dockerfile has " +
                   std::to_string(names_.size()) + " stages)"};
      idx = std::stoi(from);
    } else {
      for (std::size_t k = 0; k < names_.size(); ++k)
        if (!names_[k].empty() && names_[k] == lower(from)) idx = static_cast<int>(k);
    }
    if (!idx) {
      st.image_deps.push_back(from);
      return -1;
    }
    if (*idx == st.index)
      throw Fail{std::string(what) + ": circular dependency detected on stage: " +
                 (st.name.empty() ? std::to_string(st.index) : st.name)};
    st.stage_deps.push_back(*idx);
    return *idx;
  }

  // Takes t's instruction (t's keyword and original text are taken once nothing can throw).
  void step(df::TypedInstruction& t) {
    Stage& st = plan_.stages.back();
    Scope& scope = scopes_.back();
    Step s;
    s.range = t.range;
    // Every step's cache key (cache_inputs(), rendered for each step of an ExecPlan) spells
    // out its scope; bound the total so that a hostile Dockerfile (100,000 ENV lines) fails
    // cleanly instead of using gigabytes.
    scope_budget_ += scope.env.size() + scope.args.size() + 1;
    if (scope_budget_ > kMaxScopeEntries)
      throw Fail{t.keyword + ": Dockerfile too large to plan (the ENV/ARG scopes of its steps exceed " +
                 std::to_string(kMaxScopeEntries) + " entries in total)"};
    s.env = scope.env_now();
    s.args = scope.args_now();
    // The same in bytes: a few huge values copied into many snapshots and cache keys.
    charge_scope(scope.env_bytes + scope.args_bytes, t.keyword);
    // env holds every ARG with a value too (the later of ENV and ARG wins); args is left for
    // the proxy args. The snapshots stay as they were before this step.
    const EnvList& env_before = s.env.get();
    const EnvList& args_before = s.args.get();
    df::EnvLookup lookup = [&](std::string_view n) -> std::optional<std::string> {
      if (const std::string* v = get_var(env_before, n)) return *v;
      if (const std::string* v = get_var(args_before, n)) return *v;
      return std::nullopt;
    };
    auto word = [&](const std::string& w) { return sw_.process_word(w, lookup); };
    std::string text = t.keyword;
    auto add = [&text](const std::string& piece) { text += " " + piece; };

    df::Instruction in = std::move(t.instr);
    std::visit(
        [&](auto& i) {
          using T = std::decay_t<decltype(i)>;
          if constexpr (std::is_same_v<T, df::RunInstr>) {
            for (auto& m : i.mounts) {
              m.target = word(m.target);
              m.source = word(m.source);
              m.from = word(m.from);
              m.id = word(m.id);
              m.env = word(m.env);
              if (!m.from.empty()) resolve_from(st, m.from, "RUN --mount from");
              add(render_mount(m));
            }
            if (!i.network.empty()) add("--network=" + i.network);
            if (!i.security.empty()) add("--security=" + i.security);
            add(render_command(i.command, i.json));
            s.history_args = history_args(scope.arg_names, env_before);
            charge_scope(s.history_args.size(), t.keyword);  // repeated ARGs make it long
          } else if constexpr (std::is_same_v<T, df::CmdInstr> || std::is_same_v<T, df::EntrypointInstr>) {
            add(render_command(i.command, i.json));
          } else if constexpr (std::is_same_v<T, df::ShellInstr>) {
            add(render_list(i.shell));
          } else if constexpr (std::is_same_v<T, df::EnvInstr> || std::is_same_v<T, df::LabelInstr>) {
            for (auto& kv : i.pairs) {
              kv.key = word(kv.key);
              kv.value = word(kv.value);
              if (kv.key.empty()) throw Fail{t.keyword + ": names can not be blank"};
              add(q(kv.key) + "=" + q(kv.value));
            }
            if constexpr (std::is_same_v<T, df::EnvInstr>)
              for (const auto& kv : i.pairs) {
                set_var(scope.env, kv.key, kv.value);
                set_var(scope.config_env, kv.key, kv.value);
              }
            if constexpr (std::is_same_v<T, df::EnvInstr>) scope.env_snapshot.reset();
          } else if constexpr (std::is_same_v<T, df::ArgInstr>) {
            for (auto& a : i.args) {
              a.name = word(a.name);
              if (a.default_value) a.default_value = word(*a.default_value);
              declared_.insert(a.name);
              scope.arg_names.push_back(a.name);
              std::optional<std::string> value;
              auto ba = opt_.build_args.find(a.name);
              if (ba != opt_.build_args.end()) {
                value = ba->second;
              } else if (a.default_value) {
                value = a.default_value;
              } else if (const std::string* g = get_var(plan_.global_args, a.name)) {
                value = *g;  // a redeclared global (or predefined) ARG
              }
              if (value) {
                set_var(scope.args, a.name, *value);
                scope.args_snapshot.reset();
                set_var(scope.env, a.name, *value);  // beats an earlier ENV of the name
                scope.env_snapshot.reset();
              }
              add(a.name + (a.default_value ? "=" + q(*a.default_value) : std::string()));
            }
          } else if constexpr (std::is_same_v<T, df::CopyInstr>) {
            std::set<std::string> heredoc_names;
            for (const auto& h : i.heredocs) heredoc_names.insert("<<" + h.name);
            for (auto& src : i.sources)
              if (!heredoc_names.count(src) && src.rfind("<<", 0) != 0) src = word(src);
            i.dest = word(i.dest);
            i.chown = word(i.chown);
            i.chmod = word(i.chmod);
            i.checksum = word(i.checksum);
            for (auto& e : i.excludes) e = word(e);
            if (!i.from.empty()) {
              i.from = word(i.from);
              if (i.from.empty()) throw Fail{"COPY --from: expands to an empty value"};
              resolve_from(st, i.from, "COPY --from");
              add("--from=" + i.from);
            }
            if (!i.chmod.empty()) {
              bool ok = i.chmod.size() <= 5 && i.chmod.find_first_not_of("01234567") == std::string::npos &&
                        std::stoul(i.chmod, nullptr, 8) <= 07777;
              if (!ok) throw Fail{t.keyword + ": invalid --chmod value " + quote(i.chmod) + " (expected octal, e.g. 0755)"};
              add("--chmod=" + i.chmod);
            }
            if (!i.chown.empty()) add("--chown=" + i.chown);
            if (i.link) add("--link");
            if (i.parents) add("--parents");
            for (const auto& e : i.excludes) add("--exclude=" + q(e));
            if (!i.checksum.empty()) add("--checksum=" + i.checksum);
            if (i.keep_git_dir) add(std::string("--keep-git-dir=") + (*i.keep_git_dir ? "true" : "false"));
            for (auto& h : i.heredocs) {
              if (h.expand) {
                df::ShellWordsOptions o;
                o.escape = plan_.directives.escape;
                o.skip_process_quotes = true;
                o.raw_escapes = true;
                o.budget = &budget_;
                h.content = df::ShellWords(o).process_word(h.content, lookup);
              }
            }
            std::vector<std::string> all = i.sources;
            all.push_back(i.dest);
            add(i.json ? render_list(all) : [&] {
              std::string j;
              for (std::size_t k = 0; k < all.size(); ++k) j += (k ? " " : "") + all[k];
              return j;
            }());
          } else if constexpr (std::is_same_v<T, df::ExposeInstr>) {
            std::vector<std::string> ports;
            for (const auto& p : i.ports)
              for (auto& w : sw_.process_words(p, lookup))
                for (auto& k : exposed_ports(w)) ports.push_back(std::move(k));
            i.ports = ports;
            for (const auto& p : ports) add(p);
          } else if constexpr (std::is_same_v<T, df::VolumeInstr>) {
            for (auto& p : i.paths) {
              p = word(p);
              if (p.empty()) throw Fail{"VOLUME specified can not be an empty string"};
            }
            add(render_list(i.paths));
          } else if constexpr (std::is_same_v<T, df::UserInstr>) {
            i.user = word(i.user);
            add(i.user);
          } else if constexpr (std::is_same_v<T, df::WorkdirInstr>) {
            i.path = word(i.path);
            if (i.path.empty()) throw Fail{"WORKDIR: path expands to an empty value"};
            add(i.path);
          } else if constexpr (std::is_same_v<T, df::StopsignalInstr>) {
            i.signal = word(i.signal);
            add(i.signal);
          } else if constexpr (std::is_same_v<T, df::HealthcheckInstr>) {
            // BuildKit's history text is Go's %q of the config's HealthConfig struct: the test
            // list, each duration (unset ones are 0s), the retries count as a rune literal.
            std::string hc = "&{[";
            for (std::size_t k = 0; k < i.test.size(); ++k) hc += (k ? " " : "") + q(i.test[k]);
            hc += "]";
            for (const auto& v : {i.interval, i.timeout, i.start_period})
              hc += " " + q(df::go_duration_string(v.value_or(0)));
            if (i.start_interval) hc += " " + q(df::go_duration_string(*i.start_interval));
            hc += " " + df::go_quote_rune(i.retries.value_or(0)) + "}";
            add(hc);
          } else if constexpr (std::is_same_v<T, df::MaintainerInstr>) {
            add(i.name);
          } else if constexpr (std::is_same_v<T, df::OnbuildInstr>) {
            add(i.expression);
            scope.onbuild.push_back(i.expression);
          } else if constexpr (std::is_same_v<T, df::FromInstr>) {
            // handled by begin_stage
          }
        },
        in);
    s.instruction = std::move(in);
    s.expanded_text = std::move(text);
    s.keyword = std::move(t.keyword);
    s.original = std::move(t.original);
    // Proxy build-args reach RUN without a declaration (never in the cache key).
    std::optional<EnvList> with_proxies;
    for (const auto& [k, v] : opt_.build_args)
      if (is_proxy_arg(k) && !get_var(s.args, k)) {
        if (!with_proxies) with_proxies = s.args.get();
        with_proxies->emplace_back(k, v);
      }
    if (with_proxies) s.args = EnvSnapshot(std::make_shared<const EnvList>(std::move(*with_proxies)));
    st.steps.push_back(std::move(s));
  }

  // --- target, DAG, order ---------------------------------------------------------------

  void finish() {
    int n = static_cast<int>(plan_.stages.size());
    plan_.target = n - 1;
    if (!opt_.target.empty()) {
      std::optional<int> t;
      for (int k = 0; k < n; ++k)
        if (!names_[k].empty() && names_[k] == lower(opt_.target)) t = k;
      if (!t) {
        std::string names;
        for (const auto& nm : names_)
          if (!nm.empty()) names += (names.empty() ? "" : ", ") + nm;
        throw Error(ErrorKind::InvalidArgument,
                    plan_.file + ": --target: no build stage named " + quote(opt_.target) +
                        (names.empty() ? std::string(" (no stage is named)") : " (stages: " + names + ")"));
      }
      plan_.target = *t;
    }
    std::vector<int> color(static_cast<std::size_t>(n), 0);
    visit(plan_.target, color);
    for (int k = 0; k < n; ++k)
      if (plan_.stages[k].needed && errors_[k]) throw *errors_[k];
    // Unused --build-arg (predefined, proxy and BUILDKIT_* args are always "used").
    std::string unused;
    for (const auto& arg : opt_.build_args) {
      const std::string& k = arg.first;
      if (declared_.count(k) || is_proxy_arg(k) || get_var(predefined_, k) || k.rfind("BUILDKIT_", 0) == 0 ||
          k == "SOURCE_DATE_EPOCH")
        continue;
      unused += (unused.empty() ? "" : ", ") + k;
    }
    if (!unused.empty())
      plan_.warnings.push_back({plan_.file, 0, "one or more build-args were not consumed: [" + unused + "]"});
  }

  void visit(int s, std::vector<int>& color) {
    Stage& st = plan_.stages[static_cast<std::size_t>(s)];
    if (color[s] == 2) return;
    if (color[s] == 1)
      throw df::DockerfileError(plan_.file, st.range.start_line,
                                "circular dependency detected on stage: " + (st.name.empty() ? std::to_string(s) : st.name));
    color[s] = 1;
    st.needed = true;
    if (errors_[s]) throw *errors_[s];
    for (int d : st.stage_deps) visit(d, color);
    color[s] = 2;
    plan_.order.push_back(s);
  }

  static constexpr std::size_t kMaxScopeEntries = 5'000'000;
  std::size_t scope_budget_ = 0;
  static constexpr std::size_t kMaxScopeBytes = std::size_t{256} << 20;
  static constexpr std::size_t kTriggerStepBytes = 512;
  std::size_t scope_bytes_ = 0;
  df::ExpansionBudget budget_;  // all the word expansion of this Dockerfile
  const PlanOptions& opt_;
  std::vector<df::TypedInstruction> typed_;
  df::ShellWords sw_;
  Plan plan_;
  EnvList predefined_;
  std::vector<std::string> names_;  // stage names by index ("" if unnamed)
  std::vector<Scope> scopes_;
  std::vector<std::optional<df::DockerfileError>> errors_;  // first error per stage
  std::set<std::string> declared_;
  std::set<std::string> global_declared_;
};

}  // namespace

std::string cache_inputs(const Step& step) {
  std::string key = "step " + q(step.expanded_text) + "\n";
  // Heredoc bodies (COPY's as expanded) are part of what the step does.
  std::visit(
      [&](const auto& i) {
        using T = std::decay_t<decltype(i)>;
        if constexpr (std::is_same_v<T, df::RunInstr> || std::is_same_v<T, df::CopyInstr> ||
                      std::is_same_v<T, df::OnbuildInstr>)
          for (const auto& h : i.heredocs) key += "heredoc " + q(h.name) + " " + q(h.content) + "\n";
      },
      step.instruction);
  if (!step.history_args.empty()) key += "history-args " + q(step.history_args) + "\n";
  for (const auto& [k, v] : step.env) key += "env " + q(k) + "=" + q(v) + "\n";
  for (const auto& [k, v] : step.args)
    if (!is_proxy_arg(k)) key += "arg " + q(k) + "=" + q(v) + "\n";
  return key;
}

std::optional<int> find_stage(const Plan& plan, const std::string& name_or_index) {
  if (!name_or_index.empty() && name_or_index.size() < 7 &&
      name_or_index.find_first_not_of("0123456789") == std::string::npos) {
    int i = std::stoi(name_or_index);
    if (i < static_cast<int>(plan.stages.size())) return i;
    return std::nullopt;
  }
  std::string l = lower(name_or_index);
  for (const Stage& s : plan.stages)
    if (!s.name.empty() && s.name == l) return s.index;
  return std::nullopt;
}

std::string host_platform() {
  struct utsname u {};
  std::string m = uname(&u) == 0 ? u.machine : "x86_64";
  if (m == "x86_64" || m == "amd64") return "linux/amd64";
  if (m == "aarch64" || m == "arm64") return "linux/arm64";
  if (m.rfind("armv7", 0) == 0) return "linux/arm/v7";
  if (m.rfind("armv6", 0) == 0) return "linux/arm/v6";
  if (m == "i386" || m == "i686") return "linux/386";
  return "linux/" + m;  // ppc64le, s390x, riscv64 are spelled the same
}

Plan plan_dockerfile(std::string_view text, std::string_view file_name, const PlanOptions& options) {
  // docker reads the Dockerfile (and the build-args) as UTF-8: an invalid byte is U+FFFD in
  // everything it builds, the commands RUN runs included.
  std::optional<PlanOptions> fixed;
  for (const auto& [k, v] : options.build_args)
    if (valid_utf8(k) != k || valid_utf8(v) != v) {
      fixed = options;
      fixed->build_args.clear();
      for (const auto& [k2, v2] : options.build_args) fixed->build_args[valid_utf8(k2)] = valid_utf8(v2);
      break;
    }
  const PlanOptions& o = fixed ? *fixed : options;
  std::string valid = valid_utf8(text);
  if (valid != text) return Planner(valid, file_name, o).run();
  return Planner(text, file_name, o).run();
}

}  // namespace cbuild::builder
