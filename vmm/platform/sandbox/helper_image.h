// The sandbox helper's ELF image (platform/sandbox/helper/sandbox_helper.c), embedded into
// unifn_vmm at build time.
#pragma once

#include <cstdint>
#include <span>

namespace unifn::vmm {

// The bytes of the static-PIE helper that the sandbox supervisor execs as the guest process
// (write them into a sealed memfd and execveat it); the contract is platform/sandbox/sandbox_abi.h.
std::span<const std::uint8_t> sandbox_helper_image();

}  // namespace unifn::vmm
