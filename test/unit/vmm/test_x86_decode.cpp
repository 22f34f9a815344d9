// x86 decoder of the sandbox platform: instruction lengths, operands and register effects of
// faulting accesses. Byte sequences come from GNU as + objdump -d; the instruction is in the
// comment beside each.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "vmm/platform/sandbox/x86_decode.h"

using unifn::vmm::decode_access;
using unifn::vmm::DecodedAccess;
using unifn::vmm::GuestRegs;
using Kind = DecodedAccess::Kind;
using Extend = DecodedAccess::Extend;
using Bytes = std::vector<std::uint8_t>;

namespace {

std::optional<DecodedAccess> dec(const Bytes& b) {
  return decode_access(std::span(b.data(), b.size()));
}

// Decodes and checks the parts every test looks at; trailing bytes after the instruction must not
// matter.
DecodedAccess must(const Bytes& b, Kind kind, unsigned size) {
  auto a = dec(b);
  REQUIRE(a);
  CHECK(a->kind == kind);
  CHECK(a->length == b.size());
  CHECK(a->size == size);
  Bytes padded = b;
  padded.insert(padded.end(), {0x90, 0x90, 0x90, 0x90});
  auto p = dec(padded);
  REQUIRE(p);
  CHECK(p->length == b.size());
  return *a;
}

std::uint64_t source(const DecodedAccess& a, GuestRegs& regs) {
  std::uint8_t out[8];
  for (auto& o : out) o = 0xcc;
  unifn::vmm::access_source(a, regs, out);
  std::uint64_t v = 0;
  for (unsigned i = 0; i < 8; ++i) v |= std::uint64_t{out[i]} << (8 * i);
  for (unsigned i = a.size; i < 8; ++i) CHECK(out[i] == 0);  // nothing past size
  return v;
}

void load(const DecodedAccess& a, GuestRegs& regs, std::uint64_t value) {
  std::uint8_t data[8];
  for (unsigned i = 0; i < 8; ++i) data[i] = static_cast<std::uint8_t>(value >> (8 * i));
  unifn::vmm::complete_load(a, regs, data);
}

// Every register set to a distinct pattern, so a write to the wrong one shows.
GuestRegs patterned() {
  GuestRegs r;
  for (unsigned n = 0; n < 16; ++n) r.gpr(n) = 0x1111111111111111ull * ((n % 15) + 1) + n;
  return r;
}

// Checks that only register n changed, to `want`.
void only_changed(const GuestRegs& before, GuestRegs after, unsigned n, std::uint64_t want) {
  GuestRegs b = before;
  for (unsigned i = 0; i < 16; ++i) {
    if (i == n) {
      CHECK(after.gpr(i) == want);
    } else {
      CHECK(after.gpr(i) == b.gpr(i));
    }
  }
}

}  // namespace

TEST_CASE("mov stores (89) of 16, 32 and 64 bits, with REX.R and REX.B") {
  GuestRegs r = patterned();
  r.rax = 0x8877665544332211;
  r.r9 = 0x0102030405060708;
  r.rcx = 0xdeadbeefcafef00d;

  auto a = must({0x89, 0x07}, Kind::MemWrite, 4);  // mov %eax,(%rdi)
  CHECK(a.reg == 0);
  CHECK_FALSE(a.has_imm);
  CHECK(a.dest_size == 4);
  CHECK(source(a, r) == 0x44332211);

  a = must({0x48, 0x89, 0x07}, Kind::MemWrite, 8);  // mov %rax,(%rdi)
  CHECK(a.reg == 0);
  CHECK(source(a, r) == 0x8877665544332211);

  a = must({0x4c, 0x89, 0x0f}, Kind::MemWrite, 8);  // mov %r9,(%rdi)
  CHECK(a.reg == 9);
  CHECK(source(a, r) == 0x0102030405060708);

  a = must({0x41, 0x89, 0x08}, Kind::MemWrite,
           4);  // mov %ecx,(%r8): REX.B names the base, not the source
  CHECK(a.reg == 1);
  CHECK(source(a, r) == 0xcafef00d);

  a = must({0x66, 0x89, 0x07}, Kind::MemWrite, 2);  // mov %ax,(%rdi)
  CHECK(a.reg == 0);
  CHECK(source(a, r) == 0x2211);

  a = must({0x4f, 0x89, 0x74, 0xec, 0xf8}, Kind::MemWrite, 8);  // mov %r14,-0x8(%r12,%r13,8)
  CHECK(a.reg == 14);
}

