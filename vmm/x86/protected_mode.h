// 32-bit protected-mode entry for third-party kernels (multiboot1, PVH): flat segments, paging off.
#pragma once

#include <linux/kvm.h>

#include <cstdint>

#include "vmm/memory/guest_memory.h"

namespace unifn::vmm {

class Vcpu;

// Where the VMM puts its own structures in a protected-mode kernel's low memory. Kernels load at
// or above kReservedEnd; the whole range is usable RAM in the memory map, as under a BIOS, and is
// the kernel's to reuse once it has read its boot information.
namespace kernel_layout {
inline constexpr std::uint64_t kGdt = 0x500;        // null, code 0x08, data 0x10, TSS 0x18
inline constexpr std::uint64_t kBootInfo = 0x1000;  // multiboot_info or hvm_start_info
inline constexpr std::uint64_t kMemMap = 0x1200;    // memory map entries
inline constexpr std::uint64_t kMemMapMax = 0x200;
inline constexpr std::uint64_t kLoaderName = 0x1400;  // "unifn"
inline constexpr std::uint64_t kCmdline = 0x2000;
inline constexpr std::uint64_t kCmdlineMax = 0x1000;  // NUL included
inline constexpr std::uint64_t kStackTop = 0x8000;    // ESP at entry: neither spec defines one
inline constexpr std::uint64_t kReservedEnd = 0x8000;

inline constexpr std::uint16_t kCodeSel = 0x08;
inline constexpr std::uint16_t kDataSel = 0x10;
inline constexpr std::uint16_t kTssSel = 0x18;
}  // namespace kernel_layout

// The register values a protected-mode entry needs beyond the flat segments.
struct ProtectedModeEntry {
  std::uint32_t eip = 0;
  std::uint32_t eax = 0;
  std::uint32_t ebx = 0;
  std::uint32_t esp = static_cast<std::uint32_t>(kernel_layout::kStackTop);
};

// The segment state both boot protocols ask for: CS 32-bit execute/read, DS/ES/FS/GS/SS 32-bit
// read/write, all with base 0 and limit 4 GiB; TR a 32-bit TSS at 0 (limit 0x67, as PVH asks);
// CR0 = PE|ET with paging off, CR4 = EFER = 0. Starts from `base` (what KVM_GET_SREGS gave).
kvm_sregs protected_mode_sregs(const kvm_sregs& base);

// Writes the matching GDT at kernel_layout::kGdt, so a kernel that reloads a segment register
// before loading its own GDT still gets flat segments.
void write_flat_gdt(GuestMemory& mem);

// Puts the vCPU at `entry` in 32-bit protected mode with interrupts off, a sane x87 state and
// KVM's CPUID.
void enter_protected_mode(Vcpu& vcpu, GuestMemory& mem, const ProtectedModeEntry& entry);

}  // namespace unifn::vmm
