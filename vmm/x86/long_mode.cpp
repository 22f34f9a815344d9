// Builds the ring-3 long-mode machine state that unifn guests start in (DESIGN.md "Why ring 3").
#include "vmm/x86/long_mode.h"

#include <array>
#include <cstring>
#include <fmt/format.h>
#include <utility>

#include "vmm/platform/kvm/kvm.h"
#include "vmm/x86/cpu.h"
#include "vmm/x86/layout.h"

namespace unifn::vmm {

namespace {
using namespace layout;

constexpr std::uint64_t kPresent = 1, kWrite = 2, kUser = 4, kHuge = 0x80;
constexpr std::uint64_t k2M = 2ull << 20;

// The MMIO window for devices (mmio_device.h): one 2 MiB page at 0xD0000000, in PD page 3,
// which RAM (at most 3 GiB) never uses.
constexpr std::uint64_t kMmioWindow = 0xD0000000ull;

void write_page_tables(GuestMemory& mem, std::uint64_t ram) {
  mem.fill(GuestAddr(kPml4), 0, 0x7000);
  mem.write_obj<std::uint64_t>(GuestAddr(kPml4), kPdpt | kPresent | kWrite | kUser);
  const std::uint64_t chunks = (ram + k2M - 1) / k2M;  // RAM < 4 GiB: at most 2048 entries
  for (std::uint64_t g = 0; g < (chunks + 511) / 512; ++g)
    mem.write_obj<std::uint64_t>(GuestAddr(kPdpt + 8 * g),
                                 (kPd + 0x1000 * g) | kPresent | kWrite | kUser);
  mem.write_obj<std::uint64_t>(GuestAddr(kPdpt + 8 * 3),
                               (kPd + 0x3000) | kPresent | kWrite | kUser);
  mem.write_obj<std::uint64_t>(GuestAddr(kPd + 0x3000 + 8 * ((kMmioWindow - 0xC0000000ull) / k2M)),
                               kMmioWindow | kPresent | kWrite | kUser | kHuge);
  for (std::uint64_t i = 1; i < chunks; ++i)
    mem.write_obj<std::uint64_t>(GuestAddr(kPd + 8 * i),
                                 (i * k2M) | kPresent | kWrite | kUser | kHuge);
  // The first 2 MiB in 4 KiB pages: page 0 absent so that NULL faults, the VMM's pages as
  // vmm_page_flags says (supervisor-only), the rest user read/write. The upper levels allow
  // everything; the last level decides.
  mem.write_obj<std::uint64_t>(GuestAddr(kPd), kPt0 | kPresent | kWrite | kUser);
  for (std::uint64_t p = 1; p < 512 && p * 0x1000 < ram; ++p) {
    const std::uint64_t flags =
        p * 0x1000 < kUserLow ? vmm_page_flags(p * 0x1000) : kPresent | kWrite | kUser;
    if (flags) mem.write_obj<std::uint64_t>(GuestAddr(kPt0 + 8 * p), (p * 0x1000) | flags);
  }
}

std::uint64_t segment_descriptor(std::uint32_t base, std::uint32_t limit, std::uint8_t access,
                                 std::uint8_t flags) {
  return (limit & 0xFFFFull) | (std::uint64_t(base & 0xFFFFFF) << 16) |
         (std::uint64_t(access) << 40) | (std::uint64_t((limit >> 16) & 0xF) << 48) |
         (std::uint64_t(flags & 0xF) << 52) | (std::uint64_t(base >> 24) << 56);
}

void write_gdt_tss(GuestMemory& mem) {
  std::array<std::uint64_t, 7> gdt{};
  // Accessed bits preset: the GDT's page is read-only, so the CPU must never need to set them.
  gdt[kKernelCs >> 3] = segment_descriptor(0, 0xFFFFF, 0x9B, 0xA);  // 64-bit code, DPL 0
  gdt[kKernelDs >> 3] = segment_descriptor(0, 0xFFFFF, 0x93, 0xC);
  gdt[kUserDs >> 3] = segment_descriptor(0, 0xFFFFF, 0xF3, 0xC);  // DPL 3
  gdt[kUserCs >> 3] = segment_descriptor(0, 0xFFFFF, 0xFB, 0xA);  // 64-bit code, DPL 3
  gdt[kTssSel >> 3] =
      segment_descriptor(static_cast<std::uint32_t>(kTss), 103, 0x89, 0);  // 64-bit TSS
  gdt[(kTssSel >> 3) + 1] = kTss >> 32;
  // Safe: a u64 array viewed as its bytes.
  mem.write(GuestAddr(kGdt),
            std::span(reinterpret_cast<const std::uint8_t*>(gdt.data()), sizeof(gdt)));

  std::array<std::uint8_t, 104> tss{};
  std::uint64_t rsp0 = kRing0StackTop;
  std::memcpy(&tss[4], &rsp0, 8);
  std::uint16_t iomap = sizeof(tss);  // no I/O bitmap: IOPL 3 alone grants port access
  std::memcpy(&tss[102], &iomap, 2);
  mem.write(GuestAddr(kTss), tss);
}

void write_idt_and_stubs(GuestMemory& mem) {
  mem.fill(GuestAddr(kStubs), 0xF4, 0x1000);  // hlt everywhere a stub is not
  // syscall: `out %al, $kSyscallPort`; the VMM returns to ring 3 by setting registers.
  const std::uint8_t sys[] = {0xE6, static_cast<std::uint8_t>(kSyscallPort), 0xF4};
  mem.write(GuestAddr(kSyscallStub), sys);
  for (std::uint64_t v = 0; v < 32; ++v) {
    const std::uint8_t stub[] = {0xE6, static_cast<std::uint8_t>(kExceptionPortBase + v), 0xF4};
    const std::uint64_t addr = kExceptionStubs + 8 * v;
    mem.write(GuestAddr(addr), stub);
    std::array<std::uint8_t, 16> gate{};
    std::uint16_t lo = addr & 0xFFFF, sel = kKernelCs, mid = (addr >> 16) & 0xFFFF;
    std::uint32_t hi = static_cast<std::uint32_t>(addr >> 32);
    std::memcpy(&gate[0], &lo, 2);
    std::memcpy(&gate[2], &sel, 2);
    gate[5] = 0x8E;  // present, DPL 0, 64-bit interrupt gate
    std::memcpy(&gate[6], &mid, 2);
    std::memcpy(&gate[8], &hi, 4);
    mem.write(GuestAddr(kIdt + 16 * v), gate);
  }
}

kvm_segment segment(std::uint16_t sel, std::uint8_t type, bool code) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xFFFFFFFF;
  s.selector = sel;
  s.type = type;
  s.present = 1;
  s.dpl = sel & 3;
  s.db = code ? 0 : 1;
  s.s = 1;
  s.l = code ? 1 : 0;
  s.g = 1;
  return s;
}

}  // namespace

