// Decoding of faulting mov/movzx/movsx/in/out instructions and applying their register effects.
#include "vmm/platform/sandbox/x86_decode.h"

#include <algorithm>

namespace unifn::vmm {

namespace {

constexpr std::size_t kMaxInstruction = 15;  // longer encodings raise #GP on hardware

// Bounds-checked reader over the instruction bytes: every read past the end marks it truncated.
struct Reader {
  std::span<const std::uint8_t> code;
  std::size_t pos = 0;
  bool truncated = false;

  std::uint8_t byte() {
    if (pos >= code.size()) {
      truncated = true;
      return 0;
    }
    return code[pos++];
  }
  std::uint64_t le(unsigned n) {
    std::uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) v |= std::uint64_t{byte()} << (8 * i);
    return v;
  }
  void skip(unsigned n) {
    if (code.size() - std::min(pos, code.size()) < n) truncated = true;
    pos += n;
  }
};

std::uint64_t sign_extend(std::uint64_t v, unsigned bytes) {
  if (bytes >= 8) return v;
  const unsigned shift = 64 - 8 * bytes;
  return static_cast<std::uint64_t>(static_cast<std::int64_t>(v << shift) >> shift);
}

std::uint64_t low_bytes(std::uint64_t v, unsigned bytes) {
  return bytes >= 8 ? v : v & ((std::uint64_t{1} << (8 * bytes)) - 1);
}

// Writes an x86 register result of `width` bytes: 32-bit writes clear bits 32-63, narrower ones
// keep them.
void write_reg(std::uint64_t& r, std::uint64_t v, unsigned width) {
  switch (width) {
    case 8:
      r = v;
      break;
    case 4:
      r = v & 0xffffffffu;
      break;
    case 2:
      r = (r & ~std::uint64_t{0xffff}) | (v & 0xffff);
      break;
    default:
      r = (r & ~std::uint64_t{0xff}) | (v & 0xff);
      break;
  }
}

}  // namespace

