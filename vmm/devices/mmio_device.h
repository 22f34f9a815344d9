// A device on the MMIO bus of a function VM (virtio-mmio transports), with its snapshot state.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmm/machine.h"

namespace unifn::vmm {

class MmioDevice {
 public:
  virtual ~MmioDevice() = default;
  virtual std::uint32_t device_id() const = 0;  // the virtio device id the boot info announces
  virtual std::uint64_t window_size() const { return 0x1000; }
  // Called once the device has its place: base is the gpa of its register window.
  virtual void attach(Machine& machine, std::uint64_t base) {
    (void)machine;
    (void)base;
  }
  // One guest access inside the window (addr is absolute).
  virtual IoResult access(Machine& machine, MmioAccess& a) = 0;
  // Called before every run of the guest with that run's deadline, for devices that budget long
  // work.
  virtual void begin_run(std::chrono::steady_clock::time_point deadline) { (void)deadline; }
  // Device state for snapshots, in the device's own typed encoding (snapshot/persist.h): save()
  // gives it; check() names what keeps restore() from taking state, nullopt if nothing; restore()
  // of state that passed check() cannot fail, and of state that did not throws
  // std::runtime_error with that sentence, the device unchanged. restore(save()) gives back the
  // same device.
  virtual std::vector<std::uint8_t> save() const = 0;
  virtual std::optional<std::string> check(std::span<const std::uint8_t> state) const = 0;
  virtual void restore(std::span<const std::uint8_t> state) = 0;
};

using MmioDeviceFactory = std::function<std::unique_ptr<MmioDevice>()>;

// Where function VMs place their MMIO devices: one 2 MiB window above guest RAM.
inline constexpr std::uint64_t kMmioWindowBase = 0xD0000000ull;
inline constexpr std::uint64_t kMmioWindowSize = 2ull << 20;

}  // namespace unifn::vmm
