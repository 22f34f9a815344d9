// The vCPU calls the snapshot code (KvmCpuState) is written against: the real KVM vCPU (Vcpu in
// kvm.h) implements them with ioctls, and a test records them on a fake, without /dev/kvm.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace unifn::vmm {

class VcpuOps {
 public:
  virtual ~VcpuOps() = default;

  // The shared kvm_run area: exit_reason, immediate_exit.
  virtual kvm_run& run_state() = 0;
  // One KVM_RUN; false when it came back with EINTR (a signal or immediate_exit), true on an exit.
  virtual bool enter() = 0;

  virtual kvm_regs regs() const = 0;
  virtual void set_regs(const kvm_regs& r) = 0;
  virtual kvm_sregs sregs() const = 0;
  virtual void set_sregs(const kvm_sregs& s) = 0;
  virtual std::vector<std::uint8_t> xsave() const = 0;  // raw struct kvm_xsave, 4096 bytes
  virtual void set_xsave(const std::vector<std::uint8_t>& raw) = 0;
  virtual kvm_xcrs xcrs() const = 0;
  virtual void set_xcrs(const kvm_xcrs& x) = 0;
  // KVM_GET_MSRS: stops at the first MSR KVM refuses, so the result may be a prefix of indices.
  virtual std::vector<kvm_msr_entry> msrs(const std::vector<std::uint32_t>& indices) const = 0;
  // KVM_SET_MSRS: how many of msrs KVM set before it refused one (all of them on success).
  virtual std::size_t set_msrs_prefix(const std::vector<kvm_msr_entry>& msrs) = 0;
  // KVM_SET_MSRS of all of them; throws naming the MSR KVM refused.
  virtual void set_msrs(const std::vector<kvm_msr_entry>& msrs) = 0;
  virtual kvm_vcpu_events events() const = 0;
  virtual void set_events(const kvm_vcpu_events& e) = 0;
  virtual kvm_debugregs debugregs() const = 0;
  virtual void set_debugregs(const kvm_debugregs& d) = 0;
};

}  // namespace unifn::vmm
