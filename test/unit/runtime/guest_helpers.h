// Shared helpers for tests that boot real guests.
#pragma once

#include <sys/mman.h>

#include <chrono>
#include <memory>
#include <string>

#include "vmm/guest/function_vm.h"

namespace unifn::test {

inline std::string example(const std::string& name) {
  return std::string(UNIFN_FUNCTIONS_DIR) + "/" + name + ".elf";
}
inline std::string guest(const std::string& name) {
  return std::string(UNIFN_BUILD_DIR) + "/test/guests/" + name + ".elf";
}

inline vmm::Fd memfd() { return vmm::Fd(memfd_create("unifn-test", MFD_CLOEXEC)); }

inline vmm::Outcome call(vmm::FunctionVm& vm, const std::string& body, int timeout_ms = 5000) {
  return vm.invoke(std::span(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()),
                   "text/plain",
                   std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms));
}

inline void quiet(std::string_view) {}

}  // namespace unifn::test