TEST_CASE("mov byte stores (88): low bytes, ah-bh without REX, sil and r10b with REX") {
  GuestRegs r = patterned();
  r.rax = 0x1234;
  r.rbx = 0xabcd;
  r.rsi = 0x5e;
  r.r10 = 0x77;

  auto a = must({0x88, 0x07}, Kind::MemWrite, 1);  // mov %al,(%rdi)
  CHECK(a.reg == 0);
  CHECK_FALSE(a.high_byte);
  CHECK(source(a, r) == 0x34);

  a = must({0x88, 0x27}, Kind::MemWrite, 1);  // mov %ah,(%rdi)
  CHECK(a.high_byte);
  CHECK(a.reg == 0);
  CHECK(source(a, r) == 0x12);

  a = must({0x88, 0x3e}, Kind::MemWrite, 1);  // mov %bh,(%rsi)
  CHECK(a.high_byte);
  CHECK(a.reg == 3);
  CHECK(source(a, r) == 0xab);

  a = must({0x40, 0x88, 0x37}, Kind::MemWrite,
           1);  // mov %sil,(%rdi): the empty REX makes encoding 6 sil, not dh
  CHECK_FALSE(a.high_byte);
  CHECK(a.reg == 6);
  CHECK(source(a, r) == 0x5e);

  a = must({0x44, 0x88, 0x17}, Kind::MemWrite, 1);  // mov %r10b,(%rdi)
  CHECK_FALSE(a.high_byte);
  CHECK(a.reg == 10);
  CHECK(source(a, r) == 0x77);
}

TEST_CASE("mov loads (8A/8B) follow x86 register-write rules") {
  const GuestRegs before = patterned();

  SECTION("8-bit load keeps the other bits") {
    auto a = must({0x8a, 0x07}, Kind::MemRead, 1);  // mov (%rdi),%al
    GuestRegs r = before;
    load(a, r, 0xa5);
    only_changed(before, r, 0, (before.rax & ~0xffull) | 0xa5);
  }
  SECTION("high-byte load writes bits 8-15") {
    auto a = must({0x8a, 0x2f}, Kind::MemRead, 1);  // mov (%rdi),%ch
    CHECK(a.high_byte);
    CHECK(a.reg == 1);
    GuestRegs r = before;
    load(a, r, 0x5a);
    only_changed(before, r, 1, (before.rcx & ~0xff00ull) | 0x5a00);
  }
  SECTION("32-bit load zeroes the upper half") {
    auto a = must({0x8b, 0x07}, Kind::MemRead, 4);  // mov (%rdi),%eax
    GuestRegs r = before;
    load(a, r, 0xffffffff80000001);  // bytes past size are ignored
    only_changed(before, r, 0, 0x80000001);
  }
  SECTION("64-bit load") {
    auto a = must({0x48, 0x8b, 0x17}, Kind::MemRead, 8);  // mov (%rdi),%rdx
    CHECK(a.reg == 2);
    GuestRegs r = before;
    load(a, r, 0x0123456789abcdef);
    only_changed(before, r, 2, 0x0123456789abcdef);
  }
  SECTION("64-bit load into r15") {
    auto a = must({0x4c, 0x8b, 0x3f}, Kind::MemRead, 8);  // mov (%rdi),%r15
    CHECK(a.reg == 15);
    GuestRegs r = before;
    load(a, r, 42);
    only_changed(before, r, 15, 42);
  }
  SECTION("16-bit load into r11w keeps bits 16-63") {
    auto a = must({0x66, 0x44, 0x8b, 0x1f}, Kind::MemRead, 2);  // mov (%rdi),%r11w
    CHECK(a.reg == 11);
    GuestRegs r = before;
    load(a, r, 0xbeef);
    only_changed(before, r, 11, (before.r11 & ~0xffffull) | 0xbeef);
  }
  SECTION("32-bit load into r11d via an SIB with REX.X and REX.R") {
    auto a = must({0x46, 0x8b, 0x1c, 0x48}, Kind::MemRead, 4);  // mov (%rax,%r9,2),%r11d
    CHECK(a.reg == 11);
    GuestRegs r = before;
    load(a, r, 7);
    only_changed(before, r, 11, 7);
  }
}

