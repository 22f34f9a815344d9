// Where the VMM puts its own structures in a unifn guest's low memory (below 1 MiB).
#pragma once

#include <cstdint>

namespace unifn::vmm::layout {

// The VMM's pages (ring-0 structures), 0x1000-0xFFFF. All are supervisor-only: ring 3 can neither
// read, write nor run them (a #PF), so it cannot rewrite a stub, a gate, a descriptor, RSP0 or a
// page table to reach ring 0. GDT/TSS, IDT and stubs are read-only to ring 0 as well (CR0.WP),
// the ring-0 stack is the only writable page, and the page tables are not mapped at all (the
// MMU reads them by physical address). On PVM, `syscall` from ring 3 starts fetching at LSTAR
// still in ring 3 and so takes a #PF there; the VMM serves it from the #PF stub (KVM-NOTES.md).
inline constexpr std::uint64_t kGdt = 0x1000;          // read-only
inline constexpr std::uint64_t kTss = 0x1800;          // read-only (same page as the GDT)
inline constexpr std::uint64_t kIdt = 0x2000;          // read-only
inline constexpr std::uint64_t kStubs = 0x3000;        // ring-0 stubs, read-only
inline constexpr std::uint64_t kSyscallStub = kStubs;  // LSTAR
inline constexpr std::uint64_t kExceptionStubs = kStubs + 0x100;  // 8 bytes per vector
inline constexpr std::uint64_t kRing0Stack = 0x4000;     // the ring-0 stack's lowest byte, writable
inline constexpr std::uint64_t kRing0StackTop = 0x6000;  // TSS.RSP0: exception frames land here
inline constexpr std::uint64_t kPml4 = 0x8000;           // 0x6000-0xFFFF: not mapped
inline constexpr std::uint64_t kPdpt = 0x9000;
inline constexpr std::uint64_t kPd = 0xA000;   // 4 pages: up to 4 GiB in 2 MiB pages
inline constexpr std::uint64_t kPt0 = 0xE000;  // 4 KiB pages of the first 2 MiB
// The first page ring 3 may use, and the lowest address a guest may hand the VMM: the guest's
// user memory is [kUserLow, RAM size) (GuestMemory::user_contains).
inline constexpr std::uint64_t kUserLow = 0x10000;

// User pages the VMM fills for the runtime.
inline constexpr std::uint64_t kBootInfo = 0x10000;
inline constexpr std::uint64_t kCmdline = 0x11000;
inline constexpr std::uint64_t kCmdlineMax = 0x1000;
inline constexpr std::uint64_t kEnv = 0x12000;
inline constexpr std::uint64_t kEnvMax = 0x4000;
inline constexpr std::uint64_t kPhdrs = 0x16000;
inline constexpr std::uint64_t kPhdrsMax = 0x1000;
inline constexpr std::uint64_t kRandom = 0x17000;

// Selectors: kernel code/data, user data/code (the order SYSRET expects), TSS.
inline constexpr std::uint16_t kKernelCs = 0x08;
inline constexpr std::uint16_t kKernelDs = 0x10;
inline constexpr std::uint16_t kUserDs = 0x18 | 3;
inline constexpr std::uint16_t kUserCs = 0x20 | 3;
inline constexpr std::uint16_t kTssSel = 0x28;

// Ports the ring-0 stubs write to (imm8 `out`, so the stubs clobber nothing the VMM needs).
inline constexpr std::uint16_t kSyscallPort = 0xBF;
inline constexpr std::uint16_t kExceptionPortBase = 0xC0;  // + vector, 0..31

}  // namespace unifn::vmm::layout
