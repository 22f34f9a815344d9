// The provider API's scales file and atomic writes under the state directory.
#include "src/config/provider_state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <system_error>

#include <fmt/format.h>

namespace unifn::config {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

void write_file_atomically(const std::string& path, std::string_view bytes, unsigned mode) {
  const fs::path final_path(path);
  const auto dir = final_path.parent_path();
  std::error_code ec;
  // Only a directory made here is set to 0700: one the user configured keeps its mode.
  if (fs::create_directories(dir, ec)) ::chmod(dir.c_str(), 0700);
  if (ec) throw std::system_error(ec, fmt::format("cannot create {}", dir.string()));
  const auto tmp =
      (dir / fmt::format(".{}.tmp-{}", final_path.filename().string(), ::getpid())).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) fail(fmt::format("cannot create {}", tmp));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const auto n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      errno = e;
      fail(fmt::format("cannot write {}", tmp));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    errno = e;
    fail(fmt::format("cannot write {}", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    errno = e;
    fail(fmt::format("cannot rename {} to {}", tmp, path));
  }
}

std::map<std::string, std::uint64_t> load_scales(const DaemonConfig& d) {
  std::map<std::string, std::uint64_t> out;
  if (d.state_dir.empty()) return out;
  std::ifstream in(scales_file(d));
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(": ");
    if (colon == std::string::npos) continue;
    try {
      std::size_t used = 0;
      const auto n = std::stoull(line.substr(colon + 2), &used);
      if (used == line.size() - colon - 2) out[line.substr(0, colon)] = n;
    } catch (const std::exception&) {
      // Not written by save_scales: skipped.
    }
  }
  return out;
}

void save_scales(const DaemonConfig& d, const std::map<std::string, std::uint64_t>& scales) {
  std::string text = "# Written by unifnd (POST /system/scale-function): warm instances.\n";
  for (const auto& [name, n] : scales) text += fmt::format("{}: {}\n", name, n);
  write_file_atomically(scales_file(d), text);
}

void apply_scale(FunctionConfig& f, const std::map<std::string, std::uint64_t>& scales) {
  if (auto it = scales.find(f.name); it != scales.end())
    f.pool.min_warm = std::min(it->second, f.pool.max_instances);
}

}  // namespace unifn::config
