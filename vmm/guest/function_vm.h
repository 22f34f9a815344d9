// A unifn function running in its own VM: boot to the first NEXT_REQUEST, then one invoke per
// request.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vmm/devices/console.h"
#include "vmm/devices/mmio_device.h"
#include "vmm/guest/function_image.h"
#include "vmm/guest/linux_syscalls.h"
#include "vmm/machine.h"
#include "vmm/platform/platform.h"
#include "vmm/snapshot/snapshot.h"

struct unifn_boot_info;

namespace unifn::vmm {

struct FunctionVmConfig {
  std::size_t memory_bytes = 64ull << 20;
  std::size_t max_body_bytes = 6ull << 20;  // the request/response area holds twice this
  std::string cmdline;
  std::vector<std::pair<std::string, std::string>> env;
  std::chrono::milliseconds init_timeout{10000};
  // Devices on the MMIO bus (virtio-accel, ...), created per VM and announced in the boot info.
  std::vector<MmioDeviceFactory> devices;
  // Names what the devices are and run on ("accel:cpu"): part of the snapshot key, so a function
  // moved to another backend gets its own snapshot.
  std::string device_key;
  // Where the guest runs; nullptr: default_platform(). Part of the snapshot key.
  Platform* platform = nullptr;
  Platform& platform_or_default() const { return platform ? *platform : default_platform(); }
};

// The answer to one invocation. When stop.kind is Parked the function answered (status,
// content_type, body) and the VM is ready for the next request; any other kind means the VM
// is finished and stop.message says why.
struct Outcome {
  Stop stop;
  bool too_large = false;  // the body did not fit the guest's buffer; nothing was delivered
  std::uint32_t status = 0;
  std::string content_type;
  std::string body;
  std::uint64_t deliver_tsc = 0;  // guest TSC when the request was handed over
  std::uint64_t handler_tsc = 0;  // guest TSC when the handler started (from the guest)
  bool ok() const { return stop.kind == StopKind::Parked && !too_large; }
};

// Thrown by boot when the guest never reaches its first NEXT_REQUEST.
class BootError : public std::runtime_error {
 public:
  BootError(Stop s, const std::string& image);
  Stop stop;
};

class FunctionVm {
 public:
  // Creates the VM, loads the image, runs it until its first NEXT_REQUEST (initialised).
  static std::unique_ptr<FunctionVm> boot(std::shared_ptr<const FunctionImage> image,
                                          const FunctionVmConfig& cfg, Console::Sink console);
  // A new VM from a snapshot: RAM mapped copy-on-write from the snapshot's file, state reloaded,
  // the guest's random seed refreshed. Ready for invoke() and reset(). Throws
  // std::invalid_argument, naming the piece, for a heap, vCPU or device state that does not pass
  // its check (snapshot/persist.h), before anything is restored.
  static std::unique_ptr<FunctionVm> restore(std::shared_ptr<const Snapshot> snap,
                                             std::shared_ptr<const FunctionImage> image,
                                             const FunctionVmConfig& cfg, Console::Sink console);

  // Freezes this parked VM: writes its non-zero RAM pages into ram_file (an empty regular
  // file or memfd) and captures vCPU, device and guest state.
  std::shared_ptr<Snapshot> snapshot(Fd ram_file);
  // Returns a restored VM to its snapshot exactly: drops the pages written since (by the guest
  // or the VMM), reloads vCPU, device and guest state. Cost grows with the pages dirtied.
  void reset();
  // Whether reset() can work: a VM restored from a snapshot; not one booted cold.
  bool can_reset() const { return snap_ != nullptr; }
  std::uint64_t last_reset_pages() const { return last_reset_pages_; }
  ~FunctionVm();

  Outcome invoke(std::span<const std::uint8_t> body, std::string_view content_type,
                 std::chrono::steady_clock::time_point deadline);

  bool parked() const { return parked_at_.has_value(); }
  // Its RAM's own pages, beyond the snapshot it shares (GuestMemory::private_bytes).
  std::uint64_t private_memory_bytes() const { return machine_->memory().private_bytes(); }
  Machine& machine() { return *machine_; }
  const std::vector<std::unique_ptr<MmioDevice>>& devices() const { return devices_; }
  const FunctionImage& image() const { return *image_; }
  std::uint64_t requests() const { return requests_; }
  std::uint64_t guest_tsc_now() const { return machine_->guest_tsc_now(); }
  std::uint64_t syscalls() const { return syscalls_.count(); }
  // Guest TSC ticks to microseconds.
  double tsc_to_us(std::uint64_t ticks) const {
    return static_cast<double>(ticks) * 1000.0 / static_cast<double>(tsc_khz_);
  }

 private:
  FunctionVm(std::shared_ptr<const FunctionImage> image, const FunctionVmConfig& cfg,
             Console::Sink console);
  void write_boot_info();
  void wire_ports();
  void attach_devices(unifn_boot_info& bi);
  IoResult on_hypercall(std::uint32_t nr, std::uint32_t gpa);
  IoResult on_syscall(GuestRegs& regs);
  IoResult on_exception(const GuestException& e);
  IoResult park(std::uint64_t next_gpa);

  using Layout = GuestLayout;
  static Layout plan(const FunctionImage& image, const FunctionVmConfig& cfg);
  FunctionVm(std::shared_ptr<const FunctionImage> image, const FunctionVmConfig& cfg,
             Console::Sink console, std::shared_ptr<const Snapshot> snap);
  void reseed();
  Stop run_guest(std::chrono::steady_clock::time_point deadline);

  std::shared_ptr<const FunctionImage> image_;
  FunctionVmConfig cfg_;
  Layout layout_;
  Console console_;
  std::unique_ptr<Machine> machine_;
  LinuxSyscalls syscalls_;
  std::vector<std::unique_ptr<MmioDevice>> devices_;
  std::optional<GuestAddr> parked_at_;  // the unifn_hc_next the guest waits in; none while it runs
  std::uint64_t requests_ = 0;
  std::uint64_t tsc_khz_ = 1;
  // Time the guest has spent running: its CPU time (a unifn guest never blocks inside a run).
  std::chrono::nanoseconds ran_{0};
  std::chrono::steady_clock::time_point running_since_{};
  std::chrono::steady_clock::time_point deadline_ =
      std::chrono::steady_clock::time_point::max();  // of the run under way
  Outcome* current_ = nullptr;                       // the invocation being served
  std::shared_ptr<const Snapshot> snap_;             // set when restored: what reset() returns to
  std::uint64_t last_reset_pages_ = 0;
};

}  // namespace unifn::vmm
