// The tests' one temporary directory: made fresh by mkdtemp (0700, ours, under $TMPDIR or /tmp) and
// removed with everything in it when the test is done.
#pragma once

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace unifn::test {

class TempDir {
 public:
  explicit TempDir(std::string_view tag = "unifn-test") {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / (std::string(tag) + "-XXXXXX")).string();
    if (!mkdtemp(tmpl.data()))
      throw std::runtime_error("cannot make a temporary directory " + tmpl + ": " +
                               std::strerror(errno));
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::filesystem::path operator/(const std::string& rel) const { return path_ / rel; }

  // Writes bytes to a file under the directory, creating the folders on the way; returns its path.
  std::filesystem::path write(const std::string& rel, std::string_view bytes) const {
    auto p = path_ / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + p.string());
    return p;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace unifn::test
