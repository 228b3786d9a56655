#include "builder/steps/run_platform.h"

#include <cstdint>
#include <fstream>
#include <sstream>
#include <vector>

namespace cbuild::builder {

namespace fs = std::filesystem;

namespace {

// The ELF identity of an architecture's executables (GOARCH spelling): class (1: 32-bit,
// 2: 64-bit), data (1: little-endian, 2: big-endian) and e_machine.
struct ElfId {
  const char* arch;
  std::uint8_t elf_class, data;
  std::uint16_t machine;
};
constexpr ElfId kElf[] = {
    {"amd64", 2, 1, 62},    {"386", 1, 1, 3},       {"arm64", 2, 1, 183},  {"arm", 1, 1, 40},
    {"ppc64le", 2, 1, 21},  {"ppc64", 2, 2, 21},    {"s390x", 2, 2, 22},   {"riscv64", 2, 1, 243},
    {"mips64le", 2, 1, 8},  {"mips64", 2, 2, 8},    {"mipsle", 1, 1, 8},   {"mips", 1, 2, 8},
    {"loong64", 2, 1, 258},
};

const ElfId* elf_id(const std::string& arch) {
  for (const auto& e : kElf)
    if (arch == e.arch) return &e;
  return nullptr;
}

// The first 20 bytes of an executable (ET_EXEC) of that architecture.
std::vector<std::uint8_t> elf_header(const ElfId& e) {
  std::vector<std::uint8_t> h{0x7f, 'E', 'L', 'F', e.elf_class, e.data, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  auto put16 = [&](std::uint16_t v) {
    if (e.data == 1) {
      h.push_back(static_cast<std::uint8_t>(v & 0xff));
      h.push_back(static_cast<std::uint8_t>(v >> 8));
    } else {
      h.push_back(static_cast<std::uint8_t>(v >> 8));
      h.push_back(static_cast<std::uint8_t>(v & 0xff));
    }
  };
  put16(2);  // e_type ET_EXEC
  put16(e.machine);
  return h;
}

std::optional<std::vector<std::uint8_t>> unhex(const std::string& s) {
  if (s.size() % 2) return std::nullopt;
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < s.size(); i += 2) {
    unsigned v = 0;
    std::istringstream in(s.substr(i, 2));
    if (!(in >> std::hex >> v)) return std::nullopt;
    out.push_back(static_cast<std::uint8_t>(v));
  }
  return out;
}

struct Handler {
  std::string name;
  bool enabled = false;
  std::string flags;
  std::size_t offset = 0;
  std::vector<std::uint8_t> magic, mask;
};

// A magic-based handler as /proc/sys/fs/binfmt_misc/<name> describes it; nullopt for extension
// handlers and anything unreadable.
std::optional<Handler> read_handler(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  Handler h;
  h.name = file.filename().string();
  std::string line;
  bool have_magic = false;
  while (std::getline(in, line)) {
    if (line == "enabled") h.enabled = true;
    else if (line.rfind("flags:", 0) == 0) h.flags = line.substr(6);
    else if (line.rfind("offset ", 0) == 0) {
      std::istringstream num(line.substr(7));
      if (!(num >> h.offset)) return std::nullopt;
    }
    else if (line.rfind("magic ", 0) == 0) {
      auto m = unhex(line.substr(6));
      if (!m) return std::nullopt;
      h.magic = *m;
      have_magic = true;
    } else if (line.rfind("mask ", 0) == 0) {
      auto m = unhex(line.substr(5));
      if (!m) return std::nullopt;
      h.mask = *m;
    }
  }
  if (!have_magic) return std::nullopt;
  return h;
}

bool matches(const Handler& h, const std::vector<std::uint8_t>& header) {
  if (h.magic.empty() || h.offset + h.magic.size() > header.size()) return false;
  for (std::size_t i = 0; i < h.magic.size(); ++i) {
    std::uint8_t mask = i < h.mask.size() ? h.mask[i] : 0xff;
    if ((header[h.offset + i] & mask) != (h.magic[i] & mask)) return false;
  }
  return true;
}

bool binfmt_enabled(const fs::path& dir) {
  std::ifstream in(dir / "status");
  std::string s;
  return in && std::getline(in, s) && s == "enabled";
}

}  // namespace

std::optional<std::string> foreign_run_problem(const oci::Platform& image, const oci::Platform& host,
                                               const fs::path& binfmt_dir) {
  if (image.architecture.empty()) return std::nullopt;  // no claim to check against
  bool same_os = image.os.empty() || image.os == host.os;
  if (same_os && image.architecture == host.architecture) return std::nullopt;
  if (same_os && host.architecture == "amd64" && image.architecture == "386") return std::nullopt;
  std::string intro = "the image is for " + image.str() + " and this machine is " + host.str() + ": ";
  if (!same_os) return intro + "RUN can only run " + host.os + " programs here";
  const ElfId* elf = elf_id(image.architecture);
  if (!elf) return intro + "no emulator is known for " + image.architecture;
  std::vector<std::uint8_t> header = elf_header(*elf);
  std::string unusable;
  std::error_code ec;
  if (binfmt_enabled(binfmt_dir))
    for (const auto& entry : fs::directory_iterator(binfmt_dir, ec)) {
      std::string name = entry.path().filename().string();
      if (name == "status" || name == "register") continue;
      auto h = read_handler(entry.path());
      if (!h || !h->enabled || !matches(*h, header)) continue;
      if (h->flags.find('F') != std::string::npos) return std::nullopt;
      unusable = h->name;
    }
  if (!unusable.empty())
    return intro + "its binfmt_misc handler " + unusable +
           " lacks the F flag, so the emulator cannot be reached inside the build's root "
           "(re-register it with F, as qemu-user-static does)";
  return intro + "RUN needs an emulator for " + image.architecture +
         " and none is registered (install qemu-user-static, whose binfmt_misc handlers run foreign programs)";
}

}  // namespace cbuild::builder
