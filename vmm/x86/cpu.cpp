// The guest's CPUID and TSC frequency.
#include "x86/cpu.h"

#include <sys/ioctl.h>

#include "platform/kvm/kvm.h"

namespace unifn::vmm {

std::vector<kvm_cpuid_entry2> guest_cpuid(const Vcpu&) {
  auto entries = Kvm::instance().supported_cpuid();
  for (auto& e : entries) {
    if (e.function == 1) e.ecx |= 1u << 31;  // "running under a hypervisor"
  }
  return entries;
}

std::uint64_t tsc_khz(const Vcpu& vcpu) {
  int khz = ::ioctl(vcpu.fd(), KVM_GET_TSC_KHZ, 0);  // Safe: no argument; returns kHz or -1.
  return khz > 0 ? static_cast<std::uint64_t>(khz) : 0;
}

}  // namespace unifn::vmm
