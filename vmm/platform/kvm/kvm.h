// RAII wrappers for the KVM system, VM and vCPU file descriptors.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vmm/fd.h"
#include "vmm/platform/kvm/vcpu_ops.h"

namespace unifn::vmm {

class GuestMemory;

// /dev/kvm: opened once per process and shared by every VM.
class Kvm {
 public:
  Kvm();  // throws with a sentence when /dev/kvm is missing, inaccessible or too old
  static const Kvm& instance();

  int fd() const { return fd_.get(); }
  int vcpu_mmap_size() const { return vcpu_mmap_size_; }
  bool has(long cap) const;  // KVM_CHECK_EXTENSION
  // KVM_GET_SUPPORTED_CPUID, fetched once.
  const std::vector<kvm_cpuid_entry2>& supported_cpuid() const { return cpuid_; }
  // The MSR indices this host's KVM saves and restores (KVM_GET_MSR_INDEX_LIST).
  const std::vector<std::uint32_t>& msr_indices() const { return msrs_; }

 private:
  Fd fd_;
  int vcpu_mmap_size_ = 0;
  std::vector<kvm_cpuid_entry2> cpuid_;
  std::vector<std::uint32_t> msrs_;
};

class Vcpu;

class Vm {
 public:
  explicit Vm(const Kvm& kvm);
  int fd() const { return fd_.get(); }
  const Kvm& kvm() const { return *kvm_; }
  // Maps guest RAM at guest-physical 0 as memory slot 0, with KVM's dirty-page log if asked.
  void map_memory(const GuestMemory& mem, bool log_dirty = false);
  // Page numbers the guest wrote since the last call (KVM_GET_DIRTY_LOG clears the log).
  std::vector<std::uint64_t> take_dirty_log();
  // Creates the in-kernel LAPIC-less setup we use: no irqchip, one vCPU.
  std::unique_ptr<Vcpu> create_vcpu(int id);

 private:
  const Kvm* kvm_;
  Fd fd_;
  std::vector<std::uint64_t> bitmap_;  // sized when dirty logging is on
};

class Vcpu final : public VcpuOps {
 public:
  Vcpu(const Vm& vm, int id);
  ~Vcpu() override;
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;

  int fd() const { return fd_.get(); }
  kvm_run& run_state() override { return *run_; }

  // One KVM_RUN; returns false when it was interrupted by a signal (EINTR) or immediate_exit.
  bool enter() override;

  kvm_regs regs() const override;
  void set_regs(const kvm_regs& r) override;
  kvm_sregs sregs() const override;
  void set_sregs(const kvm_sregs& s) override;
  kvm_fpu fpu() const;
  void set_fpu(const kvm_fpu& f);
  void set_cpuid(const std::vector<kvm_cpuid_entry2>& entries);
  void set_msrs(const std::vector<kvm_msr_entry>& msrs) override;
  std::size_t set_msrs_prefix(const std::vector<kvm_msr_entry>& msrs) override;
  std::vector<kvm_msr_entry> msrs(const std::vector<std::uint32_t>& indices) const override;
  std::vector<std::uint8_t> xsave() const override;  // raw struct kvm_xsave
  void set_xsave(const std::vector<std::uint8_t>& raw) override;
  kvm_xcrs xcrs() const override;
  void set_xcrs(const kvm_xcrs& x) override;
  kvm_vcpu_events events() const override;
  void set_events(const kvm_vcpu_events& e) override;
  kvm_debugregs debugregs() const override;
  void set_debugregs(const kvm_debugregs& d) override;

 private:
  void ioctl_or_throw(unsigned long req, void* arg, const char* what) const;
  Fd fd_;
  kvm_run* run_ = nullptr;
  int mmap_size_ = 0;
};

}  // namespace unifn::vmm
