// x86-64 boot state for unifn guests: page tables, GDT, TSS, IDT, ring-0 stubs, ring-3 entry.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <string>

#include "vmm/memory/guest_memory.h"

namespace unifn::vmm {

class Vcpu;

// Writes the privileged structures into low guest memory: identity-mapped page tables for
// all of RAM (page 0 unmapped so NULL faults; the VMM's pages supervisor-only, layout.h), the
// GDT and TSS, an IDT whose 32 exception gates point at ring-0 stubs, and the syscall stub.
void write_ring3_structures(GuestMemory& mem);

// The last-level page-table flags of a VMM page below layout::kUserLow (present, writable; never
// user), 0 for a page that is not mapped.
std::uint64_t vmm_page_flags(std::uint64_t addr);

// Whether mem's VMM pages are those write_ring3_structures writes (the page tables compared but
// for their accessed and dirty bits, the ring-0 stack not at all): a sentence naming the first
// difference, or nothing. A snapshot from an older VMM (user-writable stubs) or altered is refused.
std::optional<std::string> ring3_structures_differ(const GuestMemory& mem);

// Puts the vCPU in 64-bit long mode at CPL 3 with IOPL 3 at rip with rsp, rdi = arg;
// KVM's CPUID filtered (filter_cpuid), SSE enabled, SMEP/SMAP/UMIP where offered (ring3_cr4),
// SYSCALL MSRs pointing at the ring-0 stub.
void enter_ring3(Vcpu& vcpu, std::uint64_t rip, std::uint64_t rsp, std::uint64_t rdi);

// The user code/data segments that a syscall return restores.
void set_user_segments(kvm_sregs& s);

}  // namespace unifn::vmm