TEST_CASE("ModRM, SIB and displacement lengths") {
  auto len = [](const Bytes& b) {
    auto a = dec(b);
    REQUIRE(a);
    CHECK(a->kind == Kind::MemRead);
    CHECK(a->size == 4);
    return a->length;
  };
  CHECK(len({0x8b, 0x77, 0x10}) == 3);                    // mov 0x10(%rdi),%esi: disp8
  CHECK(len({0x8b, 0xb7, 0x78, 0x56, 0x34, 0x12}) == 6);  // mov 0x12345678(%rdi),%esi: disp32
  CHECK(len({0x8b, 0x0c, 0x98}) == 3);                    // mov (%rax,%rbx,4),%ecx: SIB
  CHECK(len({0x8b, 0x4c, 0x98, 0x08}) == 4);              // mov 0x8(%rax,%rbx,4),%ecx: SIB + disp8
  CHECK(len({0x8b, 0x8c, 0x98, 0x00, 0x10, 0x00, 0x00}) ==
        7);  // mov 0x1000(%rax,%rbx,4),%ecx: SIB + disp32
  CHECK(len({0x8b, 0x0c, 0x9d, 0x00, 0x10, 0x00, 0x00}) ==
        7);  // mov 0x1000(,%rbx,4),%ecx: SIB, no base
  // REX.B does not turn the no-base SIB into r13: still disp32 (objdump: mov 0x1000(,%rbx,4),%ecx).
  CHECK(len({0x41, 0x8b, 0x0c, 0x9d, 0x00, 0x10, 0x00, 0x00}) == 8);
  CHECK(len({0x8b, 0x04, 0x24}) == 3);        // mov (%rsp),%eax: rm 100 always means SIB
  CHECK(len({0x41, 0x8b, 0x04, 0x24}) == 4);  // mov (%r12),%eax
  CHECK(len({0x41, 0x8b, 0x45, 0x00}) == 4);  // mov 0x0(%r13),%eax: r13 needs a disp8
  CHECK(len({0x8b, 0x45, 0x00}) == 3);        // mov 0x0(%rbp),%eax
  CHECK(len({0x8b, 0x05, 0x00, 0x01, 0x00, 0x00}) == 6);  // mov 0x100(%rip),%eax
  CHECK(len({0x41, 0x8b, 0x05, 0x00, 0x01, 0x00, 0x00}) ==
        7);  // REX.B, still RIP-relative (objdump agrees)
}

