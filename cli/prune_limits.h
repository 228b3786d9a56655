// The limits of `cbuild prune`, parsed as docker builder prune parses them.
//
//   --keep-storage SIZE   docker's "bytes" flag type: a number (a decimal fraction allowed), an
//                         optional space, then an optional unit k, m, g, t or p, optionally
//                         followed by "i", optionally followed by "b"; case-insensitive, and
//                         every unit is binary: 10GB = 10GiB = 10g = 10 × 1024³ bytes, 512MB =
//                         512 × 1024² bytes, 100 or 100b = 100 bytes. The fraction is rounded
//                         down to whole bytes.
//   --filter until=D      a Go duration (time.ParseDuration): one or more numbers, each with a
//                         unit ns, us (µs), ms, s, m or h — "24h", "90m", "1h30m", "1.5h";
//                         a lone "0" is zero. `unused-for=D` is the same filter (its older name).
//
// Anything else — another unit ("12XB"), a number without unit in a duration ("abc", "10"),
// a negative duration, a value too large for 64 bits, an unknown filter key, `until` twice —
// throws Error{InvalidArgument} naming the flag and the value.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cbuild::cli {

std::int64_t parse_keep_storage(std::string_view text);
std::chrono::nanoseconds parse_go_duration(std::string_view text);

struct PruneFilters {
  std::optional<std::chrono::nanoseconds> until;  // only records unused for longer than this
};
PruneFilters parse_prune_filters(const std::vector<std::string>& filters);

}  // namespace cbuild::cli
