#include "cli/prune_limits.h"

#include <cctype>
#include <cmath>
#include <limits>

#include "oci/base/error.h"

namespace cbuild::cli {
namespace {

[[noreturn]] void bad(std::string_view flag, std::string_view text, std::string_view why) {
  throw Error(ErrorKind::InvalidArgument,
              "invalid " + std::string(flag) + " " + quote(std::string(text)) + ": " + std::string(why));
}

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Digits with at most one '.', at least one digit; advances `i`. Returns the text taken.
std::string take_number(std::string_view s, std::size_t& i) {
  std::size_t start = i;
  bool dot = false, digit = false;
  for (; i < s.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(s[i]))) {
      digit = true;
    } else if (s[i] == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (!digit) i = start;
  return digit ? std::string(s.substr(start, i - start)) : std::string();
}

}  // namespace

std::int64_t parse_keep_storage(std::string_view text) {
  constexpr std::string_view flag = "--keep-storage";
  std::size_t i = 0;
  std::string number = take_number(text, i);
  if (number.empty()) bad(flag, text, "expected a size such as 10GB, 512MB, 1.5GiB or a number of bytes");
  if (i < text.size() && text[i] == ' ') ++i;
  double scale = 1;
  static constexpr std::string_view units = "kmgtp";
  if (i < text.size()) {
    if (auto u = units.find(lower(text[i])); u != std::string_view::npos) {
      scale = std::pow(1024.0, static_cast<double>(u + 1));
      ++i;
      if (i < text.size() && lower(text[i]) == 'i') ++i;
    }
  }
  if (i < text.size() && lower(text[i]) == 'b') ++i;
  if (i != text.size())
    bad(flag, text, "unknown unit (expected B, k, KB, KiB, M, MB, MiB, G, GB, GiB, T, TB, TiB, P, PB or PiB)");
  double v = std::stod(number) * scale;
  if (!(v < 9.2e18)) bad(flag, text, "too large");
  return static_cast<std::int64_t>(v);
}

std::chrono::nanoseconds parse_go_duration(std::string_view text) {
  constexpr std::string_view flag = "--filter until";
  if (text == "0") return std::chrono::nanoseconds(0);
  if (text.empty()) bad(flag, text, "expected a duration such as 24h, 90m or 1h30m");
  if (text.front() == '-') bad(flag, text, "a duration must not be negative");
  std::size_t i = text.front() == '+' ? 1 : 0;
  if (i == text.size()) bad(flag, text, "expected a duration such as 24h, 90m or 1h30m");
  long double total = 0;
  while (i < text.size()) {
    std::string number = take_number(text, i);
    if (number.empty() || number == ".") bad(flag, text, "expected a duration such as 24h, 90m or 1h30m");
    std::size_t u = i;
    while (i < text.size() && !std::isdigit(static_cast<unsigned char>(text[i])) && text[i] != '.') ++i;
    std::string_view unit = text.substr(u, i - u);
    long double ns = 0;
    if (unit == "ns") ns = 1;
    else if (unit == "us" || unit == "\u00b5s" || unit == "\u03bcs") ns = 1e3;
    else if (unit == "ms") ns = 1e6;
    else if (unit == "s") ns = 1e9;
    else if (unit == "m") ns = 60e9;
    else if (unit == "h") ns = 3600e9;
    else if (unit.empty()) bad(flag, text, "missing unit (ns, us, ms, s, m or h) after " + number);
    else bad(flag, text, "unknown unit " + quote(std::string(unit)) + " (expected ns, us, ms, s, m or h)");
    total += std::stold(number) * ns;
  }
  if (total > static_cast<long double>(std::numeric_limits<std::int64_t>::max())) bad(flag, text, "too large");
  return std::chrono::nanoseconds(static_cast<std::int64_t>(total));
}

PruneFilters parse_prune_filters(const std::vector<std::string>& filters) {
  PruneFilters out;
  for (const auto& f : filters) {
    auto eq = f.find('=');
    if (eq == std::string::npos) bad("--filter", f, "expected KEY=VALUE, such as until=24h");
    std::string key = f.substr(0, eq);
    if (key != "until" && key != "unused-for")
      throw Error(ErrorKind::InvalidArgument, "invalid --filter " + quote(f) + ": unknown filter key " + quote(key) +
                                                  " (cbuild prune supports until=DURATION)");
    if (out.until) bad("--filter", f, "until given more than once");
    out.until = parse_go_duration(f.substr(eq + 1));
  }
  return out;
}

}  // namespace cbuild::cli