TEST_CASE("mov of an immediate (C6/C7 /0)") {
  GuestRegs r = patterned();

  auto a = must({0xc6, 0x07, 0x7f}, Kind::MemWrite, 1);  // movb $0x7f,(%rdi)
  CHECK(a.has_imm);
  CHECK(a.imm == 0x7f);
  CHECK(source(a, r) == 0x7f);

  a = must({0xc6, 0x07, 0x80}, Kind::MemWrite, 1);  // movb $0x80,(%rdi)
  CHECK(source(a, r) == 0x80);

  a = must({0x66, 0xc7, 0x07, 0x34, 0x12}, Kind::MemWrite, 2);  // movw $0x1234,(%rdi)
  CHECK(a.imm == 0x1234);
  CHECK(source(a, r) == 0x1234);

  a = must({0x66, 0xc7, 0x07, 0x00, 0x80}, Kind::MemWrite, 2);  // movw $0x8000,(%rdi)
  CHECK(source(a, r) == 0x8000);

  a = must({0xc7, 0x07, 0xef, 0xcd, 0xab, 0x89}, Kind::MemWrite, 4);  // movl $0x89abcdef,(%rdi)
  CHECK(a.imm == 0x89abcdef);
  CHECK(source(a, r) == 0x89abcdef);

  a = must({0x48, 0xc7, 0x07, 0xfe, 0xff, 0xff, 0xff}, Kind::MemWrite,
           8);  // movq $0xfffffffffffffffe,(%rdi)
  CHECK(a.imm == 0xfffffffffffffffe);
  CHECK(source(a, r) == 0xfffffffffffffffe);

  a = must({0x48, 0xc7, 0x07, 0xff, 0xff, 0xff, 0x7f}, Kind::MemWrite,
           8);  // movq $0x7fffffff,(%rdi)
  CHECK(a.imm == 0x7fffffff);

  // movl $0x11223344,0x100(%rip): the immediate follows the displacement
  a = must({0xc7, 0x05, 0x00, 0x01, 0x00, 0x00, 0x44, 0x33, 0x22, 0x11}, Kind::MemWrite, 4);
  CHECK(a.imm == 0x11223344);

  // movq $0x12345678,0x40(%rsp)
  a = must({0x48, 0xc7, 0x44, 0x24, 0x40, 0x78, 0x56, 0x34, 0x12}, Kind::MemWrite, 8);
  CHECK(a.imm == 0x12345678);

  CHECK_FALSE(dec({0xc6, 0x0f, 0x00}));                    // C6 /1: objdump says (bad)
  CHECK_FALSE(dec({0xc7, 0xc0, 0x01, 0x00, 0x00, 0x00}));  // mov $1,%eax: no memory operand
}

TEST_CASE("movzx and movsx loads extend to the destination width") {
  const GuestRegs before = patterned();
  struct Case {
    Bytes bytes;
    const char* text;
    unsigned size, dest_size, reg;
    Extend extend;
    std::uint64_t data, want;  // want: the full 64-bit register afterwards
  };
  const std::uint64_t rax = before.rax;
  const Case cases[] = {
      {{0x0f, 0xb6, 0x07}, "movzbl (%rdi),%eax", 1, 4, 0, Extend::Zero, 0xf0, 0xf0},
      {{0x66, 0x0f, 0xb6, 0x07},
       "movzbw (%rdi),%ax",
       1,
       2,
       0,
       Extend::Zero,
       0xf0,
       (rax & ~0xffffull) | 0x00f0},
      {{0x4c, 0x0f, 0xb6, 0x07}, "movzbq (%rdi),%r8", 1, 8, 8, Extend::Zero, 0xff, 0xff},
      {{0x0f, 0xb7, 0x0f}, "movzwl (%rdi),%ecx", 2, 4, 1, Extend::Zero, 0x8001, 0x8001},
      {{0x48, 0x0f, 0xb7, 0x0f}, "movzwq (%rdi),%rcx", 2, 8, 1, Extend::Zero, 0xffff, 0xffff},
      {{0x0f, 0xbe, 0x07}, "movsbl (%rdi),%eax", 1, 4, 0, Extend::Sign, 0x80, 0xffffff80},
      {{0x0f, 0xbe, 0x07}, "movsbl (%rdi),%eax", 1, 4, 0, Extend::Sign, 0x7f, 0x7f},
      {{0x66, 0x0f, 0xbe, 0x07},
       "movsbw (%rdi),%ax",
       1,
       2,
       0,
       Extend::Sign,
       0xfe,
       (rax & ~0xffffull) | 0xfffe},
      {{0x4c, 0x0f, 0xbe, 0x0f},
       "movsbq (%rdi),%r9",
       1,
       8,
       9,
       Extend::Sign,
       0x80,
       0xffffffffffffff80},
      {{0x0f, 0xbf, 0x17}, "movswl (%rdi),%edx", 2, 4, 2, Extend::Sign, 0x8000, 0xffff8000},
      {{0x48, 0x0f, 0xbf, 0x17},
       "movswq (%rdi),%rdx",
       2,
       8,
       2,
       Extend::Sign,
       0x8000,
       0xffffffffffff8000},
      {{0x48, 0x0f, 0xbf, 0x17}, "movswq (%rdi),%rdx", 2, 8, 2, Extend::Sign, 0x7fff, 0x7fff},
      {{0x44, 0x0f, 0xb6, 0x65, 0x7f},
       "movzbl 0x7f(%rbp),%r12d",
       1,
       4,
       12,
       Extend::Zero,
       0x99,
       0x99},
  };
  for (const auto& c : cases) {
    INFO(c.text << " data 0x" << std::hex << c.data);
    auto a = must(c.bytes, Kind::MemRead, c.size);
    CHECK(a.dest_size == c.dest_size);
    CHECK(a.reg == c.reg);
    CHECK(a.extend == c.extend);
    CHECK_FALSE(a.high_byte);
    GuestRegs r = before;
    load(a, r, c.data | 0xabcdef0000000000);  // bytes past size are ignored
    only_changed(before, r, c.reg, c.want);
  }
  CHECK_FALSE(dec({0x0f, 0xb6, 0xc1}));  // movzbl %cl,%eax: register source
}

