// The Catch2 main of tests that boot guests: they run on the platform $UNIFN_PLATFORM names, and
// are skipped (exit 77) when that platform is not on this host, with the reason.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "vmm/platform/platform.h"

int main(int argc, char* argv[]) {
  Catch::Session session;
  if (int rc = session.applyCommandLine(argc, argv)) return rc;
  const char* want = std::getenv("UNIFN_PLATFORM");
  const bool listing = session.configData().listTests || session.configData().listTestNamesOnly;
  if (!listing && want && std::string_view(want) == "kvm" && unifn::vmm::kvm_unavailable_reason()) {
    std::printf("SKIPPED: the kvm platform is not on this host: %s\n",
                unifn::vmm::kvm_unavailable_reason()->c_str());
    return 77;
  }
  return session.run();
}
