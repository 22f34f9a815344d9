// Multiboot1 (spec 0.6.96) kernels: header search, the ELF32/ELF64 kernel parser, loading, boot
// info.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmm/loader/image_error.h"
#include "vmm/memory/guest_memory.h"

namespace unifn::vmm {

// ---- ELF kernels (shared with the PVH loader) ----

struct KernelSegment {
  std::uint64_t file_offset = 0;
  std::uint64_t file_size = 0;
  std::uint64_t gpa = 0;  // p_paddr: kernels are loaded at their physical addresses
  std::uint64_t vaddr = 0;
  std::uint64_t mem_size = 0;
};

struct KernelElf {
  int elf_class = 0;        // 1 = ELF32, 2 = ELF64
  std::uint64_t entry = 0;  // e_entry, as linked
  std::vector<KernelSegment> segments;
  std::optional<std::uint64_t> pvh_entry;  // Xen note XEN_ELFNOTE_PHYS32_ENTRY
  bool unifn_note = false;                 // the image is a unifn function, not a kernel
};

// Reads the headers of a 32-bit (x86) or 64-bit (x86-64) ELF executable with the same checks as
// parse_elf64, but none of the unifn image rules (segments may sit anywhere; the caller decides).
// Throws ImageError with "name: <problem>" for anything malformed or truncated.
KernelElf parse_kernel_elf(std::span<const std::uint8_t> file, const std::string& name);

// Copies the segments into guest RAM and zeroes their bss. Throws ImageError when one lies outside
// guest RAM or overlaps the VMM's boot structures in [0, kernel_layout::kReservedEnd).
void load_kernel_segments(std::span<const KernelSegment> segments,
                          std::span<const std::uint8_t> file, GuestMemory& mem,
                          const std::string& name);

// The guest-physical address of the entry: e_entry, moved from virtual to physical when it lies in
// a segment whose vaddr and paddr differ (as GRUB does). Throws ImageError when no segment holds
// it.
std::uint64_t kernel_entry_gpa(const KernelElf& elf, const std::string& name);

// ---- multiboot1 ----

inline constexpr std::uint32_t kMultibootHeaderMagic = 0x1BADB002;
inline constexpr std::uint32_t kMultibootBootMagic = 0x2BADB002;  // in EAX at entry
inline constexpr std::size_t kMultibootSearch = 8192;

namespace mb_flag {
inline constexpr std::uint32_t kPageAlign = 1u << 0;  // modules page-aligned (we pass none)
inline constexpr std::uint32_t kMemInfo = 1u << 1;    // mem_* (and mmap) in the info
inline constexpr std::uint32_t kVideoMode = 1u << 2;  // a video mode: ignored, as QEMU does
inline constexpr std::uint32_t kAoutKludge = 1u << 16;
inline constexpr std::uint32_t kSupportedRequired = kPageAlign | kMemInfo | kVideoMode;
inline constexpr std::uint32_t kRequiredMask = 0xFFFF;
}  // namespace mb_flag

struct MultibootHeader {
  std::uint64_t file_offset = 0;  // where the magic is
  std::uint32_t magic = 0, flags = 0, checksum = 0;
  // Valid when flags has kAoutKludge.
  std::uint32_t header_addr = 0, load_addr = 0, load_end_addr = 0, bss_end_addr = 0, entry_addr = 0;
  bool checksum_ok() const { return static_cast<std::uint32_t>(magic + flags + checksum) == 0; }
};

// The first 4-byte-aligned header in the first 8 KiB whose checksum is right; failing that the
// first magic found (so the caller can say the checksum is wrong); nullopt when there is no magic
// at all. Address fields are read only when the flag asks for them and they fit in the file.
std::optional<MultibootHeader> find_multiboot_header(std::span<const std::uint8_t> file);

// Throws ImageError for a header the VMM must refuse: a wrong checksum, required flags (bits
// 0-15) it cannot honour, address fields cut off by the end of the file or the 8 KiB limit.
void check_multiboot_header(const MultibootHeader& h, std::span<const std::uint8_t> file,
                            const std::string& name);

// The boot information structure, laid out as the spec's multiboot_info (116 bytes).
#pragma pack(push, 1)
struct MultibootInfo {
  std::uint32_t flags;
  std::uint32_t mem_lower;  // KiB from 0
  std::uint32_t mem_upper;  // KiB from 1 MiB
  std::uint32_t boot_device;
  std::uint32_t cmdline;
  std::uint32_t mods_count;
  std::uint32_t mods_addr;
  std::uint32_t syms[4];
  std::uint32_t mmap_length;
  std::uint32_t mmap_addr;
  std::uint32_t drives_length;
  std::uint32_t drives_addr;
  std::uint32_t config_table;
  std::uint32_t boot_loader_name;
  std::uint32_t apm_table;
  std::uint32_t vbe_control_info;
  std::uint32_t vbe_mode_info;
  std::uint16_t vbe_mode;
  std::uint16_t vbe_interface_seg;
  std::uint16_t vbe_interface_off;
  std::uint16_t vbe_interface_len;
  std::uint64_t framebuffer_addr;
  std::uint32_t framebuffer_pitch;
  std::uint32_t framebuffer_width;
  std::uint32_t framebuffer_height;
  std::uint8_t framebuffer_bpp;
  std::uint8_t framebuffer_type;
  std::uint8_t color_info[6];
};
// One memory map entry; `size` counts the bytes after itself (20), and mmap_addr points at it.
struct MultibootMmapEntry {
  std::uint32_t size;
  std::uint64_t addr;
  std::uint64_t len;
  std::uint32_t type;  // 1 = available RAM, 2 = reserved
};
#pragma pack(pop)
static_assert(sizeof(MultibootInfo) == 116);
static_assert(sizeof(MultibootMmapEntry) == 24);

namespace mb_info {
inline constexpr std::uint32_t kMemory = 1u << 0, kCmdline = 1u << 2, kMmap = 1u << 6,
                               kLoaderName = 1u << 9;
}

// The RAM picture every protected-mode kernel gets: [0, 640 KiB) RAM, [960 KiB, 1 MiB) reserved
// (where a PC's BIOS lives), [1 MiB, ram) RAM.
struct MemoryRange {
  std::uint64_t addr, len;
  std::uint32_t type;  // 1 RAM, 2 reserved (the same numbers in multiboot and PVH)
};
std::vector<MemoryRange> kernel_memory_map(std::uint64_t ram_bytes);

// Where a loaded multiboot kernel starts, and the values for EAX/EBX.
struct MultibootBoot {
  std::uint32_t entry = 0;
  std::uint32_t info_gpa = 0;
};

// Loads a multiboot kernel (ELF32 segments, or the a.out-kludge fields when flag 16 is set) and
// writes its multiboot_info, memory map, command line and boot loader name below kReservedEnd.
// The command line is "<name> <cmdline>", as QEMU and GRUB pass it. Throws ImageError naming
// `name`.
MultibootBoot load_multiboot(std::span<const std::uint8_t> file, const std::string& name,
                             const std::string& cmdline, GuestMemory& mem);

// Writes the boot information alone (the part load_multiboot adds after loading); returns its gpa.
std::uint32_t write_multiboot_info(GuestMemory& mem, const std::string& cmdline);

}  // namespace unifn::vmm
