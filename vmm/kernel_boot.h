// Booting third-party kernels written for `qemu -kernel`: multiboot1 and PVH, COM1 and
// isa-debug-exit.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "vmm/machine.h"
#include "vmm/platform/platform.h"

namespace unifn::vmm {

struct KernelBootConfig {
  std::size_t memory_bytes = 64ull << 20;
  std::string cmdline;
  std::chrono::milliseconds timeout{10000};
  std::function<void(std::string_view)> serial;  // bytes the guest sends out of COM1
  // Where to boot; nullptr: default_platform(). Only KVM runs kernels (their code is ring 0).
  Platform* platform = nullptr;
};

struct KernelResult {
  Stop stop;
  // The status `unifnd run` exits with: isa-debug-exit's (value << 1) | 1, or 0 on HLT.
  int exit_status = 0;
};

// True for images that boot as third-party kernels rather than unifn functions: a 32-bit ELF
// or raw binary with a multiboot1 header, or an ELF with Xen's PVH entry note and no unifn note.
bool is_kernel_image(std::span<const std::uint8_t> bytes);

// Boots a multiboot1 or PVH kernel and runs it until it exits, halts, faults or times out;
// throws ImageError naming `name` when the image is neither.
KernelResult boot_kernel(const std::string& name, std::span<const std::uint8_t> bytes,
                         const KernelBootConfig& cfg);

}  // namespace unifn::vmm
