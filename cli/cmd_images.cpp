// `cbuild images` — lists the tagged images of the store like `docker images`.
#include <iostream>
#include <set>

#include "cli/command.h"
#include "cli/store_open.h"
#include "oci/base/error.h"
#include "registry-client/reference.h"

namespace cbuild::cli {
namespace {

struct ImagesOptions {
  bool quiet = false;
  bool digests = false;
  bool no_trunc = false;
  std::string filter_ref;
};

int run_images(const ImagesOptions& o, const GlobalOptions& g) {
  auto store = open_store(g);
  std::optional<registry::Reference> want;
  if (!o.filter_ref.empty()) want = registry::Reference::parse(o.filter_ref);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"REPOSITORY", "TAG"};
  if (o.digests) header.push_back("DIGEST");
  for (const char* h : {"IMAGE ID", "CREATED", "SIZE"}) header.emplace_back(h);
  rows.push_back(header);
  std::set<std::string> seen_ids;
  std::vector<std::string> quiet_ids;
  for (auto& entry : store->index_entries()) {
    StoreImage img;
    try {
      img = load_store_image(*store, entry);
    } catch (const Error& e) {
      std::cerr << "cbuild: warning: skipping " << entry.digest.str() << ": " << e.what() << "\n";
      continue;
    }
    std::string repo = "<none>", tag = "<none>";
    auto name_it = entry.annotations.find(oci::kRefNameAnnotation);
    if (name_it != entry.annotations.end()) {
      if (auto ref = registry::Reference::try_parse(name_it->second)) {
        if (want && (ref->name() != want->name() || (o.filter_ref.find(':') != std::string::npos && ref->tag() != want->tag())))
          continue;
        repo = ref->familiar_name();
        if (!ref->tag().empty()) tag = ref->tag();
      } else {
        if (want) continue;
        repo = name_it->second;  // another tool's name, shown as written
      }
    } else if (want) {
      continue;
    }
    std::string id = o.no_trunc ? img.config_digest.str() : short_id(img.config_digest);
    if (o.quiet) {
      if (seen_ids.insert(id).second) quiet_ids.push_back(id);
      continue;
    }
    std::vector<std::string> row = {repo, tag};
    if (o.digests) row.push_back(entry.digest.str());
    row.push_back(id);
    row.push_back(human_age(img.config.created));
    row.push_back(human_size(img.size()));
    rows.push_back(std::move(row));
  }
  if (o.quiet) {
    for (auto& id : quiet_ids) std::cout << id << "\n";
    return 0;
  }
  print_table(rows);
  return 0;
}

CommandRegistration reg{{
    .name = "images",
    .help = "List images in the local store",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<ImagesOptions>();
      app.add_flag("-q,--quiet", o->quiet, "Only show image IDs");
      app.add_flag("--digests", o->digests, "Show digests");
      app.add_flag("--no-trunc", o->no_trunc, "Don't truncate output");
      app.add_option("REPOSITORY", o->filter_ref, "Only images of this repository[:tag]");
      return [o, &g] { return run_images(*o, g); };
    }}};

}  // namespace
}  // namespace cbuild::cli
