// The memory-only platform for unit tests and fuzzers.
#include "platform/fake/fake_machine.h"

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

void FakeMachine::apply(const CpuState& state) {
  if (state.platform != PlatformKind::Fake || state.bytes.size() != sizeof regs_)
    throw std::invalid_argument("not a fake vCPU state");
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
};
}  // namespace

Platform& fake_platform() {
  static FakePlatform platform;
  return platform;
}

}  // namespace unifn::vmm
