// The ring-3 boot structures: walks the page tables write_ring3_structures builds, and checks GDT,
// IDT and stubs.
#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>

#include "vmm/memory/guest_memory.h"
#include "vmm/x86/layout.h"
#include "vmm/x86/long_mode.h"

using namespace unifn::vmm;

namespace {
constexpr std::uint64_t kPresent = 1, kWrite = 2, kUser = 4, kHuge = 0x80;
constexpr std::uint64_t kAddrMask = 0x000FFFFFFFFFF000ull;

struct Mapping {
  std::uint64_t phys;
  bool user;           // U/S set at every level
  bool writable;       // R/W set at every level
  unsigned page_size;  // 4096 or 2 MiB
};

// Translates a virtual address the way the MMU would, from CR3 = layout::kPml4.
std::optional<Mapping> walk(const GuestMemory& mem, std::uint64_t va) {
  bool user = true, writable = true;
  std::uint64_t table = layout::kPml4;
  const unsigned shifts[] = {39, 30, 21, 12};
  for (unsigned level = 0; level < 4; ++level) {
    const std::uint64_t index = (va >> shifts[level]) & 511;
    const std::uint64_t e = mem.read_obj<std::uint64_t>(GuestAddr(table + 8 * index));
    if (!(e & kPresent)) return std::nullopt;
    user = user && (e & kUser);
    writable = writable && (e & kWrite);
    if (level == 2 && (e & kHuge)) {
      const std::uint64_t base = e & kAddrMask & ~((2ull << 20) - 1);
      return Mapping{base + (va & ((2ull << 20) - 1)), user, writable, 2u << 20};
    }
    if (level == 3) return Mapping{(e & kAddrMask) + (va & 0xFFF), user, writable, 4096};
    table = e & kAddrMask;
    REQUIRE(mem.contains(GuestAddr(table), 4096));  // every table lives in guest RAM
  }
  return std::nullopt;
}

bool identity_user(const GuestMemory& mem, std::uint64_t va) {
  auto m = walk(mem, va);
  return m && m->phys == va && m->user && m->writable;
}
}  // namespace

TEST_CASE(
    "page tables of a 64 MiB guest: page 0 absent, RAM identity-mapped for ring 3, nothing beyond "
    "but the MMIO window") {
  constexpr std::uint64_t ram = 64ull << 20;
  GuestMemory mem(ram);
  write_ring3_structures(mem);

  CHECK_FALSE(walk(mem, 0).has_value());  // NULL faults
  CHECK_FALSE(walk(mem, 0xFFF).has_value());
  CHECK_FALSE(walk(mem, 0x1000)->user);         // the VMM's pages: see the test below
  CHECK(identity_user(mem, layout::kUserLow));  // 0x10000: boot info
  CHECK(walk(mem, layout::kUserLow)->page_size == 4096);
  CHECK(identity_user(mem, 0x100000));  // the image
  CHECK(identity_user(mem, 0x1FFFFF));  // last 4 KiB page of the first 2 MiB
  CHECK(identity_user(mem, 0x200000));
  CHECK(walk(mem, 0x200000)->page_size == (2u << 20));
  for (std::uint64_t a = 0x200000; a < ram; a += 2ull << 20) {
    INFO("2 MiB page at " << std::hex << a);
    CHECK(identity_user(mem, a));
    CHECK(identity_user(mem, a + 0x1FFFFF));
  }
  CHECK(identity_user(mem, ram - (2ull << 20)));  // the last 2 MiB page of RAM
  CHECK(identity_user(mem, ram - 1));

  CHECK_FALSE(walk(mem, ram).has_value());  // beyond RAM: not mapped
  CHECK_FALSE(walk(mem, ram + (2ull << 20)).has_value());
  CHECK_FALSE(walk(mem, 1ull << 30).has_value());
  CHECK_FALSE(walk(mem, 0xC0000000ull).has_value());
  CHECK_FALSE(walk(mem, 0xCFE00000ull).has_value());
  CHECK(identity_user(mem, 0xD0000000ull));  // except the MMIO window
  CHECK(identity_user(mem, 0xD01FFFFFull));
  CHECK_FALSE(walk(mem, 0xD0200000ull).has_value());
  CHECK_FALSE(walk(mem, 4ull << 30).has_value());
  CHECK_FALSE(walk(mem, 0x00007FFFFFFFF000ull).has_value());
  CHECK_FALSE(walk(mem, 0xFFFFFFFFFFFFF000ull).has_value());
}

