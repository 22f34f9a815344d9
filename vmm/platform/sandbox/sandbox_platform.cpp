// The sandbox platform: machines are supervised guest processes; available on any Linux host.
#include <fmt/format.h>

#include "vmm/platform/platform.h"
#include "vmm/platform/sandbox/sandbox_machine.h"

namespace unifn::vmm {

namespace {

class SandboxPlatform final : public Platform {
 public:
  PlatformKind kind() const override { return PlatformKind::Sandbox; }
  std::unique_ptr<Machine> create(const MachineSpec& spec) override {
    return std::make_unique<SandboxMachine>(
        GuestMemory::shared(spec.ram_bytes, spec.ram_file ? spec.ram_file->get() : -1), spec);
  }
  std::optional<std::string> cpu_state_problem(const CpuState& state) const override {
    return SandboxMachine::state_problem(state);
  }
  std::string isolation() const override {
    const auto& iso = SandboxMachine::isolation();
    std::string s =
        "each function runs as its own process whose every system call is stopped and emulated by "
        "unifnd (ptrace), "
        "behind a seccomp filter, no_new_privs and resource limits";
    s += iso.missing.size() == 5 ? ", without namespaces" : ", in new namespaces";
    if (!iso.missing.empty() && iso.missing.size() < 5)
      s += fmt::format(" (the host refused: {})", fmt::join(iso.missing, ", "));
    s += iso.nobody ? ", as user nobody" : ", as unifnd's own user (it may not map another)";
    s += "; this is process isolation, weaker than a virtual machine";
    return s;
  }
};

}  // namespace

Platform& sandbox_platform() {
  static SandboxPlatform platform;
  return platform;
}

}  // namespace unifn::vmm
