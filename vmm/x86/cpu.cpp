// The guest's CPUID (filtered), its CR4, the MSRs a reset writes back, and the TSC frequency.
#include "vmm/x86/cpu.h"

#include <sys/ioctl.h>

#include <array>

#include "vmm/platform/kvm/kvm.h"

namespace unifn::vmm {

namespace {

constexpr std::uint32_t bit(unsigned n) { return 1u << n; }

constexpr std::array kHiddenLeaves = {
    CpuidHiddenLeaves{0x40000000, 0x4FFFFFFF,
                      "the hypervisor's paravirtual interface: KVM's signature and features "
                      "(kvmclock, async page "
                      "faults, PV EOI, steal time, PV TLB flush); a unifn guest talks to the VMM "
                      "through its ABI only"},
    CpuidHiddenLeaves{0x0000000A, 0x0000000A,
                      "the architectural PMU: no performance counters in the guest"},
    CpuidHiddenLeaves{0x0000000F, 0x00000010, "resource director monitoring and allocation"},
    CpuidHiddenLeaves{0x00000012, 0x00000012, "SGX enclaves"},
    CpuidHiddenLeaves{0x00000014, 0x00000014, "Intel processor trace"},
    CpuidHiddenLeaves{0x8000000A, 0x8000000A, "SVM (nested virtualization) features"},
    CpuidHiddenLeaves{0x80000022, 0x80000022, "AMD performance monitoring v2"},
};

constexpr std::array kHiddenBits = {
    CpuidHiddenBits{1, 0, CpuidReg::Ecx, bit(5) | bit(6),
                    "VMX and SMX: no nested virtualization, no TXT"},
    CpuidHiddenBits{1, 0, CpuidReg::Ecx, bit(3), "MONITOR/MWAIT"},
    CpuidHiddenBits{1, 0, CpuidReg::Ecx, bit(15), "PDCM: the perf-capabilities MSR"},
    CpuidHiddenBits{1, 0, CpuidReg::Ecx, bit(21) | bit(24),
                    "x2APIC and the TSC-deadline timer: the VM has no local APIC"},
    CpuidHiddenBits{1, 0, CpuidReg::Edx, bit(9),
                    "the local APIC: the VM has none (no in-kernel irqchip)"},
    CpuidHiddenBits{1, 0, CpuidReg::Edx, bit(7) | bit(14),
                    "machine-check exception and architecture banks"},
    CpuidHiddenBits{7, 0, CpuidReg::Ebx, bit(2), "SGX"},
    CpuidHiddenBits{7, 0, CpuidReg::Ebx, bit(25), "Intel processor trace"},
    CpuidHiddenBits{7, 0, CpuidReg::Ecx, bit(30), "SGX launch control"},
    CpuidHiddenBits{0x80000001, 0, CpuidReg::Ecx, bit(2), "SVM: no nested virtualization"},
    CpuidHiddenBits{0x80000001, 0, CpuidReg::Ecx, bit(23) | bit(24) | bit(28),
                    "AMD core, northbridge and last-level-cache performance counter extensions"},
};

constexpr std::array kGuestMsrs = {
    // Where ring 0 is entered from ring 3, and the GS base it swaps in.
    GuestMsr{0x174, "IA32_SYSENTER_CS"},
    GuestMsr{0x175, "IA32_SYSENTER_ESP"},
    GuestMsr{0x176, "IA32_SYSENTER_EIP"},
    GuestMsr{msr::kStar, "STAR"},
    GuestMsr{msr::kLstar, "LSTAR"},
    GuestMsr{msr::kCstar, "CSTAR"},
    GuestMsr{msr::kFmask, "FMASK"},
    GuestMsr{msr::kKernelGsBase, "KERNEL_GS_BASE"},
    // KVM's paravirtual MSRs: most point KVM at guest memory that it then writes by itself.
    GuestMsr{msr::kKvmWallClock, "MSR_KVM_WALL_CLOCK"},
    GuestMsr{msr::kKvmSystemTime, "MSR_KVM_SYSTEM_TIME"},
    GuestMsr{msr::kKvmWallClockNew, "MSR_KVM_WALL_CLOCK_NEW"},
    GuestMsr{msr::kKvmSystemTimeNew, "MSR_KVM_SYSTEM_TIME_NEW"},
    GuestMsr{msr::kKvmAsyncPfEn, "MSR_KVM_ASYNC_PF_EN"},
    GuestMsr{msr::kKvmStealTime, "MSR_KVM_STEAL_TIME"},
    GuestMsr{msr::kKvmPvEoiEn, "MSR_KVM_PV_EOI_EN"},
    GuestMsr{msr::kKvmPollControl, "MSR_KVM_POLL_CONTROL"},
    GuestMsr{msr::kKvmAsyncPfInt, "MSR_KVM_ASYNC_PF_INT"},
    GuestMsr{msr::kKvmAsyncPfAck, "MSR_KVM_ASYNC_PF_ACK"},
    // What ring 3 observes: RDTSCP/RDPID, memory types, the TSC, speculation, CPUID faulting.
    GuestMsr{msr::kTscAux, "TSC_AUX"},
    GuestMsr{0x277, "IA32_PAT"},
    GuestMsr{0x3b, "IA32_TSC_ADJUST"},
    GuestMsr{0x6e0, "IA32_TSC_DEADLINE"},
    GuestMsr{0x48, "IA32_SPEC_CTRL"},
    GuestMsr{0xc001011f, "AMD VIRT_SPEC_CTRL"},
    GuestMsr{0x140, "MISC_FEATURES_ENABLES (CPUID faulting)"},
    GuestMsr{0xc0010015, "AMD HWCR (CPUID user disable)"},
    GuestMsr{0x1a0, "IA32_MISC_ENABLE"},
    GuestMsr{0x1fc, "IA32_POWER_CTL"},
    GuestMsr{0xe1, "IA32_UMWAIT_CONTROL"},
    GuestMsr{0x1d9, "IA32_DEBUGCTL (branch trap, LBR)"},
    // State components and shadow stacks.
    GuestMsr{0xda0, "IA32_XSS"},
    GuestMsr{0x1c4, "IA32_XFD"},
    GuestMsr{0x1c5, "IA32_XFD_ERR"},
    GuestMsr{0xd90, "IA32_BNDCFGS"},
    GuestMsr{0x6a0, "IA32_U_CET"},
    GuestMsr{0x6a2, "IA32_S_CET"},
    GuestMsr{0x6a4, "IA32_PL0_SSP"},
    GuestMsr{0x6a5, "IA32_PL1_SSP"},
    GuestMsr{0x6a6, "IA32_PL2_SSP"},
    GuestMsr{0x6a7, "IA32_PL3_SSP"},
    GuestMsr{0x6a8, "IA32_INT_SSP_TAB"},
};

constexpr std::array kNotReset = {
    ExcludedMsr{
        msr::kTsc, "IA32_TSC",
        "the guest's clock runs on between requests; setting it back would run time backward "
        "(TSC_ADJUST, which a TSC write also moves, is reset)"},
    ExcludedMsr{msr::kEfer, "EFER", "travels in kvm_sregs"},
    ExcludedMsr{msr::kFsBase, "FS_BASE", "travels in kvm_sregs"},
    ExcludedMsr{msr::kGsBase, "GS_BASE", "travels in kvm_sregs"},
    ExcludedMsr{0x1b, "IA32_APIC_BASE", "travels in kvm_sregs"},
    ExcludedMsr{0x10a, "IA32_ARCH_CAPABILITIES", "read-only to the guest"},
    ExcludedMsr{0x345, "IA32_PERF_CAPABILITIES", "read-only to the guest"},
    ExcludedMsr{0x8b, "IA32_UCODE_REV", "a guest write is ignored"},
    ExcludedMsr{0x34, "MSR_SMI_COUNT", "read-only to the guest"},
    ExcludedMsr{0xce, "MSR_PLATFORM_INFO", "read-only to the guest"},
};

bool matches(const kvm_cpuid_entry2& e, std::uint32_t function, std::uint32_t index) {
  if (e.function != function) return false;
  return (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) == 0 || e.index == index;
}

std::uint32_t& reg_of(kvm_cpuid_entry2& e, CpuidReg r) {
  switch (r) {
    case CpuidReg::Eax:
      return e.eax;
    case CpuidReg::Ebx:
      return e.ebx;
    case CpuidReg::Ecx:
      return e.ecx;
    case CpuidReg::Edx:
      break;
  }
  return e.edx;
}

}  // namespace

std::span<const CpuidHiddenLeaves> cpuid_hidden_leaves() { return kHiddenLeaves; }
std::span<const CpuidHiddenBits> cpuid_hidden_bits() { return kHiddenBits; }
std::span<const GuestMsr> guest_writable_msrs() { return kGuestMsrs; }
std::span<const ExcludedMsr> msrs_not_reset() { return kNotReset; }

std::vector<kvm_cpuid_entry2> filter_cpuid(std::vector<kvm_cpuid_entry2> supported) {
  std::vector<kvm_cpuid_entry2> out;
  out.reserve(supported.size());
  for (auto& e : supported) {
    bool hidden = false;
    for (const auto& h : kHiddenLeaves)
      hidden = hidden || (e.function >= h.first && e.function <= h.last);
    if (hidden) continue;
    for (const auto& b : kHiddenBits)
      if (matches(e, b.function, b.index)) reg_of(e, b.reg) &= ~b.bits;
    if (e.function == 1) e.ecx |= 1u << 31;  // "running under a hypervisor"
    out.push_back(e);
  }
  return out;
}

std::vector<kvm_cpuid_entry2> guest_cpuid(const Vcpu&) {
  return filter_cpuid(Kvm::instance().supported_cpuid());
}

std::uint64_t ring3_cr4(const std::vector<kvm_cpuid_entry2>& cpuid) {
  std::uint64_t cr4 = cr4::kPAE | cr4::kOSFXSR | cr4::kOSXMMEXCPT;
  for (const auto& e : cpuid) {
    if (!matches(e, 7, 0)) continue;
    if (e.ebx & bit(7)) cr4 |= cr4::kSMEP;
    if (e.ebx & bit(20)) cr4 |= cr4::kSMAP;
    if (e.ecx & bit(2)) cr4 |= cr4::kUMIP;
  }
  return cr4;
}

std::uint64_t tsc_khz(const Vcpu& vcpu) {
  int khz = ::ioctl(vcpu.fd(), KVM_GET_TSC_KHZ, 0);  // Safe: no argument; returns kHz or -1.
  return khz > 0 ? static_cast<std::uint64_t>(khz) : 0;
}

}  // namespace unifn::vmm
