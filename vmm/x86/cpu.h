// x86 architectural constants and the guest's CPUID.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

namespace unifn::vmm {

class Vcpu;

namespace cr0 {
inline constexpr std::uint64_t kPE = 1u << 0, kMP = 1u << 1, kET = 1u << 4, kNE = 1u << 5,
                               kWP = 1u << 16, kPG = 1ull << 31;
}
namespace cr4 {
inline constexpr std::uint64_t kPAE = 1u << 5, kOSFXSR = 1u << 9, kOSXMMEXCPT = 1u << 10,
                               kUMIP = 1u << 11, kSMEP = 1u << 20, kSMAP = 1u << 21;
}
namespace efer {
inline constexpr std::uint64_t kSCE = 1u << 0, kLME = 1u << 8, kLMA = 1u << 10;
}
namespace rflags {
inline constexpr std::uint64_t kFixed = 1u << 1, kTF = 1u << 8, kIF = 1u << 9, kDF = 1u << 10,
                               kIopl3 = 3u << 12, kAC = 1u << 18;
}
namespace msr {
inline constexpr std::uint32_t kTsc = 0x10, kEfer = 0xC0000080, kStar = 0xC0000081,
                               kLstar = 0xC0000082, kCstar = 0xC0000083, kFmask = 0xC0000084,
                               kFsBase = 0xC0000100, kGsBase = 0xC0000101,
                               kKernelGsBase = 0xC0000102, kTscAux = 0xC0000103;
// KVM's paravirtual MSRs (Documentation/virt/kvm/x86/msr.rst).
inline constexpr std::uint32_t kKvmWallClock = 0x11, kKvmSystemTime = 0x12,
                               kKvmWallClockNew = 0x4b564d00, kKvmSystemTimeNew = 0x4b564d01,
                               kKvmAsyncPfEn = 0x4b564d02, kKvmStealTime = 0x4b564d03,
                               kKvmPvEoiEn = 0x4b564d04, kKvmPollControl = 0x4b564d05,
                               kKvmAsyncPfInt = 0x4b564d06, kKvmAsyncPfAck = 0x4b564d07;
}  // namespace msr
// Debug registers as a reset leaves them: no breakpoints (DR7 = 0x400), DR6 = 0xFFFF0FF0.
namespace dr {
inline constexpr std::uint64_t kDr6Reset = 0xFFFF0FF0, kDr7Reset = 0x400;
}

// --- CPUID -----------------------------------------------------------------------------------
// What a guest must not see of the CPUID KVM supports. Under VT-x and SVM every CPUID exits to
// KVM, which answers from the table KVM_SET_CPUID2 gave it: this filter is what the guest sees.
// (Under PVM, CPUID in ring 3 runs natively on the host CPU and this table does not apply.)
enum class CpuidReg { Eax, Ebx, Ecx, Edx };

// Leaves [first, last] that are removed whole.
struct CpuidHiddenLeaves {
  std::uint32_t first, last;
  const char* what;
};
// Bits cleared in one register of one leaf (subleaf `index`, where the leaf has subleaves).
struct CpuidHiddenBits {
  std::uint32_t function, index;
  CpuidReg reg;
  std::uint32_t bits;
  const char* what;
};
std::span<const CpuidHiddenLeaves> cpuid_hidden_leaves();
std::span<const CpuidHiddenBits> cpuid_hidden_bits();

// The guest's CPUID from what the host's KVM supports: hidden leaves removed, hidden bits
// cleared, and the "running under a hypervisor" bit (leaf 1 ECX bit 31) set.
std::vector<kvm_cpuid_entry2> filter_cpuid(std::vector<kvm_cpuid_entry2> supported);

// The CPUID KVM supports, filtered (filter_cpuid), as every vCPU of ours sees it.
std::vector<kvm_cpuid_entry2> guest_cpuid(const Vcpu& vcpu);

// CR4 for a ring-3 guest with this CPUID: PAE and SSE always; SMEP (ring 0 cannot run user
// pages), SMAP (nor read or write them) and UMIP (ring 3 cannot read GDTR, IDTR, LDTR, TR or
// MSW) where the CPUID offers them. KVM refuses CR4 bits the guest's CPUID lacks.
std::uint64_t ring3_cr4(const std::vector<kvm_cpuid_entry2>& cpuid);

// --- MSRs -------------------------------------------------------------------------------------
// The MSRs a snapshot saves and every reset writes back: each one a guest in ring 0 could write
// that steers ring 0 (system call and SYSENTER entry points, the kernel GS base), makes KVM write
// guest memory on its own (kvmclock, steal time, async page faults, PV EOI), or changes what
// ring 3 of the next request observes (TSC_AUX, PAT, TSC_ADJUST, speculation and feature
// controls, CET, XFD). A unifn guest runs in ring 3, where WRMSR raises #GP: this is defence in
// depth, so that no request can leave state in the vCPU for the next one. EFER, the FS/GS bases
// and APIC_BASE travel in kvm_sregs; the debug registers are reset apart (kvm_debugregs).
// Capture keeps those the host's KVM reads and writes back; the others do not exist there.
struct GuestMsr {
  std::uint32_t index;
  const char* name;
};
std::span<const GuestMsr> guest_writable_msrs();
// MSRs left out on purpose, with the reason (tests check the two lists stay apart).
struct ExcludedMsr {
  std::uint32_t index;
  const char* name;
  const char* why;
};
std::span<const ExcludedMsr> msrs_not_reset();

// The guest's TSC frequency in kHz (KVM_GET_TSC_KHZ), 0 when unknown.
std::uint64_t tsc_khz(const Vcpu& vcpu);

}  // namespace unifn::vmm
