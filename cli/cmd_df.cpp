// `cbuild df [-v] [--format table|json]` — the store's disk usage, like `docker system df`: one
// row per kind (images, build cache, snapshots, RUN cache mounts, unused blobs) with the count,
// the disk usage and what prune can reclaim. Every blob and snapshot is counted once, in the
// first kind that holds it; sizes are disk usage as `du` counts it (store_usage.h has the rules).
// -v adds one row per image, step record, snapshot and cache mount. --format json prints the
// summary as one JSON object per kind per line, with exact byte counts.
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/exit_codes.h"
#include "cli/store_open.h"
#include "cli/store_usage.h"
#include "oci/base/error.h"
#include "oci/image_config.h"

namespace cbuild::cli {
namespace {

struct DfOptions {
  bool verbose = false;
  std::string format = "table";
};

std::string with_share(std::int64_t part, std::int64_t whole) {
  std::string s = human_size(part);
  if (whole > 0) s += " (" + std::to_string(part * 100 / whole) + "%)";
  return s;
}

void print_verbose(const StoreUsage& u) {
  std::cout << "Images space usage:\n\n";
  std::vector<std::vector<std::string>> rows{{"IMAGE ID", "NAMES", "SIZE"}};
  for (const auto& img : u.images) {
    std::string names;
    for (const auto& n : img.names) names += (names.empty() ? "" : ", ") + n;
    rows.push_back({short_id(img.id), names.empty() ? "<none>" : names, human_size(img.bytes)});
  }
  print_table(rows);

  std::cout << "\nBuild cache usage:\n\n";
  rows = {{"CACHE ID", "LAYER", "SIZE", "LAST USED", "SHARED"}};
  for (const auto& r : u.records) {
    bool shared = false;
    std::int64_t bytes = u.record_bytes(r, shared);
    rows.push_back({short_id(r.key), r.layer ? short_id(*r.layer) : "-", human_size(bytes),
                    human_age(oci::rfc3339_utc(r.last_used)), shared ? "true" : "false"});
  }
  print_table(rows);

  std::cout << "\nSnapshots space usage:\n\n";
  rows = {{"CHAIN ID", "SIZE", "HELD BY"}};
  for (const auto& [chain, s] : u.snapshots) rows.push_back({short_id(chain), human_size(s.bytes), s.held_by});
  print_table(rows);

  std::cout << "\nCache mounts space usage:\n\n";
  rows = {{"ID", "INSTANCE", "SIZE", "IN USE"}};
  for (const auto& m : u.cache_mounts)
    rows.push_back({m.id, m.dir.parent_path().filename().string() + "/" + m.dir.filename().string(),
                    human_size(m.bytes), m.busy ? "true" : "false"});
  print_table(rows);
  std::cout << "\n";
}

int run_df(const DfOptions& o, const GlobalOptions& g) {
  if (o.format != "table" && o.format != "json")
    throw UsageError(
        Error(ErrorKind::InvalidArgument, "invalid --format " + quote(o.format) + ": expected table or json"));
  if (o.format == "json" && o.verbose)
    throw UsageError(Error(ErrorKind::InvalidArgument, "--format json prints the summary only: drop -v"));
  auto store = open_store(g);
  StoreUsage u = StoreUsage::measure(*store, g.resolved_root());
  if (o.verbose) print_verbose(u);
  auto summary = u.rows();
  if (o.format == "json") {
    for (const auto& r : summary)
      std::cout << nlohmann::json{{"Type", r.type}, {"TotalCount", r.count}, {"Size", r.bytes},
                                  {"Reclaimable", r.reclaimable}}
                       .dump()
                << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"TYPE", "TOTAL", "SIZE", "RECLAIMABLE"}};
  for (const auto& r : summary)
    rows.push_back({r.type, std::to_string(r.count), human_size(r.bytes), with_share(r.reclaimable, r.bytes)});
  print_table(rows);
  return 0;
}

CommandRegistration reg{{
    .name = "df",
    .help = "Show the store's disk usage: images, build cache, snapshots, cache mounts",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<DfOptions>();
      app.add_flag("-v,--verbose", o->verbose, "Show one row per image, cache record, snapshot and cache mount");
      app.add_option("--format", o->format, "table (default) or json (one object per kind, sizes in bytes)")
          ->type_name("FORMAT");
      return [o, &g] { return run_df(*o, g); };
    }}};

}  // namespace
}  // namespace cbuild::cli
