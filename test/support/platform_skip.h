// Tests that boot guests run once per platform (ctest sets UNIFN_PLATFORM); a test that cannot
// run on the platform at hand says why and exits 77, which ctest reports as skipped.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "vmm/platform/platform.h"

namespace unifn::test {

inline vmm::PlatformKind test_platform() { return vmm::default_platform().kind(); }

[[noreturn]] inline void skip_test(const std::string& why) {
  std::printf("SKIPPED: %s\n", why.c_str());
  std::fflush(stdout);
  std::_Exit(77);
}

// Skips the test unless it runs on `kind`; why says what the other platforms lack.
inline void require_platform(vmm::PlatformKind kind, const std::string& why) {
  if (test_platform() != kind) skip_test(std::string(vmm::to_string(test_platform())) + ": " + why);
}

}  // namespace unifn::test
