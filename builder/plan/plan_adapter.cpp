#include "builder/plan/plan_adapter.h"

#include <algorithm>
#include <map>
#include <set>

#include "builder/plan/source_kind.h"
#include "builder/dockerfile/dockerfile_error.h"
#include "builder/dockerfile/instructions.h"
#include "builder/dockerfile/parser.h"
#include "oci/digest.h"

namespace cbuild::builder {

namespace df = dockerfile;
using nlohmann::json;

namespace {

json& cfg(ConfigDoc& c) {
  if (!c.contains("config") || !c["config"].is_object()) c["config"] = json::object();
  return c["config"];
}

void set_env(ConfigDoc& c, const std::string& k, const std::string& v) {
  json& env = cfg(c)["Env"];
  if (!env.is_array()) env = json::array();
  std::string prefix = k + "=";
  for (auto& e : env)
    if (e.is_string() && e.get<std::string>().rfind(prefix, 0) == 0) {
      e = prefix + v;
      return;
    }
  env.push_back(prefix + v);
}

std::string go_quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// Shell form → SHELL + [command] (the SHELL in effect when the config op applies).
std::vector<std::string> with_shell(const ConfigDoc& c, const std::vector<std::string>& command, bool json_form) {
  if (json_form) return command;
  std::vector<std::string> out = shell_of(c);
  std::string joined;
  for (const auto& w : command) joined += (joined.empty() ? "" : " ") + w;
  out.push_back(joined);
  return out;
}

json to_json_list(const std::vector<std::string>& v) {
  json a = json::array();
  for (const auto& s : v) a.push_back(s);
  return a;
}

std::string join(const std::vector<std::string>& v, const char* sep = " ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

[[noreturn]] void fail(const Plan& plan, const Step& step, const std::string& message) {
  throw df::DockerfileError(plan.file, step.range.start_line, step.keyword + ": " + message);
}

ExecStep base_step(const Step& s) {
  ExecStep e;
  e.text = s.original;
  // One line for progress: continuations joined, long texts cut.
  std::replace(e.text.begin(), e.text.end(), '\n', ' ');
  if (e.text.size() > 200) e.text = e.text.substr(0, 197) + "...";
  e.line = s.range.start_line;
  e.created_by = s.expanded_text;
  e.cache_inputs = cache_inputs(s);
  return e;
}

struct StageAdapter {
  const Plan& plan;
  const Stage& stage;
  bool cmd_set = false;  // a CMD in this stage (ENTRYPOINT then keeps it)
  std::string workdir;   // static WORKDIR tracking for relative WORKDIR paths (dynamic base: "")

  std::optional<ExecStep> convert(const Step& s) {
    ExecStep e = base_step(s);
    return std::visit([&](const auto& in) { return one(s, e, in); }, s.instruction);
  }

  std::optional<ExecStep> config(ExecStep e, std::function<void(ConfigDoc&)> f) {
    e.op = ConfigOp{std::move(f)};
    return e;
  }

  std::optional<ExecStep> one(const Step& s, ExecStep, const df::FromInstr&) { fail(plan, s, "unexpected FROM step"); }

  RunMount convert_mount(const df::RunMount& m) {
    static const char* types[] = {"bind", "cache", "tmpfs", "secret"};
    RunMount out;
    out.type = static_cast<RunMount::Type>(static_cast<int>(m.type));
    out.target = m.target;
    out.source = m.source;
    out.readonly = m.readonly;
    out.id = m.id;
    out.sharing = m.sharing;
    out.required = m.required;
    out.env = m.env;
    out.mode = m.mode;
    out.uid = m.uid;
    out.gid = m.gid;
    out.size = m.size;
    if (!m.from.empty()) {
      if (auto idx = find_stage(plan, m.from)) out.from_stage = *idx;
      else out.from_image = m.from;
    }
    // What the user wrote, in the order BuildKit documents the keys; shown in messages.
    out.text = std::string("type=") + types[static_cast<int>(m.type)];
    if (m.type == df::RunMount::Type::Secret || (m.type == df::RunMount::Type::Cache && m.id != m.target))
      out.text += ",id=" + m.id;
    if (!m.from.empty()) out.text += ",from=" + m.from;
    if (!m.source.empty()) out.text += ",source=" + m.source;
    if (!m.target.empty()) out.text += ",target=" + m.target;
    if (!m.env.empty()) out.text += ",env=" + m.env;
    return out;
  }

  std::optional<ExecStep> one(const Step& s, ExecStep e, const df::RunInstr& r) {
    RunOp op;
    if (!r.security.empty() && r.security != "sandbox") fail(plan, s, "--security=" + r.security + " is not supported");
    if (r.network == "none") op.network_none = true;
    else if (r.network == "host") op.network_none = false;
    for (const auto& m : r.mounts) op.mounts.push_back(convert_mount(m));
    if (r.json) {
      op.argv = r.command;
    } else {
      op.shell_form = true;
      std::string script = join(r.command);
      if (!r.heredocs.empty()) {
        std::string trimmed = script;
        while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t')) trimmed.pop_back();
        const df::Heredoc& h = r.heredocs.front();
        auto word = df::heredoc_word(trimmed);
        if (r.heredocs.size() == 1 && word && word->name == h.name) {
          script = h.chomp ? df::chomp_heredoc(h.content) : h.content;  // the heredoc is the script
          if (h.content.rfind("#!", 0) == 0) {
            if (h.name.find('/') != std::string::npos || h.name == "." || h.name == "..")
              fail(plan, s, "heredoc " + quote(h.name) + " starts with #! and cannot name a script file");
            op.script_file = RunOp::ScriptFile{h.name, script};
            script = std::string(RunOp::kScriptDir) + "/" + h.name;
          }
        } else {
          for (const auto& hd : r.heredocs) script += "\n" + hd.content + hd.name;
        }
      }
      op.argv = {script};
    }
    for (const auto& [k, v] : s.env) op.env.push_back(k + "=" + v);
    for (const auto& [k, v] : s.args) {
      bool shadowed = std::any_of(s.env.begin(), s.env.end(), [&](const auto& kv) { return kv.first == k; });
      if (!shadowed) op.env.push_back(k + "=" + v);
    }
    op.history_args = s.history_args;
    e.created_by.clear();  // the runner writes it with the SHELL in effect
    e.op = std::move(op);
    return e;
  }

  std::optional<ExecStep> one(const Step&, ExecStep e, const df::CmdInstr& c) {
    cmd_set = true;
    auto command = c.command;
    bool json_form = c.json;
    e.op = ConfigOp{[command, json_form](ConfigDoc& d) {
      auto args = with_shell(d, command, json_form);
      cfg(d)["Cmd"] = to_json_list(args);
      cfg(d)["ArgsEscaped"] = true;
    }};
    // History needs the resolved argv, so the runner-independent form is computed here with
    // the default shell; SHELL changes are rare and only alter the text.
    e.created_by = "CMD " + go_quoted_list(json_form ? command : std::vector<std::string>{"/bin/sh", "-c", join(command)});
    return e;
  }

  std::optional<ExecStep> one(const Step&, ExecStep e, const df::EntrypointInstr& c) {
    auto command = c.command;
    bool json_form = c.json;
    bool keep_cmd = cmd_set;
    e.op = ConfigOp{[command, json_form, keep_cmd](ConfigDoc& d) {
      cfg(d)["Entrypoint"] = to_json_list(with_shell(d, command, json_form));
      if (!keep_cmd) cfg(d).erase("Cmd");  // ENTRYPOINT resets an inherited CMD
      cfg(d)["ArgsEscaped"] = true;
    }};
    e.created_by = "ENTRYPOINT " +
                   go_quoted_list(json_form ? command : std::vector<std::string>{"/bin/sh", "-c", join(command)});
    return e;
  }

  std::optional<ExecStep> one(const Step&, ExecStep e, const df::ShellInstr& sh) {
    auto shell = sh.shell;
    e.created_by = "SHELL [" + join(shell) + "]";
    return config(e, [shell](ConfigDoc& d) { cfg(d)["Shell"] = to_json_list(shell); });
  }

  std::optional<ExecStep> one(const Step&, ExecStep e, const df::EnvInstr& env) {
    auto pairs = env.pairs;
    e.created_by = "ENV";
    for (const auto& kv : pairs) e.created_by += " " + kv.key + "=" + kv.value;
    return config(e, [pairs](ConfigDoc& d) {
      for (const auto& kv : pairs) set_env(d, kv.key, kv.value);
    });
  }

  std::optional<ExecStep> one(const Step&, ExecStep e, const df::LabelInstr& l) {
    auto pairs = l.pairs;
    e.created_by = "LABEL";
    for (const auto& kv : pairs) e.created_by += " " + kv.key + "=" + kv.value;
    return config(e, [pairs](ConfigDoc& d) {
      json& labels = cfg(d)["Labels"];
      if (!labels.is_object()) labels = json::object();
      for (const auto& kv : pairs) labels[kv.key] = kv.value;
    });
  }

  // ARG changes nothing in the image, but BuildKit records it in the history.
  std::optional<ExecStep> one(const Step&, ExecStep e, const df::ArgInstr& a) {
    e.created_by = "ARG";
    for (const auto& arg : a.args) e.created_by += " " + arg.name + (arg.default_value ? "=" + *arg.default_value : "");
    return config(e, [](ConfigDoc&) {});
  }

  std::optional<ExecStep> one(const Step& s, ExecStep e, const df::CopyInstr& c) {
    CopyOp op;
    op.add = c.add;
    op.dest = c.dest;
    op.chown = c.chown;
    if (!c.chmod.empty()) {
      std::uint32_t mode = 0;
      for (char ch : c.chmod) {
        if (ch < '0' || ch > '7' || c.chmod.size() > 4) fail(plan, s, "invalid --chmod " + quote(c.chmod) + " (expected octal)");
        mode = mode * 8 + static_cast<std::uint32_t>(ch - '0');
      }
      op.chmod = mode;
    }
    op.parents = c.parents;
    op.excludes = c.excludes;
    // BuildKit merges a --link copy only without --chmod (dockerfile2llb: `cfg.link &&
    // cfg.chmod == ""`); with --chmod it is an ordinary copy onto the image.
    op.link = c.link && c.chmod.empty();
    for (const auto& src : c.sources) {
      if (src.rfind("<<", 0) == 0) {
        // `<<"EOF"` and `<<'EOF'` name the heredoc EOF: the quotes only switch expansion off.
        auto word = df::heredoc_word(src);
        if (!word) fail(plan, s, "invalid heredoc source " + quote(src));
        const std::string& name = word->name;
        auto h = std::find_if(c.heredocs.begin(), c.heredocs.end(), [&](const df::Heredoc& hd) { return hd.name == name; });
        if (h == c.heredocs.end()) fail(plan, s, "heredoc " + quote(name) + " not found");
        op.inline_files.emplace_back(name, h->chomp ? df::chomp_heredoc(h->content) : h->content);
        op.sources.push_back(name);
        continue;
      }
      if (is_git_source(src)) {
        if (!c.add) fail(plan, s, "source can't be a git ref for COPY: " + src);
        fail(plan, s, "Git sources (" + src + ") are not supported yet");
      }
      if (is_url_source(src)) {
        if (!c.add) fail(plan, s, "source can't be a URL for COPY: " + src);
        op.urls.push_back(src);
        continue;
      }
      op.sources.push_back(src);
    }
    if (!c.checksum.empty()) {
      if (c.sources.size() != 1) fail(plan, s, "--checksum can't be specified for multiple sources");
      if (op.urls.empty()) fail(plan, s, "--checksum requires an HTTP(S) source");
      auto d = oci::Digest::try_parse(c.checksum);
      if (!d || d->algorithm() != "sha256")
        fail(plan, s, "invalid --checksum " + quote(c.checksum) + " (expected sha256:<64 hex digits>)");
      op.checksum = d->str();
    }
    const std::size_t count = c.sources.size();
    const std::string& dst = c.dest;
    bool into_dir = dest_names_directory(dst);
    if (!op.urls.empty() && count > 1 && !into_dir)
      fail(plan, s, "when copying several sources the destination must be a directory and end with a /: " + quote(dst));
    if (!c.from.empty()) {
      if (auto idx = find_stage(plan, c.from)) {
        op.from = CopyOp::From::Stage;
        op.stage = *idx;
      } else {
        op.from = CopyOp::From::Image;
        op.image = c.from;
      }
    }
    // BuildKit's history names the sources and the destination, not the flags.
    e.created_by = c.add ? "ADD" : "COPY";
    if (c.parents) e.created_by += " --parents";  // newer BuildKit records it too
    for (const auto& src : c.sources) e.created_by += " " + src;
    e.created_by += " " + c.dest + " # buildkit";
    e.op = std::move(op);
    return e;
  }

  std::optional<ExecStep> one(const Step&, ExecStep e, const df::ExposeInstr& x) {
    std::vector<std::string> ports;
    for (auto p : x.ports) {
      if (p.find('/') == std::string::npos) p += "/tcp";
      ports.push_back(p);
    }
    // BuildKit prints the Go map of ports: keys sorted, each once.
    std::set<std::string> sorted(ports.begin(), ports.end());
    e.created_by = "EXPOSE map[";
    for (const auto& p : sorted) e.created_by += (p == *sorted.begin() ? "" : " ") + p + ":{}";
    e.created_by += "]";
    return config(e, [ports](ConfigDoc& d) {
      json& ex = cfg(d)["ExposedPorts"];
      if (!ex.is_object()) ex = json::object();
      for (const auto& p : ports) ex[p] = json::object();
    });
  }

  std::optional<ExecStep> one(const Step&, ExecStep e, const df::VolumeInstr& v) {
    auto paths = v.paths;
    e.created_by = "VOLUME [" + join(paths) + "]";
    return config(e, [paths](ConfigDoc& d) {
      json& vol = cfg(d)["Volumes"];
      if (!vol.is_object()) vol = json::object();
      for (const auto& p : paths) vol[p] = json::object();
    });
  }

  std::optional<ExecStep> one(const Step&, ExecStep e, const df::UserInstr& u) {
    std::string user = u.user;
    return config(e, [user](ConfigDoc& d) { cfg(d)["User"] = user; });
  }

  std::optional<ExecStep> one(const Step&, ExecStep e, const df::WorkdirInstr& w) {
    // Relative paths join the WORKDIR in effect; the runner knows it, so keep it relative and
    // let it resolve against the config (docker's semantics for inherited WorkingDir too).
    e.op = WorkdirOp{w.path};
    return e;
  }

  std::optional<ExecStep> one(const Step&, ExecStep e, const df::StopsignalInstr& sig) {
    std::string v = sig.signal;
    return config(e, [v](ConfigDoc& d) { cfg(d)["StopSignal"] = v; });
  }

  std::optional<ExecStep> one(const Step&, ExecStep e, const df::HealthcheckInstr& h) {
    df::HealthcheckInstr hc = h;
    return config(e, [hc](ConfigDoc& d) {
      json j = {{"Test", to_json_list(hc.test)}};
      if (hc.interval) j["Interval"] = *hc.interval;
      if (hc.timeout) j["Timeout"] = *hc.timeout;
      if (hc.start_period) j["StartPeriod"] = *hc.start_period;
      if (hc.start_interval) j["StartInterval"] = *hc.start_interval;
      if (hc.retries) j["Retries"] = *hc.retries;
      cfg(d)["Healthcheck"] = j;
    });
  }

  std::optional<ExecStep> one(const Step&, ExecStep e, const df::MaintainerInstr& m) {
    std::string name = m.name;
    return config(e, [name](ConfigDoc& d) { d["author"] = name; });
  }

  // BuildKit records the trigger in the config and writes no history entry for it.
  std::optional<ExecStep> one(const Step&, ExecStep e, const df::OnbuildInstr& o) {
    std::string expr = o.expression;
    e.op = ConfigOp{[expr](ConfigDoc& d) {
                      json& ob = cfg(d)["OnBuild"];
                      if (!ob.is_array()) ob = json::array();
                      ob.push_back(expr);
                    },
                    /*history=*/false};
    return e;
  }
};

}  // namespace

std::vector<std::string> shell_of(const ConfigDoc& c) {
  if (c.contains("config") && c["config"].is_object() && c["config"].contains("Shell") &&
      c["config"]["Shell"].is_array() && !c["config"]["Shell"].empty()) {
    std::vector<std::string> out;
    for (const auto& w : c["config"]["Shell"])
      if (w.is_string()) out.push_back(w.get<std::string>());
    if (!out.empty()) return out;
  }
  return {"/bin/sh", "-c"};
}

std::string go_quoted_list(const std::vector<std::string>& words) {
  std::string out = "[";
  for (std::size_t i = 0; i < words.size(); ++i) out += (i ? " " : "") + go_quote(words[i]);
  return out + "]";
}

ExecPlan to_exec_plan(const Plan& plan) {
  ExecPlan out;
  out.dockerfile = plan.file;
  out.target = plan.target;
  for (const Stage& s : plan.stages) {
    ExecStage es;
    es.name = s.name;
    es.index = s.index;
    es.base = s.base == Stage::Base::Scratch ? ExecStage::Base::Scratch
              : s.base == Stage::Base::Image ? ExecStage::Base::Image
                                             : ExecStage::Base::Stage;
    es.base_image = s.base_image;
    es.base_stage = s.base_stage;
    es.platform = s.platform;
    es.base_onbuild = s.image_onbuild;
    if (s.needed) {
      StageAdapter a{plan, s};
      for (const Step& step : s.steps)
        if (auto e = a.convert(step)) es.steps.push_back(std::move(*e));
    }
    out.stages.push_back(std::move(es));
  }
  return out;
}

}  // namespace cbuild::builder
