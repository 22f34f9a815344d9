// Where the VMM puts its own structures in a unifn guest's low memory (below 1 MiB).
#pragma once

#include <cstdint>

namespace unifn::vmm::layout {

// The VMM's pages (ring-0 structures).
inline constexpr std::uint64_t kGdt = 0x1000;
inline constexpr std::uint64_t kTss = 0x1800;
inline constexpr std::uint64_t kIdt = 0x2000;
inline constexpr std::uint64_t kStubs = 0x3000;           // ring-0 stubs
inline constexpr std::uint64_t kSyscallStub = kStubs;     // LSTAR
inline constexpr std::uint64_t kExceptionStubs = kStubs + 0x100;  // 8 bytes per vector
inline constexpr std::uint64_t kRing0StackTop = 0x6000;   // TSS.RSP0: exception frames land here
inline constexpr std::uint64_t kPml4 = 0x8000;
inline constexpr std::uint64_t kPdpt = 0x9000;
inline constexpr std::uint64_t kPd = 0xA000;              // 4 pages: up to 4 GiB in 2 MiB pages
inline constexpr std::uint64_t kPt0 = 0xE000;             // 4 KiB pages of the first 2 MiB
inline constexpr std::uint64_t kUserLow = 0x10000;        // first page ring 3 may use

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
