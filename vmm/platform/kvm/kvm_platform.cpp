// The KVM platform: machines are KVM VMs; usable when /dev/kvm opens and a probe VM runs.
#include <fmt/format.h>

#include "vmm/platform/kvm/kvm_cpu_state.h"
#include "vmm/platform/kvm/kvm_machine.h"
#include "vmm/platform/platform.h"

namespace unifn::vmm {

namespace {

class KvmPlatform final : public Platform {
 public:
  PlatformKind kind() const override { return PlatformKind::Kvm; }
  std::unique_ptr<Machine> create(const MachineSpec& spec) override {
    return std::make_unique<KvmMachine>(Kvm::instance(), private_ram(spec), spec.track_writes);
  }
  std::optional<std::string> cpu_state_problem(const CpuState& state) const override {
    try {
      KvmCpuState::from_state(state);  // what apply() reads
      return std::nullopt;
    } catch (const std::exception& e) {
      return e.what();
    }
  }
  std::string isolation() const override {
    return "each function runs in its own KVM virtual machine (hardware isolation)";
  }
};

// A VM of one page whose first instruction is HLT, run in real mode: KVM works if it halts.
std::optional<std::string> probe() {
  try {
    auto ram = std::make_unique<GuestMemory>(4096);
    ram->write_obj<std::uint8_t>(GuestAddr(0), 0xF4);
    KvmMachine m(Kvm::instance(), std::move(ram));
    kvm_sregs s = m.vcpu().sregs();
    s.cs.base = 0;
    s.cs.selector = 0;
    m.vcpu().set_sregs(s);
    kvm_regs r{};
    r.rflags = 2;
    m.vcpu().set_regs(r);
    Stop stop = m.run(std::chrono::steady_clock::now() + std::chrono::seconds(2));
    if (stop.kind != StopKind::Halted)
      return fmt::format("a probe VM did not run: {}", stop.message);
    return std::nullopt;
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
}

}  // namespace

const std::optional<std::string>& kvm_unavailable_reason() {
  static const std::optional<std::string> reason = probe();
  return reason;
}

Platform& kvm_platform() {
  if (const auto& why = kvm_unavailable_reason())
    throw std::runtime_error(fmt::format("the kvm platform cannot be used: {}", *why));
  static KvmPlatform platform;
  return platform;
}

}  // namespace unifn::vmm
