// The vCPU state a snapshot holds, captured from and applied to a KVM vCPU.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

namespace unifn::vmm {

class Vcpu;

struct KvmCpuState {
  kvm_regs regs{};
  kvm_sregs sregs{};
  std::vector<std::uint8_t> xsave;  // 4096 bytes: x87, SSE, AVX state
  kvm_xcrs xcrs{};
  std::vector<kvm_msr_entry> msrs;
  kvm_vcpu_events events{};

  static KvmCpuState capture(const Vcpu& vcpu);
  void apply(Vcpu& vcpu) const;

  // Flat bytes for the state file, and back; from_bytes throws on a size mismatch.
  std::vector<std::uint8_t> to_bytes() const;
  static KvmCpuState from_bytes(std::span<const std::uint8_t> bytes);
};

}  // namespace unifn::vmm