std::uint64_t vmm_page_flags(std::uint64_t addr) {
  addr &= ~0xFFFull;
  if (addr == kGdt || addr == kIdt || addr == kStubs) return kPresent;  // read-only, ring 0 only
  if (addr >= kRing0Stack && addr < kRing0StackTop) return kPresent | kWrite;
  return 0;  // page 0, 0x6000-0x7FFF and the page tables: not mapped
}

void write_ring3_structures(GuestMemory& mem) {
  write_page_tables(mem, mem.size());
  write_gdt_tss(mem);
  write_idt_and_stubs(mem);
}

std::optional<std::string> ring3_structures_differ(const GuestMemory& mem) {
  if (!mem.contains(GuestAddr(0), kUserLow)) return "guest RAM is smaller than the VMM's pages";
  GuestMemory expected(kUserLow);
  write_page_tables(expected, mem.size());
  write_gdt_tss(expected);
  write_idt_and_stubs(expected);
  const auto want = std::as_const(expected).span(GuestAddr(0), kUserLow);
  const auto got = mem.span(GuestAddr(0), kUserLow, "VMM pages");
  // GDT, TSS, IDT and stubs byte for byte.
  for (std::uint64_t a = kGdt; a < kRing0Stack; ++a)
    if (want[a] != got[a]) return fmt::format("the VMM's structures differ at {:#x}", a);
  // Page tables entry by entry, but for the accessed and dirty bits the MMU sets.
  constexpr std::uint64_t kAccessedDirty = 0x60;
  for (std::uint64_t a = kPml4; a < kUserLow; a += 8) {
    std::uint64_t w, g;
    std::memcpy(&w, &want[a], 8);
    std::memcpy(&g, &got[a], 8);
    if ((w & ~kAccessedDirty) != (g & ~kAccessedDirty))
      return fmt::format("the page-table entry at {:#x} is {:#x}, not {:#x}", a, g, w);
  }
  return std::nullopt;
}

void set_user_segments(kvm_sregs& s) {
  s.cs = segment(kUserCs, 11, true);
  s.ss = segment(kUserDs, 3, false);
}

void enter_ring3(Vcpu& vcpu, std::uint64_t rip, std::uint64_t rsp, std::uint64_t rdi) {
  const auto cpuid = guest_cpuid(vcpu);
  vcpu.set_cpuid(cpuid);
  kvm_sregs s = vcpu.sregs();
  set_user_segments(s);
  s.ds = s.es = s.fs = s.gs = s.ss;
  s.tr = kvm_segment{};
  s.tr.base = kTss;
  s.tr.limit = 103;
  s.tr.selector = kTssSel;
  s.tr.type = 11;  // busy 64-bit TSS
  s.tr.present = 1;
  s.ldt = kvm_segment{};
  s.ldt.type = 2;
  s.ldt.unusable = 1;
  s.gdt.base = kGdt;
  s.gdt.limit = 7 * 8 - 1;
  s.idt.base = kIdt;
  s.idt.limit = 256 * 16 - 1;
  s.cr0 = cr0::kPE | cr0::kMP | cr0::kET | cr0::kNE | cr0::kWP | cr0::kPG;
  s.cr4 = ring3_cr4(cpuid);
  s.cr3 = kPml4;
  s.efer = efer::kLME | efer::kLMA | efer::kSCE;
  vcpu.set_sregs(s);

  kvm_regs r{};
  r.rip = rip;
  r.rsp = rsp;
  r.rdi = rdi;
  r.rflags = rflags::kFixed | rflags::kIopl3;
  vcpu.set_regs(r);

  kvm_fpu f{};
  f.fcw = 0x37F;
  f.mxcsr = 0x1F80;
  vcpu.set_fpu(f);

  vcpu.set_msrs({
      {msr::kStar, 0, (std::uint64_t(0x10) << 48) | (std::uint64_t(kKernelCs) << 32)},
      {msr::kLstar, 0, kSyscallStub},
      {msr::kFmask, 0, rflags::kTF | rflags::kIF | rflags::kDF | rflags::kAC},
  });
}

}  // namespace unifn::vmm
