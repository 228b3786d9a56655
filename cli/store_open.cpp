#include "cli/store_open.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <utility>

#include "oci/base/error.h"
#include "oci/image_resolver.h"
#include "registry-client/origin_fetcher.h"
#include "registry-client/reference.h"

namespace cbuild::cli {
std::unique_ptr<oci::LayoutStore> open_store(const GlobalOptions& g) {
  auto store = oci::LayoutStore::open(g.resolved_root());
  store->set_blob_fetcher(registry::origin_fetcher(*store, g.tls_verify));
  return store;
}

std::int64_t StoreImage::size() const {
  std::int64_t n = manifest.config.size;
  for (auto& l : manifest.layers) n += l.size;
  return n;
}

std::vector<std::string> names_of(const oci::LayoutStore& store, const oci::Digest& target) {
  std::vector<std::string> out;
  for (auto& [name, d] : store.tags())
    if (d.digest == target) out.push_back(name);
  return out;
}

StoreImage load_store_image(const oci::LayoutStore& store, const oci::Descriptor& entry,
                            const std::optional<oci::Platform>& platform, std::string_view what) {
  StoreImage img;
  oci::ResolveOptions ro;
  ro.platform = platform;
  ro.what = what.empty() ? "image " + entry.digest.str() : std::string(what);
  oci::ResolvedImage r = oci::resolve_image(store, entry, ro);
  img.target = r.top;
  img.manifest_desc = r.manifest_desc;
  img.manifest = std::move(r.manifest);
  img.config_digest = img.manifest.config.digest;
  img.config_bytes = std::move(r.config_bytes);
  img.config = oci::ImageConfig::parse(img.config_bytes, "config " + img.config_digest.str());
  img.names = names_of(store, entry.digest);
  return img;
}

namespace {

// The index.json entry `arg` names, and how errors name it. An image ID is the config of the
// manifest resolve_image would pick for `platform`.
std::pair<oci::Descriptor, std::string> find_entry(const oci::LayoutStore& store, std::string_view arg,
                                                   const std::optional<oci::Platform>& platform) {
  std::string what = "image " + std::string(arg);
  if (auto ref = registry::Reference::try_parse(arg)) {
    what = "image " + ref->familiar();
    if (!ref->digest()) {
      if (auto d = store.resolve(ref->str())) return {*d, what};
    } else {
      for (auto& d : store.index_entries())
        if (d.digest == *ref->digest()) return {d, what};
    }
  }
  // A digest or an image-ID prefix.
  std::string_view p = arg;
  if (p.starts_with("sha256:")) p.remove_prefix(7);
  bool hex = !p.empty() && p.size() <= 64 && p.find_first_not_of("0123456789abcdef") == std::string_view::npos;
  if (hex) {
    std::optional<oci::Descriptor> found;
    std::string found_id;
    for (auto& d : store.index_entries()) {
      bool match = d.digest.hex().starts_with(p);  // the manifest digest
      std::string id;
      if (!match) {
        try {
          id = load_store_image(store, d, platform).config_digest.hex();
        } catch (const Error&) {
          continue;
        }
        match = id.starts_with(p);
      }
      if (!match) continue;
      std::string key = id.empty() ? d.digest.hex() : id;
      if (found && found->digest != d.digest && found_id != key)
        throw Error(ErrorKind::InvalidArgument, "image ID prefix " + quote(arg) + " is ambiguous");
      if (!found) {
        found = d;
        found_id = key;
      }
    }
    if (found) return {*found, what};
  }
  std::string shown(arg);
  if (auto ref = registry::Reference::try_parse(arg)) shown = ref->familiar();
  throw Error(ErrorKind::NotFound, "No such image: " + shown);
}

}  // namespace

oci::Descriptor resolve_entry(const oci::LayoutStore& store, std::string_view arg) {
  return find_entry(store, arg, std::nullopt).first;
}

StoreImage resolve_image(const oci::LayoutStore& store, std::string_view arg, const std::optional<oci::Platform>& platform) {
  auto [entry, what] = find_entry(store, arg, platform);
  return load_store_image(store, entry, platform, what);
}

std::string human_size(std::int64_t bytes) {
  static const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000.0 && u < 5) {
    v /= 1000.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g%s", v, units[u]);
  return buf;
}

std::string human_age(std::string_view rfc3339) {
  auto t = oci::parse_rfc3339(rfc3339);
  if (rfc3339.empty() || !t) return "N/A";
  std::int64_t s = static_cast<std::int64_t>(std::time(nullptr)) - *t;
  if (s < 0) s = 0;
  auto ago = [](std::string x) { return x + " ago"; };
  if (s < 1) return "Less than a second ago";
  if (s < 60) return ago(std::to_string(s) + " seconds");
  std::int64_t m = s / 60;
  if (m == 1) return "About a minute ago";
  if (m < 60) return ago(std::to_string(m) + " minutes");
  std::int64_t h = static_cast<std::int64_t>(std::llround(static_cast<double>(s) / 3600.0));
  if (h == 1) return "About an hour ago";
  if (h < 48) return ago(std::to_string(h) + " hours");
  if (h < 24 * 7 * 2) return ago(std::to_string(h / 24) + " days");
  if (h < 24 * 30 * 2) return ago(std::to_string(h / 24 / 7) + " weeks");
  if (h < 24 * 365 * 2) return ago(std::to_string(h / 24 / 30) + " months");
  return ago(std::to_string(h / 24 / 365) + " years");
}

std::string short_id(const oci::Digest& d) { return d.hex().substr(0, 12); }

}  // namespace cbuild::cli

#include <iostream>

namespace cbuild::cli {
void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], std::max<std::size_t>(r[i].size() + 3, 10));
    }
  for (auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line.append(width[i] - r[i].size(), ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  }
}
}  // namespace cbuild::cli