std::optional<DecodedAccess> decode_access(std::span<const std::uint8_t> code) {
  Reader in{code.first(std::min(code.size(), kMaxInstruction))};

  bool opsize16 = false, addr32 = false;
  std::uint8_t rex = 0;
  std::uint8_t op = 0;
  for (bool prefix = true; prefix;) {
    op = in.byte();
    if (in.truncated) return std::nullopt;
    if (op >= 0x40 && op <= 0x4f) {
      rex = op;  // only counts if the opcode follows; a later legacy prefix clears it below
      continue;
    }
    switch (op) {
      case 0x66:
        opsize16 = true;
        break;
      case 0x67:
        addr32 = true;
        break;
      case 0x2e:
      case 0x36:
      case 0x3e:
      case 0x26:
      case 0x64:
      case 0x65:
        break;
      // rep/repne string ops and lock are not emulated.
      case 0xf2:
      case 0xf3:
      case 0xf0:
        return std::nullopt;
      default:
        prefix = false;
        continue;
    }
    rex = 0;  // hardware ignores a REX that a legacy prefix follows
  }
  const bool rex_w = rex & 8, rex_r = rex & 4;
  const unsigned opsize = rex_w ? 8 : opsize16 ? 2 : 4;

  DecodedAccess a{};
  a.kind = DecodedAccess::Kind::MemRead;

  // ModRM memory operand: reads ModRM, SIB and displacement; returns the reg field, or nothing
  // for a register operand (mod 3) since that is no memory access.
  auto modrm = [&]() -> std::optional<unsigned> {
    const std::uint8_t m = in.byte();
    const unsigned mod = m >> 6, reg = (m >> 3) & 7, rm = m & 7;
    if (mod == 3) return std::nullopt;
    unsigned disp = mod == 1 ? 1 : mod == 2 ? 4 : 0;
    if (rm == 4) {
      const std::uint8_t sib = in.byte();
      if (mod == 0 && (sib & 7) == 5) disp = 4;  // no base: disp32
    } else if (mod == 0 && rm == 5) {
      disp = 4;  // RIP-relative
    }
    in.skip(disp);
    return reg;
  };
  // The register operand of an r/m form, with REX.R; 8-bit ah-bh exist only without REX.
  auto set_reg = [&](unsigned reg, unsigned width) {
    if (width == 1 && rex == 0 && reg >= 4) {
      a.reg = reg - 4;
      a.high_byte = true;
    } else {
      a.reg = reg | (rex_r ? 8 : 0);
    }
  };

  switch (op) {
    case 0x88:
    case 0x89:
    case 0x8a:
    case 0x8b: {
      const auto reg = modrm();
      if (!reg) return std::nullopt;
      a.kind = op <= 0x89 ? DecodedAccess::Kind::MemWrite : DecodedAccess::Kind::MemRead;
      a.size = (op & 1) ? opsize : 1;
      set_reg(*reg, a.size);
      break;
    }
    case 0xc6:
    case 0xc7: {
      const auto reg = modrm();
      if (!reg || *reg != 0) return std::nullopt;  // C6/C7 /0 only; the rest are xabort/xbegin
      a.kind = DecodedAccess::Kind::MemWrite;
      a.has_imm = true;
      a.size = op == 0xc6 ? 1 : opsize;
      const unsigned imm_bytes = a.size == 8 ? 4 : a.size;  // no imm64 form: imm32 sign-extends
      a.imm = in.le(imm_bytes);
      if (a.size == 8) a.imm = sign_extend(a.imm, 4);
      break;
    }
    case 0x0f: {
      const std::uint8_t op2 = in.byte();
      if (op2 != 0xb6 && op2 != 0xb7 && op2 != 0xbe && op2 != 0xbf) return std::nullopt;
      const auto reg = modrm();
      if (!reg) return std::nullopt;
      a.kind = DecodedAccess::Kind::MemRead;
      a.size = (op2 & 1) ? 2 : 1;
      a.extend = op2 < 0xbe ? DecodedAccess::Extend::Zero : DecodedAccess::Extend::Sign;
      a.dest_size = opsize;
      a.reg = *reg | (rex_r ? 8 : 0);
      break;
    }
    case 0xa0:
    case 0xa1:
    case 0xa2:
    case 0xa3:
      // mov with an absolute address: 64-bit moffs, or 32-bit under the 0x67 prefix.
      a.kind = op <= 0xa1 ? DecodedAccess::Kind::MemRead : DecodedAccess::Kind::MemWrite;
      a.size = (op & 1) ? opsize : 1;
      a.reg = 0;
      in.skip(addr32 ? 4 : 8);
      break;
    case 0xe4:
    case 0xe5:
    case 0xe6:
    case 0xe7:
    case 0xec:
    case 0xed:
    case 0xee:
    case 0xef:
      a.kind = (op & 2) ? DecodedAccess::Kind::PortOut : DecodedAccess::Kind::PortIn;
      a.size = (op & 1) ? (opsize16 ? 2 : 4) : 1;  // REX.W does not widen in/out
      a.reg = 0;
      a.port_in_dx = op >= 0xec;
      if (!a.port_in_dx) a.port = in.byte();
      break;
    default:
      return std::nullopt;
  }
  if (in.truncated) return std::nullopt;
  a.length = static_cast<unsigned>(in.pos);
  if (a.dest_size == 0) a.dest_size = a.size;
  return a;
}

void access_source(const DecodedAccess& a, GuestRegs& regs, std::uint8_t out[8]) {
  std::uint64_t v = a.has_imm ? a.imm : regs.gpr(a.reg) >> (a.high_byte ? 8 : 0);
  for (unsigned i = 0; i < 8; ++i)
    out[i] = i < a.size ? static_cast<std::uint8_t>(v >> (8 * i)) : 0;
}

void complete_load(const DecodedAccess& a, GuestRegs& regs, const std::uint8_t data[8]) {
  std::uint64_t v = 0;
  for (unsigned i = 0; i < a.size && i < 8; ++i) v |= std::uint64_t{data[i]} << (8 * i);
  std::uint64_t& r = regs.gpr(a.reg);
  if (a.high_byte) {
    r = (r & ~std::uint64_t{0xff00}) | ((v & 0xff) << 8);
    return;
  }
  switch (a.extend) {
    case DecodedAccess::Extend::None:
      write_reg(r, v, a.size);
      break;
    case DecodedAccess::Extend::Zero:
      write_reg(r, low_bytes(v, a.size), a.dest_size);
      break;
    case DecodedAccess::Extend::Sign:
      write_reg(r, sign_extend(v, a.size), a.dest_size);
      break;
  }
}

}  // namespace unifn::vmm
