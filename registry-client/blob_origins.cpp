#include "registry-client/blob_origins.h"

#include <algorithm>
#include <fstream>

#include <fcntl.h>
#include <unistd.h>

namespace cbuild::registry {

BlobOrigins::BlobOrigins(std::filesystem::path store_root)
    : file_(std::move(store_root) / "registry" / "blob-origins") {}

void BlobOrigins::record(const oci::Digest& digest, std::string_view registry, std::string_view repository) const {
  std::lock_guard lk(mu_);
  std::error_code ec;
  std::filesystem::create_directories(file_.parent_path(), ec);
  int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::string line = digest.str() + " " + std::string(registry) + "/" + std::string(repository) + "\n";
  // One write of a short line: atomic with respect to other appenders.
  [[maybe_unused]] auto n = ::write(fd, line.data(), line.size());
  ::close(fd);
}

std::vector<std::string> BlobOrigins::repositories(const oci::Digest& digest, std::string_view registry) const {
  std::lock_guard lk(mu_);
  std::ifstream in(file_);
  std::vector<std::string> out;
  const std::string want = digest.str() + " " + std::string(registry) + "/";
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(want, 0) != 0) continue;
    std::string repo = line.substr(want.size());
    if (repo.empty() || repo.find(' ') != std::string::npos) continue;
    out.erase(std::remove(out.begin(), out.end(), repo), out.end());
    out.push_back(repo);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> BlobOrigins::locations(const oci::Digest& digest) const {
  std::lock_guard lk(mu_);
  std::ifstream in(file_);
  std::vector<std::string> out;
  const std::string want = digest.str() + " ";
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(want, 0) != 0) continue;
    std::string where = line.substr(want.size());
    auto slash = where.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == where.size() || where.find(' ') != std::string::npos)
      continue;
    out.erase(std::remove(out.begin(), out.end(), where), out.end());
    out.push_back(where);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace cbuild::registry
