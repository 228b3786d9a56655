// Typing of syntax-tree nodes (see instructions.h). Flag rules follow BuildKit's BFlags:
// "--name=value" or "--name" for booleans; unknown or repeated flags are errors.
#include "builder/dockerfile/instructions.h"

#include <algorithm>
#include <array>
#include <map>

#include "builder/dockerfile/flag_set.h"

namespace cbuild::builder::dockerfile {

namespace {

struct Fail {
  std::string message;
};

std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

constexpr std::array<const char*, 18> kKeywords = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"};

std::vector<Heredoc> chomped(const std::vector<Heredoc>& docs) {
  std::vector<Heredoc> out = docs;
  for (Heredoc& h : out)
    if (h.chomp) h.content = chomp_heredoc(h.content);
  return out;
}

FlagSet parse_flags(const Node& n, const std::vector<FlagSpec>& specs) {
  try {
    return FlagSet::parse(n.flags, specs);
  } catch (const FlagError& e) {
    throw Fail{upper(n.keyword) + ": " + e.what()};
  }
}

void warn_json_looking(const Node& n, std::string_view file, std::vector<DockerfileWarning>& warnings) {
  if (n.json || n.args.empty()) return;
  std::string k = n.lower_keyword();
  // For HEALTHCHECK the first node is the type (CMD/NONE).
  std::string text = k == "healthcheck" ? (n.args.size() > 1 ? n.args[1] : "") : n.args[0];
  if (!text.empty() && text[0] == '[')
    warnings.push_back({std::string(file), n.range.start_line,
                        upper(n.keyword) + ": arguments look like a JSON array but are not valid JSON; "
                                           "they are used as a shell command (use double quotes in JSON)"});
}

std::optional<std::uint32_t> parse_uint(const std::string& s, int base, std::uint64_t max) {
  if (s.empty()) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9' ? c - '0' : -1;
    if (d < 0 || d >= base) return std::nullopt;
    v = v * static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(d);
    if (v > max) return std::nullopt;
  }
  return static_cast<std::uint32_t>(v);
}

std::optional<std::uint64_t> parse_size(std::string s) {
  // tmpfs size: bytes with an optional k/m/g suffix (docker's units.RAMInBytes, base 1024).
  s = lower(s);
  std::uint64_t mult = 1;
  if (!s.empty() && s.back() == 'b') s.pop_back();
  if (!s.empty() && (s.back() == 'k' || s.back() == 'm' || s.back() == 'g')) {
    mult = s.back() == 'k' ? 1024ull : s.back() == 'm' ? 1024ull * 1024 : 1024ull * 1024 * 1024;
    s.pop_back();
  }
  if (s.empty() || s.size() > 12 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::stoull(s) * mult;
}

bool parse_bool_value(const std::string& key, const std::string& v) {
  std::string l = lower(v);
  if (l == "true" || l == "1") return true;
  if (l == "false" || l == "0") return false;
  throw Fail{"RUN --mount: invalid value " + quote(v) + " for " + key + " (expected true or false)"};
}

RunMount parse_mount(const std::string& spec) {
  RunMount m;
  std::vector<std::pair<std::string, std::optional<std::string>>> fields;
  // Comma-separated key[=value] fields (BuildKit reads them as CSV; quotes are not needed).
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = spec.find(',', start);
    std::string f = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!f.empty()) {
      auto eq = f.find('=');
      if (eq == std::string::npos)
        fields.emplace_back(lower(f), std::nullopt);
      else
        fields.emplace_back(lower(f.substr(0, eq)), f.substr(eq + 1));
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  // The type decides defaults, so read it first.
  for (auto& [k, v] : fields) {
    if (k != "type") continue;
    std::string t = lower(v.value_or(""));
    if (t == "bind") m.type = RunMount::Type::Bind;
    else if (t == "cache") m.type = RunMount::Type::Cache;
    else if (t == "tmpfs") m.type = RunMount::Type::Tmpfs;
    else if (t == "secret") m.type = RunMount::Type::Secret;
    else if (t == "ssh") throw Fail{"RUN --mount: type=ssh is not supported by cbuild"};
    else throw Fail{"RUN --mount: unsupported mount type " + quote(v.value_or("")) + " (expected bind, cache, tmpfs or secret)"};
  }
  m.readonly = m.type == RunMount::Type::Bind || m.type == RunMount::Type::Secret;
  for (auto& [k, v] : fields) {
    auto need = [&, &k = k, &v = v]() -> const std::string& {
      if (!v) throw Fail{"RUN --mount: " + k + " requires a value"};
      return *v;
    };
    if (k == "type") continue;
    if (k == "target" || k == "dst" || k == "destination") {
      m.target = need();
    } else if (k == "source" || k == "src") {
      m.source = need();
    } else if (k == "from") {
      m.from = need();
    } else if (k == "readonly" || k == "ro") {
      m.readonly = v ? parse_bool_value(k, *v) : true;
    } else if (k == "readwrite" || k == "rw") {
      m.readonly = v ? !parse_bool_value(k, *v) : false;
    } else if (k == "id") {
      m.id = need();
    } else if (k == "sharing") {
      m.sharing = lower(need());
      if (m.sharing != "shared" && m.sharing != "private" && m.sharing != "locked")
        throw Fail{"RUN --mount: unsupported sharing value " + quote(*v) + " (expected shared, private or locked)"};
    } else if (k == "required") {
      m.required = v ? parse_bool_value(k, *v) : true;
    } else if (k == "mode") {
      m.mode = parse_uint(need(), 8, 07777);
      if (!m.mode) throw Fail{"RUN --mount: invalid mode " + quote(*v) + " (expected octal like 0755)"};
    } else if (k == "uid" || k == "gid") {
      auto id = parse_uint(need(), 10, 0xFFFFFFFFull);
      if (!id) throw Fail{"RUN --mount: invalid " + k + " " + quote(*v)};
      (k == "uid" ? m.uid : m.gid) = id;
    } else if (k == "size") {
      m.size = parse_size(need());
      if (!m.size) throw Fail{"RUN --mount: invalid size " + quote(*v)};
    } else if (k == "env") {
      m.env = need();
    } else {
      throw Fail{"RUN --mount: unexpected key '" + k + "' in " + quote(spec)};
    }
  }
  if (m.type == RunMount::Type::Secret) {
    if (m.id.empty() && m.target.empty() && m.env.empty())
      throw Fail{"RUN --mount=type=secret: needs id= or target= (" + spec + ")"};
    if (m.id.empty()) {
      std::string t = m.target.empty() ? m.env : m.target;
      auto slash = t.find_last_of('/');
      m.id = slash == std::string::npos ? t : t.substr(slash + 1);
    }
    if (m.target.empty() && m.env.empty()) m.target = "/run/secrets/" + m.id;
  } else if (m.target.empty()) {
    throw Fail{"RUN --mount: target= is required (" + spec + ")"};
  }
  if (m.type == RunMount::Type::Cache && m.id.empty()) m.id = m.target;
  if (m.type != RunMount::Type::Bind && m.type != RunMount::Type::Cache && !m.from.empty())
    throw Fail{"RUN --mount: from= is only valid for bind and cache mounts"};
  return m;
}

Instruction type_from(const Node& n) {
  FlagSet f = parse_flags(n, {{"platform", FlagKind::String}});
  if (n.args.size() != 1 && n.args.size() != 3) throw Fail{"FROM requires either one or three arguments"};
  FromInstr i;
  i.image = n.args[0];
  if (n.args.size() == 3) {
    if (lower(n.args[1]) != "as") throw Fail{"FROM: expected AS, got " + quote(n.args[1])};
    i.name = lower(n.args[2]);
    bool ok = !i.name.empty() && i.name[0] >= 'a' && i.name[0] <= 'z';
    for (char c : i.name)
      ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.');
    if (!ok)
      throw Fail{"FROM: invalid name for build stage: " + quote(n.args[2]) +
                 ", name can't start with a number or contain symbols"};
  }
  i.platform = f.string("platform");
  return i;
}

Instruction type_run(const Node& n) {
  FlagSet f = parse_flags(n, {{"mount", FlagKind::StringList}, {"network", FlagKind::String},
                              {"security", FlagKind::String}});
  RunInstr r;
  r.command = n.args;
  r.json = n.json;
  r.heredocs = n.heredocs;
  if (r.command.empty()) throw Fail{"RUN requires at least one argument"};
  for (const std::string& m : f.list("mount")) r.mounts.push_back(parse_mount(m));
  r.network = lower(f.string("network"));
  if (f.has("network") && r.network != "default" && r.network != "none" && r.network != "host")
    throw Fail{"RUN: unsupported network mode " + quote(f.string("network")) + " (expected default, none or host)"};
  r.security = lower(f.string("security"));
  if (f.has("security") && r.security != "sandbox" && r.security != "insecure")
    throw Fail{"RUN: unsupported security mode " + quote(f.string("security")) + " (expected sandbox or insecure)"};
  return r;
}

Instruction type_copy(const Node& n, bool add) {
  std::vector<FlagSpec> specs = {{"chown", FlagKind::String}, {"chmod", FlagKind::String},
                                 {"link", FlagKind::Bool}, {"exclude", FlagKind::StringList}};
  if (add) {
    specs.push_back({"checksum", FlagKind::String});
    specs.push_back({"keep-git-dir", FlagKind::Bool});
  } else {
    specs.push_back({"from", FlagKind::String});
    specs.push_back({"parents", FlagKind::Bool});
  }
  FlagSet f = parse_flags(n, specs);
  const char* kw = add ? "ADD" : "COPY";
  if (n.args.size() < 2) throw Fail{std::string(kw) + " requires at least two arguments, but only " +
                                    std::to_string(n.args.size()) + " provided"};
  CopyInstr c;
  c.add = add;
  c.sources.assign(n.args.begin(), n.args.end() - 1);
  c.dest = n.args.back();
  c.json = n.json;
  c.heredocs = chomped(n.heredocs);
  c.chown = f.string("chown");
  c.chmod = f.string("chmod");
  c.link = f.boolean("link");
  c.excludes = f.list("exclude");
  if (add) {
    c.checksum = f.string("checksum");
    if (f.has("keep-git-dir")) c.keep_git_dir = f.boolean("keep-git-dir");
  } else {
    c.from = f.string("from");
    if (f.has("from") && c.from.empty()) throw Fail{"COPY: --from requires a stage name, index or image"};
    c.parents = f.boolean("parents");
  }
  return c;
}

std::vector<KeyValue> pairs(const Node& n) {
  std::vector<KeyValue> out;
  for (std::size_t i = 0; i + 1 < n.args.size(); i += 3) out.push_back({n.args[i], n.args[i + 1]});
  return out;
}

std::int64_t duration_flag(const FlagSet& f, const char* name, const char* label) {
  std::string v = f.string(name);
  auto d = parse_go_duration(v);
  if (!d) throw Fail{"HEALTHCHECK: invalid duration " + quote(v) + " for --" + name};
  if (*d != 0 && *d < 1000000) throw Fail{std::string("HEALTHCHECK: ") + label + " cannot be less than 1ms"};
  if (*d < 0) throw Fail{std::string("HEALTHCHECK: ") + label + " cannot be negative"};
  return *d;
}

Instruction type_healthcheck(const Node& n) {
  FlagSet f = parse_flags(n, {{"interval", FlagKind::String}, {"timeout", FlagKind::String},
                              {"start-period", FlagKind::String}, {"start-interval", FlagKind::String},
                              {"retries", FlagKind::String}});
  if (n.args.empty()) throw Fail{"HEALTHCHECK requires an argument (CMD … or NONE)"};
  HealthcheckInstr h;
  std::string type = upper(n.args[0]);
  if (type == "NONE") {
    if (n.args.size() > 1) throw Fail{"HEALTHCHECK NONE takes no arguments"};
    if (!n.flags.empty()) throw Fail{"HEALTHCHECK NONE does not accept flags"};
    h.test = {"NONE"};
    return h;
  }
  if (type != "CMD") throw Fail{"HEALTHCHECK: unknown type " + quote(n.args[0]) + " (try CMD or NONE)"};
  if (n.args.size() < 2) throw Fail{"HEALTHCHECK: missing command after HEALTHCHECK CMD"};
  if (n.json) {
    h.test = {"CMD"};
    h.test.insert(h.test.end(), n.args.begin() + 1, n.args.end());
  } else {
    h.test = {"CMD-SHELL", n.args[1]};
  }
  if (f.has("interval")) h.interval = duration_flag(f, "interval", "Interval");
  if (f.has("timeout")) h.timeout = duration_flag(f, "timeout", "Timeout");
  if (f.has("start-period")) h.start_period = duration_flag(f, "start-period", "StartPeriod");
  if (f.has("start-interval")) h.start_interval = duration_flag(f, "start-interval", "StartInterval");
  if (f.has("retries")) {
    auto r = parse_uint(f.string("retries"), 10, 1000000000);
    if (!r) throw Fail{"HEALTHCHECK: --retries must be a non-negative integer, got " + quote(f.string("retries"))};
    h.retries = static_cast<int>(*r);
  }
  return h;
}

Instruction type_node(const Node& n, std::string_view file, std::vector<DockerfileWarning>& warnings) {
  std::string k = n.lower_keyword();
  auto no_flags = [&] { parse_flags(n, {}); };
  auto single = [&](const char* what) {
    no_flags();
    if (n.args.empty()) throw Fail{upper(k) + " requires " + what};
    return n.args[0];
  };
  if (k == "from") return type_from(n);
  if (k == "run") return type_run(n);
  if (k == "copy" || k == "add") return type_copy(n, k == "add");
  if (k == "healthcheck") return type_healthcheck(n);
  if (k == "cmd" || k == "entrypoint") {
    no_flags();
    if (k == "cmd") return CmdInstr{n.args, n.json};
    return EntrypointInstr{n.args, n.json};
  }
  if (k == "shell") {
    no_flags();
    if (!n.json) throw Fail{"SHELL requires the arguments to be in JSON form"};
    if (n.args.empty()) throw Fail{"SHELL requires at least one argument"};
    return ShellInstr{n.args};
  }
  if (k == "env" || k == "label") {
    no_flags();
    if (n.args.empty()) throw Fail{upper(k) + " requires at least one argument"};
    auto p = pairs(n);
    for (const KeyValue& kv : p)
      if (kv.key.empty()) throw Fail{upper(k) + " names can not be blank"};
    if (k == "env") return EnvInstr{p};
    return LabelInstr{p};
  }
  if (k == "arg") {
    no_flags();
    if (n.args.empty()) throw Fail{"ARG requires at least one argument"};
    ArgInstr a;
    for (const std::string& w : n.args) {
      auto eq = w.find('=');
      ArgInstr::Arg arg;
      arg.name = w.substr(0, eq);
      if (eq != std::string::npos) arg.default_value = w.substr(eq + 1);
      if (arg.name.empty()) throw Fail{"ARG names can not be blank"};
      a.args.push_back(std::move(arg));
    }
    return a;
  }
  if (k == "expose") {
    no_flags();
    if (n.args.empty()) throw Fail{"EXPOSE requires at least one argument"};
    return ExposeInstr{n.args};
  }
  if (k == "volume") {
    no_flags();
    if (n.args.empty()) throw Fail{"VOLUME requires at least one argument"};
    for (const std::string& v : n.args)
      if (v.empty()) throw Fail{"VOLUME specified can not be an empty string"};
    return VolumeInstr{n.args};
  }
  if (k == "user") return UserInstr{single("exactly one argument (user[:group])")};
  if (k == "workdir") return WorkdirInstr{single("exactly one argument (a path)")};
  if (k == "stopsignal") return StopsignalInstr{single("exactly one argument (a signal)")};
  if (k == "maintainer") {
    std::string name = single("exactly one argument");
    warnings.push_back({std::string(file), n.range.start_line,
                        "MAINTAINER is deprecated: use LABEL org.opencontainers.image.authors=\"…\" instead"});
    return MaintainerInstr{name};
  }
  if (k == "onbuild") {
    no_flags();
    if (n.sub.empty()) throw Fail{"ONBUILD requires at least one argument"};
    const Node& t = n.sub[0];
    std::string tk = upper(t.keyword);
    if (tk == "ONBUILD") throw Fail{"Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"};
    if (tk == "FROM" || tk == "MAINTAINER") throw Fail{tk + " isn't allowed as an ONBUILD trigger"};
    // Typed only to refuse a bad trigger now, like BuildKit; the trigger is kept as its text.
    type_node(t, file, warnings);
    OnbuildInstr o;
    o.expression = t.original;
    auto b = o.expression.find_first_not_of(" \t");
    o.expression = b == std::string::npos ? std::string() : o.expression.substr(b);
    o.heredocs = n.heredocs;
    return o;
  }
  std::string msg = "unknown instruction: " + upper(n.keyword);
  std::string s = suggest_instruction(n.keyword);
  if (!s.empty()) msg += " (did you mean " + s + "?)";
  throw Fail{msg};
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::string suggest_instruction(std::string_view word) {
  if (word.size() > 32) return "";
  std::string w = upper(std::string(word));
  std::string best;
  std::size_t best_d = 3;
  for (const char* k : kKeywords) {
    std::size_t d = edit_distance(w, k);
    if (d < best_d && d < std::string(k).size()) {
      best_d = d;
      best = k;
    }
  }
  return best;
}

std::string chomp_heredoc(std::string_view content) {
  std::string out;
  out.reserve(content.size());
  bool at_line_start = true;
  for (char c : content) {
    if (at_line_start && c == '\t') continue;
    at_line_start = c == '\n';
    out += c;
  }
  return out;
}

std::optional<std::int64_t> parse_go_duration(std::string_view s) {
  // [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+ with units ns us µs ms s m h; "0" alone is allowed.
  if (s.empty()) return std::nullopt;
  bool neg = false;
  if (s[0] == '-' || s[0] == '+') {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return 0;
  if (s.empty()) return std::nullopt;
  long double total = 0;
  while (!s.empty()) {
    std::size_t i = 0;
    long double v = 0;
    bool digits = false;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0'), digits = true;
    if (i < s.size() && s[i] == '.') {
      ++i;
      long double scale = 0.1L;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') v += (s[i++] - '0') * scale, scale /= 10, digits = true;
    }
    if (!digits) return std::nullopt;
    std::size_t u = i;
    while (i < s.size() && !(s[i] >= '0' && s[i] <= '9') && s[i] != '.') ++i;
    std::string_view unit = s.substr(u, i - u);
    long double mult;
    if (unit == "ns") mult = 1;
    else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") mult = 1e3L;
    else if (unit == "ms") mult = 1e6L;
    else if (unit == "s") mult = 1e9L;
    else if (unit == "m") mult = 60e9L;
    else if (unit == "h") mult = 3600e9L;
    else return std::nullopt;
    total += v * mult;
    if (total > 9.2e18L) return std::nullopt;
    s.remove_prefix(i);
  }
  auto r = static_cast<std::int64_t>(total);
  return neg ? -r : r;
}

std::string go_duration_string(std::int64_t ns) {
  if (ns == 0) return "0s";
  bool neg = ns < 0;
  std::uint64_t u = neg ? 0 - static_cast<std::uint64_t>(ns) : static_cast<std::uint64_t>(ns);
  // The fraction of v / 10^prec without trailing zeros (and without the point when it is 0).
  auto frac = [](std::uint64_t v, int prec) {
    std::string digits;
    bool printed = false;
    for (int i = 0; i < prec; ++i, v /= 10) {
      int d = static_cast<int>(v % 10);
      printed = printed || d != 0;
      if (printed) digits.insert(digits.begin(), static_cast<char>('0' + d));
    }
    return printed ? "." + digits : std::string();
  };
  std::string out;
  if (u < 1000000000ULL) {
    if (u < 1000ULL) out = std::to_string(u) + "ns";
    else if (u < 1000000ULL) out = std::to_string(u / 1000) + frac(u % 1000, 3) + "\xC2\xB5s";
    else out = std::to_string(u / 1000000) + frac(u % 1000000, 6) + "ms";
  } else {
    std::uint64_t secs = u / 1000000000ULL;
    out = std::to_string(secs % 60) + frac(u % 1000000000ULL, 9) + "s";
    if (std::uint64_t mins = secs / 60) {
      out = std::to_string(mins % 60) + "m" + out;
      if (std::uint64_t hours = mins / 60) out = std::to_string(hours) + "h" + out;
    }
  }
  return neg ? "-" + out : out;
}

TypedInstruction type_instruction(const Node& node, std::string_view file, std::vector<DockerfileWarning>& warnings) {
  TypedInstruction t;
  t.keyword = upper(node.keyword);
  t.original = node.original;
  t.range = node.range;
  try {
    t.instr = type_node(node, file, warnings);
  } catch (const Fail& f) {
    throw DockerfileError(std::string(file), node.range.start_line, f.message);
  }
  warn_json_looking(node, file, warnings);
  return t;
}

std::vector<TypedInstruction> type_instructions(const ParsedDockerfile& tree, std::vector<DockerfileWarning>& warnings) {
  std::vector<TypedInstruction> out;
  out.reserve(tree.instructions.size());
  for (const Node& n : tree.instructions) out.push_back(type_instruction(n, tree.file, warnings));
  return out;
}

}  // namespace cbuild::builder::dockerfile
