// The KVM platform's machine: a VM with one vCPU, the KVM_RUN loop, and the ring-0 stubs through
// which a ring-3 unifn guest's system calls and exceptions reach the VMM.
#pragma once

#include <linux/kvm.h>

#include "vmm/machine.h"
#include "vmm/platform/kvm/kvm.h"

namespace unifn::vmm {

class KvmMachine final : public Machine {
 public:
  // track_writes: KVM's dirty-page log, for reset-in-place.
  KvmMachine(const Kvm& kvm, std::unique_ptr<GuestMemory> memory, bool track_writes = false);
  ~KvmMachine() override;

  PlatformKind platform() const override { return PlatformKind::Kvm; }
  Vcpu& vcpu() { return *vcpu_; }
  Vm& vm() { return vm_; }

  Stop run(std::chrono::steady_clock::time_point deadline) override;
  std::string where() override;
  void start_user(std::uint64_t rip, std::uint64_t rsp, std::uint64_t arg) override;
  GuestRegs regs() override;
  void set_regs(const GuestRegs& regs) override;
  CpuState capture() override;
  void apply(const CpuState& state) override;
  std::vector<std::uint64_t> take_dirty_pages() override;
  std::uint64_t tsc_khz() override;
  std::uint64_t guest_tsc_now() override;

 protected:
  void kick() override;

 private:
  std::optional<Stop> handle_io(kvm_run& r);
  std::optional<Stop> handle_mmio(kvm_run& r);
  // The ring-0 stubs' ports (system call, exceptions) of a unifn guest.
  std::optional<Stop> stub_port(std::uint16_t port);
  std::optional<Stop> serve_syscall(kvm_regs r, std::uint64_t user_rsp);
  std::optional<Stop> on_exception_stub(unsigned vector);
  void return_to_user(kvm_regs r, std::uint64_t rip, std::uint64_t rsp, std::uint64_t flags);
  Stop fault(std::string what);
  void arm_deadline(std::chrono::steady_clock::time_point deadline);
  void disarm_deadline();
  void calibrate_tsc();

  Vm vm_;
  std::unique_ptr<Vcpu> vcpu_;
  bool unifn_guest_ = false;   // start_user or apply ran: the stubs' ports belong to the VMM
  bool exit_pending_ = false;  // the last KVM_RUN's exit completes only on the next one
  std::int64_t tsc_offset_ = 0;
  bool tsc_calibrated_ = false;
  // POSIX timer that kicks the thread running this vCPU out of KVM_RUN at its deadline.
  void* timer_ = nullptr;
  int timer_tid_ = -1;
  std::atomic<int> running_tid_{-1};  // the thread inside run(), for cancel()'s kick
};

}  // namespace unifn::vmm
