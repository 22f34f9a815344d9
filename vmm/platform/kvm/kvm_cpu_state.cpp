// Capturing and applying vCPU state: registers, segments, FPU/SSE (XSAVE), XCRs, MSRs, events.
#include "vmm/platform/kvm/kvm_cpu_state.h"

#include <cstring>
#include <fmt/format.h>
#include <stdexcept>

#include "vmm/snapshot/byte_io.h"
#include "vmm/x86/cpu.h"

namespace unifn::vmm {

namespace {

constexpr std::uint64_t kMaxMsrs = 256;

// Reads guest_writable_msrs(), skipping those this host's KVM refuses to read (KVM_GET_MSRS
// stops at the first one), then keeps those it also takes back unchanged (KVM_SET_MSRS stops
// at the first refused one): what is left, apply() can always write.
std::vector<kvm_msr_entry> read_guest_msrs(VcpuOps& vcpu) {
  std::vector<std::uint32_t> wanted;
  for (const auto& m : guest_writable_msrs()) wanted.push_back(m.index);
  std::vector<kvm_msr_entry> got;
  std::size_t i = 0;
  while (i < wanted.size()) {
    auto part = vcpu.msrs(
        std::vector<std::uint32_t>(wanted.begin() + static_cast<std::ptrdiff_t>(i), wanted.end()));
    got.insert(got.end(), part.begin(), part.end());
    i += part.size() + 1;  // past the one KVM refused, if any
  }
  for (;;) {
    const std::size_t n = vcpu.set_msrs_prefix(got);
    if (n >= got.size()) break;
    got.erase(got.begin() + static_cast<std::ptrdiff_t>(n));
  }
  return got;
}

}  // namespace

bool exit_completes_on_next_run(std::uint32_t exit_reason) {
  return exit_reason == KVM_EXIT_IO || exit_reason == KVM_EXIT_MMIO ||
         exit_reason == KVM_EXIT_X86_RDMSR || exit_reason == KVM_EXIT_X86_WRMSR;
}

void complete_pending_exit(VcpuOps& vcpu) {
  kvm_run& r = vcpu.run_state();
  r.immediate_exit = 1;
  bool exited = false;
  try {
    exited = vcpu.enter();
  } catch (...) {
    r.immediate_exit = 0;
    throw;
  }
  r.immediate_exit = 0;
  if (exited)
    throw std::runtime_error(
        fmt::format("completing the vCPU's last exit ended in another exit (reason {}): its state "
                    "cannot be saved",
                    r.exit_reason));
}

kvm_debugregs reset_debugregs() {
  kvm_debugregs d{};
  d.dr6 = dr::kDr6Reset;
  d.dr7 = dr::kDr7Reset;
  return d;
}

KvmCpuState KvmCpuState::capture(VcpuOps& vcpu, bool exit_pending) {
  if (exit_pending) complete_pending_exit(vcpu);
  KvmCpuState s;
  s.regs = vcpu.regs();
  s.sregs = vcpu.sregs();
  s.xsave = vcpu.xsave();
  s.xcrs = vcpu.xcrs();
  s.msrs = read_guest_msrs(vcpu);
  s.events = vcpu.events();
  return s;
}

void KvmCpuState::apply(VcpuOps& vcpu, bool exit_pending) const {
  if (exit_pending) complete_pending_exit(vcpu);
  vcpu.set_sregs(sregs);
  vcpu.set_regs(regs);
  vcpu.set_xsave(xsave);
  vcpu.set_xcrs(xcrs);
  vcpu.set_msrs(msrs);
  vcpu.set_events(events);
  vcpu.set_debugregs(reset_debugregs());
}

void KvmCpuState::write(ByteWriter& w) const {
  w.pod(regs);
  w.pod(sregs);
  w.blob(xsave);
  w.pod(xcrs);
  w.u64(msrs.size());
  for (const auto& m : msrs) w.pod(m);
  w.pod(events);
}

std::vector<std::uint8_t> KvmCpuState::to_bytes() const { return encode(*this); }

KvmCpuState KvmCpuState::from_state(const CpuState& state) {
  if (state.platform != PlatformKind::Kvm)
    throw std::invalid_argument(
        fmt::format("a {} vCPU state cannot be applied to a KVM vCPU", to_string(state.platform)));
  return from_bytes(state.bytes);
}

KvmCpuState KvmCpuState::read(ByteReader& r) {
  KvmCpuState s;
  s.regs = r.pod<kvm_regs>();
  s.sregs = r.pod<kvm_sregs>();
  s.xsave = r.blob(4096);
  if (s.xsave.size() != 4096)
    throw std::runtime_error("snapshot vCPU state: XSAVE area is not 4096 bytes");
  s.xcrs = r.pod<kvm_xcrs>();
  auto n = r.u64();
  if (n > kMaxMsrs)
    throw std::runtime_error(
        fmt::format("snapshot vCPU state: {} MSRs is more than the {} allowed", n, kMaxMsrs));
  for (std::uint64_t i = 0; i < n; ++i) s.msrs.push_back(r.pod<kvm_msr_entry>());
  s.events = r.pod<kvm_vcpu_events>();
  return s;
}

KvmCpuState KvmCpuState::from_bytes(std::span<const std::uint8_t> bytes) {
  return decode<KvmCpuState>(bytes, "snapshot vCPU state");
}

}  // namespace unifn::vmm
