#include "oci/image_config.h"

#include <ctime>

#include <nlohmann/json.hpp>

#include "oci/base/error.h"

namespace cbuild::oci {
using json = nlohmann::json;

namespace {

[[noreturn]] void bad(std::string_view what, std::string_view field, std::string_view why) {
  throw Error(ErrorKind::InvalidArgument, std::string(what) + ": field " + quote(field) + " " + std::string(why));
}

std::string get_string(const json& j, const char* key, std::string_view what, std::string_view prefix = {}) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_string()) bad(what, std::string(prefix) + key, "must be a string");
  return it->get<std::string>();
}

std::vector<std::string> string_array(const json& v, std::string_view what, std::string_view field) {
  std::vector<std::string> out;
  if (v.is_null()) return out;
  if (!v.is_array()) bad(what, field, "must be an array of strings");
  for (auto& e : v) {
    if (!e.is_string()) bad(what, field, "must be an array of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::set<std::string> key_set(const json& v, std::string_view what, std::string_view field) {
  std::set<std::string> out;
  if (v.is_null()) return out;
  if (!v.is_object()) bad(what, field, "must be an object");
  for (auto& [k, _] : v.items()) out.insert(k);
  return out;
}

std::int64_t get_int(const json& v, std::string_view what, std::string_view field) {
  if (v.is_null()) return 0;
  if (!v.is_number_integer()) bad(what, field, "must be an integer");
  return v.get<std::int64_t>();
}

Healthcheck healthcheck_from(const json& v, std::string_view what) {
  if (!v.is_object()) bad(what, "config.Healthcheck", "must be an object");
  Healthcheck h;
  for (auto& [k, e] : v.items()) {
    std::string field = "config.Healthcheck." + k;
    if (k == "Test") h.test = string_array(e, what, field);
    else if (k == "Interval") h.interval_ns = get_int(e, what, field);
    else if (k == "Timeout") h.timeout_ns = get_int(e, what, field);
    else if (k == "StartPeriod") h.start_period_ns = get_int(e, what, field);
    else if (k == "StartInterval") h.start_interval_ns = get_int(e, what, field);
    else if (k == "Retries") h.retries = static_cast<int>(get_int(e, what, field));
  }
  return h;
}

ContainerConfig container_config_from(const json& j, std::string_view what) {
  if (!j.is_object()) bad(what, "config", "must be an object");
  ContainerConfig c;
  for (auto& [k, v] : j.items()) {
    std::string field = "config." + k;
    if (k == "User") c.user = get_string(j, "User", what, "config.");
    else if (k == "ExposedPorts") c.exposed_ports = key_set(v, what, field);
    else if (k == "Env") c.env = string_array(v, what, field);
    else if (k == "Entrypoint") { if (!v.is_null()) c.entrypoint = string_array(v, what, field); }
    else if (k == "Cmd") { if (!v.is_null()) c.cmd = string_array(v, what, field); }
    else if (k == "Volumes") c.volumes = key_set(v, what, field);
    else if (k == "WorkingDir") c.working_dir = get_string(j, "WorkingDir", what, "config.");
    else if (k == "Labels") {
      if (v.is_null()) continue;
      if (!v.is_object()) bad(what, field, "must be an object of strings");
      for (auto& [lk, lv] : v.items()) {
        if (!lv.is_string()) bad(what, field + "." + lk, "must be a string");
        c.labels[lk] = lv.get<std::string>();
      }
    } else if (k == "StopSignal") c.stop_signal = get_string(j, "StopSignal", what, "config.");
    else if (k == "ArgsEscaped") {
      if (v.is_null()) continue;
      if (!v.is_boolean()) bad(what, field, "must be a boolean");
      c.args_escaped = v.get<bool>();
    } else if (k == "Healthcheck") { if (!v.is_null()) c.healthcheck = healthcheck_from(v, what); }
    else if (k == "OnBuild") c.on_build = string_array(v, what, field);
    else if (k == "Shell") c.shell = string_array(v, what, field);
    else c.extra[k] = v.dump();
  }
  return c;
}

json object_of_keys(const std::set<std::string>& keys) {
  json o = json::object();
  for (auto& k : keys) o[k] = json::object();
  return o;
}

json container_config_to(const ContainerConfig& c) {
  json j = json::object();
  for (auto& [k, raw] : c.extra) j[k] = json::parse(raw);
  if (!c.user.empty()) j["User"] = c.user;
  if (!c.exposed_ports.empty()) j["ExposedPorts"] = object_of_keys(c.exposed_ports);
  if (!c.env.empty()) j["Env"] = c.env;
  if (c.entrypoint) j["Entrypoint"] = *c.entrypoint;
  if (c.cmd) j["Cmd"] = *c.cmd;
  if (!c.volumes.empty()) j["Volumes"] = object_of_keys(c.volumes);
  if (!c.working_dir.empty()) j["WorkingDir"] = c.working_dir;
  if (!c.labels.empty()) j["Labels"] = c.labels;
  if (!c.stop_signal.empty()) j["StopSignal"] = c.stop_signal;
  if (c.args_escaped) j["ArgsEscaped"] = *c.args_escaped;
  if (c.healthcheck) {
    json h = json::object();
    if (!c.healthcheck->test.empty()) h["Test"] = c.healthcheck->test;
    if (c.healthcheck->interval_ns) h["Interval"] = c.healthcheck->interval_ns;
    if (c.healthcheck->timeout_ns) h["Timeout"] = c.healthcheck->timeout_ns;
    if (c.healthcheck->start_period_ns) h["StartPeriod"] = c.healthcheck->start_period_ns;
    if (c.healthcheck->start_interval_ns) h["StartInterval"] = c.healthcheck->start_interval_ns;
    if (c.healthcheck->retries) h["Retries"] = c.healthcheck->retries;
    j["Healthcheck"] = std::move(h);
  }
  if (!c.on_build.empty()) j["OnBuild"] = c.on_build;
  if (!c.shell.empty()) j["Shell"] = c.shell;
  return j;
}

}  // namespace

std::optional<std::string> ContainerConfig::getenv(std::string_view name) const {
  for (auto& e : env)
    if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=')
      return e.substr(name.size() + 1);
  return std::nullopt;
}

void ContainerConfig::setenv(std::string_view name, std::string_view value) {
  std::string entry = std::string(name) + "=" + std::string(value);
  for (auto& e : env)
    if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') {
      e = std::move(entry);
      return;
    }
  env.push_back(std::move(entry));
}

