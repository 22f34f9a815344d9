// virtio-mmio (version 2) register offsets, device status bits and feature bits
// (virtio 1.2, 4.2.2).
#pragma once

#include <cstdint>

namespace unifn::vmm::virtio {

namespace reg {
inline constexpr std::uint64_t kMagic = 0x000;     // R: "virt"
inline constexpr std::uint64_t kVersion = 0x004;   // R: 2
inline constexpr std::uint64_t kDeviceId = 0x008;  // R
inline constexpr std::uint64_t kVendorId = 0x00c;  // R
inline constexpr std::uint64_t kDeviceFeatures =
    0x010;  // R: 32 bits selected by kDeviceFeaturesSel
inline constexpr std::uint64_t kDeviceFeaturesSel = 0x014;  // W
inline constexpr std::uint64_t kDriverFeatures = 0x020;     // W
inline constexpr std::uint64_t kDriverFeaturesSel = 0x024;  // W
inline constexpr std::uint64_t kQueueSel = 0x030;           // W
inline constexpr std::uint64_t kQueueNumMax = 0x034;        // R
inline constexpr std::uint64_t kQueueNum = 0x038;           // W
inline constexpr std::uint64_t kQueueReady = 0x044;         // RW
inline constexpr std::uint64_t kQueueNotify = 0x050;        // W: queue index
inline constexpr std::uint64_t kInterruptStatus = 0x060;    // R
inline constexpr std::uint64_t kInterruptAck = 0x064;       // W
inline constexpr std::uint64_t kStatus = 0x070;             // RW: 0 resets the device
inline constexpr std::uint64_t kQueueDescLow = 0x080;       // W
inline constexpr std::uint64_t kQueueDescHigh = 0x084;      // W
inline constexpr std::uint64_t kQueueDriverLow = 0x090;     // W: the available ring
inline constexpr std::uint64_t kQueueDriverHigh = 0x094;    // W
inline constexpr std::uint64_t kQueueDeviceLow = 0x0a0;     // W: the used ring
inline constexpr std::uint64_t kQueueDeviceHigh = 0x0a4;    // W
inline constexpr std::uint64_t kShmSel = 0x0ac;             // W
inline constexpr std::uint64_t kShmLenLow = 0x0b0;          // R: all ones: no shared memory region
inline constexpr std::uint64_t kShmLenHigh = 0x0b4;         // R
inline constexpr std::uint64_t kConfigGeneration = 0x0fc;   // R
inline constexpr std::uint64_t kConfig = 0x100;             // device-specific configuration space
}  // namespace reg

inline constexpr std::uint32_t kMagicValue = 0x74726976;  // "virt", little-endian
inline constexpr std::uint32_t kVersion2 = 2;

// Device status bits the driver sets.
namespace status {
inline constexpr std::uint32_t kAcknowledge = 1;
inline constexpr std::uint32_t kDriver = 2;
inline constexpr std::uint32_t kDriverOk = 4;
inline constexpr std::uint32_t kFeaturesOk = 8;
inline constexpr std::uint32_t kNeedsReset = 64;
inline constexpr std::uint32_t kFailed = 128;
}  // namespace status

// Transport feature bits.
inline constexpr std::uint64_t kFeatureVersion1 = 1ull << 32;

// Split virtqueue descriptor flags.
inline constexpr std::uint16_t kDescNext = 1;
inline constexpr std::uint16_t kDescWrite = 2;
inline constexpr std::uint16_t kDescIndirect = 4;

// Interrupt status bits.
inline constexpr std::uint32_t kInterruptUsedBuffer = 1;

}  // namespace unifn::vmm::virtio
