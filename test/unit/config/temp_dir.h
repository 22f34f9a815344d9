// Test helpers: a temporary directory that removes itself, and the message of a ConfigError.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>

#include "config/config.h"

namespace unifn::config::test {

class TempDir {
 public:
  TempDir() {
    static std::atomic<unsigned> n{0};
    path_ = std::filesystem::temp_directory_path() /
            ("unifn-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + "-" +
             std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& rel) const { return path_ / rel; }

  // Writes text to a file under the directory, creating the folders on the way; returns its path.
  std::filesystem::path write(const std::string& rel, const std::string& text) const {
    auto p = path_ / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  // A file that passes the image checks: it starts like an ELF file.
  std::filesystem::path write_image(const std::string& rel) const { return write(rel, std::string("\x7f" "ELF\x02\x01\x01", 7)); }

 private:
  std::filesystem::path path_;
};

// The message of the ConfigError that f throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace unifn::config::test
