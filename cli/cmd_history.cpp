// `cbuild history IMAGE` — the image's history, newest first, like `docker history`. SIZE is the
// stored (compressed) size of the layer a step made.
#include <iostream>

#include "cli/command.h"
#include "cli/store_open.h"

namespace cbuild::cli {
namespace {

struct HistoryOptions {
  bool quiet = false;
  bool no_trunc = false;
  bool human = true;
  std::string image;
};

int run_history(const HistoryOptions& o, const GlobalOptions& g) {
  auto store = open_store(g);
  StoreImage img = resolve_image(*store, o.image);
  std::string id = o.no_trunc ? img.config_digest.str() : short_id(img.config_digest);
  if (o.quiet) {
    std::cout << id << "\n";
    return 0;
  }
  struct Row {
    std::string created, by, size, comment;
  };
  std::vector<Row> rows;
  std::size_t layer = 0;
  auto& hist = img.config.history;
  for (auto& h : hist) {
    std::int64_t size = 0;
    if (!h.empty_layer && layer < img.manifest.layers.size()) size = img.manifest.layers[layer++].size;
    std::string by = h.created_by;
    for (auto& c : by)
      if (c == '\t' || c == '\n') c = ' ';
    if (!o.no_trunc && by.size() > 45) by = by.substr(0, 44) + "…";
    rows.push_back({o.human ? human_age(h.created) : h.created, by,
                    o.human ? human_size(size) : std::to_string(size), h.comment});
  }
  std::vector<std::vector<std::string>> table = {{"IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"}};
  for (std::size_t i = rows.size(); i-- > 0;)
    table.push_back({i + 1 == rows.size() ? id : "<missing>", rows[i].created, rows[i].by, rows[i].size, rows[i].comment});
  if (rows.empty()) table.push_back({id, human_age(img.config.created), "", human_size(img.size()), ""});
  print_table(table);
  return 0;
}

CommandRegistration reg{{
    .name = "history",
    .help = "Show the history of an image",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<HistoryOptions>();
      app.add_flag("-q,--quiet", o->quiet, "Only show image IDs");
      app.add_flag("--no-trunc", o->no_trunc, "Don't truncate output");
      app.add_flag("-H,--human,!--no-human", o->human, "Print sizes and dates in human readable format (default true)");
      app.add_option("IMAGE", o->image, "Image (name[:tag], digest or ID)")->required();
      return [o, &g] { return run_history(*o, g); };
    }}};

}  // namespace
}  // namespace cbuild::cli
