#include "builder/cache/cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/base/fs.h"

namespace cbuild::builder {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kVersion = "cbuild-cache-v1";

// The last-use stamp prune goes by (see the header). Best effort: a hit stays a hit.
void mark_used(const fs::path& record) { ::utimensat(AT_FDCWD, record.c_str(), nullptr, 0); }

std::vector<oci::Digest> stack_of(const std::string& config_json) {
  std::vector<oci::Digest> stack;
  auto config = nlohmann::json::parse(config_json, nullptr, false);
  if (!config.is_object() || !config.contains("rootfs") || !config["rootfs"].is_object() ||
      !config["rootfs"].contains("diff_ids") || !config["rootfs"]["diff_ids"].is_array())
    return stack;
  for (const auto& d : config["rootfs"]["diff_ids"])
    if (d.is_string())
      if (auto dg = oci::Digest::try_parse(d.get<std::string>())) stack.push_back(*dg);
  return stack;
}

// `key`, when given, must match the key the record names (records written before the field
// existed name none and are accepted).
std::optional<CacheRecord> parse_record(const std::string& text, const oci::Digest* key = nullptr) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("config") || !j["config"].is_string()) return std::nullopt;
  if (key && j.contains("key") && !(j["key"].is_string() && j["key"].get<std::string>() == key->str())) return std::nullopt;
  try {
    CacheRecord r;
    r.config_json = j["config"].get<std::string>();
    if (j.contains("layer") && !j["layer"].is_null()) {
      r.layer = oci::descriptor_from_json(j["layer"], "cache record layer");
      r.diff_id = oci::Digest::parse(j.at("diff_id").get<std::string>());
    }
    if (j.contains("created") && j["created"].is_number_integer()) r.created = j["created"].get<std::int64_t>();
    return r;
  } catch (const std::exception&) {
    return std::nullopt;  // a damaged record is a miss, never a failed build
  }
}

}  // namespace

BuildCache::BuildCache(fs::path root) : dir_(std::move(root) / "cache" / "steps") {}

oci::Digest BuildCache::key(std::string_view parent, std::string_view inputs) {
  oci::Sha256 h;
  auto feed = [&h](std::string_view s) {
    // Length-prefix every part so no two different (parent, inputs) pairs hash the same bytes.
    std::string len = std::to_string(s.size()) + ":";
    h.update(len);
    h.update(s);
  };
  feed(kVersion);
  feed(parent);
  feed(inputs);
  return h.finish();
}

std::optional<CacheRecord> BuildCache::find(const oci::Digest& key, const oci::BlobProvider& blobs) const {
  auto text = read_file_if_exists(dir_ / key.hex(), 16u << 20);
  if (!text) return std::nullopt;
  auto r = parse_record(*text, &key);
  if (!r) return std::nullopt;
  if (r->layer) {
    auto size = blobs.stat(r->layer->digest);
    if (!size || *size != r->layer->size) return std::nullopt;
  }
  mark_used(dir_ / key.hex());
  return r;
}

void BuildCache::put(const oci::Digest& key, const CacheRecord& record) {
  nlohmann::json j;
  j["key"] = key.str();
  j["config"] = record.config_json;
  if (record.layer) {
    j["layer"] = oci::to_json(*record.layer);
    j["diff_id"] = record.diff_id ? record.diff_id->str() : std::string();
  } else {
    j["layer"] = nullptr;
  }
  j["created"] = record.created;
  make_dirs(dir_);
  // No fsync: the layer blob a record names is durable before put() (Ingest::commit), and
  // after a power loss a missing, empty or garbled record — or one another key's stale bytes
  // ended up in, which the "key" field exposes — is a miss. Saves two fsyncs per step.
  write_file_atomic(dir_ / key.hex(), j.dump(), 0644, Durability::RenameOnly);
}

std::vector<oci::Digest> BuildCache::referenced_blobs() const {
  std::vector<oci::Digest> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    auto text = read_file_if_exists(it->path(), 16u << 20);
    if (!text) continue;
    if (auto r = parse_record(*text); r && r->layer) out.push_back(r->layer->digest);
  }
  return out;
}

std::vector<std::vector<oci::Digest>> BuildCache::layer_stacks() const {
  std::vector<std::vector<oci::Digest>> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    auto text = read_file_if_exists(it->path(), 16u << 20);
    if (!text) continue;
    auto r = parse_record(*text);
    if (!r) continue;
    auto config = nlohmann::json::parse(r->config_json, nullptr, false);
    if (!config.is_object() || !config.contains("rootfs") || !config["rootfs"].contains("diff_ids")) continue;
    std::vector<oci::Digest> stack;
    for (const auto& d : config["rootfs"]["diff_ids"])
      if (d.is_string())
        if (auto dg = oci::Digest::try_parse(d.get<std::string>())) stack.push_back(*dg);
    out.push_back(std::move(stack));
  }
  return out;
}

std::size_t BuildCache::clear() { return remove_files_in(dir_); }

std::vector<BuildCache::Usage> BuildCache::usage() const {
  std::vector<Usage> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    auto key = oci::Digest::try_parse("sha256:" + it->path().filename().string());
    if (!key) continue;  // a temp file of a writer
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    auto text = read_file_if_exists(it->path(), 16u << 20);
    if (!text) continue;
    Usage u{.key = *key, .file_bytes = static_cast<std::int64_t>(st.st_blocks) * 512, .last_used = st.st_mtime};
    // A damaged record holds nothing but still takes its file's space, so it ages out too.
    if (auto r = parse_record(*text, &*key)) {
      if (r->layer) u.layer = r->layer->digest;
      u.diff_ids = stack_of(r->config_json);
    }
    out.push_back(std::move(u));
  }
  return out;
}

bool BuildCache::remove(const oci::Digest& key) {
  fs::path p = dir_ / key.hex();
  if (::unlink(p.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  throw_errno("remove build-cache record", p.string());
}

}  // namespace cbuild::builder
