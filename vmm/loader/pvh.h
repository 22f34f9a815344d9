// PVH boot (Xen's direct boot ABI, as QEMU -kernel uses it): the ELF note, hvm_start_info, loading.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "vmm/loader/multiboot.h"
#include "vmm/memory/guest_memory.h"

namespace unifn::vmm {

inline constexpr std::uint32_t kXenElfNotePhys32Entry = 18;  // XEN_ELFNOTE_PHYS32_ENTRY, name "Xen"
inline constexpr std::uint32_t kHvmStartMagic =
    0x336ec578;                                       // "xEn3" with the 0x80 bit of the "E" set
inline constexpr std::uint32_t kHvmStartVersion = 1;  // version 1 adds the memory map

// struct hvm_start_info, version 1, as Xen's public header describes it (56 bytes, little-endian,
// every address a 64-bit guest-physical one, 0 meaning "not present").
struct HvmStartInfo {
  std::uint32_t magic;
  std::uint32_t version;
  std::uint32_t flags;
  std::uint32_t nr_modules;
  std::uint64_t modlist_paddr;
  std::uint64_t cmdline_paddr;
  std::uint64_t rsdp_paddr;
  std::uint64_t memmap_paddr;    // version 1
  std::uint32_t memmap_entries;  // version 1
  std::uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56);
static_assert(offsetof(HvmStartInfo, cmdline_paddr) == 24);
static_assert(offsetof(HvmStartInfo, memmap_paddr) == 40);
static_assert(offsetof(HvmStartInfo, memmap_entries) == 48);

// struct hvm_memmap_table_entry (24 bytes); types follow the E820 numbering.
struct HvmMemmapEntry {
  std::uint64_t addr;
  std::uint64_t size;
  std::uint32_t type;  // 1 RAM, 2 reserved
  std::uint32_t reserved;
};
static_assert(sizeof(HvmMemmapEntry) == 24);

// Writes hvm_start_info, its memory map and the command line (passed as is, as QEMU does) below
// kernel_layout::kReservedEnd; returns the start info's gpa for EBX.
std::uint32_t write_hvm_start_info(GuestMemory& mem, const std::string& cmdline);

struct PvhBoot {
  std::uint32_t entry = 0;
  std::uint32_t start_info_gpa = 0;
};

// Loads an ELF32 or ELF64 kernel that carries the PVH entry note, at its physical addresses.
// Throws ImageError naming `name` when the note is missing, the entry is above 4 GiB or outside
// the loaded segments, or a segment does not fit.
PvhBoot load_pvh(const KernelElf& elf, std::span<const std::uint8_t> file, const std::string& name,
                 const std::string& cmdline, GuestMemory& mem);

}  // namespace unifn::vmm
