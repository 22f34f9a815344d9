// Capturing and applying vCPU state: registers, segments, FPU/SSE (XSAVE), XCRs, MSRs, events.
#include "platform/kvm/kvm_cpu_state.h"

#include <cstring>
#include <stdexcept>

#include "platform/kvm/kvm.h"
#include "snapshot/byte_io.h"
#include "x86/cpu.h"

namespace unifn::vmm {

namespace {
// The MSRs a unifn guest's state depends on (EFER, FS and GS bases travel in sregs).
const std::vector<std::uint32_t> kSavedMsrs = {msr::kStar, msr::kLstar, msr::kCstar, msr::kFmask, msr::kKernelGsBase,
                                               0x174, 0x175, 0x176, 0x277};
}  // namespace

KvmCpuState KvmCpuState::capture(const Vcpu& vcpu) {
  KvmCpuState s;
  s.regs = vcpu.regs();
  s.sregs = vcpu.sregs();
  s.xsave = vcpu.xsave();
  s.xcrs = vcpu.xcrs();
  s.msrs = vcpu.msrs(kSavedMsrs);
  s.events = vcpu.events();
  return s;
}

void KvmCpuState::apply(Vcpu& vcpu) const {
  vcpu.set_sregs(sregs);
  vcpu.set_regs(regs);
  vcpu.set_xsave(xsave);
  vcpu.set_xcrs(xcrs);
  vcpu.set_msrs(msrs);
  vcpu.set_events(events);
}

std::vector<std::uint8_t> KvmCpuState::to_bytes() const {
  ByteWriter w;
  w.pod(regs);
  w.pod(sregs);
  w.blob(xsave);
  w.pod(xcrs);
  w.u64(msrs.size());
  for (const auto& m : msrs) w.pod(m);
  w.pod(events);
  return w.take();
}

KvmCpuState KvmCpuState::from_bytes(std::span<const std::uint8_t> bytes) {
  ByteReader r(bytes);
  KvmCpuState s;
  s.regs = r.pod<kvm_regs>();
  s.sregs = r.pod<kvm_sregs>();
  s.xsave = r.blob(4096);
  if (s.xsave.size() != 4096) throw std::runtime_error("snapshot vCPU state: XSAVE area is not 4096 bytes");
  s.xcrs = r.pod<kvm_xcrs>();
  auto n = r.u64();
  if (n > 64) throw std::runtime_error("snapshot vCPU state: too many MSRs");
  for (std::uint64_t i = 0; i < n; ++i) s.msrs.push_back(r.pod<kvm_msr_entry>());
  s.events = r.pod<kvm_vcpu_events>();
  r.expect_end("snapshot vCPU state");
  return s;
}

}  // namespace unifn::vmm