TEST_CASE("mov with a 64-bit absolute address (A0-A3)") {
  const Bytes addr = {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11};  // 0x1122334455667788
  auto with = [&](Bytes head) {
    head.insert(head.end(), addr.begin(), addr.end());
    return head;
  };
  auto a = must(with({0xa0}), Kind::MemRead, 1);  // movabs 0x1122334455667788,%al
  CHECK(a.reg == 0);
  CHECK(a.length == 9);
  a = must(with({0xa1}), Kind::MemRead, 4);  // movabs 0x1122334455667788,%eax
  CHECK(a.reg == 0);
  GuestRegs r = patterned();
  load(a, r, 0x12345678);
  CHECK(r.rax == 0x12345678);
  a = must(with({0x48, 0xa1}), Kind::MemRead, 8);  // movabs 0x1122334455667788,%rax
  CHECK(a.length == 10);
  a = must(with({0x66, 0xa1}), Kind::MemRead, 2);  // movabs 0x1122334455667788,%ax
  CHECK(a.length == 10);
  a = must(with({0xa2}), Kind::MemWrite, 1);  // movabs %al,0x1122334455667788
  CHECK(a.reg == 0);
  a = must(with({0xa3}), Kind::MemWrite, 4);        // movabs %eax,0x1122334455667788
  a = must(with({0x48, 0xa3}), Kind::MemWrite, 8);  // movabs %rax,0x1122334455667788
  r.rax = 0xfedcba9876543210;
  CHECK(source(a, r) == 0xfedcba9876543210);
  // addr32 mov 0x11223344,%eax: the address-size prefix shortens moffs to 32 bits
  a = must({0x67, 0xa1, 0x44, 0x33, 0x22, 0x11}, Kind::MemRead, 4);
  CHECK(a.length == 6);
}

