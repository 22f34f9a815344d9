// The memory-only platform for unit tests and fuzzers.
#include "vmm/platform/fake/fake_machine.h"

#include <cstring>
#include <fmt/format.h>
#include <stdexcept>

namespace unifn::vmm {

Stop FakeMachine::run(std::chrono::steady_clock::time_point) {
  count_exit();
  if (cancelled()) return Stop{StopKind::Cancelled, 0, "the call was cancelled"};
  if (script.empty()) return Stop{StopKind::Fault, 0, "the fake platform runs no guest code"};
  Stop s = std::move(script.front());
  script.pop_front();
  return s;
}

std::string FakeMachine::where() { return fmt::format("rip {:#x} (fake)", regs_.rip); }

void FakeMachine::start_user(std::uint64_t rip, std::uint64_t rsp, std::uint64_t arg) {
  regs_ = {};
  regs_.rip = rip;
  regs_.rsp = rsp;
  regs_.rdi = arg;
}

CpuState FakeMachine::capture() {
  CpuState s{PlatformKind::Fake, std::vector<std::uint8_t>(sizeof regs_)};
  std::memcpy(s.bytes.data(), &regs_, sizeof regs_);  // a plain struct as bytes
  return s;
}

std::optional<std::string> FakeMachine::state_problem(const CpuState& state) {
  if (state.platform != PlatformKind::Fake)
    return fmt::format("a {} vCPU state is not a fake one", to_string(state.platform));
  if (state.bytes.size() != sizeof regs_)
    return fmt::format("a fake vCPU state of {} bytes (expected {})", state.bytes.size(),
                       sizeof regs_);
  return std::nullopt;
}

void FakeMachine::apply(const CpuState& state) {
  if (auto bad = state_problem(state)) throw std::invalid_argument(*bad);
  std::memcpy(&regs_, state.bytes.data(), sizeof regs_);
}

namespace {
class FakePlatform final : public Platform {
 public:
  PlatformKind kind() const override { return PlatformKind::Fake; }
  std::unique_ptr<Machine> create(const MachineSpec& spec) override {
    return std::make_unique<FakeMachine>(private_ram(spec));
  }
  std::string isolation() const override { return "nothing runs: the fake platform is for tests"; }
  std::optional<std::string> cpu_state_problem(const CpuState& state) const override {
    return FakeMachine::state_problem(state);
  }
};
}  // namespace

Platform& fake_platform() {
  static FakePlatform platform;
  return platform;
}

}  // namespace unifn::vmm
