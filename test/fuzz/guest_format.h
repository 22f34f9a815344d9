// The guest fuzzer's input: a flags byte, then a program of traps a hostile guest makes. Shared by
// fuzz_guest.cpp (which plays it) and make_fuzz_seeds.cpp (which writes well-formed programs).
//
// Every record starts with its op byte (taken modulo kOpCount); all integers are little-endian.
// Values (addresses, lengths, system call arguments) are 32-bit codes: the top 4 bits choose a
// base the harness knows at run time (the guest's heap, request area, end of RAM, the last mmap
// result...), the low 28 bits an offset, so that a mutation keeps pointing somewhere interesting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <cstring>
#include <vector>

namespace unifn::fuzz::guest {

// The VM the programs run in (the seed generator boots the same one to learn its addresses).
inline constexpr std::size_t kRam = 8u << 20;
inline constexpr std::size_t kMaxBody = 64u << 10;

// flags
inline constexpr std::uint8_t kFlagAccel =
    1;  // a virtio-accel device (reference backend) on the MMIO bus
inline constexpr std::uint8_t kFlagSnapshot =
    2;  // after the first answered request: snapshot, restore, reset per request
inline constexpr std::uint8_t kBodyShift =
    2;  // bits 2-3: the request body (16 B, 4 KiB, empty, 70000 B)

enum Op : std::uint8_t {
  kPoke = 0,  // u32 addr, u8 n, n bytes: the guest writes its memory
  kHypercall =
      1,         // u8 nr, u8 access, u32 where, u32 f[7]: the argument struct at `where`, then outl
  kSyscall = 2,  // u16 nr, u32 arg[6]: a Linux system call
  kException =
      3,  // u8 vector, u8 which (1 error code, 2 rip, 4 address), u32 error, u32 rip, u32 address
  kMmio = 4,  // u8 size, u8 write, u32 addr, u32 value: an access on the MMIO bus
  kPort = 5,  // u16 port, u8 size, u8 write, u32 value: any port
  kStop = 6,  // u8 kind: run() returns without a trap (a timeout, a cancel, a halt, a crash)
  kOpCount
};

// hypercall access bits
inline constexpr std::uint8_t kAccessRead = 1;   // inl instead of outl
inline constexpr std::uint8_t kAccessShort = 2;  // a 1- or 2-byte access

// Value codes: (mode << 28) | offset.
enum Mode : std::uint32_t {
  kSmall = 0,      // offset & 0xFFFF
  kNegative = 1,   // -(offset & 0xFFFF)
  kScratch = 2,    // the guest's heap start + offset (where the harness's structs live)
  kIoBuf = 3,      // the request/response area + offset
  kHeap = 4,       // heap start + offset, page-aligned down
  kHeapEnd = 5,    // heap end - offset
  kRamEnd = 6,     // RAM size - offset
  kRaw = 7,        // offset
  kPages = 8,      // offset * 4096
  kPow2 = 9,       // 1 << (offset & 63)
  kHuge = 10,      // ~0 - offset
  kLastMmap = 11,  // the last address mmap returned + offset
  kBrk = 12,       // the current break + offset
  kWide = 13,      // offset << 32 | offset
  kLow = 14,       // 0x10000 (the boot info) + offset
  kImage = 15,     // 0x100000 (the image) + offset
};
constexpr std::uint32_t code(Mode m, std::uint32_t offset) {
  return (static_cast<std::uint32_t>(m) << 28) | (offset & 0x0FFFFFFF);
}

// The system call numbers the VMM serves (and a few it does not); nr codes below 0x8000 index this
// table, others are taken as they are.
inline constexpr std::uint64_t kSyscalls[] = {0,   1,   3,   8,   9,   10,  11,  12,  13,  14,  16,
                                              20,  24,  25,  28,  39,  60,  96,  102, 104, 107, 108,
                                              158, 186, 201, 218, 228, 231, 257, 318, 435};

// Helpers for writing programs (the seed generator).
struct Writer {
  std::vector<std::uint8_t> out;
  template <typename T>
  Writer& put(T v) {
    const auto at = out.size();
    out.resize(at + sizeof(T));
    std::memcpy(out.data() + at, &v, sizeof(T));
    return *this;
  }
  Writer& poke(std::uint32_t addr, const std::vector<std::uint8_t>& bytes) {
    put<std::uint8_t>(kPoke).put(addr).put(static_cast<std::uint8_t>(bytes.size()));
    out.insert(out.end(), bytes.begin(), bytes.end());
    return *this;
  }
  Writer& hypercall(std::uint8_t nr, std::uint32_t where, std::initializer_list<std::uint32_t> f,
                    std::uint8_t access = 0) {
    put<std::uint8_t>(kHypercall).put(nr).put(access).put(where);
    std::uint32_t fields[7] = {};
    std::size_t i = 0;
    for (auto v : f) fields[i++] = v;
    for (auto v : fields) put(v);
    return *this;
  }
  Writer& syscall(std::uint16_t nr_index, std::initializer_list<std::uint32_t> args) {
    put<std::uint8_t>(kSyscall).put(nr_index);
    std::uint32_t a[6] = {};
    std::size_t i = 0;
    for (auto v : args) a[i++] = v;
    for (auto v : a) put(v);
    return *this;
  }
  Writer& exception(std::uint8_t vector, std::uint8_t which, std::uint32_t err, std::uint32_t rip,
                    std::uint32_t addr) {
    return put<std::uint8_t>(kException).put(vector).put(which).put(err).put(rip).put(addr);
  }
  Writer& mmio(std::uint8_t size, bool write, std::uint32_t addr, std::uint32_t value) {
    return put<std::uint8_t>(kMmio).put(size).put<std::uint8_t>(write).put(addr).put(value);
  }
  Writer& port(std::uint16_t port, std::uint8_t size, bool write, std::uint32_t value) {
    return put<std::uint8_t>(kPort).put(port).put(size).put<std::uint8_t>(write).put(value);
  }
  Writer& stop(std::uint8_t kind) { return put<std::uint8_t>(kStop).put(kind); }
};

// The index of a system call number in kSyscalls (for the seeds).
constexpr std::uint16_t sys(std::uint64_t nr) {
  for (std::uint16_t i = 0; i < sizeof kSyscalls / sizeof kSyscalls[0]; ++i)
    if (kSyscalls[i] == nr) return i;
  return static_cast<std::uint16_t>(0x8000 | nr);
}

}  // namespace unifn::fuzz::guest