TEST_CASE("in and out with an imm8 port or the port in dx") {
  GuestRegs r = patterned();
  const GuestRegs before = r;
  r.rax = 0xffffffffffff1234;

  auto a = must({0xe4, 0x60}, Kind::PortIn, 1);  // in $0x60,%al
  CHECK_FALSE(a.port_in_dx);
  CHECK(a.port == 0x60);
  CHECK(a.reg == 0);
  GuestRegs t = before;
  load(a, t, 0x42);
  only_changed(before, t, 0, (before.rax & ~0xffull) | 0x42);

  a = must({0xe5, 0x71}, Kind::PortIn, 4);  // in $0x71,%eax
  CHECK(a.port == 0x71);
  t = before;
  load(a, t, 0xcafebabe);
  only_changed(before, t, 0, 0xcafebabe);

  a = must({0x66, 0xe5, 0x71}, Kind::PortIn, 2);  // in $0x71,%ax
  CHECK(a.port == 0x71);
  t = before;
  load(a, t, 0xbabe);
  only_changed(before, t, 0, (before.rax & ~0xffffull) | 0xbabe);

  a = must({0xe6, 0x80}, Kind::PortOut, 1);  // out %al,$0x80
  CHECK(a.port == 0x80);
  CHECK(source(a, r) == 0x34);
  a = must({0xe7, 0xf4}, Kind::PortOut, 4);  // out %eax,$0xf4
  CHECK(a.port == 0xf4);
  CHECK(source(a, r) == 0xffff1234);
  a = must({0x66, 0xe7, 0xf4}, Kind::PortOut, 2);  // out %ax,$0xf4
  CHECK(source(a, r) == 0x1234);

  a = must({0xec}, Kind::PortIn, 1);  // in (%dx),%al
  CHECK(a.port_in_dx);
  CHECK(a.reg == 0);
  a = must({0x66, 0xed}, Kind::PortIn, 2);  // in (%dx),%ax
  CHECK(a.port_in_dx);
  a = must({0xed}, Kind::PortIn, 4);  // in (%dx),%eax
  CHECK(a.port_in_dx);
  a = must({0x48, 0xed}, Kind::PortIn, 4);  // rex.W in (%dx),%eax: REX.W does not widen in/out
  a = must({0xee}, Kind::PortOut, 1);       // out %al,(%dx)
  CHECK(a.port_in_dx);
  CHECK(source(a, r) == 0x34);
  a = must({0x66, 0xef}, Kind::PortOut, 2);  // out %ax,(%dx)
  CHECK(source(a, r) == 0x1234);
  a = must({0xef}, Kind::PortOut, 4);  // out %eax,(%dx)
  CHECK(a.port_in_dx);
  CHECK(source(a, r) == 0xffff1234);
}

TEST_CASE("Segment, address-size and misplaced REX prefixes") {
  auto a = must({0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00}, Kind::MemRead,
                8);  // mov %fs:0x28,%rax
  CHECK(a.reg == 0);
  a = must({0x65, 0x89, 0x07}, Kind::MemWrite, 4);       // mov %eax,%gs:(%rdi)
  a = must({0x3e, 0x89, 0x07}, Kind::MemWrite, 4);       // ds mov %eax,(%rdi)
  a = must({0x36, 0x8b, 0x1c, 0x24}, Kind::MemRead, 4);  // ss mov (%rsp),%ebx
  CHECK(a.reg == 3);
  a = must({0x26, 0x8a, 0x17}, Kind::MemRead, 1);  // es mov (%rdi),%dl
  CHECK(a.reg == 2);
  CHECK_FALSE(a.high_byte);
  a = must({0x67, 0x89, 0x07}, Kind::MemWrite, 4);                   // mov %eax,(%edi)
  a = must({0x2e, 0x4f, 0x8b, 0x54, 0xc8, 0x10}, Kind::MemRead, 8);  // cs mov 0x10(%r8,%r9,8),%r10
  CHECK(a.reg == 10);
  // rex.W then data16: objdump shows the REX apart, then mov %ax,(%rdi). A REX counts only right
  // before the opcode.
  a = must({0x48, 0x66, 0x89, 0x07}, Kind::MemWrite, 2);
  // cs data16 movq $0x12345678,0x100(%esp): 15 bytes, the most x86 allows; REX.W wins over 66.
  a = must(
      {0x2e, 0x66, 0x67, 0x48, 0xc7, 0x84, 0x24, 0x00, 0x01, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12},
      Kind::MemWrite, 8);
  CHECK(a.imm == 0x12345678);
  // One more cs prefix makes it 16 bytes: objdump says (bad).
  CHECK_FALSE(dec({0x2e, 0x2e, 0x66, 0x67, 0x48, 0xc7, 0x84, 0x24, 0x00, 0x01, 0x00, 0x00, 0x78,
                   0x56, 0x34, 0x12}));
}

