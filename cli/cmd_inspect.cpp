// `cbuild inspect [--format TEMPLATE] [--platform os/arch[/variant]] IMAGE...` — image details
// as JSON like `docker image inspect`; a multi-platform image shows the manifest of --platform
// (the host's by default), the one `run`, `unpack` and FROM use. --format takes a Go-template subset: literal text with {{.Field.Sub}} (printed the
// way Go prints values: strings bare, lists as [a b], maps as map[k:v]) and {{json .Field}}.
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/store_open.h"
#include "oci/base/error.h"
#include "registry-client/reference.h"

namespace cbuild::cli {
namespace {
using ojson = nlohmann::ordered_json;

struct InspectOptions {
  std::string format;
  std::string platform;
  std::vector<std::string> images;
};

ojson inspect_json(const StoreImage& img) {
  ojson j;
  j["Id"] = img.config_digest.str();
  ojson tags = ojson::array(), digests = ojson::array();
  for (auto& n : img.names) {
    auto r = registry::Reference::try_parse(n);
    tags.push_back(r ? r->familiar() : n);
    if (r) {
      std::string rd = r->familiar_name() + "@" + img.target.digest.str();
      if (std::find(digests.begin(), digests.end(), rd) == digests.end()) digests.push_back(rd);
    }
  }
  j["RepoTags"] = tags;
  j["RepoDigests"] = digests;
  j["Parent"] = "";
  ojson raw = ojson::parse(img.config_bytes);
  j["Comment"] = raw.value("comment", "");
  j["Created"] = img.config.created;
  j["DockerVersion"] = raw.value("docker_version", "");
  j["Author"] = img.config.author;
  ojson cfg = raw.contains("config") && raw["config"].is_object() ? raw["config"] : ojson::object();
  for (const char* k : {"User", "WorkingDir"})
    if (!cfg.contains(k)) cfg[k] = "";
  for (const char* k : {"Env", "Cmd", "Entrypoint", "Labels"})
    if (!cfg.contains(k)) cfg[k] = nullptr;
  j["Config"] = cfg;
  j["Architecture"] = img.config.architecture;
  if (!img.config.variant.empty()) j["Variant"] = img.config.variant;
  j["Os"] = img.config.os;
  j["Size"] = img.size();
  ojson layers = ojson::array();
  for (auto& d : img.config.rootfs.diff_ids) layers.push_back(d.str());
  j["RootFS"] = {{"Type", img.config.rootfs.type}, {"Layers", layers}};
  j["Descriptor"] = {{"mediaType", img.target.media_type}, {"digest", img.target.digest.str()}, {"size", img.target.size}};
  j["Metadata"] = {{"LastTagTime", "0001-01-01T00:00:00Z"}};
  return j;
}

std::string go_print(const ojson& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "<no value>";
  if (v.is_array()) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? " " : "") + go_print(v[i]);
    return s + "]";
  }
  if (v.is_object()) {
    std::vector<std::pair<std::string, std::string>> kv;
    for (auto& [k, e] : v.items()) kv.emplace_back(k, go_print(e));
    std::sort(kv.begin(), kv.end());
    std::string s = "map[";
    for (std::size_t i = 0; i < kv.size(); ++i) s += (i ? " " : "") + kv[i].first + ":" + kv[i].second;
    return s + "]";
  }
  return v.dump();
}

const ojson* lookup(const ojson& root, std::string_view path, std::string_view tmpl) {
  if (path == ".") return &root;
  if (!path.starts_with(".")) throw Error(ErrorKind::InvalidArgument, "template " + quote(tmpl) + ": expected .Field, got " + quote(path));
  const ojson* cur = &root;
  static const ojson missing;
  std::size_t pos = 1;
  while (pos <= path.size()) {
    auto dot = path.find('.', pos);
    std::string key(path.substr(pos, dot == std::string_view::npos ? std::string_view::npos : dot - pos));
    if (key.empty()) throw Error(ErrorKind::InvalidArgument, "template " + quote(tmpl) + ": empty field name");
    if (!cur->is_object() || !cur->contains(key)) return &missing;
    cur = &(*cur)[key];
    if (dot == std::string_view::npos) break;
    pos = dot + 1;
  }
  return cur;
}

std::string render(std::string_view tmpl, const ojson& data) {
  std::string out;
  std::size_t pos = 0;
  while (pos < tmpl.size()) {
    auto open = tmpl.find("{{", pos);
    if (open == std::string_view::npos) {
      out += tmpl.substr(pos);
      break;
    }
    out += tmpl.substr(pos, open - pos);
    auto close = tmpl.find("}}", open);
    if (close == std::string_view::npos) throw Error(ErrorKind::InvalidArgument, "template " + quote(tmpl) + ": unclosed action");
    std::string_view action = tmpl.substr(open + 2, close - open - 2);
    while (!action.empty() && action.front() == ' ') action.remove_prefix(1);
    while (!action.empty() && action.back() == ' ') action.remove_suffix(1);
    if (action.starts_with("json ")) {
      std::string_view p = action.substr(5);
      while (!p.empty() && p.front() == ' ') p.remove_prefix(1);
      const ojson* v = lookup(data, p, tmpl);
      out += v->dump();
    } else {
      out += go_print(*lookup(data, action, tmpl));
    }
    pos = close + 2;
  }
  return out;
}

int run_inspect(const InspectOptions& o, const GlobalOptions& g) {
  std::optional<oci::Platform> platform;
  if (!o.platform.empty()) platform = oci::Platform::parse(o.platform);
  auto store = open_store(g);
  ojson all = ojson::array();
  int rc = 0;
  for (auto& arg : o.images) {
    try {
      ojson j = inspect_json(resolve_image(*store, arg, platform));
      if (!o.format.empty()) std::cout << render(o.format, j) << "\n";
      all.push_back(std::move(j));
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::NotFound) throw;
      std::cerr << "cbuild: error: " << e.what() << "\n";
      rc = 1;
    }
  }
  if (o.format.empty()) std::cout << all.dump(4) << "\n";
  return rc;
}

CommandRegistration reg{{
    .name = "inspect",
    .help = "Display detailed information on one or more images",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<InspectOptions>();
      app.add_option("-f,--format", o->format, "Format the output using a Go-like template ({{.Config.Env}}, {{json .}})");
      app.add_option("--platform", o->platform, "Platform of a multi-platform image (os/arch[/variant]; default: the host's)");
      app.add_option("IMAGE", o->images, "Images to inspect (name[:tag], digest or ID)")->required();
      return [o, &g] { return run_inspect(*o, g); };
    }}};

}  // namespace
}  // namespace cbuild::cli
