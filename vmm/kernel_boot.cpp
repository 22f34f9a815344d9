// Third-party kernel boot: dispatch to the multiboot1 or PVH loader (not yet implemented).
#include "kernel_boot.h"

#include <fmt/format.h>

#include "loader/elf.h"

namespace unifn::vmm {

bool is_kernel_image(std::span<const std::uint8_t> bytes) { return elf_class(bytes) == 1; }

KernelResult boot_kernel(const std::string& name, std::span<const std::uint8_t>, const KernelBootConfig&) {
  throw ImageError(fmt::format("{}: multiboot and PVH kernels are not supported yet", name));
}

}  // namespace unifn::vmm
