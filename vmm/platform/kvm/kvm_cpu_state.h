// The vCPU state a snapshot holds, captured from and applied to a KVM vCPU.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/machine.h"
#include "vmm/snapshot/persist.h"
#include "vmm/platform/kvm/vcpu_ops.h"

namespace unifn::vmm {

// Whether KVM finishes this exit only on the next KVM_RUN (KVM's API documentation: for
// KVM_EXIT_IO and KVM_EXIT_MMIO the value of an `in` or MMIO read reaches its register, and rip
// moves past the instruction, only then). Until it has, the vCPU's registers are not the guest's.
bool exit_completes_on_next_run(std::uint32_t exit_reason);

// Completes such an exit without running a guest instruction: one KVM_RUN with immediate_exit
// set (KVM finishes the pending operation, then returns EINTR). Throws if KVM exits again
// instead (a string I/O that needs the VMM once more).
void complete_pending_exit(VcpuOps& vcpu);

// The debug registers every apply() sets: no breakpoints, DR6 and DR7 at their reset values.
kvm_debugregs reset_debugregs();

struct KvmCpuState {
  kvm_regs regs{};
  kvm_sregs sregs{};
  std::vector<std::uint8_t> xsave;  // 4096 bytes: x87, SSE, AVX state
  kvm_xcrs xcrs{};
  std::vector<kvm_msr_entry> msrs;  // guest_writable_msrs() that this host's KVM reads and writes
  kvm_vcpu_events events{};

  // exit_pending: the vCPU's last KVM_RUN ended in an exit that completes on the next one
  // (exit_completes_on_next_run); it is completed first, so the state is the guest's.
  static KvmCpuState capture(VcpuOps& vcpu, bool exit_pending);
  // Puts the vCPU back in this state: every register, MSR and event, and the debug registers
  // reset. A pending exit is completed first, so that it cannot land on the applied state.
  void apply(VcpuOps& vcpu, bool exit_pending) const;

  // Its encoding (snapshot/persist.h), the bytes of a KVM CpuState: read() throws
  // std::runtime_error for an XSAVE area that is not 4096 bytes or more than kMaxMsrs MSRs.
  void write(ByteWriter& w) const;
  static KvmCpuState read(ByteReader& r);
  // All of the bytes, and back (trailing bytes refused).
  std::vector<std::uint8_t> to_bytes() const;
  static KvmCpuState from_bytes(std::span<const std::uint8_t> bytes);
  // from_bytes of a KVM CpuState; throws std::invalid_argument for another platform's.
  static KvmCpuState from_state(const CpuState& state);
};

}  // namespace unifn::vmm
