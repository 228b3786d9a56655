#include "cli/store_open.h"

#include <cmath>
#include <cstdio>
#include <ctime>

#include "oci/base/error.h"
#include "oci/media_types.h"
#include "registry-client/reference.h"

namespace cbuild::cli {
namespace mt = oci::media_types;

std::unique_ptr<oci::LayoutStore> open_store(const GlobalOptions& g) { return oci::LayoutStore::open(g.resolved_root()); }

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

StoreImage load_store_image(const oci::LayoutStore& store, const oci::Descriptor& entry) {
  StoreImage img;
  img.target = entry;
  oci::Descriptor md = entry;
  if (mt::is_index(entry.media_type)) {
    std::string bytes = store.read_blob(entry.digest);
    auto idx = oci::Index::parse(bytes, "index " + entry.digest.str(), entry.media_type);
    const oci::Descriptor* pick = nullptr;
    const oci::Platform host = oci::Platform::host();
    for (auto& m : idx.manifests) {
      if (!mt::is_manifest(m.media_type)) continue;
      if (m.platform && m.platform->os == host.os && m.platform->architecture == host.architecture) {
        pick = &m;
        break;
      }
      if (!pick && (!m.platform || m.platform->os != "unknown")) pick = &m;
    }
    if (!pick) throw Error(ErrorKind::NotFound, "index " + entry.digest.str() + " has no image manifest for " + host.str());
    md = *pick;
  } else if (!mt::is_manifest(entry.media_type)) {
    throw Error(ErrorKind::InvalidArgument, "store entry " + entry.digest.str() + " has media type " +
                                                quote(entry.media_type) + ", not an image manifest or index");
  }
  img.manifest_desc = md;
  std::string mbytes = store.read_blob(md.digest);
  oci::verify_blob_bytes(md, mbytes, "manifest");
  img.manifest = oci::Manifest::parse(mbytes, "manifest " + md.digest.str(), md.media_type);
  img.config_digest = img.manifest.config.digest;
  img.config_bytes = store.read_blob(img.config_digest);
  oci::verify_blob_bytes(img.manifest.config, img.config_bytes, "config");
  img.config = oci::ImageConfig::parse(img.config_bytes, "config " + img.config_digest.str());
  img.names = names_of(store, entry.digest);
  return img;
}

StoreImage resolve_image(const oci::LayoutStore& store, std::string_view arg) {
  auto tags = store.tags();
  if (auto ref = registry::Reference::try_parse(arg)) {
    if (!ref->digest()) {
      if (auto d = store.resolve(ref->str())) return load_store_image(store, *d);
    } else {
      for (auto& d : store.index_entries())
        if (d.digest == *ref->digest()) return load_store_image(store, d);
    }
  }
  // A digest or an image-ID prefix.
  std::string_view p = arg;
  bool full = false;
  if (p.starts_with("sha256:")) {
    p.remove_prefix(7);
    full = true;
  }
  bool hex = !p.empty() && p.size() <= 64 && p.find_first_not_of("0123456789abcdef") == std::string_view::npos;
  if (hex) {
    std::optional<oci::Descriptor> found;
    std::string found_id;
    for (auto& d : store.index_entries()) {
      bool match = d.digest.hex().starts_with(p);  // the manifest digest
      std::string id;
      if (!match) {
        try {
          id = load_store_image(store, d).config_digest.hex();
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
    if (found) return load_store_image(store, *found);
  }
  (void)full;
  std::string shown(arg);
  if (auto ref = registry::Reference::try_parse(arg)) shown = ref->familiar();
  throw Error(ErrorKind::NotFound, "No such image: " + shown);
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
