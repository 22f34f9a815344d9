// The fuzz input format: a small header, then guest RAM from kRamAt, the start of the guest's user
// memory (rings at fixed places above it).
#pragma once

#include <cstddef>
#include <cstdint>

namespace unifn::fuzz {

inline constexpr std::uint64_t kRamAt =
    0x10000;  // layout::kUserLow: the device refuses rings and buffers below
inline constexpr std::uint64_t kDesc = 0x11000, kAvail = 0x12000, kUsed = 0x13000, kData = 0x20000;
inline constexpr std::uint16_t kQueue = 64;
inline constexpr std::size_t kRam = 1u << 20;

inline constexpr std::uint32_t kModeCpu =
    1;  // the CPU backend (OpenBLAS, OpenCV) instead of the reference
inline constexpr std::uint32_t kModeOddQueue = 2;  // queue size from the header instead of 64
inline constexpr std::uint32_t kModePokes =
    4;  // register writes from the header, then notify again
inline constexpr std::uint32_t kModeRestore = 8;  // save, restore into a new device, notify it
inline constexpr std::uint32_t kModeCancel = 16;  // the call is cancelled while the first op runs
inline constexpr std::uint32_t kModeLate =
    32;  // the call's deadline passed before the first notify

struct Poke {
  std::uint32_t offset, value;
};

struct Header {
  std::uint32_t mode;
  std::uint32_t queue_num;
  Poke pokes[4];
};
inline constexpr std::size_t kHeader = sizeof(Header);

}  // namespace unifn::fuzz
