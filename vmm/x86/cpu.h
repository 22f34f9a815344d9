// x86 architectural constants and the guest's CPUID.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace unifn::vmm {

class Vcpu;

namespace cr0 {
inline constexpr std::uint64_t kPE = 1u << 0, kMP = 1u << 1, kET = 1u << 4, kNE = 1u << 5, kWP = 1u << 16,
                               kPG = 1ull << 31;
}
namespace cr4 {
inline constexpr std::uint64_t kPAE = 1u << 5, kOSFXSR = 1u << 9, kOSXMMEXCPT = 1u << 10;
}
namespace efer {
inline constexpr std::uint64_t kSCE = 1u << 0, kLME = 1u << 8, kLMA = 1u << 10;
}
namespace rflags {
inline constexpr std::uint64_t kFixed = 1u << 1, kTF = 1u << 8, kIF = 1u << 9, kDF = 1u << 10,
                               kIopl3 = 3u << 12, kAC = 1u << 18;
}
namespace msr {
inline constexpr std::uint32_t kTsc = 0x10, kEfer = 0xC0000080, kStar = 0xC0000081, kLstar = 0xC0000082,
                               kCstar = 0xC0000083, kFmask = 0xC0000084, kFsBase = 0xC0000100,
                               kGsBase = 0xC0000101, kKernelGsBase = 0xC0000102;
}

// The CPUID KVM supports, as every vCPU of ours sees it.
std::vector<kvm_cpuid_entry2> guest_cpuid(const Vcpu& vcpu);

// The guest's TSC frequency in kHz (KVM_GET_TSC_KHZ), 0 when unknown.
std::uint64_t tsc_khz(const Vcpu& vcpu);

}  // namespace unifn::vmm
