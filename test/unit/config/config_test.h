// The configuration tests' helpers: an image file that passes the checks, and a ConfigError's
// message.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "src/config/config.h"
#include "test/support/temp_dir.h"

namespace unifn::config::test {

using unifn::test::TempDir;

// A file that passes the image checks: it starts like an ELF file.
inline std::filesystem::path write_image(const TempDir& d, const std::string& rel) {
  return d.write(rel, std::string("\x7f"
                                  "ELF\x02\x01\x01",
                                  7));
}

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
