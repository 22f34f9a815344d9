// x86-64 boot state for unifn guests: page tables, GDT, TSS, IDT, ring-0 stubs, ring-3 entry.
#pragma once

#include <linux/kvm.h>

#include <cstdint>

#include "memory/guest_memory.h"

namespace unifn::vmm {

class Vcpu;

// Writes the privileged structures into low guest memory: identity-mapped page tables for
// all of RAM (page 0 unmapped so NULL faults; VMM pages supervisor-only), the GDT and TSS,
// an IDT whose 32 exception gates point at ring-0 stubs, and the syscall stub.
void write_ring3_structures(GuestMemory& mem);

// Puts the vCPU in 64-bit long mode at CPL 3 with IOPL 3 at rip with rsp, rdi = arg;
// CPUID from KVM, SSE enabled, SYSCALL MSRs pointing at the ring-0 stub.
void enter_ring3(Vcpu& vcpu, std::uint64_t rip, std::uint64_t rsp, std::uint64_t rdi);

// The user code/data segments that a syscall return restores.
void set_user_segments(kvm_sregs& s);

}  // namespace unifn::vmm