ImageConfig ImageConfig::parse(std::string_view bytes, std::string_view what) {
  json j = json::parse(bytes, nullptr, false);
  if (j.is_discarded()) throw Error(ErrorKind::InvalidArgument, std::string(what) + ": not valid JSON");
  if (!j.is_object()) throw Error(ErrorKind::InvalidArgument, std::string(what) + ": not a JSON object");
  ImageConfig c;
  c.has_config = false;
  bool saw_rootfs = false;
  for (auto& [k, v] : j.items()) {
    if (k == "created") c.created = get_string(j, "created", what);
    else if (k == "author") c.author = get_string(j, "author", what);
    else if (k == "architecture") c.architecture = get_string(j, "architecture", what);
    else if (k == "os") c.os = get_string(j, "os", what);
    else if (k == "os.version") c.os_version = get_string(j, "os.version", what);
    else if (k == "os.features") c.os_features = string_array(v, what, k);
    else if (k == "variant") c.variant = get_string(j, "variant", what);
    else if (k == "config") {
      if (v.is_null()) continue;
      c.config = container_config_from(v, what);
      c.has_config = true;
    } else if (k == "rootfs") {
      saw_rootfs = true;
      if (!v.is_object()) bad(what, "rootfs", "must be an object");
      c.rootfs.type = get_string(v, "type", what, "rootfs.");
      if (c.rootfs.type != "layers") bad(what, "rootfs.type", "must be \"layers\"");
      auto ids = v.find("diff_ids");
      if (ids == v.end()) bad(what, "rootfs.diff_ids", "is missing");
      auto strs = string_array(*ids, what, "rootfs.diff_ids");
      for (std::size_t i = 0; i < strs.size(); ++i)
        c.rootfs.diff_ids.push_back(Digest::parse(strs[i], std::string(what) + " rootfs.diff_ids[" + std::to_string(i) + "]"));
    } else if (k == "history") {
      if (v.is_null()) continue;
      if (!v.is_array()) bad(what, "history", "must be an array");
      for (std::size_t i = 0; i < v.size(); ++i) {
        const json& h = v[i];
        std::string prefix = "history[" + std::to_string(i) + "].";
        if (!h.is_object()) bad(what, "history[" + std::to_string(i) + "]", "must be an object");
        History e;
        e.created = get_string(h, "created", what, prefix);
        e.created_by = get_string(h, "created_by", what, prefix);
        e.author = get_string(h, "author", what, prefix);
        e.comment = get_string(h, "comment", what, prefix);
        if (auto it = h.find("empty_layer"); it != h.end() && !it->is_null()) {
          if (!it->is_boolean()) bad(what, prefix + "empty_layer", "must be a boolean");
          e.empty_layer = it->get<bool>();
        }
        c.history.push_back(std::move(e));
      }
    } else {
      c.extra[k] = v.dump();
    }
  }
  if (c.architecture.empty()) bad(what, "architecture", "is missing");
  if (c.os.empty()) bad(what, "os", "is missing");
  if (!saw_rootfs) bad(what, "rootfs", "is missing");
  return c;
}

