// The fuzz input format: a small header, then the first bytes of guest RAM (rings at fixed places).
#pragma once

#include <cstddef>
#include <cstdint>

namespace unifn::fuzz {

inline constexpr std::uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000, kData = 0x10000;
inline constexpr std::uint16_t kQueue = 64;
inline constexpr std::size_t kRam = 1u << 20;

inline constexpr std::uint32_t kModeCpu = 1;       // the CPU backend (OpenBLAS, OpenCV) instead of the reference
inline constexpr std::uint32_t kModeOddQueue = 2;  // queue size from the header instead of 64
inline constexpr std::uint32_t kModePokes = 4;     // register writes from the header, then notify again
inline constexpr std::uint32_t kModeRestore = 8;   // save, restore into a new device, notify it

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
