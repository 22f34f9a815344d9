// The guest's general-purpose registers as every platform reports them (KVM, sandbox, fake).
#pragma once

#include <cstdint>

namespace unifn::vmm {

// x86-64 user-visible registers plus the FS base (musl's thread pointer, set by arch_prctl).
// Register numbers follow the x86 encoding (0 rax, 1 rcx, 2 rdx, 3 rbx, 4 rsp, 5 rbp, 6 rsi,
// 7 rdi, 8-15 r8-r15), so an instruction decoder can index them with gpr().
struct GuestRegs {
  std::uint64_t rax = 0, rcx = 0, rdx = 0, rbx = 0, rsp = 0, rbp = 0, rsi = 0, rdi = 0;
  std::uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
  std::uint64_t rip = 0, rflags = 0;
  std::uint64_t fs_base = 0;

  // The register with x86 encoding n (0-15).
  std::uint64_t& gpr(unsigned n) {
    std::uint64_t* const regs[16] = {&rax, &rcx, &rdx, &rbx, &rsp, &rbp, &rsi, &rdi,
                                     &r8,  &r9,  &r10, &r11, &r12, &r13, &r14, &r15};
    return *regs[n & 15];
  }
};

}  // namespace unifn::vmm