std::string ImageConfig::to_json() const {
  const std::string_view what = "image config";
  if (architecture.empty()) bad(what, "architecture", "is missing");
  if (os.empty()) bad(what, "os", "is missing");
  if (rootfs.type != "layers") bad(what, "rootfs.type", "must be \"layers\"");
  for (auto& e : config.env)
    if (e.find('=') == std::string::npos || e.front() == '=')
      bad(what, "config.Env", "entry " + quote(e) + " is not NAME=value");
  if (!created.empty() && !parse_rfc3339(created)) bad(what, "created", "is not an RFC 3339 time");
  json j = json::object();
  for (auto& [k, raw] : extra) j[k] = json::parse(raw);
  if (!created.empty()) j["created"] = created;
  if (!author.empty()) j["author"] = author;
  j["architecture"] = architecture;
  j["os"] = os;
  if (!os_version.empty()) j["os.version"] = os_version;
  if (!os_features.empty()) j["os.features"] = os_features;
  if (!variant.empty()) j["variant"] = variant;
  if (has_config) j["config"] = container_config_to(config);
  json ids = json::array();
  for (auto& d : rootfs.diff_ids) ids.push_back(d.str());
  j["rootfs"] = {{"type", rootfs.type}, {"diff_ids", std::move(ids)}};
  if (!history.empty()) {
    json hs = json::array();
    for (auto& h : history) {
      json e = json::object();
      if (!h.created.empty()) e["created"] = h.created;
      if (!h.created_by.empty()) e["created_by"] = h.created_by;
      if (!h.author.empty()) e["author"] = h.author;
      if (!h.comment.empty()) e["comment"] = h.comment;
      if (h.empty_layer) e["empty_layer"] = true;
      hs.push_back(std::move(e));
    }
    j["history"] = std::move(hs);
  }
  return j.dump();
}

std::size_t ImageConfig::non_empty_history() const {
  std::size_t n = 0;
  for (auto& h : history)
    if (!h.empty_layer) ++n;
  return n;
}

std::string rfc3339_utc(std::int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<std::int64_t> parse_rfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
  auto digits = [&](std::size_t pos, std::size_t n) -> std::optional<int> {
    if (pos + n > s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      s[13] != ':' || s[16] != ':')
    return std::nullopt;
  auto Y = digits(0, 4), M = digits(5, 2), D = digits(8, 2), h = digits(11, 2), m = digits(14, 2), sec = digits(17, 2);
  if (!Y || !M || !D || !h || !m || !sec || *M < 1 || *M > 12 || *D < 1 || *D > 31 || *h > 23 || *m > 59 || *sec > 60)
    return std::nullopt;
  std::size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return std::nullopt;
  }
  if (pos >= s.size()) return std::nullopt;
  std::int64_t offset = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    auto oh = digits(pos + 1, 2), om = digits(pos + 4, 2);
    if (!oh || !om || pos + 3 >= s.size() || s[pos + 3] != ':') return std::nullopt;
    offset = (*oh * 3600 + *om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  // Days from civil date (Howard Hinnant's algorithm).
  int y = *Y - (*M <= 2);
  int era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = static_cast<unsigned>(y - era * 400);
  unsigned mp = static_cast<unsigned>(*M + (*M > 2 ? -3 : 9));
  unsigned doy = (153 * mp + 2) / 5 + static_cast<unsigned>(*D) - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  std::int64_t days = static_cast<std::int64_t>(era) * 146097 + static_cast<std::int64_t>(doe) - 719468;
  return days * 86400 + *h * 3600 + *m * 60 + *sec - offset;
}

}  // namespace cbuild::oci
