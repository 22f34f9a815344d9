// Decoder for the few x86-64 instructions a sandboxed guest faults on when it touches a device
// (mov, movzx/movsx, in/out).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "vmm/platform/regs.h"

namespace unifn::vmm {

struct DecodedAccess {
  enum class Kind { MemRead, MemWrite, PortIn, PortOut } kind;
  unsigned length = 0;  // bytes of the whole instruction, prefixes included
  unsigned size = 0;    // access width in bytes: 1, 2, 4 or 8
  // Register operand (MemRead destination, MemWrite source, PortIn destination al/ax/eax, PortOut
  // source): x86 number. For ah/ch/dh/bh it is the full register that holds the byte (0-3), so
  // regs.gpr(reg) always names the right register.
  unsigned reg = 0;
  bool high_byte = false;  // 8-bit ah/ch/dh/bh (reg 4-7 without a REX prefix)
  bool has_imm = false;    // MemWrite of an immediate (C6/C7)
  std::uint64_t imm = 0;   // already sign-extended to `size` bytes for C7 with REX.W
  enum class Extend { None, Zero, Sign } extend = Extend::None;  // movzx / movsx loads
  unsigned dest_size =
      0;  // for movzx/movsx: the destination register width (2, 4 or 8); else == size
  bool port_in_dx = false;  // in/out with the port in dx; else `port` holds the imm8
  std::uint16_t port = 0;
};

// Decodes the instruction at the start of `code` (up to 15 bytes; fewer if the page ends). nullopt
// for anything it does not handle; the caller then reports the fault as the guest's.
std::optional<DecodedAccess> decode_access(std::span<const std::uint8_t> code);

// The bytes a MemWrite/PortOut stores, taken from regs (or the immediate), little-endian in
// out[0..size).
void access_source(const DecodedAccess& a, GuestRegs& regs, std::uint8_t out[8]);

// Completes a MemRead/PortIn: writes `data` (size bytes, little-endian) into the destination
// register with x86 rules: 32-bit results zero the upper half, 8/16-bit results keep the other
// bits, movzx/movsx extend to dest_size; high_byte writes bits 8-15.
void complete_load(const DecodedAccess& a, GuestRegs& regs, const std::uint8_t data[8]);

}  // namespace unifn::vmm
