// Choosing a platform: auto takes KVM when a probe VM runs, else the sandbox, and says why.
#include "vmm/platform/platform.h"

#include <cstdlib>
#include <fmt/format.h>
#include <stdexcept>

namespace unifn::vmm {

std::unique_ptr<GuestMemory> private_ram(const MachineSpec& spec) {
  if (spec.ram_file)
    return std::make_unique<GuestMemory>(spec.ram_bytes, spec.ram_file->get(), spec.ram_bytes);
  return std::make_unique<GuestMemory>(spec.ram_bytes);
}

std::optional<std::string> Platform::cpu_state_problem(const CpuState& state) const {
  if (state.platform == kind()) return std::nullopt;
  return fmt::format("its vCPU state is a {} one, and functions here run on {}",
                     to_string(state.platform), name());
}

PlatformChoice choose_platform(std::string_view name) {
  if (name == "kvm") return {&kvm_platform(), ""};
  if (name == "sandbox") return {&sandbox_platform(), ""};
  if (name != "auto")
    throw std::invalid_argument(fmt::format("unknown platform '{}' (auto, kvm or sandbox)", name));
  if (!kvm_unavailable_reason()) return {&kvm_platform(), ""};
  return {&sandbox_platform(),
          fmt::format("KVM is not usable here ({}), so functions run on the sandbox platform: {}",
                      *kvm_unavailable_reason(), sandbox_platform().isolation())};
}

Platform& default_platform() {
  static Platform& chosen = []() -> Platform& {
    const char* env = std::getenv("UNIFN_PLATFORM");
    return *choose_platform(env && *env ? env : "auto").platform;
  }();
  return chosen;
}

}  // namespace unifn::vmm
