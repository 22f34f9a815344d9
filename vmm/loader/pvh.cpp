// PVH loader: segments at their physical addresses, hvm_start_info v1 with a memory map.
#include "vmm/loader/pvh.h"

#include <fmt/format.h>

#include <stdexcept>

#include "vmm/x86/protected_mode.h"

namespace unifn::vmm {

std::uint32_t write_hvm_start_info(GuestMemory& mem, const std::string& cmdline) {
  using namespace kernel_layout;
  if (cmdline.size() >= kCmdlineMax)
    throw std::invalid_argument(
        fmt::format("the kernel command line of {} bytes is longer than the {} bytes unifn passes",
                    cmdline.size(), kCmdlineMax - 1));
  // Safe: chars as bytes, with the NUL.
  mem.write(GuestAddr(kCmdline),
            std::span(reinterpret_cast<const std::uint8_t*>(cmdline.c_str()), cmdline.size() + 1));

  const auto map = kernel_memory_map(mem.size());
  std::uint64_t at = kMemMap;
  for (const auto& r : map) {
    mem.write_obj(GuestAddr(at), HvmMemmapEntry{r.addr, r.len, r.type, 0});
    at += sizeof(HvmMemmapEntry);
  }

  HvmStartInfo si{};
  si.magic = kHvmStartMagic;
  si.version = kHvmStartVersion;
  si.flags = 0;
  si.nr_modules = 0;
  si.modlist_paddr = 0;
  si.cmdline_paddr = kCmdline;
  si.rsdp_paddr = 0;  // no ACPI tables
  si.memmap_paddr = kMemMap;
  si.memmap_entries = static_cast<std::uint32_t>(map.size());
  mem.write_obj(GuestAddr(kBootInfo), si);
  return static_cast<std::uint32_t>(kBootInfo);
}

PvhBoot load_pvh(const KernelElf& elf, std::span<const std::uint8_t> file, const std::string& name,
                 const std::string& cmdline, GuestMemory& mem) {
  if (!elf.pvh_entry)
    throw ImageError(fmt::format("{}: no PVH entry note (Xen XEN_ELFNOTE_PHYS32_ENTRY)", name));
  const std::uint64_t entry = *elf.pvh_entry;
  if (entry > 0xFFFFFFFFu)
    throw ImageError(
        fmt::format("{}: the PVH entry point {:#x} is above 4 GiB (it is entered in 32-bit mode)",
                    name, entry));
  bool inside = false;
  for (const auto& s : elf.segments)
    inside = inside || (entry >= s.gpa && entry - s.gpa < s.mem_size);
  if (!inside)
    throw ImageError(fmt::format(
        "{}: the PVH entry point {:#x} is in no loadable segment's physical range", name, entry));
  load_kernel_segments(elf.segments, file, mem, name);
  return PvhBoot{static_cast<std::uint32_t>(entry), write_hvm_start_info(mem, cmdline)};
}

}  // namespace unifn::vmm