TEST_CASE(
    "the VMM's pages are supervisor-only: GDT, IDT and stubs read-only, the ring-0 stack writable, "
    "the rest unmapped") {
  GuestMemory mem(16 << 20);
  write_ring3_structures(mem);
  struct Expect {
    std::uint64_t addr;
    const char* what;
    bool mapped, writable;
  };
  const Expect pages[] = {
      {layout::kGdt, "GDT", true, false},
      {layout::kTss, "TSS", true, false},
      {layout::kIdt, "IDT", true, false},
      {layout::kStubs, "stubs", true, false},
      {layout::kSyscallStub, "LSTAR", true, false},
      {layout::kExceptionStubs, "exception stubs", true, false},
      {layout::kRing0Stack, "ring-0 stack", true, true},
      {layout::kRing0StackTop - 8, "top of the ring-0 stack", true, true},
      {0x6000, "unused", false, false},
      {0x7000, "unused", false, false},
      {layout::kPml4, "PML4", false, false},
      {layout::kPdpt, "PDPT", false, false},
      {layout::kPd, "PD", false, false},
      {layout::kPd + 0x3000, "PD of the MMIO window", false, false},
      {layout::kPt0, "PT of the first 2 MiB", false, false},
      {0xF000, "after the page tables", false, false},
  };
  for (const auto& p : pages) {
    INFO(p.what << " at " << std::hex << p.addr);
    auto m = walk(mem, p.addr);
    CHECK(m.has_value() == p.mapped);
    if (!m) continue;
    CHECK(m->phys == p.addr);
    CHECK_FALSE(m->user);  // ring 3 can neither read, write nor run it
    CHECK(m->writable == p.writable);
  }
  // Every page below kUserLow is one of those; every page from it on is ring 3's.
  for (std::uint64_t a = 0x1000; a < layout::kUserLow; a += 0x1000) {
    INFO(std::hex << a);
    auto m = walk(mem, a);
    if (m) CHECK_FALSE(m->user);
    CHECK(vmm_page_flags(a) == (m ? (m->writable ? 3u : 1u) : 0u));
  }
  CHECK(identity_user(mem, layout::kUserLow));
  CHECK(identity_user(mem, layout::kUserLow - 1 + 0x1000));
}

TEST_CASE(
    "the VMM's pages are checked against what this VMM writes, but for the MMU's accessed and "
    "dirty bits") {
  GuestMemory mem(16 << 20);
  write_ring3_structures(mem);
  CHECK_FALSE(ring3_structures_differ(mem).has_value());
  // The MMU sets accessed and dirty bits in the tables as the guest runs: still the same.
  const GuestAddr pt_stub(layout::kPt0 + 8 * (layout::kStubs >> 12));
  const std::uint64_t entry = mem.read_obj<std::uint64_t>(pt_stub);
  mem.write_obj<std::uint64_t>(pt_stub, entry | 0x60);
  mem.write_obj<std::uint64_t>(GuestAddr(layout::kPml4),
                               mem.read_obj<std::uint64_t>(GuestAddr(layout::kPml4)) | 0x20);
  mem.write_obj<std::uint64_t>(GuestAddr(layout::kRing0StackTop - 8),
                               0x1234);  // an exception frame
  CHECK_FALSE(ring3_structures_differ(mem).has_value());
  // An older unifnd's user-writable stub page is not.
  mem.write_obj<std::uint64_t>(pt_stub, entry | 6);
  auto why = ring3_structures_differ(mem);
  REQUIRE(why.has_value());
  CHECK_THAT(*why, Catch::Contains("0xe018"));
  mem.write_obj<std::uint64_t>(pt_stub, entry);
  // Nor is a changed stub, gate or descriptor.
  for (std::uint64_t a : {layout::kSyscallStub, layout::kIdt + 16 * 14 + 5, layout::kGdt + 0x20 + 5,
                          layout::kTss + 4}) {
    INFO(std::hex << a);
    const auto old = mem.read_obj<std::uint8_t>(GuestAddr(a));
    mem.write_obj<std::uint8_t>(GuestAddr(a), old ^ 0x60);
    CHECK(ring3_structures_differ(mem).has_value());
    mem.write_obj<std::uint8_t>(GuestAddr(a), old);
  }
  CHECK_FALSE(ring3_structures_differ(mem).has_value());
}

