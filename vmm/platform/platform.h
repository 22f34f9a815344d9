// The platform seam: where a function's guest runs (KVM, the sandbox process, a memory-only
// fake), and how the daemon chooses one. Everything above it (the personality, devices,
// snapshots, pools) is written once against Machine.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/fd.h"
#include "vmm/machine.h"

namespace unifn::vmm {

// A stretch of guest RAM and its rights (an image's segments). Platforms that can enforce them
// do (the sandbox); KVM maps RAM whole. RAM no region names is read-write data.
struct MemoryRegion {
  std::uint64_t gpa = 0, size = 0;
  bool write = false, exec = false;
};

struct MachineSpec {
  std::size_t ram_bytes = 0;
  const Fd* ram_file = nullptr;  // a restore: RAM starts as this file's bytes (a snapshot's)
  bool track_writes = false;     // take_dirty_pages() will be asked for (reset-in-place)
  std::vector<MemoryRegion> regions;
};

// Private RAM for a machine in this process (KVM, fake): the snapshot's file mapped copy-on-write,
// or fresh zeroed memory.
std::unique_ptr<GuestMemory> private_ram(const MachineSpec& spec);

class Platform {
 public:
  virtual ~Platform() = default;
  virtual PlatformKind kind() const = 0;
  std::string_view name() const { return to_string(kind()); }
  virtual std::unique_ptr<Machine> create(const MachineSpec& spec) = 0;
  // One sentence: what a guest on this platform is isolated by, and what it is not.
  virtual std::string isolation() const = 0;
  // Why state cannot be applied to a machine of this platform (another platform's, a size or
  // version its machines do not read), as a sentence; nullopt when apply() will take it. The check
  // apply() itself makes, so that a snapshot file is set aside when it loads rather than failing
  // every restore. This default checks the platform only.
  virtual std::optional<std::string> cpu_state_problem(const CpuState& state) const;
};

// The platforms of this process, each made once. kvm_platform() throws with a sentence that
// names /dev/kvm when KVM cannot be used here.
Platform& kvm_platform();
Platform& sandbox_platform();
// nullopt when /dev/kvm opens and a probe VM runs a guest instruction; else why not.
const std::optional<std::string>& kvm_unavailable_reason();

struct PlatformChoice {
  Platform* platform = nullptr;
  std::string warning;  // set when `auto` fell back to the sandbox: why, and what it isolates
};
// name: "auto", "kvm" or "sandbox". auto takes KVM when it works, else the sandbox. Throws
// std::invalid_argument for another name and std::runtime_error for kvm on a host without it.
PlatformChoice choose_platform(std::string_view name);
// The platform of a FunctionVmConfig that names none: $UNIFN_PLATFORM if set (tests run each
// platform this way), else auto. Chosen once per process.
Platform& default_platform();

}  // namespace unifn::vmm
