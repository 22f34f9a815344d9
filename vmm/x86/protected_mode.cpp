// 32-bit flat protected-mode state for multiboot1 and PVH entry, set through KVM_SET_SREGS.
#include "vmm/x86/protected_mode.h"

#include <array>

#include "vmm/platform/kvm/kvm.h"
#include "vmm/x86/cpu.h"

namespace unifn::vmm {

namespace {

// GDT descriptors: base 0, limit 0xFFFFF in 4 KiB units (4 GiB), present, 32-bit.
constexpr std::uint64_t kCodeDesc = 0x00CF9B000000FFFFull;  // type 0xB: execute/read, accessed
constexpr std::uint64_t kDataDesc = 0x00CF93000000FFFFull;  // type 0x3: read/write, accessed
constexpr std::uint64_t kTssDesc = 0x00008B0000000067ull;   // type 0xB: busy 32-bit TSS, limit 0x67

kvm_segment flat(std::uint16_t selector, std::uint8_t type) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xFFFFFFFF;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 0;
  s.db = 1;  // 32-bit
  s.s = 1;   // code or data, not system
  s.l = 0;
  s.g = 1;
  s.avl = 0;
  s.unusable = 0;
  return s;
}

}  // namespace

kvm_sregs protected_mode_sregs(const kvm_sregs& base) {
  using namespace kernel_layout;
  kvm_sregs s = base;
  s.cs = flat(kCodeSel, 0xB);
  s.ds = s.es = s.fs = s.gs = s.ss = flat(kDataSel, 0x3);

  s.tr = kvm_segment{};
  s.tr.selector = kTssSel;
  s.tr.base = 0;
  s.tr.limit = 0x67;
  s.tr.type = 0xB;  // busy 32-bit TSS
  s.tr.present = 1;

  s.ldt = kvm_segment{};
  s.ldt.type = 0x2;
  s.ldt.present = 1;
  s.ldt.unusable = 1;

  s.gdt.base = kGdt;
  s.gdt.limit = 4 * 8 - 1;
  s.idt.base = 0;
  s.idt.limit = 0;  // no IDT until the kernel loads one: an early exception is a clear triple fault

  s.cr0 = cr0::kPE | cr0::kET;
  s.cr2 = 0;
  s.cr3 = 0;
  s.cr4 = 0;
  s.efer = 0;
  for (auto& word : s.interrupt_bitmap) word = 0;
  return s;
}

void write_flat_gdt(GuestMemory& mem) {
  const std::array<std::uint64_t, 4> gdt{0, kCodeDesc, kDataDesc, kTssDesc};
  mem.write_obj(GuestAddr(kernel_layout::kGdt), gdt);
}

void enter_protected_mode(Vcpu& vcpu, GuestMemory& mem, const ProtectedModeEntry& entry) {
  write_flat_gdt(mem);
  vcpu.set_cpuid(guest_cpuid(vcpu));
  vcpu.set_sregs(protected_mode_sregs(vcpu.sregs()));

  kvm_fpu fpu{};
  fpu.fcw = 0x37F;     // x87 defaults after FNINIT
  fpu.mxcsr = 0x1F80;  // all SIMD exceptions masked
  vcpu.set_fpu(fpu);

  kvm_regs r{};
  r.rip = entry.eip;
  r.rax = entry.eax;
  r.rbx = entry.ebx;
  r.rsp = entry.esp;
  r.rflags = rflags::kFixed;  // IF = 0, DF = 0, as both protocols require
  vcpu.set_regs(r);
}

}  // namespace unifn::vmm