TEST_CASE("page tables of a 1 MiB guest map no 4 KiB page past RAM") {
  GuestMemory mem(1 << 20);
  write_ring3_structures(mem);
  CHECK(identity_user(mem, 0xFF000));
  CHECK_FALSE(walk(mem, 0x100000).has_value());
  CHECK_FALSE(walk(mem, 0x1FF000).has_value());
  CHECK(identity_user(mem, 0xD0000000ull));
}

TEST_CASE("page tables of the largest guest (3 GiB) map all of it and keep the MMIO window apart") {
  constexpr std::uint64_t ram = 3072ull << 20;
  GuestMemory mem(ram);  // reserved, not touched: only the table pages get written
  write_ring3_structures(mem);
  CHECK(identity_user(mem, 0x40000000ull));
  CHECK(identity_user(mem, 0x80000000ull));
  CHECK(identity_user(mem, ram - (2ull << 20)));
  CHECK(identity_user(mem, ram - 1));
  CHECK_FALSE(walk(mem, ram).has_value());
  CHECK(identity_user(mem, 0xD0000000ull));
  CHECK_FALSE(walk(mem, 0xD0200000ull).has_value());
}

TEST_CASE("GDT, IDT and ring-0 stubs") {
  GuestMemory mem(16 << 20);
  write_ring3_structures(mem);
  auto desc = [&](std::uint16_t sel) {
    return mem.read_obj<std::uint64_t>(GuestAddr(layout::kGdt + (sel & ~7u)));
  };
  auto access = [](std::uint64_t d) { return static_cast<unsigned>((d >> 40) & 0xFF); };
  auto long_mode = [](std::uint64_t d) { return ((d >> 53) & 1) != 0; };
  CHECK(desc(0) == 0);
  // Accessed bits preset: the GDT's page is read-only, the CPU must never need to write it.
  CHECK(access(desc(layout::kKernelCs)) == 0x9B);
  CHECK(long_mode(desc(layout::kKernelCs)));
  CHECK(access(desc(layout::kKernelDs)) == 0x93);
  CHECK(access(desc(layout::kUserCs)) == 0xFB);  // present, DPL 3, code
  CHECK(long_mode(desc(layout::kUserCs)));
  CHECK(access(desc(layout::kUserDs)) == 0xF3);  // present, DPL 3, data
  CHECK(access(desc(layout::kTssSel)) == 0x89);  // available 64-bit TSS
  CHECK(mem.read_obj<std::uint64_t>(GuestAddr(layout::kTss + 4)) ==
        layout::kRing0StackTop);  // RSP0

  // The syscall stub at LSTAR: out %al, $kSyscallPort.
  CHECK(mem.read_obj<std::uint8_t>(GuestAddr(layout::kSyscallStub)) == 0xE6);
  CHECK(mem.read_obj<std::uint8_t>(GuestAddr(layout::kSyscallStub + 1)) == layout::kSyscallPort);
  for (unsigned v = 0; v < 32; ++v) {
    INFO("vector " << v);
    const std::uint64_t stub = layout::kExceptionStubs + 8 * v;
    CHECK(mem.read_obj<std::uint8_t>(GuestAddr(stub)) == 0xE6);
    CHECK(mem.read_obj<std::uint8_t>(GuestAddr(stub + 1)) == layout::kExceptionPortBase + v);
    const std::uint64_t gate_lo = mem.read_obj<std::uint64_t>(GuestAddr(layout::kIdt + 16 * v));
    const std::uint64_t gate_hi = mem.read_obj<std::uint64_t>(GuestAddr(layout::kIdt + 16 * v + 8));
    const std::uint64_t target =
        (gate_lo & 0xFFFF) | (((gate_lo >> 48) & 0xFFFF) << 16) | ((gate_hi & 0xFFFFFFFF) << 32);
    CHECK(target == stub);
    CHECK(((gate_lo >> 16) & 0xFFFF) == layout::kKernelCs);
    CHECK(((gate_lo >> 40) & 0xFF) == 0x8E);  // present, DPL 0: `int n` from ring 3 cannot reach it
  }
}
