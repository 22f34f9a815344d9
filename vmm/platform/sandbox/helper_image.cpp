// The sandbox helper's bytes, which the generated sandbox_helper_image.S pulls in with .incbin.
#include "vmm/platform/sandbox/helper_image.h"

#include <cstddef>

// Defined in the generated sandbox_helper_image.S (see vmm/CMakeLists.txt).
extern "C" const std::uint8_t unifn_sandbox_helper_start[];
extern "C" const std::uint64_t unifn_sandbox_helper_size;

namespace unifn::vmm {

std::span<const std::uint8_t> sandbox_helper_image() {
  return {unifn_sandbox_helper_start, static_cast<std::size_t>(unifn_sandbox_helper_size)};
}

}  // namespace unifn::vmm