TEST_CASE("Instructions the decoder does not handle") {
  CHECK_FALSE(dec({0xf3, 0xa4}));              // rep movsb %ds:(%rsi),%es:(%rdi)
  CHECK_FALSE(dec({0xf2, 0x89, 0x07}));        // repne prefix on a mov
  CHECK_FALSE(dec({0xf3, 0x89, 0x07}));        // rep prefix on a mov
  CHECK_FALSE(dec({0x89, 0xc0}));              // mov %eax,%eax
  CHECK_FALSE(dec({0x48, 0x89, 0xc1}));        // mov %rax,%rcx
  CHECK_FALSE(dec({0x8b, 0xc8}));              // mov %eax,%ecx (8B form)
  CHECK_FALSE(dec({0x0f, 0x0b}));              // ud2
  CHECK_FALSE(dec({0xf0, 0x83, 0x07, 0x01}));  // lock addl $0x1,(%rdi)
  CHECK_FALSE(dec({0x83, 0x07, 0x01}));        // addl $0x1,(%rdi)
  CHECK_FALSE(dec({}));
  CHECK_FALSE(dec({0x66, 0x2e, 0x48}));  // prefixes only
}

TEST_CASE("Every truncation of a handled instruction is rejected") {
  const Bytes all[] = {
      {0x89, 0x07},                                                  // mov %eax,(%rdi)
      {0x88, 0x27},                                                  // mov %ah,(%rdi)
      {0x8b, 0xb7, 0x78, 0x56, 0x34, 0x12},                          // mov 0x12345678(%rdi),%esi
      {0x8b, 0x4c, 0x98, 0x08},                                      // mov 0x8(%rax,%rbx,4),%ecx
      {0x8b, 0x0c, 0x9d, 0x00, 0x10, 0x00, 0x00},                    // mov 0x1000(,%rbx,4),%ecx
      {0x8b, 0x05, 0x00, 0x01, 0x00, 0x00},                          // mov 0x100(%rip),%eax
      {0xc7, 0x05, 0x00, 0x01, 0x00, 0x00, 0x44, 0x33, 0x22, 0x11},  // movl $0x11223344,0x100(%rip)
      {0x66, 0xc7, 0x07, 0x34, 0x12},                                // movw $0x1234,(%rdi)
      {0x48, 0xc7, 0x07, 0xfe, 0xff, 0xff, 0xff},                    // movq $-2,(%rdi)
      {0x48, 0x0f, 0xbf, 0x17},                                      // movswq (%rdi),%rdx
      {0x48, 0xa1, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22,
       0x11},                                                  // movabs 0x1122334455667788,%rax
      {0x67, 0xa1, 0x44, 0x33, 0x22, 0x11},                    // addr32 mov 0x11223344,%eax
      {0x66, 0xe5, 0x71},                                      // in $0x71,%ax
      {0x66, 0xef},                                            // out %ax,(%dx)
      {0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00},  // mov %fs:0x28,%rax
  };
  for (const auto& b : all) {
    REQUIRE(dec(b));
    CHECK(dec(b)->length == b.size());
    for (std::size_t n = 0; n < b.size(); ++n) {
      INFO("opcode byte 0x" << std::hex << unsigned{b[0]} << ", first " << std::dec << n
                            << " bytes");
      CHECK_FALSE(decode_access(std::span(b.data(), n)));
    }
  }
}
